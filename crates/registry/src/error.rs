//! What a registry call can fail with, by what the caller does about it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 401: the credentials are missing, wrong or expired. Not retried.
    #[error("{what}: unauthorized (HTTP 401){detail}; {hint}")]
    Unauthorized {
        what: String,
        detail: String,
        hint: String,
    },
    /// 403: authenticated, but not allowed. Not retried.
    #[error("{what}: denied (HTTP 403){detail}; {hint}")]
    Denied {
        what: String,
        detail: String,
        hint: String,
    },
    /// 404 where the caller needs the thing to exist.
    #[error("{what}: not found{detail}; check the repository name and that the image exists")]
    NotFound { what: String, detail: String },
    /// 429 still failing at the deadline.
    #[error("{what}: rate limited by the registry (HTTP 429) until the deadline{}", retry_after.map(|d| format!("; it asked to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        what: String,
        retry_after: Option<Duration>,
    },
    /// 5xx or a broken connection, still failing at the deadline.
    #[error("{what}: {message}")]
    Transient { what: String, message: String },
    /// The registry answered something we cannot use (bad JSON, wrong digest, 4xx).
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    /// Google credentials could not be turned into a token.
    #[error("source.google_credentials: {0}")]
    Google(#[from] google_auth::AuthError),
}

/// The registry's error envelope, `{"errors": [{"code", "message"}]}`, as ` (CODE: message)`.
pub(crate) fn envelope_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .take(3)
                .map(|x| {
                    let code = x.code.as_deref().unwrap_or("ERROR");
                    match x.message.as_deref() {
                        Some(m) if !m.is_empty() => {
                            format!("{code}: {}", m.chars().take(200).collect::<String>())
                        }
                        _ => code.to_owned(),
                    }
                })
                .collect();
            format!(" ({})", parts.join("; "))
        }
        _ => String::new(),
    }
}
