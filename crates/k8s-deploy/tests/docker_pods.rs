//! k8s-deploy against the Kubernetes fake whose pods are real Docker containers (the sample
//! system's images, built by `make images`): configuration-only rollouts are judged by
//! revision on real container states, not on images.

#![allow(clippy::unwrap_used)]

use fakes::kube::{FakeKube, Options};
use k8s_deploy::K8sDeploy;
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{Image, Run, arg, build_env, in_process, temp_dir};

/// The user service, started with `role` (an unknown role exits at once: a crash loop).
fn manifest(role: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: users}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: users}}}}
  template:
    metadata: {{labels: {{app: users}}}}
    spec:
      containers:
      - name: users
        image: sample/user-service:dev
        args: [{role}]
        readinessProbe: {{httpGet: {{path: /health, port: 8080}}}}
"
    )
}

fn put(k: &FakeKube, role: &str, params: Value) -> Run {
    let dir = temp_dir();
    std::fs::write(dir.path().join("app.yml"), manifest(role)).unwrap();
    let mut p = json!({"manifests": ["app.yml"], "timeout": "90s"});
    for (key, v) in params.as_object().unwrap() {
        p[key] = v.clone();
    }
    in_process(
        &K8sDeploy,
        &["out", arg(dir.path())],
        json!({"source": {"kubeconfig": k.kubeconfig()}, "params": p})
            .to_string()
            .as_bytes(),
        &build_env(),
    )
}

fn crash_looping(k: &FakeKube) -> bool {
    k.list("", "v1", "pods", "default").iter().any(|p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
}

#[test]
fn config_only_fixes_and_rollbacks_are_judged_by_revision_on_real_containers() {
    let _ = Image::find("sample/user-service");
    let k = FakeKube::start(Options {
        docker: true,
        ..Options::default()
    });
    // A release that crash-loops, left in place (as a broken production can be).
    put(&k, "bogus", json!({"wait": false})).success();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !crash_looping(&k) {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never crash-looped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The fix changes only the arguments: same image. It rolls out (before: the old pod's
    // crash loop, same image, failed it at once).
    let run = put(&k, "users", json!({}));
    run.success();
    assert!(run.log().contains("users: rolled out"), "{}", run.log());

    // A configuration-only change that crash-loops is rolled back, and the rollback is seen
    // to finish (before: "the rollback ... did not finish either").
    let line = put(&k, "bogus", json!({"rollback_on_failure": true})).failure();
    assert!(line.contains("is in CrashLoopBackOff"), "{line}");
    assert!(
        line.ends_with("; rolled back users to the previous images"),
        "{line}"
    );
    let d = k
        .get("apps", "v1", "deployments", "default", "users")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["users"])
    );
}
