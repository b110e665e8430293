//! Google credentials for gcr-image (registry tokens) and k8s-deploy (GKE bearer tokens).
//!
//! A service-account key (the JSON that arrives as `((GOOGLE_CLOUD_AUTH_KEY))`) is exchanged
//! for an OAuth access token with the JWT-bearer grant (RFC 7523, Google's "Using OAuth 2.0
//! for server to server applications"): an RS256-signed JWT `{iss: client_email, scope, aud:
//! token_uri, iat, exp}` POSTed to the key's own `token_uri`. The token is cached for the run
//! and renewed a minute before it expires. The key and the token are `Secret`s: they are never
//! printed, and error messages name fields, never values.
//!
//! The JWT is signed by the `jwt` crate (RS256 on ring).

use protocol::Secret;
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Scope of the tokens we mint: registries and GKE both accept cloud-platform.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Renew this long before expiry, so a token never dies mid-upload.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// What can go wrong, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key itself is unusable: fix the credential.
    #[error("{0}")]
    InvalidKey(String),
    /// The token endpoint said no (revoked key, deleted account, clock skew).
    #[error("the token endpoint refused the key: HTTP {status}: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// Network or server trouble: worth a retry.
    #[error("cannot reach the token endpoint {uri}: {message}")]
    Transient { uri: String, message: String },
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// A parsed service-account key.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub token_uri: String,
    key_id: Option<String>,
    signer: jwt::Signer,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses the JSON key file. Errors say which field is wrong and how to get a good key;
    /// they never contain the key's content.
    pub fn parse(json: &Secret) -> Result<Self, AuthError> {
        let invalid = |m: &str| AuthError::InvalidKey(m.to_owned());
        let file: KeyFile = serde_json::from_str(json.expose()).map_err(|e| {
            AuthError::InvalidKey(format!(
                "not a JSON service-account key (JSON error at line {} column {}); paste the whole key file",
                e.line(),
                e.column()
            ))
        })?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(AuthError::InvalidKey(format!(
                    "is a \"{}\" credential, not a service-account key; create one under IAM > Service accounts > Keys > Add key > JSON",
                    other
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .take(40)
                        .collect::<String>()
                )));
            }
            None => {
                return Err(invalid(
                    "has no \"type\": \"service_account\"; paste the whole key file",
                ));
            }
        }
        let client_email = file
            .client_email
            .filter(|e| e.contains('@'))
            .ok_or_else(|| invalid("client_email: missing or not an e-mail address"))?;
        let pem = file
            .private_key
            .ok_or_else(|| invalid("private_key: missing"))?;
        if !pem.contains("BEGIN PRIVATE KEY") {
            return Err(invalid(
                "private_key: not a PEM \"BEGIN PRIVATE KEY\" (PKCS#8) block",
            ));
        }
        let signer = jwt::Signer::from_pem(&Secret::new(pem)).map_err(|e| match e {
            jwt::JwtError::NotPem => {
                invalid("private_key: not a PEM \"BEGIN PRIVATE KEY\" (PKCS#8) block")
            }
            _ => invalid("private_key: not an RSA key ring can sign with"),
        })?;
        let token_uri = file
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(invalid("token_uri: must be an http(s) URL"));
        }
        Ok(Self {
            client_email,
            token_uri,
            key_id: file.private_key_id,
            signer,
        })
    }

    /// The signed JWT assertion for `scope`, issued at `now`, valid one hour.
    pub fn assertion(&self, scope: &str, now: SystemTime) -> Result<Secret, AuthError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AuthError::InvalidKey("system clock is before 1970".into()))?
            .as_secs();
        let mut header = serde_json::json!({});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        self.signer
            .sign(header, &claims)
            .map_err(|_| AuthError::InvalidKey("private_key: signing failed".into()))
    }
}

/// An access token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: SystemTime,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Mints and caches access tokens for one key.
#[derive(Debug)]
pub struct TokenSource {
    key: ServiceAccountKey,
    scope: String,
    client: reqwest::Client,
    cached: Mutex<Option<AccessToken>>,
}

impl TokenSource {
    pub fn new(key: ServiceAccountKey, client: reqwest::Client) -> Self {
        Self {
            key,
            scope: CLOUD_PLATFORM.to_owned(),
            client,
            cached: Mutex::new(None),
        }
    }

    pub fn key(&self) -> &ServiceAccountKey {
        &self.key
    }

    /// A valid access token: the cached one, or a fresh exchange.
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(t) = cached
            .as_ref()
            .filter(|t| t.expires_at > now + RENEW_MARGIN)
        {
            return Ok(t.token.clone());
        }
        let fresh = self.exchange(now).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn exchange(&self, now: SystemTime) -> Result<AccessToken, AuthError> {
        let uri = &self.key.token_uri;
        tracing::info!(
            "exchanging the service-account key of {} for an access token",
            self.key.client_email
        );
        let assertion = self.key.assertion(&self.scope, now)?;
        // JWT characters (base64url and '.') need no form encoding.
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            assertion.expose()
        );
        let transient = |message: String| AuthError::Transient {
            uri: uri.clone(),
            message,
        };
        let response = self
            .client
            .post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| transient(protocol::text::error_chain(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| transient(protocol::text::error_chain(&e)))?;
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(transient(format!("HTTP {status}")));
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|_| {
            transient(format!(
                "HTTP {status} with a body that is not a token response"
            ))
        })?;
        match (status.is_success(), parsed.access_token) {
            (true, Some(token)) if !token.is_empty() => Ok(AccessToken {
                token: Secret::new(token),
                expires_at: now + Duration::from_secs(parsed.expires_in.unwrap_or(3600)),
            }),
            _ => Err(AuthError::Rejected {
                status: status.as_u16(),
                error: parsed
                    .error
                    .unwrap_or_else(|| "no access_token in the answer".into()),
                description: parsed.error_description,
            }),
        }
    }
}
