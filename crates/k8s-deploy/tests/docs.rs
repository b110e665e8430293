//! Tidy: the README's tables list exactly the keys the structs accept.

use k8s_deploy::source::{GetParams, PutParams, Source};
use testkit::fields::{field_names, table_keys};

const README: &str = include_str!("../README.md");

#[test]
fn readme_tables_match_the_structs() {
    let mut documented = table_keys(README, "## source");
    assert_eq!(documented.pop().as_deref(), Some("debug"));
    assert_eq!(documented, field_names::<Source>());
    let mut tables = README.split("### params").skip(1);
    let get = format!("### params{}", tables.next().expect("in params"));
    let put = format!("### params{}", tables.next().expect("out params"));
    assert_eq!(table_keys(&get, "### params"), field_names::<GetParams>());
    assert_eq!(table_keys(&put, "### params"), field_names::<PutParams>());
}
