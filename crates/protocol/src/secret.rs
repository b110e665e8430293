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
