//! `FieldError`: the one shape of every configuration error.
//!
//! `source.repository: missing; set it to e.g. "us.gcr.io/project/name"`: the JSON path as the
//! user wrote it in the pipeline, then what is wrong and what to do. Never the value: it may be
//! a secret.

/// A problem with one field of the request, found while parsing or validating it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// JSON path as written in the pipeline: `source.tag`, `params.images[2].path`.
    pub path: String,
    /// What is wrong and how to fix it, lowercase, one line.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A required field that is absent: `PATH: missing; set it to e.g. EXAMPLE`.
    pub fn missing(path: impl Into<String>, example: &str) -> Self {
        Self::new(path, format!("missing; set it to e.g. {example}"))
    }

    /// Two fields that exclude each other.
    pub fn conflict(path: impl Into<String>, other: &str) -> Self {
        Self::new(
            path,
            format!("cannot be set together with {other}; keep one"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_path_then_message() {
        assert_eq!(
            FieldError::missing("source.repository", "\"us.gcr.io/p/n\"").to_string(),
            "source.repository: missing; set it to e.g. \"us.gcr.io/p/n\""
        );
        assert_eq!(
            FieldError::conflict("source.tag", "source.tag_regex").to_string(),
            "source.tag: cannot be set together with source.tag_regex; keep one"
        );
    }
}
