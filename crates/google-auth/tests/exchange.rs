//! The JWT-bearer exchange against a token endpoint that verifies signatures, audience,
//! issuer and lifetime the way Google's does.

use fakes::google::{GoogleTokenServer, TEST_CLIENT_EMAIL, service_account_json};
use google_auth::{AuthError, ServiceAccountKey, TokenSource};
use protocol::Secret;
use serde_json::json;

const CANARY: &str = "canary-7f3a9c-never-print-me";

fn client() -> reqwest::Client {
    httpc::client(&httpc::Options::new("test/0")).expect("HTTP client")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_service_account_key_buys_an_access_token_once_per_run() {
    let google = GoogleTokenServer::start("ya29.test-access-token");
    let key =
        ServiceAccountKey::parse(&Secret::new(service_account_json(&google.token_uri()))).unwrap();
    assert_eq!(key.client_email, TEST_CLIENT_EMAIL);
    let source = TokenSource::new(key, client());
    let rt = runtime();
    let first = rt.block_on(source.token()).unwrap();
    let second = rt.block_on(source.token()).unwrap();
    assert_eq!(first.expose(), "ya29.test-access-token");
    assert_eq!(second, first);
    assert_eq!(google.grants(), 1, "the token is cached for the run");
    assert_eq!(google.refused(), 0);
}

#[test]
fn a_key_for_another_audience_is_refused_with_googles_reason() {
    let google = GoogleTokenServer::start("ya29.x");
    // The key names another token_uri; we post to the fake, whose audience check fails.
    let mut file: serde_json::Value =
        serde_json::from_str(&service_account_json("https://oauth2.googleapis.com/token")).unwrap();
    let key = ServiceAccountKey::parse(&Secret::new(file.to_string())).unwrap();
    let assertion = key
        .assertion(google_auth::CLOUD_PLATFORM, std::time::SystemTime::now())
        .unwrap();
    assert_eq!(assertion.expose().split('.').count(), 3);
    file["client_email"] = json!("someone-else@p.iam.gserviceaccount.com");
    file["token_uri"] = json!(google.token_uri());
    let key = ServiceAccountKey::parse(&Secret::new(file.to_string())).unwrap();
    let err = runtime()
        .block_on(TokenSource::new(key, client()).token())
        .unwrap_err();
    assert!(
        matches!(err, AuthError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the token endpoint refused the key: HTTP 400: invalid_grant (Invalid JWT Signature.)"
    );
    assert_eq!(google.refused(), 1);
}

#[test]
fn an_unreachable_endpoint_is_transient() {
    let google = GoogleTokenServer::start("ya29.x");
    let uri = google.token_uri();
    drop(google);
    let key = ServiceAccountKey::parse(&Secret::new(service_account_json(&uri))).unwrap();
    let err = runtime()
        .block_on(TokenSource::new(key, client()).token())
        .unwrap_err();
    assert!(matches!(err, AuthError::Transient { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach the token endpoint {uri}: ")),
        "{err}"
    );
}

#[test]
fn bad_keys_say_what_is_wrong_without_quoting_them() {
    let good: serde_json::Value =
        serde_json::from_str(&service_account_json("https://oauth2.googleapis.com/token")).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut f = good.clone();
        f[k] = v;
        f.to_string()
    };
    let cases = [
        (
            format!("{{\"private_key\": \"{CANARY}\""),
            "not a JSON service-account key (JSON error at line 1 column 46); paste the whole key file",
        ),
        (
            json!({"type": "authorized_user", "refresh_token": CANARY}).to_string(),
            "is a \"authorized_user\" credential, not a service-account key; create one under IAM > Service accounts > Keys > Add key > JSON",
        ),
        (
            json!({"private_key": CANARY}).to_string(),
            "has no \"type\": \"service_account\"; paste the whole key file",
        ),
        (
            with("private_key", json!(CANARY)),
            "private_key: not a PEM \"BEGIN PRIVATE KEY\" (PKCS#8) block",
        ),
        (
            with("client_email", json!(null)),
            "client_email: missing or not an e-mail address",
        ),
        (
            with("token_uri", json!("ftp://x")),
            "token_uri: must be an http(s) URL",
        ),
        (
            CANARY.to_owned(),
            "not a JSON service-account key (JSON error at line 1 column 1); paste the whole key file",
        ),
    ];
    for (input, expected) in cases {
        let err = ServiceAccountKey::parse(&Secret::new(input)).unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(!format!("{err:?}").contains(CANARY));
    }
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let key = ServiceAccountKey::parse(&Secret::new(service_account_json(
        "https://oauth2.googleapis.com/token",
    )))
    .unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains("PRIVATE KEY"));
}
