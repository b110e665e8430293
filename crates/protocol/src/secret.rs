//! `Secret`: a credential that cannot be printed by accident.
//!
//! No `Display`, no `Serialize`; `Debug` prints `Secret(<redacted>)`. The only way to the
//! value is [`Secret::expose`], which makes every use greppable.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A password, token or key from `source` or `params`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that sends it (a header, a token exchange).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A token that goes into an HTTP header must be one line of visible characters: a CR, LF,
    /// NUL or other control character would end the header (or make the HTTP library panic).
    /// Surrounding whitespace, what a file or a YAML block scalar adds, is trimmed off.
    pub fn header_token(&self, field: &str) -> Result<Secret, crate::FieldError> {
        let trimmed = self.0.trim();
        if trimmed.is_empty() {
            return Err(crate::FieldError::new(field, "is empty; set the token"));
        }
        if trimmed.chars().any(|c| c.is_control()) {
            return Err(crate::FieldError::new(
                field,
                "contains a line break or another control character; a token is one line (check how the credential was pasted)",
            ));
        }
        Ok(Secret::new(trimmed))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts what YAML may turn a password into (an integer), like every string field;
    /// error messages never contain the value.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::lenient::string(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tokens_are_one_line() {
        let ok = Secret::new("  ghp_abc:+/=  \n")
            .header_token("source.token")
            .unwrap();
        assert_eq!(ok.expose(), "ghp_abc:+/=");
        for bad in ["a\nb", "a\rb", "a\0b", "a\u{7f}b", "", "  \n"] {
            let e = Secret::new(bad).header_token("source.token").unwrap_err();
            assert!(e.to_string().starts_with("source.token: "), "{e}");
            assert!(!e.to_string().contains(bad.trim()) || bad.trim().is_empty());
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("canary-hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), "canary-hunter2");
    }

    #[test]
    fn deserializes_from_a_string_or_a_yaml_integer() {
        let s: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
        let n: Secret = serde_json::from_str("123456").unwrap();
        assert_eq!(n.expose(), "123456");
    }

    #[test]
    fn type_errors_do_not_echo_the_value() {
        let err = serde_json::from_str::<Secret>("[\"canary-hunter2\"]").unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
    }
}
