//! Tidy: the README's tables list exactly the keys the structs accept.

use example_resource::source::{GetParams, PutParams, Source};
use testkit::fields::{field_names, table_keys};

const README: &str = include_str!("../README.md");

#[test]
fn readme_source_table_matches_the_source_struct() {
    let mut documented = table_keys(README, "## source");
    assert_eq!(
        documented.pop().as_deref(),
        Some("debug"),
        "debug (harness-owned) is documented last"
    );
    assert_eq!(documented, field_names::<Source>());
}

#[test]
fn readme_params_tables_match_the_params_structs() {
    let mut tables = README.split("### params").skip(1);
    let get = tables.next().expect("in params table");
    let put = tables.next().expect("out params table");
    assert_eq!(
        table_keys(&format!("### params{get}"), "### params"),
        field_names::<GetParams>()
    );
    assert_eq!(
        table_keys(&format!("### params{put}"), "### params"),
        field_names::<PutParams>()
    );
}
