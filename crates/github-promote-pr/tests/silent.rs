//! A GitHub that accepts the connection and never answers: each request gives up after the
//! read bound and is retried as transient under the deadline, so a step never hangs.

#![allow(clippy::unwrap_used)]

use fakes::fault::{Fault, FaultProxy, Rule};
use fakes::github::FakeGithub;
use github_promote_pr::github::Github;
use github_promote_pr::source::{Config, Source};
use std::time::{Duration, Instant};

#[test]
fn a_silent_github_is_given_up_on_at_the_deadline() {
    let gh = FakeGithub::start();
    gh.add_token("t0ken");
    gh.add_repo("o/r");
    let upstream: std::net::SocketAddr = gh.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(
        upstream,
        vec![Rule {
            method: "GET",
            path_contains: "/repos/",
            times: 100,
            fault: Fault::Silent,
        }],
    );
    let source: Source = serde_json::from_value(serde_json::json!({
        "repository": "o/r",
        "api_url": format!("http://{}", proxy.host()),
        "access_token": "t0ken",
    }))
    .unwrap();
    let config = Config::try_from(source).unwrap();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async {
            let gh = Github::connect(&config, Duration::from_secs(2))
                .await
                .unwrap();
            gh.call(
                "read the repository",
                http::Method::GET,
                "/repos/o/r",
                None,
                None,
            )
            .await
        })
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("gave up at the deadline"), "{err}");
    assert!(!proxy.fired().is_empty());
}
