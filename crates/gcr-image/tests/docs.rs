//! Tidy: the README's tables list exactly the keys the structs accept.

use gcr_image::put::PutParams;
use gcr_image::source::Source;
use testkit::fields::{field_names, table_keys};

const README: &str = include_str!("../README.md");

#[test]
fn readme_source_table_matches_the_source_struct() {
    let mut documented = table_keys(README, "## source");
    assert_eq!(documented.pop().as_deref(), Some("debug"));
    assert_eq!(documented, field_names::<Source>());
}

#[test]
fn readme_params_tables_match_the_params_structs() {
    let mut tables = README.split("### params").skip(1);
    let get = format!("### params{}", tables.next().expect("in params"));
    let put = format!("### params{}", tables.next().expect("out params"));
    assert_eq!(
        table_keys(&get, "### params"),
        field_names::<gcr_image::GetParams>()
    );
    assert_eq!(table_keys(&put, "### params"), field_names::<PutParams>());
}
