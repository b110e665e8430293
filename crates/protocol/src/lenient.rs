//! Field deserializers for what Concourse actually sends.
//!
//! Pipelines are YAML; Concourse turns them into JSON before a resource sees them, so
//! `tag: 42` arrives as the number 42. Where a string is meant, integers are accepted as their
//! decimal text. A non-integer number is refused (YAML turned `1.10` into 1.1: we cannot know
//! what was written), and so is a boolean (`yes`/`on` become `true` in YAML 1.1). Messages name
//! the kind of value, never the value: it may be a secret.
//!
//! Use with `#[serde(deserialize_with = "protocol::lenient::string")]` (or `opt_string`,
//! `strings`, with `#[serde(default)]` for the optional ones).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

const EXPECTING: &str = "a string";

struct StringVisitor;

impl<'de> Visitor<'de> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(E::custom(
            "expected a string, got a decimal number; quote it in the pipeline so YAML keeps it as written (e.g. \"2.10\")",
        ))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(E::custom(
            "expected a string, got a boolean; quote it in the pipeline (YAML reads yes/no/on/off/true/false as booleans)",
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(E::custom(
            "expected a string, got null; set a value or remove the key",
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom("expected a string, got a list"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom("expected a string, got an object"))
    }
}

/// A string; integers become their decimal text.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StringVisitor)
}

/// An optional string; `null` is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTING)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            string(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// A list of strings (each lenient as [`string`]); a single string is a list of one.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Item(s)) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    struct Item(String);
    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            string(d).map(Item)
        }
    }
    d.deserialize_any(ListVisitor)
}

/// A map of strings to strings (each value lenient as [`string`]): `build_args`, `env`.
pub fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::new())
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Self::Value::new();
            while let Some((k, Item(v))) = map.next_entry::<String, Item>()? {
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    struct Item(String);
    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            string(d).map(Item)
        }
    }
    d.deserialize_any(MapVisitor)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct S {
        #[serde(deserialize_with = "super::string")]
        tag: String,
        #[serde(default, deserialize_with = "super::opt_string")]
        opt: Option<String>,
        #[serde(default, deserialize_with = "super::strings")]
        list: Vec<String>,
        #[serde(default, deserialize_with = "super::string_map")]
        map: std::collections::BTreeMap<String, String>,
    }

    fn parse(json: &str) -> Result<S, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn yaml_integers_are_accepted_where_a_string_is_meant() {
        let s = parse(
            r#"{"tag": 42, "opt": 7, "list": [1, "b"], "map": {"NODE_VERSION": 4, "A": "b"}}"#,
        )
        .unwrap();
        assert_eq!(s.map["NODE_VERSION"], "4");
        assert_eq!(s.tag, "42");
        assert_eq!(s.opt.as_deref(), Some("7"));
        assert_eq!(s.list, ["1", "b"]);
    }

    #[test]
    fn a_single_string_is_a_list_of_one_and_null_is_none() {
        let s = parse(r#"{"tag": "x", "opt": null, "list": "only"}"#).unwrap();
        assert_eq!(s.opt, None);
        assert_eq!(s.list, ["only"]);
    }

    #[test]
    fn decimals_and_booleans_are_refused_with_a_hint_and_without_the_value() {
        let e = parse(r#"{"tag": 1.10}"#).unwrap_err();
        assert!(e.contains("quote it"), "{e}");
        assert!(!e.contains("1.1"), "{e}");
        let e = parse(r#"{"tag": true}"#).unwrap_err();
        assert!(e.contains("boolean"), "{e}");
        let e = parse(r#"{"tag": ["secret-value"]}"#).unwrap_err();
        assert!(!e.contains("secret-value"), "{e}");
    }
}
