//! The field names a serde type accepts, for "tidy" tests that keep README tables in step
//! with the `Source`/params structs.
//!
//! Works by asking the type to deserialize itself from a deserializer that records the
//! `fields` list serde's derive passes to `deserialize_struct`, then stops. Hand-written
//! because the crates that do this (serde-reflection) bring far more than these 40 lines.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

#[derive(Debug)]
struct Found(&'static [&'static str]);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fields recorded")
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Found(&[])
    }
}

struct Recorder;

impl<'de> Deserializer<'de> for Recorder {
    type Error = Found;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Found> {
        Err(Found(fields))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Found> {
        Err(Found(&[]))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The JSON keys `T` (a `#[derive(Deserialize)]` struct) accepts, in declaration order.
pub fn field_names<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    match T::deserialize(Recorder) {
        Err(Found(fields)) => fields.to_vec(),
        Ok(_) => Vec::new(),
    }
}

/// The keys in the first column of the markdown table that follows `heading` in `markdown`
/// (`| `key` | ...`): what a README documents.
pub fn table_keys(markdown: &str, heading: &str) -> Vec<String> {
    let mut lines = markdown.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "heading {heading:?} not found");
    lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2) // header and separator rows
        .filter_map(|l| {
            let cell = l.trim().trim_start_matches('|').split('|').next()?.trim();
            let key = cell.trim_matches('`');
            (!key.is_empty()).then(|| key.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct S {
        repository: String,
        #[serde(rename = "tag_regex")]
        regex: Option<String>,
    }

    #[test]
    fn field_names_follow_serde_renames() {
        assert_eq!(field_names::<S>(), ["repository", "tag_regex"]);
    }

    #[test]
    fn table_keys_reads_the_first_column_after_a_heading() {
        let md = "# R\n## source\n\nText.\n\n| key | required |\n|---|---|\n| `url` | yes |\n| `token` | no |\n\n## params\n";
        assert_eq!(table_keys(md, "## source"), ["url", "token"]);
    }
}
