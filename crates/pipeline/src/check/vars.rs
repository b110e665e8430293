//! `((vars))` as Concourse finds them (`vars/template.go`, `vars/reference.go`): a var is `((`,
//! one or more of letters, digits, `_ - / . : @ "`, then `))` (so `(( x ))` with spaces is plain
//! text, not a var); its name is `[source:]path[.field...]`, segments may be quoted to hold
//! dots or colons, and an empty segment (`((a..b))`, `((vault:))`) is an error.

use std::collections::BTreeSet;

/// One var reference: `source:path.fields` with quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub source: Option<String>,
    pub path: String,
}

fn var_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | ':' | '@' | '"')
}

/// The raw text between `((` and `))` of every var in `s`, in order.
pub fn raw_vars(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = s[i..].find("((").map(|p| p + i) {
        let body = start + 2;
        let end = s[body..]
            .char_indices()
            .find(|(_, c)| !var_char(*c))
            .map_or(s.len(), |(p, _)| body + p);
        if end > body && s[end..].starts_with("))") {
            out.push(&s[body..end]);
            i = end + 2;
        } else {
            i = start + 1;
        }
    }
    out
}

/// Finds `c` outside double quotes.
fn find_unquoted(s: &str, c: char) -> Option<usize> {
    let mut quoted = false;
    for (i, ch) in s.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == c && !quoted {
            return Some(i);
        }
    }
    None
}

/// Parses a var's name as Concourse's `ParseReference` does.
pub fn parse(raw: &str) -> Result<Reference, String> {
    if !raw.matches('"').count().is_multiple_of(2) {
        return Err(format!("invalid var '{raw}': contains unclosed quotes"));
    }
    let mut input = raw;
    let mut source = None;
    if let Some(i) = find_unquoted(input, ':') {
        let s = &input[..i];
        if s.contains('"') {
            return Err(format!("invalid var '{raw}': source must not be quoted"));
        }
        source = Some(s.trim().to_owned());
        input = &input[i + 1..];
    }
    let mut segments = Vec::new();
    loop {
        let (segment, rest) = match find_unquoted(input, '.') {
            Some(i) => (&input[..i], Some(&input[i + 1..])),
            None => (input, None),
        };
        let quoted = segment.contains('"');
        let mut field = segment.replace('"', "");
        if !quoted {
            field = field.trim().to_owned();
        }
        // Concourse cleans each segment as a path; what is left of `/` or `` is empty.
        if field.trim_matches('/').is_empty() {
            return Err(format!("invalid var '{raw}': empty field"));
        }
        segments.push(field);
        match rest {
            Some(r) => input = r,
            None => break,
        }
    }
    Ok(Reference {
        source,
        path: segments.remove(0),
    })
}

/// Pipeline-level vars in a string (the `path` of each var without a source): what `fly
/// set-pipeline -v` or the credential manager must provide. `((.:local))` and `((source:x))`
/// are not pipeline vars; malformed ones are left to the syntax rule.
pub fn vars_in(s: &str) -> Vec<String> {
    raw_vars(s)
        .into_iter()
        .filter_map(|raw| parse(raw).ok())
        .filter(|r| r.source.is_none())
        .map(|r| r.path)
        .collect()
}

/// Top-level keys of a vars file.
pub fn var_names(text: &str) -> Result<BTreeSet<String>, String> {
    let doc = crate::yaml::parse(text)?;
    Ok(doc
        .entries()
        .iter()
        .filter_map(|(k, _)| k.as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_are_found_but_local_and_sourced_ones_are_not_pipeline_vars() {
        assert_eq!(
            vars_in(
                r#"a ((X)) b ((creds.password)) ((.:local)) ((vault:x)) (("dotted.name".f)) (( spaced ))"#
            ),
            ["X", "creds", "dotted.name"]
        );
    }

    #[test]
    fn references_parse_as_concourse_parses_them() {
        assert_eq!(
            parse(r#""my:path"."field.1""#).unwrap(),
            Reference {
                source: None,
                path: "my:path".into()
            }
        );
        assert_eq!(
            parse("source:hello.a").unwrap(),
            Reference {
                source: Some("source".into()),
                path: "hello".into()
            }
        );
        for bad in [
            "a..b",
            "vault:",
            "vault:.field",
            r#"vault:"".field"#,
            r#""src":p"#,
            r#"a"b"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(raw_vars("(((a)))"), ["a"]);
        assert!(raw_vars("(( a ))").is_empty());
    }
}
