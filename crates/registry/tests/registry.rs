//! The client against the real reference registry (Debian's docker-registry) in its auth
//! setups, checked with skopeo as an independent client. Request counts come from the
//! registry's own access log.

use fakes::google::{GoogleTokenServer, service_account_json};
use fakes::registry::{Auth, Registry};
use protocol::Secret;
use registry::push::{Blob, Pushed};
use registry::{Client, Credentials, Options, RegistryError, Repository, sha256_digest};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const CANARY: &str = "canary-7f3a9c-never-print-me";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn options() -> Options {
    Options {
        insecure: true,
        retry_deadline: Duration::from_secs(5),
        first_backoff: Duration::from_millis(50),
        ..Options::default()
    }
}

fn client(registry: &Registry, credentials: Credentials) -> Client {
    Client::new(&registry.host(), credentials, options()).expect("client")
}

/// A minimal single-layer OCI image written as blob files: returns (blobs, manifest bytes).
fn image(dir: &std::path::Path, layer_content: &[u8]) -> (Vec<Blob>, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let mut blobs = Vec::new();
    for data in [layer_content, &config[..]] {
        let digest = sha256_digest(data);
        let path = dir.join(digest.replace(':', "_"));
        std::fs::write(&path, data).expect("write blob");
        blobs.push(Blob {
            digest,
            size: data.len() as u64,
            path,
            offset: 0,
        });
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[1].digest, "size": blobs[1].size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blobs[0].digest, "size": blobs[0].size}]
    });
    (blobs, serde_json::to_vec(&manifest).expect("manifest"))
}

fn push(
    client: &Client,
    repo: &Repository,
    tag: &str,
    blobs: &[Blob],
    manifest: &[u8],
    from: Option<&Repository>,
) -> (Vec<Pushed>, String) {
    rt().block_on(async {
        let mut outcomes = Vec::new();
        for b in blobs {
            outcomes.push(
                client
                    .push_blob(repo, b, from, "test")
                    .await
                    .expect("push blob"),
            );
        }
        let digest = client
            .put_manifest(
                repo,
                tag,
                manifest.to_vec().into(),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await
            .expect("put manifest");
        (outcomes, digest)
    })
}

fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let out = cmd
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_pushed_image_is_seen_by_skopeo_with_the_same_digest_and_costs_few_requests() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let (blobs, manifest) = image(dir.path(), &vec![7u8; 3 * 1024 * 1024]);
    let repo = Repository::parse(&format!("{}/team/app", registry.host())).unwrap();
    let c = client(&registry, Credentials::Anonymous);
    let (outcomes, digest) = push(&c, &repo, "1.0.0.dev", &blobs, &manifest, None);
    assert_eq!(outcomes, [Pushed::Uploaded, Pushed::Uploaded]);
    assert_eq!(digest, sha256_digest(&manifest));
    // (HEAD, POST, PUT) per blob + PUT manifest: no ping on an anonymous registry.
    assert_eq!(registry.requests().len(), 7, "{:#?}", registry.requests());
    assert_eq!(skopeo_digest(&repo.tagged("1.0.0.dev"), None), digest);

    // A fresh client: one HEAD per lookup, no ping (the registry asks for no credentials).
    let before = registry.requests().len();
    let c = client(&registry, Credentials::Anonymous);
    let found = rt()
        .block_on(c.manifest_digest(&repo, "1.0.0.dev"))
        .unwrap();
    assert_eq!(found.as_deref(), Some(digest.as_str()));
    assert_eq!(
        rt().block_on(c.manifest_digest(&repo, "nope")).unwrap(),
        None
    );
    let new: Vec<_> = registry.requests()[before..]
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(new, [("HEAD".to_owned(), 200), ("HEAD".to_owned(), 404)]);

    // Re-pushing is harmless and sends no blob bytes.
    let before = registry.requests().len();
    let (outcomes, again) = push(&c, &repo, "1.0.0.dev", &blobs, &manifest, None);
    assert_eq!(outcomes, [Pushed::Existed, Pushed::Existed]);
    assert_eq!(again, digest);
    assert_eq!(registry.requests().len() - before, 3);
}

#[test]
fn a_second_repository_gets_the_blobs_by_mount() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let (blobs, manifest) = image(dir.path(), b"layer bytes for mounting");
    let first = Repository::parse(&format!("{}/team/api", registry.host())).unwrap();
    let second = Repository::parse(&format!("{}/prod/api", registry.host())).unwrap();
    let c = client(&registry, Credentials::Anonymous);
    push(&c, &first, "1", &blobs, &manifest, None);
    let (outcomes, digest) = push(&c, &second, "1", &blobs, &manifest, Some(&first));
    assert_eq!(outcomes, [Pushed::Mounted, Pushed::Mounted]);
    assert_eq!(skopeo_digest(&second.tagged("1"), None), digest);
}

#[test]
fn tags_are_listed_and_manifests_round_trip() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let (blobs, manifest) = image(dir.path(), b"x");
    let repo = Repository::parse(&format!("{}/team/app", registry.host())).unwrap();
    let c = client(&registry, Credentials::Anonymous);
    for tag in ["1.0.0.dev", "1.1.0.dev", "latest"] {
        push(&c, &repo, tag, &blobs, &manifest, None);
    }
    let mut tags = rt().block_on(c.tags(&repo)).unwrap().tags;
    tags.sort();
    assert_eq!(tags, ["1.0.0.dev", "1.1.0.dev", "latest"]);
    let m = rt().block_on(c.manifest(&repo, "latest")).unwrap().unwrap();
    assert_eq!(m.bytes.as_ref(), manifest.as_slice());
    assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");
    let config = rt().block_on(c.blob(&repo, &blobs[1].digest)).unwrap();
    assert_eq!(config.len() as u64, blobs[1].size);
    // An empty repository lists no tags rather than failing.
    let empty = Repository::parse(&format!("{}/team/none", registry.host())).unwrap();
    assert!(rt().block_on(c.tags(&empty)).unwrap().tags.is_empty());
}

#[test]
fn basic_auth_works_and_failures_say_what_to_check_without_the_password() {
    let registry = Registry::start(Auth::Htpasswd(vec![("ci".into(), "right-password".into())]));
    let repo = Repository::parse(&format!("{}/team/app", registry.host())).unwrap();
    let good = client(
        &registry,
        Credentials::Basic {
            username: "ci".into(),
            password: Secret::new("right-password"),
        },
    );
    assert_eq!(
        rt().block_on(good.manifest_digest(&repo, "x")).unwrap(),
        None
    );

    let bad = client(
        &registry,
        Credentials::Basic {
            username: "ci".into(),
            password: Secret::new(CANARY),
        },
    );
    let err = rt().block_on(bad.manifest_digest(&repo, "x")).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    // The client knows no Concourse keys: its hint is generic unless the resource gives one
    // (registry-source names the source keys).
    assert!(text.contains("check the registry credentials"), "{text}");
    assert!(!text.contains(CANARY));

    let hinted = Client::new(
        &repo.host,
        Credentials::Anonymous,
        Options {
            insecure: true,
            hints: registry::Hints {
                unauthorized: "set source.password".into(),
                denied: String::new(),
            },
            ..Options::default()
        },
    )
    .unwrap();
    let err = rt()
        .block_on(hinted.manifest_digest(&repo, "x"))
        .unwrap_err();
    assert!(err.to_string().ends_with("; set source.password"), "{err}");
}

#[test]
fn google_credentials_become_an_oauth2accesstoken_login() {
    let google = GoogleTokenServer::start("ya29.registry-token");
    let registry = Registry::start(Auth::Htpasswd(vec![(
        "oauth2accesstoken".into(),
        "ya29.registry-token".into(),
    )]));
    let key = google_auth::ServiceAccountKey::parse(&Secret::new(service_account_json(
        &google.token_uri(),
    )))
    .unwrap();
    let tokens =
        google_auth::TokenSource::new(key, httpc::client(&httpc::Options::new("t/0")).unwrap());
    let c = client(&registry, Credentials::Google(Arc::new(tokens)));
    let dir = tempfile::tempdir().unwrap();
    let (blobs, manifest) = image(dir.path(), b"google");
    let repo = Repository::parse(&format!(
        "{}/microservices-kube/api-gateway",
        registry.host()
    ))
    .unwrap();
    let (_, digest) = push(&c, &repo, "1.0.dev", &blobs, &manifest, None);
    assert_eq!(
        skopeo_digest(
            &repo.tagged("1.0.dev"),
            Some("oauth2accesstoken:ya29.registry-token")
        ),
        digest
    );
    assert_eq!(google.grants(), 1, "one token exchange for the whole run");
}

#[test]
fn an_unreachable_registry_fails_at_the_deadline_naming_the_cause() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    drop(registry);
    let c = Client::new(
        &host,
        Credentials::Anonymous,
        Options {
            retry_deadline: Duration::from_millis(300),
            ..options()
        },
    )
    .unwrap();
    let repo = Repository::parse(&format!("{host}/team/app")).unwrap();
    let err = rt().block_on(c.manifest_digest(&repo, "x")).unwrap_err();
    assert!(matches!(err, RegistryError::Transient { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Connection refused") && text.ends_with("gave up at the retry deadline"),
        "{text}"
    );
}
