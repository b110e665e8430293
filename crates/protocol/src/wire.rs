//! The JSON documents Concourse exchanges with a resource, typed.
//!
//! Requests are generic over each resource's `Source`, `Version` and params types; the
//! harness parses them (strictly) and hands the pieces to the step functions. Responses are
//! built by the steps and checked here before anything reaches stdout: a version must be a
//! flat JSON object of strings, metadata a list of `{name, value}` strings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `check` request: `{source, version?}`; no version on the first check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest<S, V> {
    pub source: S,
    #[serde(default = "none")]
    pub version: Option<V>,
}

/// `in` request: `{source, version, params?}`; a null version is refused before this parse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRequest<S, V, P: Default> {
    pub source: S,
    pub version: V,
    #[serde(default)]
    pub params: P,
}

/// `out` request: `{source, params?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest<S, P: Default> {
    pub source: S,
    #[serde(default)]
    pub params: P,
}

fn none<T>() -> Option<T> {
    None
}

/// What `in` and `out` print: the version and the metadata shown in the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct Response<V> {
    pub version: V,
    pub metadata: Metadata,
}

impl<V> Response<V> {
    pub fn new(version: V) -> Self {
        Self {
            version,
            metadata: Metadata::default(),
        }
    }

    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// One metadata entry. Strings only: the protocol has no other type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataField {
    pub name: String,
    pub value: String,
}

/// Ordered `[{name, value}]` list, readable in later steps as `((.:step.name))`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(pub Vec<MetadataField>);

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(MetadataField {
            name: name.into(),
            value: value.into(),
        });
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

/// Why a step's answer cannot be sent: a bug in the resource, never the user's input.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a version must serialize to a JSON object of strings, got {0}")]
    VersionNotObject(&'static str),
    #[error("version key {0:?} must be a string, got {1} (skip empty optional keys)")]
    VersionValueNotString(String, &'static str),
    #[error("a version must have at least one key")]
    EmptyVersion,
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Serializes a version and checks it is a flat, non-empty map of strings.
pub fn version_to_json<V: Serialize>(version: &V) -> Result<Map<String, Value>, WireError> {
    let value = serde_json::to_value(version)?;
    let Value::Object(map) = value else {
        return Err(WireError::VersionNotObject(kind(&value)));
    };
    if map.is_empty() {
        return Err(WireError::EmptyVersion);
    }
    if let Some((k, v)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(WireError::VersionValueNotString(k.clone(), kind(v)));
    }
    Ok(map)
}

/// The `in`/`out` answer as JSON.
pub fn response_to_json<V: Serialize>(response: &Response<V>) -> Result<Value, WireError> {
    let version = version_to_json(&response.version)?;
    Ok(serde_json::json!({
        "version": version,
        "metadata": response.metadata,
    }))
}

/// The `check` answer as JSON.
pub fn versions_to_json<V: Serialize>(versions: &[V]) -> Result<Value, WireError> {
    versions
        .iter()
        .map(|v| version_to_json(v).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct V {
        tag: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    }

    #[test]
    fn versions_must_be_flat_maps_of_strings() {
        let ok = V {
            tag: "1".into(),
            digest: None,
        };
        assert_eq!(version_to_json(&ok).unwrap().len(), 1);
        let mut nested = BTreeMap::new();
        nested.insert("a", serde_json::json!({"b": "c"}));
        assert!(matches!(
            version_to_json(&nested),
            Err(WireError::VersionValueNotString(k, "an object")) if k == "a"
        ));
        assert!(matches!(
            version_to_json(&"x"),
            Err(WireError::VersionNotObject("a string"))
        ));
        assert!(matches!(
            version_to_json(&BTreeMap::<String, String>::new()),
            Err(WireError::EmptyVersion)
        ));
    }

    #[test]
    fn response_has_version_and_metadata_as_name_value_strings() {
        let r = Response::new(V {
            tag: "t".into(),
            digest: Some("sha256:1".into()),
        })
        .with_metadata(Metadata::new().with("image", "r@sha256:1"));
        let json = response_to_json(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": {"tag": "t", "digest": "sha256:1"},
                "metadata": [{"name": "image", "value": "r@sha256:1"}]
            })
        );
    }
}
