//! The shape of each object in a pipeline, as Concourse's Go types give it: which keys an
//! object has and what type each value must be. Concourse reads the YAML into those types
//! strictly (`yaml.UnmarshalStrict` for the config, its own unknown-field check for steps), so an
//! unknown key or a value of the wrong type fails `set-pipeline`. A quoted `"true"` is a string,
//! not a boolean; `yes` unquoted is a boolean (YAML 1.1, see `yaml::resolve`).

use super::Findings;
use crate::yaml::{Node, Scalar, Value};

/// The type a key's value must have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any scalar (Go converts numbers and booleans to a string field).
    Str,
    Bool,
    Int,
    /// A list of scalars, e.g. `passed: [unit]`.
    StrList,
    /// A mapping (`source:`, `params:`).
    Map,
    /// A list (its items are checked by the caller).
    List,
    /// Anything; the caller checks it.
    Any,
    /// A Go duration (`10m`, `1h30m`), or a `((var))` resolved later.
    Duration,
}

/// Checks one value against its kind; the error says what it must be.
pub fn kind_error(node: &Node, kind: Kind) -> Option<String> {
    let scalar = node.scalar();
    let ok = match (kind, &scalar) {
        (Kind::Any, _) => true,
        (_, Some(Scalar::Null)) => true,
        (Kind::Str, s) => s.is_some(),
        (Kind::Bool, s) => matches!(s, Some(Scalar::Bool(_))),
        (Kind::Int, s) => matches!(s, Some(Scalar::Int(_))),
        (Kind::StrList, _) => match &node.value {
            Value::Seq(items) => items.iter().all(|i| i.scalar().is_some()),
            _ => false,
        },
        (Kind::Map, _) => matches!(node.value, Value::Map(_)),
        (Kind::List, _) => matches!(node.value, Value::Seq(_)),
        (Kind::Duration, Some(Scalar::Str(s))) => {
            s.contains("((") || protocol::duration::parse_go(s).is_ok()
        }
        (Kind::Duration, _) => false,
    };
    if ok {
        return None;
    }
    let quoted = match scalar {
        Some(Scalar::Str(s)) if !node.plain => format!(" \"{s}\" (quoted, so a string)"),
        _ => String::new(),
    };
    let want = match kind {
        Kind::Str => "a string".to_owned(),
        Kind::Bool => "true or false".to_owned(),
        Kind::Int => "a whole number".to_owned(),
        Kind::StrList => "a list of names, e.g. [unit]".to_owned(),
        Kind::Map => "a mapping".to_owned(),
        Kind::List => "a list".to_owned(),
        Kind::Any => "anything".to_owned(),
        Kind::Duration => {
            return Some(
                "is not a duration Go can parse: write it like 90s, 10m or 1h30m (units ns, us, ms, s, m, h; no spaces)".to_owned(),
            );
        }
    };
    Some(format!("must be {want}, not {}{quoted}", node.kind()))
}

/// Checks a mapping's keys against `fields`: unknown keys (with the nearest known one) and
/// values of the wrong type are reported at `path`. Returns false if `node` is not a mapping.
pub fn object(node: &Node, path: &str, fields: &[(&str, Kind)], out: &mut Findings) -> bool {
    if !matches!(node.value, Value::Map(_)) {
        out.concourse(
            node.line,
            format!("{path}: must be a mapping, not {}", node.kind()),
        );
        return false;
    }
    for (key, value) in node.entries() {
        let Some(name) = key.as_str() else { continue };
        match fields.iter().find(|(k, _)| *k == name) {
            None => out.concourse(
                key.line,
                unknown_key(path, name, fields.iter().map(|f| f.0)),
            ),
            Some((_, kind)) => {
                if let Some(e) = kind_error(value, *kind) {
                    out.concourse(value.line, format!("{path}.{name}: {e}"));
                }
            }
        }
    }
    true
}

/// `jobs.build: unknown field 'serial_group' (did you mean 'serial_groups'?)`.
pub fn unknown_key<'a>(path: &str, name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let nearest = known
        .map(|k| (strsim::levenshtein(k, name), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    match nearest {
        Some((_, k)) => format!("{path}: unknown field '{name}' (did you mean '{k}'?)"),
        None => format!("{path}: unknown field '{name}'; remove it"),
    }
}
