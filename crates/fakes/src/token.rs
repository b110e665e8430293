//! The token server of a token-auth registry (Docker's "Token Authentication Specification",
//! the flow GCR and Artifact Registry use): `GET /token?service=S&scope=repository:N:A` with
//! Basic credentials answers `{"token", "access_token", "expires_in", "issued_at"}`, an RS256
//! JWT whose `x5c` header carries the signing certificate the registry trusts
//! (`rootcertbundle`) and whose `access` claim grants the requested actions. Wrong credentials
//! get 401; no credentials get a token with no access (as Docker Hub does for anonymous users),
//! so the registry, not the token server, refuses the operation.

use crate::Server;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use axum::{Json, response::IntoResponse};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

struct Issuer {
    users: Vec<(String, String)>,
    key: RsaKeyPair,
    x5c: String,
    issued: AtomicUsize,
}

type Shared = Arc<Issuer>;

/// A running token server.
pub struct TokenServer {
    server: Server,
    state: Shared,
    cert: PathBuf,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("server", &self.server)
            .finish()
    }
}

impl TokenServer {
    /// Makes a signing certificate in `dir` and starts serving tokens for `users`.
    pub fn start(dir: &Path, users: Vec<(String, String)>) -> Self {
        crate::certs::signing_cert(dir);
        let key_pem = std::fs::read(dir.join("token.key")).expect("token key");
        let der = PrivatePkcs8KeyDer::from_pem_slice(&key_pem).expect("PKCS#8 token key");
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("RSA token key");
        let cert_pem = std::fs::read(dir.join("token.pem")).expect("token certificate");
        let cert = CertificateDer::from_pem_slice(&cert_pem).expect("PEM certificate");
        let state = Arc::new(Issuer {
            users,
            key,
            x5c: STANDARD.encode(cert.as_ref()),
            issued: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/token", get(token))
            .with_state(state.clone());
        Self {
            server: Server::start(router),
            state,
            cert: dir.join("token.pem"),
        }
    }

    /// The `realm` to configure in the registry.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// The certificate the registry must trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::Relaxed)
    }
}

fn login(issuer: &Issuer, headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let decoded = value
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    if issuer.users.iter().any(|(u, p)| u == user && p == password) {
        Ok(Some(user.to_owned()))
    } else {
        Err(())
    }
}

async fn token(
    State(issuer): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let user = match login(&issuer, &headers) {
        Ok(user) => user,
        Err(()) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"details": "incorrect username or password"})),
            )
                .into_response();
        }
    };
    let service = query
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let access: Vec<Value> = match &user {
        None => Vec::new(),
        Some(_) => query
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let n = issuer.issued.fetch_add(1, Ordering::Relaxed);
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [issuer.x5c]});
    let claims = json!({
        "iss": ISSUER, "sub": user.unwrap_or_default(), "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("token-{n}"), "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; issuer.key.public().modulus_len()];
    if issuer
        .key
        .sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    Json(json!({"token": jwt, "access_token": jwt, "expires_in": 300, "issued_at": "2026-11-26T00:00:00Z"})).into_response()
}
