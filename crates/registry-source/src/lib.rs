//! The `source` keys every registry-backed resource takes (gcr-image's source,
//! acceptance-run's report store): `google_credentials`, or `username` + `password`, or none;
//! `ca_certs`. They become the registry client's `Credentials` and the `Hints` its 401/403
//! errors give, naming these keys. Here, not in the registry client, which knows nothing of
//! Concourse; in one crate, because two resources share it and resources never depend on each
//! other.

use protocol::{FieldError, Secret};
use registry::{Credentials, Hints};
use std::sync::Arc;

/// Credentials and hints from the source keys. Errors name the field; `ca_certs` are trusted
/// for the Google token endpoint too.
pub fn credentials(
    google_credentials: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    ca_certs: &[String],
    user_agent: &str,
) -> anyhow::Result<(Credentials, Hints)> {
    let credentials = match (google_credentials, username, password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(FieldError::conflict(
                "source.google_credentials",
                "source.username/source.password",
            )
            .into());
        }
        (Some(key), None, None) => {
            let key = google_auth::ServiceAccountKey::parse(&key)
                .map_err(|e| FieldError::new("source.google_credentials", e.to_string()))?;
            let mut options = httpc::Options::new(user_agent);
            options.ca_certs = ca_certs.to_vec();
            let http =
                httpc::client(&options).map_err(|e| anyhow::anyhow!("source.ca_certs: {e:#}"))?;
            Credentials::Google(Arc::new(google_auth::TokenSource::new(key, http)))
        }
        (None, Some(username), Some(password)) => {
            if password.is_empty() {
                return Err(FieldError::new(
                    "source.password",
                    "is empty; set the password or remove source.username",
                )
                .into());
            }
            Credentials::Basic { username, password }
        }
        (None, Some(_), None) => {
            return Err(FieldError::missing("source.password", "((registry-password))").into());
        }
        (None, None, Some(_)) => {
            return Err(FieldError::missing("source.username", "\"_json_key\"").into());
        }
        (None, None, None) => Credentials::Anonymous,
    };
    let hints = hints(&credentials);
    Ok((credentials, hints))
}

/// What a 401 or 403 tells the user to check, by the kind of credentials given.
pub fn hints(credentials: &Credentials) -> Hints {
    let unauthorized = match credentials {
        Credentials::Anonymous => {
            "the registry needs credentials: set source.google_credentials or source.username and source.password"
        }
        Credentials::Basic { .. } => "check source.username and source.password",
        Credentials::Google(_) => {
            "check source.google_credentials (a current key of a service account of this project)"
        }
    };
    let denied = match credentials {
        Credentials::Google(_) => {
            "grant the service account Artifact Registry Reader (pull) or Writer (push) on this repository"
        }
        _ => "the account lacks permission on this repository (pull for check/in, push for out)",
    };
    Hints {
        unauthorized: unauthorized.into(),
        denied: denied.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_keys_give_credentials_or_an_error_naming_the_key() {
        let (c, h) = credentials(None, None, None, &[], "t").unwrap();
        assert!(matches!(c, Credentials::Anonymous));
        assert!(h.unauthorized.contains("source.google_credentials"));
        let err = credentials(None, Some("u".into()), None, &[], "t").unwrap_err();
        assert!(err.to_string().contains("source.password"), "{err}");
        let err =
            credentials(Some(Secret::new("{}")), Some("u".into()), None, &[], "t").unwrap_err();
        assert!(
            err.to_string().contains("source.google_credentials"),
            "{err}"
        );
        let (c, h) = credentials(None, Some("u".into()), Some(Secret::new("p")), &[], "t").unwrap();
        assert!(matches!(c, Credentials::Basic { .. }));
        assert_eq!(h.unauthorized, "check source.username and source.password");
    }
}
