//! Google's OAuth token endpoint, for the service-account (JWT-bearer) grant only.
//!
//! Behaves like `https://oauth2.googleapis.com/token` on what we use, per Google's "Using
//! OAuth 2.0 for server to server applications": a form POST with
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion=<RS256 JWT>`;
//! success is `200 {"access_token", "expires_in": 3599, "token_type": "Bearer"}`; a bad
//! signature, audience, issuer or lifetime is `400 {"error": "invalid_grant",
//! "error_description": ...}` with Google's wording; a bad grant type is
//! `400 {"error": "unsupported_grant_type"}`. The signature is verified with the public half
//! of the test key in `fixtures/`, which exists only for tests.

use crate::Server;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// A 2048-bit RSA key generated for these tests only (openssl genpkey).
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/test-service-account.pem");
pub const TEST_CLIENT_EMAIL: &str = "concourse-ci@microservices-kube.iam.gserviceaccount.com";

/// A service-account key file as the Cloud console downloads it, pointing at `token_uri`.
pub fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "microservices-kube",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": TEST_PRIVATE_KEY_PEM,
        "client_email": TEST_CLIENT_EMAIL,
        "client_id": "102030405060708090100",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/concourse-ci%40microservices-kube.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com"
    })
    .to_string()
}

#[derive(Debug)]
struct Endpoint {
    url: String,
    public_key: Vec<u8>,
    access_token: String,
    /// Scopes seen in granted assertions.
    grants: Vec<String>,
    refused: usize,
}

type Shared = Arc<Mutex<Endpoint>>;

/// A running token endpoint.
#[derive(Debug)]
pub struct GoogleTokenServer {
    server: Server,
    state: Shared,
}

impl GoogleTokenServer {
    /// Starts an endpoint that grants `access_token` to assertions signed by the test key.
    pub fn start(access_token: &str) -> Self {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_PRIVATE_KEY_PEM.as_bytes())
            .expect("the fixture key is PKCS#8 PEM");
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("the fixture key is RSA");
        let state: Shared = Arc::new(Mutex::new(Endpoint {
            url: String::new(),
            public_key: pair.public_key().as_ref().to_vec(),
            access_token: access_token.to_owned(),
            grants: Vec::new(),
            refused: 0,
        }));
        let router = Router::new()
            .route("/token", post(token))
            .with_state(state.clone());
        let server = Server::start(router);
        state.lock().unwrap_or_else(PoisonError::into_inner).url =
            format!("{}/token", server.url());
        Self { server, state }
    }

    /// The `token_uri` to put in a key.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// Tokens granted so far.
    pub fn grants(&self) -> usize {
        self.lock().grants.len()
    }

    /// Assertions refused so far.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Endpoint> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn invalid_grant(description: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": description})),
    )
}

async fn token(
    State(state): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let mut endpoint = state.lock().unwrap_or_else(PoisonError::into_inner);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        endpoint.refused += 1;
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "}),
            ),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        endpoint.refused += 1;
        return invalid_grant("Invalid JWT: Missing assertion.");
    };
    match verify(&endpoint, assertion) {
        Ok(scope) => {
            endpoint.grants.push(scope);
            (
                StatusCode::OK,
                Json(
                    json!({"access_token": endpoint.access_token, "expires_in": 3599, "token_type": "Bearer"}),
                ),
            )
        }
        Err(description) => {
            endpoint.refused += 1;
            invalid_grant(description)
        }
    }
}

/// Google's checks, with Google's messages.
fn verify(endpoint: &Endpoint, assertion: &str) -> Result<String, &'static str> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("Invalid JWT: Malformed JWT.");
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "Invalid JWT: Malformed JWT.")
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "Invalid JWT: Malformed JWT.")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT Signature.");
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &endpoint.public_key)
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "Invalid JWT Signature.")?;
    let claims: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "Invalid JWT: Malformed JWT.")?;
    if claims["iss"] != TEST_CLIENT_EMAIL {
        return Err("Invalid JWT Signature.");
    }
    if claims["aud"] != endpoint.url.as_str() {
        return Err(
            "Invalid JWT: Failed audience check. The right audience is https://oauth2.googleapis.com/token",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if exp <= now || iat > now + 60 || exp.saturating_sub(iat) > 3600 {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    match claims["scope"].as_str() {
        Some(scope) if !scope.is_empty() => Ok(scope.to_owned()),
        _ => Err("Invalid JWT: Missing scope."),
    }
}
