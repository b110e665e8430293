//! From stdin bytes to a typed request, or one line that says what to fix.
//!
//! Two passes: first the raw JSON (size, UTF-8, syntax, the shape of `source`/`version`/
//! `params`, the harness-owned `source.debug`), then the typed parse through
//! `serde_path_to_error`, whose path names the field. serde's own messages are reworded here
//! so that they never quote a value (it may be a secret) and unknown keys get a "did you
//! mean". serde's message formats (`missing field`, `unknown field`, `invalid type`, ...) are
//! stable strings of serde::de::Error's default methods; the tests below pin them.

use crate::wire::kind;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Requests are a few KiB (a kubeconfig, a key); anything near this is a mistake.
pub(crate) const MAX_REQUEST: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    Check,
    Get,
    Put,
}

impl StepKind {
    pub(crate) fn word(self) -> &'static str {
        match self {
            StepKind::Check => "check",
            StepKind::Get => "in",
            StepKind::Put => "out",
        }
    }
}

/// A parsed request and the harness-owned `source.debug` flag.
pub(crate) struct Parsed<T> {
    pub request: T,
    pub debug: bool,
}

pub(crate) fn parse_request<T: DeserializeOwned>(
    bytes: &[u8],
    step: StepKind,
    resource: &str,
    examples: &[(&str, &str)],
) -> Result<Parsed<T>, String> {
    if bytes.len() > MAX_REQUEST {
        return Err(format!(
            "request: larger than {} MiB; Concourse requests are small, so check for a file pasted into source or params",
            MAX_REQUEST / (1024 * 1024)
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "request: not valid UTF-8 (at byte {}); send a JSON object",
            e.valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Err(format!(
            "request: stdin is empty; Concourse sends a JSON object, e.g. echo '{{\"source\": {{...}}}}' | {resource} {}",
            step.word()
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json syntax errors describe the position, never the content.
        format!("request: not valid JSON ({e})")
    })?;
    let Value::Object(mut top) = value else {
        return Err(format!(
            "request: expected a JSON object {{\"source\": {{...}}}}, got {}",
            kind(&value)
        ));
    };
    let debug = prepare_source(&mut top)?;
    prepare_version(&mut top, step)?;
    if matches!(top.get("params"), Some(Value::Null)) {
        top.remove("params");
    }
    if step == StepKind::Check && top.contains_key("params") {
        return Err("params: unknown key; check takes only source and version".into());
    }
    // serde reads a struct from a JSON array too, field by field in order: `params: ["a"]`
    // would silently become the first param. Params are a mapping, as in the pipeline.
    if let Some(p) = top.get("params")
        && !p.is_object()
    {
        return Err(format!(
            "params: expected a mapping of param names to values, got {}",
            kind(p)
        ));
    }
    let request =
        serde_path_to_error::deserialize(Value::Object(top)).map_err(|e| describe(&e, examples))?;
    Ok(Parsed { request, debug })
}

fn prepare_source(top: &mut Map<String, Value>) -> Result<bool, String> {
    let source = match top.get_mut("source") {
        None => {
            return Err(
                "source: missing; the request needs the resource's configuration (\"source\": {...})".into(),
            );
        }
        Some(s @ Value::Null) => {
            // A resource declared without `source:` in the pipeline.
            *s = Value::Object(Map::new());
            return Ok(false);
        }
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("source: expected an object, got {}", kind(other))),
    };
    match source.remove("debug") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(format!(
            "source.debug: expected true or false, got {}",
            kind(&other)
        )),
    }
}

fn prepare_version(top: &mut Map<String, Value>, step: StepKind) -> Result<(), String> {
    match (step, top.get("version")) {
        (StepKind::Get, None) => {
            Err("version: missing; in fetches one version (Concourse always sends it)".into())
        }
        (StepKind::Get, Some(Value::Null)) => Err(
            "version: null; in fetches one existing version: run check first, or pin a version"
                .into(),
        ),
        (StepKind::Check, Some(Value::Null)) => {
            top.remove("version");
            Ok(())
        }
        (StepKind::Put, Some(_)) => {
            Err("version: unknown key; out takes only source and params".into())
        }
        (_, Some(v)) if !v.is_object() => Err(format!(
            "version: expected an object of strings, got {}",
            kind(v)
        )),
        _ => Ok(()),
    }
}

/// Rewords a typed-parse error as `PATH: what to do`.
fn describe(
    err: &serde_path_to_error::Error<serde_json::Error>,
    examples: &[(&str, &str)],
) -> String {
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let msg = err.inner().to_string();
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else if path.rsplit('.').next() == Some(field) {
            path.clone()
        } else {
            format!("{path}.{field}")
        }
    };

    if let Some(field) = between(&msg, "missing field `", "`") {
        let full = join(field);
        let hint = examples
            .iter()
            .find(|(p, _)| *p == full)
            .map(|(_, ex)| format!("set it to e.g. {ex}"))
            .unwrap_or_else(|| "it is required".to_owned());
        return format!("{full}: missing; {hint}");
    }
    if let Some(field) = between(&msg, "unknown field `", "`") {
        let mut known = backticked(msg.split_once(", expected").map_or("", |(_, r)| r));
        // serde_path_to_error's path may or may not already end with the unknown key.
        let parent = match path.rsplit_once('.') {
            Some((parent, last)) if last == field => parent,
            None if path == field => "",
            _ => path.as_str(),
        };
        if parent == "source" {
            known.push("debug".to_owned());
        }
        let full = join(field);
        let list = if known.is_empty() {
            "none are allowed here".to_owned()
        } else {
            format!("known keys: {}", known.join(", "))
        };
        return match closest(field, &known) {
            Some(k) => format!("{full}: unknown key; did you mean \"{k}\"? ({list})"),
            None => format!("{full}: unknown key; {list}"),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let given = rest.split('`').next().unwrap_or("");
        let known = backticked(msg.split_once(", expected").map_or("", |(_, r)| r));
        return match closest(given, &known) {
            Some(k) => format!(
                "{}: unknown value; did you mean \"{k}\"? (one of: {})",
                display_path(&path),
                known.join(", ")
            ),
            None => format!(
                "{}: unknown value; one of: {}",
                display_path(&path),
                known.join(", ")
            ),
        };
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        // "invalid type: integer `42`, expected a string" or `string "x", expected u32`:
        // drop the quoted value (the value itself may contain ", expected", so split last).
        let (got, expected) = rest
            .rsplit_once(", expected ")
            .unwrap_or((rest, "another type"));
        let got = got.split(['`', '"']).next().unwrap_or("").trim();
        return format!(
            "{}: expected {expected}, got {}",
            display_path(&path),
            article(got)
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        let expected = rest
            .split_once(", expected ")
            .map_or("a valid value", |(_, e)| e);
        return format!(
            "{}: invalid value; expected {expected}",
            display_path(&path)
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        let expected = rest
            .split_once(", expected ")
            .map_or("another length", |(_, e)| e);
        return format!(
            "{}: wrong number of items; expected {expected}",
            display_path(&path)
        );
    }
    // Custom messages: ours (lenient, Secret, resources' own deserializers) never quote values.
    format!("{}: {}", display_path(&path), one_line(&msg))
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "request" } else { path }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(start)?;
    rest.split(end).next()
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn article(kind: &str) -> String {
    match kind {
        "integer" | "floating point" => format!("a number ({kind})"),
        "boolean" | "string" | "sequence" | "map" => {
            let plain = match kind {
                "sequence" => "list",
                "map" => "object",
                k => k,
            };
            format!("a {plain}")
        }
        "null" | "" => "null".to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) use crate::text::one_line;

/// The known name closest to a typo, if it is close enough to be what was meant.
fn closest<'a>(given: &str, known: &'a [String]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let given_n = norm(given);
    known
        .iter()
        .map(|k| {
            let d = strsim::damerau_levenshtein(&given_n, &norm(k));
            (d, k)
        })
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only the parse matters
    struct Source {
        #[serde(deserialize_with = "crate::lenient::string")]
        repository: String,
        #[serde(default)]
        tag_regex: Option<String>,
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        count: u32,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Digest,
        Rootfs,
    }

    type Req = crate::wire::CheckRequest<Source, std::collections::BTreeMap<String, String>>;

    fn err(json: &str) -> String {
        match parse_request::<Req>(
            json.as_bytes(),
            StepKind::Check,
            "gcr-image",
            &[("source.repository", "\"us.gcr.io/project/name\"")],
        ) {
            Ok(_) => panic!("expected an error for {json}"),
            Err(e) => e,
        }
    }

    #[test]
    fn missing_fields_are_named_with_an_example() {
        assert_eq!(
            err(r#"{"source": {}}"#),
            r#"source.repository: missing; set it to e.g. "us.gcr.io/project/name""#
        );
        assert_eq!(
            err(r#"{"version": {}}"#),
            r#"source: missing; the request needs the resource's configuration ("source": {...})"#
        );
    }

    #[test]
    fn unknown_keys_suggest_the_right_name() {
        assert_eq!(
            err(r#"{"source": {"repository": "r", "tag-regex": "x"}}"#),
            "source.tag-regex: unknown key; did you mean \"tag_regex\"? (known keys: repository, tag_regex, mode, count, debug)"
        );
        assert_eq!(
            err(r#"{"source": {"repository": "r"}, "verison": {}}"#),
            "verison: unknown key; did you mean \"version\"? (known keys: source, version)"
        );
        let far = err(r#"{"source": {"repository": "r", "zzzzzz": 1}}"#);
        assert!(
            far.starts_with("source.zzzzzz: unknown key; known keys: "),
            "{far}"
        );
    }

    #[test]
    fn wrong_types_name_the_kind_not_the_value() {
        assert_eq!(
            err(r#"{"source": {"repository": "r", "count": "canary-s3cret"}}"#),
            "source.count: expected u32, got a string"
        );
        assert_eq!(
            err(r#"{"source": {"repository": "r", "mode": "rootfz"}}"#),
            "source.mode: unknown value; did you mean \"rootfs\"? (one of: digest, rootfs)"
        );
        assert_eq!(
            err(r#"{"source": {"repository": true}}"#),
            "source.repository: expected a string, got a boolean; quote it in the pipeline (YAML reads yes/no/on/off/true/false as booleans)"
        );
        assert_eq!(
            err(r#"{"source": "r"}"#),
            "source: expected an object, got a string"
        );
    }

    #[test]
    fn yaml_numbers_where_strings_are_meant_are_accepted() {
        let ok = parse_request::<Req>(
            br#"{"source": {"repository": 42, "debug": true}, "version": null}"#,
            StepKind::Check,
            "x",
            &[],
        )
        .unwrap();
        assert_eq!(ok.request.source.repository, "42");
        assert!(ok.debug);
        assert!(ok.request.version.is_none());
    }

    #[test]
    fn shape_errors_come_before_the_typed_parse() {
        assert!(err("").starts_with("request: stdin is empty;"));
        assert!(err("  \n").starts_with("request: stdin is empty;"));
        assert_eq!(
            err("[1]"),
            "request: expected a JSON object {\"source\": {...}}, got a list"
        );
        assert!(err("{\"source\": ").starts_with("request: not valid JSON (EOF while parsing"));
        assert_eq!(
            err(r#"{"source": {"repository": "r", "debug": 3}}"#),
            "source.debug: expected true or false, got a number"
        );
        assert_eq!(
            err(r#"{"source": {"repository": "r"}, "params": {}}"#),
            "params: unknown key; check takes only source and version"
        );
    }

    #[test]
    fn params_given_as_a_list_are_refused_not_read_in_order() {
        #[derive(Debug, Default, Deserialize)]
        #[allow(dead_code)]
        struct Params {
            tag: Option<String>,
            merge: Option<bool>,
        }
        type Put = crate::wire::PutRequest<Source, Params>;
        for params in [r#"["1.0", true]"#, "\"tag\"", "3"] {
            let request = format!(r#"{{"source": {{"repository": "r"}}, "params": {params}}}"#);
            let Err(e) = parse_request::<Put>(request.as_bytes(), StepKind::Put, "x", &[]) else {
                panic!("{params}: accepted");
            };
            assert!(e.starts_with("params: expected a mapping"), "{params}: {e}");
        }
        let ok = r#"{"source": {"repository": "r"}, "params": {"tag": "1.0"}}"#;
        assert!(parse_request::<Put>(ok.as_bytes(), StepKind::Put, "x", &[]).is_ok());
    }

    #[test]
    fn closest_accepts_small_typos_only() {
        let known = vec!["tag".to_owned(), "repository".to_owned()];
        assert_eq!(closest("tga", &known), Some("tag"));
        assert_eq!(closest("repostiory", &known), Some("repository"));
        assert_eq!(closest("image", &known), None);
    }
}
