//! The k8s-deploy image under Docker, against the `fake-kube-apiserver` binary over TLS with a
//! token: out applies and waits, check finds the revision; the token never shows.

#![allow(clippy::unwrap_used)]

use e2e::FakeProcess;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use testkit::{Binary, CANARY, Image, build_env, temp_dir};

#[test]
fn k8s_deploy_applies_waits_and_checks_from_inside_its_container() {
    let fake = Binary::find("fake-kube-apiserver");
    let dir = temp_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut command = Command::new(&fake.path);
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--token",
            CANARY,
            "--tick-ms",
            "20",
            "--exit-after",
            "300",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig);
    let process = FakeProcess::start(command);
    let url = process.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let source = json!({"kubeconfig": std::fs::read_to_string(&kubeconfig).unwrap(), "namespace": "microservices-test-4242"});

    let sources = temp_dir();
    std::fs::write(
        sources.path().join("app.yml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api-gateway}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: api-gateway}}\n  template:\n    metadata: {labels: {app: api-gateway}}\n    spec:\n      containers: [{name: api-gateway, image: \"us.gcr.io/microservices-kube/api-gateway@sha256:2222222222222222222222222222222222222222222222222222222222222222\"}]\n",
    )
    .unwrap();
    let image = Image::find("k8s-deploy");
    let request = json!({"source": source, "params": {"ephemeral_namespace": "microservices-test", "manifests": ["app.yml"]}});
    let run = image.run_with_dir(
        "out",
        sources.path(),
        request.to_string().as_bytes(),
        &build_env(),
        &["--network", "host"],
    );
    let version = run.success()["version"].clone();
    assert_eq!(version["namespace"], "microservices-test-4242");
    assert!(
        run.log().contains("api-gateway: rolled out"),
        "{}",
        run.log()
    );
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
}
