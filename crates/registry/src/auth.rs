//! Authentication: the credentials, the registry's challenge (learnt from the first 401, no
//! `/v2/` ping), Basic headers, bearer tokens fetched once per scope and cached, renewed once
//! when one expires mid-run.

use crate::client::*;
use crate::error::RegistryError;
use crate::reference::Repository;
use base64::Engine as _;
use protocol::Secret;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use std::collections::HashMap;
use std::sync::Arc;

/// How to authenticate.
#[derive(Clone)]
pub enum Credentials {
    Anonymous,
    /// `username`/`password`, including `_json_key`, `_json_key_base64`, `oauth2accesstoken`.
    Basic {
        username: String,
        password: Secret,
    },
    /// A service-account key: its access token is the password of `oauth2accesstoken`.
    Google(Arc<google_auth::TokenSource>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Google(t) => write!(f, "Google({})", t.key().client_email),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Challenge {
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
pub(crate) struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Secret>,
}

/// The token scope of `repo` for `actions` (`pull` or `pull,push`).
pub fn scope(repo: &Repository, actions: &str) -> String {
    format!("repository:{}:{actions}", repo.path)
}

impl Client {
    pub(crate) async fn basic(&self) -> Result<Option<(String, Secret)>, RegistryError> {
        Ok(match &self.credentials {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some((username.clone(), password.clone())),
            Credentials::Google(source) => {
                Some(("oauth2accesstoken".to_owned(), source.token().await?))
            }
        })
    }

    pub(crate) fn basic_header(user: &str, password: &Secret) -> Secret {
        let raw = format!("{user}:{}", password.expose());
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// The Authorization header for `scope`: none until a 401 told us the challenge (no ping:
    /// a check on an anonymous registry is one request), then Basic, or a token fetched once
    /// per scope. The lock is held across the token exchange on purpose: concurrent requests
    /// for one scope wait for the one token instead of each fetching their own.
    pub(crate) async fn authorization(&self, scope: &str) -> Result<Option<Secret>, RegistryError> {
        let mut state = self.state.lock().await;
        match state.challenge.clone() {
            None | Some(Challenge::Open) => Ok(None),
            Some(Challenge::Basic) => match self.basic().await? {
                Some((user, password)) => Ok(Some(Self::basic_header(&user, &password))),
                None => Err(RegistryError::Unauthorized {
                    what: format!("{}/v2/", self.base),
                    detail: String::new(),
                    hint: self.options.hints.unauthorized.clone(),
                }),
            },
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(token) = state.tokens.get(scope) {
                    return Ok(Some(Secret::new(format!("Bearer {}", token.expose()))));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                let header = Secret::new(format!("Bearer {}", token.expose()));
                state.tokens.insert(scope.to_owned(), token);
                Ok(Some(header))
            }
        }
    }

    /// What a response without credentials taught: a 401's challenge (`true`: send again with
    /// credentials), or that this registry needs none.
    pub(crate) async fn learn(
        &self,
        what: &str,
        response: &reqwest::Response,
    ) -> Result<bool, RegistryError> {
        let mut state = self.state.lock().await;
        if response.status() != StatusCode::UNAUTHORIZED {
            if state.challenge.is_none() {
                state.challenge = Some(Challenge::Open);
            }
            return Ok(false);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // A 401 without a challenge we can answer stays a 401: the caller reports it.
        let Some(challenge) = parse_challenge(header) else {
            tracing::debug!("{what}: HTTP 401 without a usable WWW-Authenticate challenge");
            return Ok(false);
        };
        state.challenge = Some(challenge);
        Ok(true)
    }

    pub(crate) async fn forget_token(&self, scope: &str) {
        self.state.lock().await.tokens.remove(scope);
    }

    pub(crate) async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, RegistryError> {
        let what = format!("get a registry token from {realm}");
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for s in scope.split(' ') {
            query.push(("scope", s));
        }
        let basic = self.basic().await?;
        if basic.is_some()
            && !realm.starts_with("https://")
            && !protocol::url::is_loopback_url(realm)
        {
            // The registry's challenge names where to send the password; a plain-http realm
            // on another host would carry it in cleartext.
            return Err(RegistryError::Protocol {
                what,
                message: "the registry's token realm is not https; refusing to send the credentials in cleartext (a registry that needs plain http must be on loopback)".into(),
            });
        }
        let response = self
            .send_with_retry(&what, || {
                let request = self.http.get(realm).query(&query);
                match &basic {
                    Some((user, password)) => {
                        request.header(AUTHORIZATION, Self::basic_header(user, password).expose())
                    }
                    None => request,
                }
            })
            .await?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: Token = serde_json::from_slice(&body).map_err(|_| RegistryError::Protocol {
            what: what.clone(),
            message: "the token answer is not JSON".into(),
        })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or(RegistryError::Protocol {
                what,
                message: "the token answer holds no token".into(),
            })
    }
}

/// `WWW-Authenticate: Bearer realm="...",service="..."` or `Basic realm="..."`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut realm = None;
            let mut service = None;
            for part in split_params(params) {
                if let Some((k, v)) = part.split_once('=') {
                    let v = v.trim().trim_matches('"').to_owned();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "realm" => realm = Some(v),
                        "service" => service = Some(v),
                        _ => {}
                    }
                }
            }
            Some(Challenge::Bearer {
                realm: realm?,
                service,
            })
        }
        _ => None,
    }
}

/// Splits `a="x,y",b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        assert!(matches!(
            parse_challenge("Basic realm=\"basic-realm\""),
            Some(Challenge::Basic)
        ));
        match parse_challenge(
            "Bearer realm=\"https://us.gcr.io/v2/token\",service=\"us.gcr.io\",scope=\"repository:a:pull,push\"",
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://us.gcr.io/v2/token");
                assert_eq!(service.as_deref(), Some("us.gcr.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_challenge("Negotiate").is_none());
        assert!(parse_challenge("Bearer service=\"x\"").is_none());
    }

    #[test]
    fn credentials_debug_hides_passwords() {
        let c = Credentials::Basic {
            username: "_json_key".into(),
            password: Secret::new("canary"),
        };
        assert_eq!(format!("{c:?}"), "Basic(_json_key, <redacted>)");
    }
}
