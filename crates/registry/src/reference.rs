//! Repository names, tags and digests, validated with messages a pipeline author can act on.
//!
//! Grammar from the distribution spec (`docs/spec/api.md`, "Overview"): a repository is a
//! registry host (with a dot or a port, or `localhost`) then path components of lowercase
//! alphanumerics separated by `.`, `_`, `__` or `-`; a tag matches `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! a digest is `sha256:` and 64 lowercase hex digits.

use std::fmt;

/// `HOST/PATH`, e.g. `us.gcr.io/microservices-kube/api-gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    pub host: String,
    pub path: String,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

impl Repository {
    /// Parses `HOST/PATH`. The error says what is wrong, without the `source.` prefix.
    pub fn parse(s: &str) -> Result<Self, String> {
        let example = "e.g. \"us.gcr.io/microservices-kube/api-gateway\"";
        if s.contains("://") {
            return Err(format!("must not have a scheme (no https://); {example}"));
        }
        if s.contains('@') || s.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(format!(
                "must not hold a tag or digest (use source.tag or source.tag_regex); {example}"
            ));
        }
        let Some((host, path)) = s.split_once('/') else {
            return Err(format!("must be HOST/PATH; {example}"));
        };
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(format!(
                "must start with the registry host (\"{}\" is not a host name); {example}",
                clip(host)
            ));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("has an invalid registry host; {example}"));
        }
        // A port must be a port: "host:99999" can never connect, so it is no transient fault
        // to retry for five minutes.
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!(
                "has an invalid port \"{}\" (1 to 65535); {example}",
                clip(port)
            ));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(format!(
                    "path component \"{}\" is invalid: use lowercase letters, digits and . _ - between them; {example}",
                    clip(component)
                ));
            }
        }
        Ok(Self {
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    /// `HOST/PATH:TAG`.
    pub fn tagged(&self, tag: &str) -> String {
        format!("{self}:{tag}")
    }

    /// `HOST/PATH@DIGEST`, the reference a deploy pins.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{self}@{digest}")
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn valid_component(c: &str) -> bool {
    if c.is_empty() {
        return false;
    }
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let bytes: Vec<char> = c.chars().collect();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__", or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-')) {
            return false;
        }
    }
    true
}

/// Checks a tag against the spec's grammar.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("must be 1 to 128 letters, digits, _ . - and not start with . or -".to_owned());
    }
    Ok(())
}

/// Checks a `sha256:` digest.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(())
        }
        _ => Err("must be sha256: followed by 64 lowercase hex digits".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_parse_into_host_and_path() {
        let r = Repository::parse("us.gcr.io/microservices-kube/api-gateway").unwrap();
        assert_eq!(r.host, "us.gcr.io");
        assert_eq!(r.path, "microservices-kube/api-gateway");
        assert_eq!(
            r.pinned("sha256:ab"),
            "us.gcr.io/microservices-kube/api-gateway@sha256:ab"
        );
        assert_eq!(
            Repository::parse("127.0.0.1:5000/a/b_c.d--e").unwrap().host,
            "127.0.0.1:5000"
        );
        assert_eq!(Repository::parse("localhost/x").unwrap().path, "x");
        assert_eq!(
            Repository::parse("europe-west1-docker.pkg.dev/proj/repo/img")
                .unwrap()
                .path,
            "proj/repo/img"
        );
    }

    #[test]
    fn malformed_repositories_say_what_to_fix() {
        for (input, start) in [
            ("api-gateway", "must be HOST/PATH;"),
            (
                "library/ubuntu",
                "must start with the registry host (\"library\" is not a host name);",
            ),
            ("https://us.gcr.io/p/x", "must not have a scheme"),
            ("us.gcr.io/p/x:1.0", "must not hold a tag or digest"),
            ("us.gcr.io/p/x@sha256:00", "must not hold a tag or digest"),
            ("us.gcr.io/P/x", "path component \"P\" is invalid"),
            ("us.gcr.io/p//x", "path component \"\" is invalid"),
            ("us.gcr.io/p/x-", "path component \"x-\" is invalid"),
            ("us.gcr.io/p/a.-b", "path component \"a.-b\" is invalid"),
            ("127.0.0.1:99999/r", "has an invalid port \"99999\""),
            ("127.0.0.1:0/r", "has an invalid port \"0\""),
            ("127.0.0.1:x/r", "has an invalid port \"x\""),
            ("localhost:/r", "has an invalid port \"\""),
        ] {
            let err = Repository::parse(input).unwrap_err();
            assert!(err.starts_with(start), "{input}: {err}");
        }
    }

    #[test]
    fn tags_and_digests_follow_the_spec_grammar() {
        assert!(validate_tag("1.2.3.dev").is_ok());
        assert!(validate_tag("_x").is_ok());
        assert!(validate_tag(".x").is_err());
        assert!(validate_tag("a/b").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_digest("sha256:ABC").is_err());
    }
}
