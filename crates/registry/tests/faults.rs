//! Retries under injected faults between the client and the real registry: 429 with
//! Retry-After, 5xx, a connection cut in the middle of a blob upload. Each retried push yields
//! the same digest (checked with skopeo); 401 is not retried; a fault that never ends gives up
//! at the deadline with the cause.

#![allow(clippy::unwrap_used)]

use fakes::fault::{Fault, FaultProxy, Rule};
use fakes::registry::{Auth, Registry};
use registry::push::{Blob, Pushed};
use registry::{Client, Credentials, Options, RegistryError, Repository, sha256_digest};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Log lines of the client's retries, captured.
fn with_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::new(Mutex::new(Vec::new())));
    let writer = protocol::log::SharedWriter::new(sink.clone());
    let out = tracing::subscriber::with_default(protocol::log::subscriber(writer, false), f);
    let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (out, text)
}

struct Setup {
    _registry: Registry,
    proxy: FaultProxy,
    repo: Repository,
    blobs: Vec<Blob>,
    manifest: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn setup(rules: Vec<Rule>) -> Setup {
    let registry = Registry::start(Auth::None);
    let proxy = FaultProxy::start(registry.host().parse().unwrap(), rules);
    let repo = Repository::parse(&format!("{}/team/app", proxy.host())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layer: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let mut blobs = Vec::new();
    for data in [&layer, &config] {
        let path = dir.path().join(blobs.len().to_string());
        std::fs::write(&path, data).unwrap();
        blobs.push(Blob {
            digest: sha256_digest(data),
            size: data.len() as u64,
            path,
            offset: 0,
        });
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[1].digest, "size": blobs[1].size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[0].digest, "size": blobs[0].size}]
    }))
    .unwrap();
    Setup {
        _registry: registry,
        proxy,
        repo,
        blobs,
        manifest,
        _dir: dir,
    }
}

fn client(s: &Setup, deadline: Duration) -> Client {
    Client::new(
        &s.repo.host,
        Credentials::Anonymous,
        Options {
            insecure: true,
            retry_deadline: deadline,
            first_backoff: Duration::from_millis(20),
            ..Options::default()
        },
    )
    .unwrap()
}

fn push(s: &Setup, c: &Client) -> Result<String, RegistryError> {
    rt().block_on(async {
        for b in &s.blobs {
            c.push_blob(&s.repo, b, None, "app").await?;
        }
        c.put_manifest(
            &s.repo,
            "1.0",
            s.manifest.clone().into(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
    })
}

fn skopeo_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn rate_limits_are_waited_out_as_the_registry_asks() {
    let s = setup(vec![Rule {
        method: "HEAD",
        path_contains: "/blobs/",
        times: 1,
        fault: Fault::Status {
            code: 429,
            retry_after: Some(1),
        },
    }]);
    let c = client(&s, Duration::from_secs(30));
    let (digest, log) = with_log(|| push(&s, &c));
    assert_eq!(digest.unwrap(), sha256_digest(&s.manifest));
    assert!(
        log.contains("rate limited (HTTP 429); retry 1 in 1.0s"),
        "{log}"
    );
    assert_eq!(s.proxy.fired().len(), 1);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let s = setup(vec![Rule {
        method: "PUT",
        path_contains: "/manifests/",
        times: 2,
        fault: Fault::Status {
            code: 503,
            retry_after: None,
        },
    }]);
    let c = client(&s, Duration::from_secs(30));
    let (digest, log) = with_log(|| push(&s, &c));
    assert_eq!(digest.unwrap(), sha256_digest(&s.manifest));
    assert!(
        log.contains("HTTP 503 Service Unavailable; retry 2 in"),
        "{log}"
    );
    assert_eq!(
        skopeo_digest(&s.repo.tagged("1.0")),
        sha256_digest(&s.manifest)
    );
}

#[test]
fn an_upload_cut_part_way_restarts_and_yields_the_same_digest() {
    let s = setup(vec![Rule {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        times: 1,
        fault: Fault::CutAfter(300_000),
    }]);
    let c = client(&s, Duration::from_secs(30));
    let (digest, log) = with_log(|| push(&s, &c));
    assert_eq!(digest.unwrap(), sha256_digest(&s.manifest));
    assert!(log.contains("starting the upload again"), "{log}");
    assert_eq!(s.proxy.fired().len(), 1, "{:?}", s.proxy.fired());
    assert_eq!(
        skopeo_digest(&s.repo.tagged("1.0")),
        sha256_digest(&s.manifest)
    );
    // Nothing half-pushed remains visible: the blob in the registry is whole.
    let again = rt()
        .block_on(c.push_blob(&s.repo, &s.blobs[0], None, "app"))
        .unwrap();
    assert_eq!(again, Pushed::Existed);
}

#[test]
fn unauthorized_is_not_retried() {
    let s = setup(vec![Rule {
        method: "HEAD",
        path_contains: "/manifests/",
        times: 5,
        fault: Fault::Status {
            code: 401,
            retry_after: None,
        },
    }]);
    let c = client(&s, Duration::from_secs(30));
    let err = rt()
        .block_on(c.manifest_digest(&s.repo, "1.0"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        s.proxy.fired().len(),
        1,
        "no retry of a 401 without credentials"
    );
}

#[test]
fn a_fault_that_never_ends_gives_up_at_the_deadline_with_the_cause() {
    let s = setup(vec![Rule {
        method: "HEAD",
        path_contains: "/manifests/",
        times: 1000,
        fault: Fault::Status {
            code: 429,
            retry_after: None,
        },
    }]);
    let c = client(&s, Duration::from_millis(500));
    let err = rt()
        .block_on(c.manifest_digest(&s.repo, "1.0"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "look up {}: rate limited by the registry (HTTP 429) until the deadline",
            s.repo.tagged("1.0")
        )
    );
    assert!(
        s.proxy.fired().len() >= 3,
        "retried before giving up: {:?}",
        s.proxy.fired()
    );
}

fn quick_client(s: &Setup, read_timeout: Duration, deadline: Duration) -> Client {
    Client::new(
        &s.repo.host,
        Credentials::Anonymous,
        Options {
            insecure: true,
            retry_deadline: deadline,
            first_backoff: Duration::from_millis(20),
            read_timeout,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn a_registry_that_never_answers_is_given_up_on_at_the_deadline() {
    let s = setup(vec![Rule {
        method: "HEAD",
        path_contains: "/manifests/",
        times: 1000,
        fault: Fault::Silent,
    }]);
    let c = quick_client(&s, Duration::from_millis(300), Duration::from_secs(2));
    let started = std::time::Instant::now();
    let (result, log) = with_log(|| rt().block_on(c.manifest_digest(&s.repo, "1.0")));
    let err = result.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("gave up at the retry deadline"), "{err}");
    assert!(
        log.contains("retry 1 in"),
        "each silent attempt is said: {log}"
    );
}

#[test]
fn an_upload_the_registry_stops_reading_is_retried_then_given_up() {
    let s = setup(vec![Rule {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        times: 1000,
        fault: Fault::Silent,
    }]);
    let c = quick_client(&s, Duration::from_millis(500), Duration::from_secs(2));
    let started = std::time::Instant::now();
    let (result, log) = with_log(|| rt().block_on(c.push_blob(&s.repo, &s.blobs[0], None, "app")));
    let err = result.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("made no progress") || err.contains("did not answer"),
        "{err}"
    );
    assert!(log.contains("starting the upload again"), "{log}");
}

#[test]
fn an_upload_the_registry_swallows_without_answering_is_given_up() {
    let s = setup(vec![Rule {
        method: "PUT",
        path_contains: "/blobs/uploads/",
        times: 1000,
        fault: Fault::Swallow,
    }]);
    let c = quick_client(&s, Duration::from_millis(500), Duration::from_secs(2));
    let result = rt().block_on(c.push_blob(&s.repo, &s.blobs[0], None, "app"));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("did not answer"), "{err}");
    assert!(!err.contains("made no progress"), "{err}");
}

#[test]
fn a_slow_but_moving_upload_and_download_are_not_cut() {
    // 24 MB up and down at about 8 MB/s (more than the loopback socket buffers hold) take
    // about 3 s each; the silence bound is 0.5 s.
    let s = setup(vec![
        Rule {
            method: "PUT",
            path_contains: "/blobs/uploads/",
            times: 1,
            fault: Fault::Throttle(8_000_000),
        },
        Rule {
            method: "GET",
            path_contains: "/blobs/",
            times: 1,
            fault: Fault::Throttle(8_000_000),
        },
    ]);
    let c = quick_client(&s, Duration::from_millis(500), Duration::from_secs(30));
    let big: Vec<u8> = (0..24_000_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let path = s._dir.path().join("big");
    std::fs::write(&path, &big).unwrap();
    let blob = Blob {
        digest: sha256_digest(&big),
        size: big.len() as u64,
        path,
        offset: 0,
    };
    let started = std::time::Instant::now();
    let (pushed, log) = with_log(|| rt().block_on(c.push_blob(&s.repo, &blob, None, "app")));
    assert_eq!(pushed.unwrap(), Pushed::Uploaded);
    assert!(!log.contains("again"), "not retried: {log}");
    assert!(
        started.elapsed() > Duration::from_millis(1200),
        "throttled: {:?}",
        started.elapsed()
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    rt().block_on(c.download_blob(&s.repo, &blob.digest, blob.size, &dest, "blob"))
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), big);
    assert_eq!(s.proxy.fired().len(), 2, "{:?}", s.proxy.fired());
}

#[test]
fn a_plain_http_token_realm_off_loopback_never_gets_the_password() {
    use axum::http::StatusCode;
    let hits = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hits.clone();
    let router = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(format!(
                "{} {}",
                req.uri(),
                req.headers().contains_key("authorization")
            ));
            (
                StatusCode::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    r#"Bearer realm="http://token.evil.example/token",service="r""#,
                )],
                "",
            )
        }
    });
    let server = fakes::Server::start(router);
    let repo = Repository::parse(&format!("127.0.0.1:{}/team/app", server.port())).unwrap();
    let c = Client::new(
        &repo.host,
        Credentials::Basic {
            username: "u".into(),
            password: protocol::Secret::new("canary-password"),
        },
        Options {
            insecure: true,
            ..Options::default()
        },
    )
    .unwrap();
    let err = rt()
        .block_on(c.manifest_digest(&repo, "1.0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("token realm is not https"), "{err}");
    assert!(!err.contains("canary-password"));
    // Only the first request reached the registry, without credentials; nothing went to the
    // realm.
    assert_eq!(
        hits.lock().unwrap().as_slice(),
        ["/v2/team/app/manifests/1.0 false"]
    );
}
