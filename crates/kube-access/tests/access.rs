//! Cluster access against the Kubernetes fake: a silent API server fails a call after the read
//! bound, the client configuration is built as data (no field can inject kubeconfig YAML), and
//! credentials never travel over plain http to another host.

#![allow(clippy::unwrap_used)]

use fakes::fault::{Fault, FaultProxy, Rule};
use fakes::kube::{FakeKube, Options};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube_access::{Access, Cluster, Fields};
use protocol::Secret;
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn token_access(server: &str, token: &str) -> Result<Access, String> {
    Access::from_fields(Fields {
        server: Some(server.to_owned()),
        token: Some(Secret::new(token)),
        ..Fields::default()
    })
    .map_err(|e| e.to_string())
}

/// The fake behind a proxy that leaves the first `times` namespace GETs unanswered; the access
/// to it (token `t0ken`).
fn silent_api_server(times: usize) -> (FakeKube, FaultProxy, Access) {
    let fake = FakeKube::start(Options {
        token: Some("t0ken".into()),
        ..Options::default()
    });
    let upstream: std::net::SocketAddr = fake.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(
        upstream,
        vec![Rule {
            method: "GET",
            path_contains: "/api/v1/namespaces/",
            times,
            fault: Fault::Silent,
        }],
    );
    let access = token_access(&format!("http://{}", proxy.host()), "t0ken").unwrap();
    (fake, proxy, access)
}

#[test]
fn a_silent_api_server_fails_the_call_after_the_read_bound() {
    let (_fake, _proxy, access) = silent_api_server(100);
    let started = Instant::now();
    let err = rt().block_on(async {
        let cluster = Cluster::connect_with(&access, "test/0", Duration::from_millis(500))
            .await
            .unwrap();
        Api::<Namespace>::all(cluster.client.clone())
            .get("default")
            .await
            .unwrap_err()
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let line = kube_access::kube_error(&err);
    assert!(
        line.to_lowercase().contains("timed out") || line.contains("timeout"),
        "{line}"
    );
}

/// A wait of more than a few seconds says what it waits for: the client's layer prints which
/// request the API server has not answered yet.
#[test]
fn a_slow_api_server_is_said_while_it_is_waited_for() {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_fake, _proxy, access) = silent_api_server(1);
    let sink = Sink(Default::default());
    let writer = protocol::log::SharedWriter::new(sink.clone());
    tracing::subscriber::with_default(protocol::log::subscriber(writer, false), || {
        let _ = rt().block_on(async {
            let cluster = Cluster::connect_with(&access, "test/0", Duration::from_millis(5800))
                .await
                .unwrap();
            Api::<Namespace>::all(cluster.client.clone())
                .get("default")
                .await
        });
    });
    let log = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    assert!(
        log.contains(
            "still waiting for the API server to answer GET /api/v1/namespaces/default (5s)"
        ),
        "{log}"
    );
}

#[test]
fn server_and_token_cannot_inject_kubeconfig_fields() {
    // Before: the kubeconfig was YAML pasted from these strings, and a newline in `server`
    // added `insecure-skip-tls-verify: true`.
    for server in [
        "https://10.0.0.1\n    insecure-skip-tls-verify: true",
        "https://10.0.0.1 insecure",
        "https://",
        "ftp://10.0.0.1",
    ] {
        let e = token_access(server, "t").unwrap_err();
        assert!(e.starts_with("source.server: "), "{server:?}: {e}");
    }
    for token in ["a\nb", "a\rb", "a\0b"] {
        let e = token_access("https://10.0.0.1", token).unwrap_err();
        assert!(e.starts_with("source.token: "), "{e}");
        assert!(!e.contains(token), "{e}");
    }
}

#[test]
fn tokens_with_yaml_special_characters_reach_the_server_intact() {
    for token in [
        "abc: def",
        "#not-a-comment",
        "'quoted'",
        "\"double\"",
        "{flow}",
        "[list]",
        "a|b>c",
        "&anchor *alias",
        "%percent @at `tick`",
    ] {
        let fake = FakeKube::start(Options {
            token: Some(token.into()),
            ..Options::default()
        });
        let access = token_access(&fake.url(), token).unwrap();
        rt().block_on(async {
            let cluster = Cluster::connect(&access, "test/0").await.unwrap();
            Api::<Namespace>::all(cluster.client.clone())
                .list(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("{token:?}: {}", kube_access::kube_error(&e)));
        });
    }
}

/// The one-line error of connecting with `kubeconfig` (it must fail).
fn kubeconfig_refused(kubeconfig: String) -> String {
    let access = Access::from_fields(Fields {
        kubeconfig: Some(Secret::new(kubeconfig)),
        ..Fields::default()
    })
    .unwrap();
    rt().block_on(Cluster::connect(&access, "test/0"))
        .unwrap_err()
        .to_string()
}

#[test]
fn credentials_never_go_over_plain_http_to_another_host() {
    let e = token_access("http://203.0.113.10:6443", "t").unwrap_err();
    assert!(e.starts_with("source.server: is plain http"), "{e}");
    assert!(token_access("http://127.0.0.1:6443", "t").is_ok());
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://203.0.113.10:6443\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n";
    let e = kubeconfig_refused(kubeconfig.to_owned());
    assert!(e.contains("plain http"), "{e}");
    let with_newline = kubeconfig.replace("token: t", "token: \"t\\r\\nX-Evil: 1\"");
    let e = kubeconfig_refused(with_newline);
    assert!(
        e.starts_with("source.kubeconfig: the token of user \"u\""),
        "{e}"
    );
}
