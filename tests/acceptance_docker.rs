//! acceptance-run's docker runner with a real cucumber runner in a FROM-scratch image
//! (`acceptance-suite:dev`, cucumber-rs, built by `make images`) against a real HTTP service,
//! reports copied out of the container and stored in the real registry.

#![allow(clippy::unwrap_used)]

use acceptance_run::AcceptanceRun;
use fakes::feed::FeedServer;
use fakes::registry::{Auth, Registry};
use serde_json::json;
use testkit::{Image, arg, build_env, in_process, temp_dir};

#[test]
fn the_suite_runs_in_its_image_and_its_reports_are_read() {
    let _ = Image::find("acceptance-suite");
    let registry = Registry::start(Auth::None);
    let source =
        json!({"reports_repository": format!("{}/p/reports", registry.host()), "insecure": true});
    let dir = temp_dir();
    let mut env = build_env();
    if let Ok(h) = std::env::var("DOCKER_HOST") {
        env.insert("DOCKER_HOST".into(), h);
    }

    let good = FeedServer::start(&["v1", "v2"], None);
    let url = good.url().trim_end_matches("/versions").to_owned();
    let params = json!({"gateway_url": url, "runner": "docker", "image": "acceptance-suite:dev", "network": "host"});
    let run = in_process(
        &AcceptanceRun,
        &["out", arg(dir.path())],
        json!({"source": source, "params": params})
            .to_string()
            .as_bytes(),
        &env,
    );
    let answer = run.success();
    assert!(
        run.log().contains("| 1 scenario (1 passed)"),
        "the container's output is streamed:\n{}",
        run.log()
    );
    let scenarios = answer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "scenarios")
        .unwrap()["value"]
        .clone();
    assert_eq!(
        scenarios,
        "1 passed, 0 failed, 0 skipped, 0 undefined, 0 pending"
    );

    let bad = FeedServer::start(&["v2"], None);
    let url = bad.url().trim_end_matches("/versions").to_owned();
    env.insert("BUILD_ID".into(), "4243".into());
    let params = json!({"gateway_url": url, "runner": "docker", "image": "acceptance-suite:dev", "network": "host"});
    let run = in_process(
        &AcceptanceRun,
        &["out", arg(dir.path())],
        json!({"source": source, "params": params})
            .to_string()
            .as_bytes(),
        &env,
    );
    let line = run.failure();
    assert!(line.starts_with("1 of 1 scenarios did not pass; first: API gateway / versions are listed: the body does not contain \"v1\"; reports: "), "{line}");
}
