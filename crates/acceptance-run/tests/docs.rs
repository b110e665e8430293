//! Tidy: the README's tables list exactly the keys the structs accept.

use acceptance_run::{PutParams, Source};
use testkit::fields::{field_names, table_keys};

const README: &str = include_str!("../README.md");

#[test]
fn readme_tables_match_the_structs() {
    let mut documented = table_keys(README, "## source");
    assert_eq!(documented.pop().as_deref(), Some("debug"));
    assert_eq!(documented, field_names::<Source>());
    let put = format!(
        "### params{}",
        README.split("### params").nth(2).expect("out params")
    );
    assert_eq!(table_keys(&put, "### params"), field_names::<PutParams>());
}
