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

/// Concourse stops a step with SIGTERM: the suite's container is removed before the process
/// exits (before: it was left running).
#[test]
fn sigterm_mid_suite_removes_the_container() {
    let _ = Image::find("sample/user-service");
    let registry = Registry::start(Auth::None);
    let source =
        json!({"reports_repository": format!("{}/p/reports", registry.host()), "insecure": true});
    let dir = temp_dir();
    let mut env = build_env();
    if let Ok(h) = std::env::var("DOCKER_HOST") {
        env.insert("DOCKER_HOST".into(), h);
    }
    // A "suite" that never ends: the sample service (a server), on a port of its own.
    let params = json!({"gateway_url": "http://127.0.0.1:1", "runner": "docker",
                        "image": "sample/user-service:dev", "command": ["/sample-service", "users"],
                        "timeout": "5m"});
    let containers = || {
        let out = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", "ancestor=sample/user-service:dev"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = containers();
    let running = testkit::Binary::find("acceptance-run").start(
        "out",
        &[arg(dir.path())],
        json!({"source": source, "params": params})
            .to_string()
            .as_bytes(),
        &env,
    );
    running.wait_for("running", std::time::Duration::from_secs(30));
    // Give the daemon a moment to have the container up (the log line comes first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while containers() == before {
        assert!(std::time::Instant::now() < deadline, "no container started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (run, _) = running.terminate();
    let line = run.failure();
    assert!(
        line.starts_with("aborted by SIGTERM: removed the suite's container "),
        "{line}"
    );
    assert_eq!(containers(), before, "no container is left");
}
