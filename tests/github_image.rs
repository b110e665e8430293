//! The github-promote-pr image under Docker, against the `fake-github-api` binary: out opens
//! the pull request, check finds it, in writes it; the token never shows.

#![allow(clippy::unwrap_used)]

use e2e::FakeProcess;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use testkit::{Binary, CANARY, Image, build_env, temp_dir};

#[test]
fn github_promote_pr_opens_checks_and_gets_from_inside_its_container() {
    let fake = Binary::find("fake-github-api");
    let mut command = Command::new(&fake.path);
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--token",
        CANARY,
        "--repo",
        "microservices/micro-user-management-service",
        "--exit-after",
        "300",
    ]);
    let process = FakeProcess::start(command);
    let url = process.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let image = Image::find("github-promote-pr");
    let source = json!({"repository": "microservices/micro-user-management-service", "api_url": url, "access_token": CANARY});
    let sources = temp_dir();
    let run = image.run_with_dir(
        "out",
        sources.path(),
        json!({"source": source, "params": {}})
            .to_string()
            .as_bytes(),
        &build_env(),
        &["--network", "host"],
    );
    let version = run.success()["version"].clone();
    assert_eq!(version["number"], "1");
    run.assert_no_secret(CANARY);

    let run = image.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
        &["--network", "host"],
    );
    assert_eq!(run.success(), json!([version]));
    run.assert_no_secret(CANARY);

    let dest = temp_dir();
    let run = image.run_with_dir(
        "in",
        dest.path(),
        json!({"source": source, "version": version})
            .to_string()
            .as_bytes(),
        &build_env(),
        &["--network", "host"],
    );
    run.success();
    assert_eq!(
        std::fs::read_to_string(dest.path().join("number")).unwrap(),
        "1"
    );
}
