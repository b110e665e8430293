//! The token-auth (GCR's Bearer flow) and TLS setups of the real registry.

#![allow(clippy::unwrap_used)]

use fakes::registry::{Auth, Registry};
use protocol::Secret;
use registry::push::Blob;
use registry::{Client, Credentials, Options, RegistryError, Repository, sha256_digest};
use std::process::Command;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn blobs(dir: &std::path::Path) -> (Vec<Blob>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = b"token and tls".to_vec();
    let mut out = Vec::new();
    for data in [&layer, &config] {
        let path = dir.join(out.len().to_string());
        std::fs::write(&path, data).unwrap();
        out.push(Blob {
            digest: sha256_digest(data),
            size: data.len() as u64,
            path,
            offset: 0,
        });
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": out[1].digest, "size": out[1].size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": out[0].digest, "size": out[0].size}]
    }))
    .unwrap();
    (out, manifest)
}

fn push(c: &Client, repo: &Repository, dir: &std::path::Path) -> Result<String, RegistryError> {
    let (blobs, manifest) = blobs(dir);
    rt().block_on(async {
        for b in &blobs {
            c.push_blob(repo, b, None, "t").await?;
        }
        c.put_manifest(
            repo,
            "1.0",
            manifest.into(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
    })
}

fn options(insecure: bool, ca: Option<String>) -> Options {
    Options {
        insecure,
        ca_certs: ca.into_iter().collect(),
        retry_deadline: Duration::from_secs(5),
        first_backoff: Duration::from_millis(20),
        ..Options::default()
    }
}

#[test]
fn the_bearer_token_flow_fetches_one_token_per_scope() {
    let registry = Registry::start(Auth::Token(vec![(
        "oauth2accesstoken".into(),
        "ya29.tok".into(),
    )]));
    let repo = Repository::parse(&format!("{}/microservices-kube/api", registry.host())).unwrap();
    let creds = Credentials::Basic {
        username: "oauth2accesstoken".into(),
        password: Secret::new("ya29.tok"),
    };
    let c = Client::new(&repo.host, creds, options(true, None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let digest = push(&c, &repo, dir.path()).unwrap();
    assert_eq!(
        rt().block_on(c.manifest_digest(&repo, "1.0"))
            .unwrap()
            .as_deref(),
        Some(digest.as_str())
    );
    // One token for pull,push (the push), one for pull (the lookup).
    assert_eq!(registry.tokens_issued(), 2);
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            "oauth2accesstoken:ya29.tok",
            "--format",
            "{{.Digest}}",
        ])
        .arg(format!("docker://{}", repo.tagged("1.0")))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        digest,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn token_refusals_say_what_to_check() {
    let registry = Registry::start(Auth::Token(vec![("ci".into(), "right".into())]));
    let repo = Repository::parse(&format!("{}/p/app", registry.host())).unwrap();
    let wrong = Client::new(
        &repo.host,
        Credentials::Basic {
            username: "ci".into(),
            password: Secret::new("canary-wrong"),
        },
        options(true, None),
    )
    .unwrap();
    let err = rt()
        .block_on(wrong.manifest_digest(&repo, "x"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("get a registry token from http://127.0.0.1:"),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("canary-wrong"));

    let anonymous = Client::new(&repo.host, Credentials::Anonymous, options(true, None)).unwrap();
    let err = rt()
        .block_on(anonymous.manifest_digest(&repo, "x"))
        .unwrap_err();
    assert!(
        err.to_string().ends_with("check the registry credentials"),
        "{err}"
    );
}

#[test]
fn tls_with_a_private_ca_works_when_the_ca_is_given_and_fails_clearly_when_not() {
    let registry = Registry::start_with(Auth::Token(vec![("u".into(), "p".into())]), true);
    let repo = Repository::parse(&format!("{}/p/app", registry.host())).unwrap();
    let creds = || Credentials::Basic {
        username: "u".into(),
        password: Secret::new("p"),
    };
    let trusted = Client::new(&repo.host, creds(), options(false, registry.ca_pem())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    push(&trusted, &repo, dir.path()).unwrap();

    let untrusted = Client::new(&repo.host, creds(), options(false, None)).unwrap();
    let started = std::time::Instant::now();
    let err = rt()
        .block_on(untrusted.manifest_digest(&repo, "1.0"))
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("if the registry uses a private CA, add its certificate to source.ca_certs"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a certificate error is not retried"
    );

    // Plain HTTP to the TLS port, and TLS to a plain-HTTP registry.
    let plain = Registry::start(Auth::None);
    let tls_to_plain =
        Client::new(&plain.host(), Credentials::Anonymous, options(false, None)).unwrap();
    let repo = Repository::parse(&format!("{}/p/app", plain.host())).unwrap();
    let err = rt()
        .block_on(tls_to_plain.manifest_digest(&repo, "1.0"))
        .unwrap_err();
    assert!(err.to_string().ends_with("the server does not speak TLS (a plain-HTTP loopback registry needs source.insecure: true)"), "{err}");
}

/// What a check costs on a token registry (the flow of GCR and Artifact Registry): from cold,
/// the first request's 401 teaches the challenge, one token, the request again; with the
/// token cached (one process: one check), every further lookup is one request.
#[test]
fn a_lookup_on_a_token_registry_costs_three_requests_from_cold_then_one() {
    let registry = Registry::start(Auth::Token(vec![("ci".into(), "pw".into())]));
    let repo = Repository::parse(&format!("{}/microservices-kube/api", registry.host())).unwrap();
    let creds = Credentials::Basic {
        username: "ci".into(),
        password: Secret::new("pw"),
    };
    let pusher = Client::new(&repo.host, creds.clone(), options(true, None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let digest = push(&pusher, &repo, dir.path()).unwrap();

    let c = Client::new(&repo.host, creds, options(true, None)).unwrap();
    let before = (registry.requests().len(), registry.tokens_issued());
    let found = rt().block_on(c.manifest_digest(&repo, "1.0")).unwrap();
    assert_eq!(found.as_deref(), Some(digest.as_str()));
    let cold: Vec<(String, u16)> = registry.requests()[before.0..]
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(cold, [("HEAD".to_owned(), 401), ("HEAD".to_owned(), 200)]);
    assert_eq!(registry.tokens_issued() - before.1, 1, "one token request");
    assert_eq!(c.requests(), 3, "401, token, HEAD");

    let warm = registry.requests().len();
    rt().block_on(c.manifest_digest(&repo, "1.0")).unwrap();
    assert_eq!(
        registry.requests().len() - warm,
        1,
        "a cached token: one request"
    );
    assert_eq!(c.requests(), 4);
}
