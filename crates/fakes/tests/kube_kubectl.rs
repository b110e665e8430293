//! kubectl, the real client, is the referee of the Kubernetes fake: if kubectl and our
//! resource disagreed on an outcome, the fake would be wrong. Each test runs kubectl against
//! the fake over TLS with a bearer token, as a cluster would be reached.

#![allow(clippy::unwrap_used)]

mod common;

use common::cluster;
use std::process::Command;

const APP: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-gateway
  namespace: team
spec:
  replicas: 3
  selector:
    matchLabels: {app: api-gateway}
  template:
    metadata:
      labels: {app: api-gateway}
    spec:
      containers:
      - name: api-gateway
        image: us.gcr.io/microservices-kube/api-gateway@sha256:1111111111111111111111111111111111111111111111111111111111111111
---
apiVersion: v1
kind: Service
metadata:
  name: api-gateway
  namespace: team
spec:
  selector: {app: api-gateway}
  ports:
  - port: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  LOG_LEVEL: info
";

#[test]
fn kubectl_creates_sets_images_and_waits_for_rollouts() {
    let c = cluster();
    assert!(c.ok(&["version"]).contains("Server Version: v1.31.0"));
    c.ok(&[
        "create",
        "deployment",
        "api",
        "--image=registry.local/api:1",
        "--replicas=2",
    ]);
    let out = c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert!(
        out.contains("deployment \"api\" successfully rolled out"),
        "{out}"
    );
    c.ok(&["set", "image", "deployment/api", "api=registry.local/api:2"]);
    let out = c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let image = c.ok(&[
        "get",
        "deployment",
        "api",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "registry.local/api:2");
    let rs = c.ok(&[
        "get",
        "replicasets",
        "-l",
        "app=api",
        "-o",
        "jsonpath={range .items[*]}{.spec.replicas} {end}",
    ]);
    assert_eq!(
        rs.split_whitespace()
            .map(|n| n.parse::<i64>().unwrap())
            .sum::<i64>(),
        2,
        "old ReplicaSet scaled to 0: {rs}"
    );
}

#[test]
fn kubectl_rolls_back_and_scales() {
    let c = cluster();
    c.ok(&[
        "create",
        "deployment",
        "api",
        "--image=registry.local/api:1",
    ]);
    c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    c.ok(&["set", "image", "deployment/api", "api=registry.local/api:2"]);
    c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    c.ok(&["rollout", "undo", "deployment/api"]);
    c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "api",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "registry.local/api:1"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "api",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ]),
        "3"
    );
    c.ok(&["scale", "deployment/api", "--replicas=4"]);
    c.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "api",
            "-o",
            "jsonpath={.status.availableReplicas}"
        ]),
        "4"
    );
}

#[test]
fn kubectl_server_side_apply_creates_kinds_and_reports_conflicts() {
    let c = cluster();
    let out = c.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=k8s-deploy",
            "-f",
            "-",
        ],
        Some(APP),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for kind in [
        "namespace/team",
        "deployment.apps/api-gateway",
        "service/api-gateway",
        "configmap/settings",
    ] {
        assert!(
            out.stdout.contains(&format!("{kind} serverside-applied")),
            "{}",
            out.stdout
        );
    }
    c.ok(&[
        "-n",
        "team",
        "rollout",
        "status",
        "deployment/api-gateway",
        "--timeout=30s",
    ]);
    // Another manager changes replicas: applying ours again conflicts, and forcing takes it back.
    c.ok(&[
        "-n",
        "team",
        "scale",
        "deployment/api-gateway",
        "--replicas=5",
    ]);
    let conflicted = c.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=k8s-deploy",
            "-f",
            "-",
        ],
        Some(APP),
    );
    assert_ne!(conflicted.code, 0);
    assert!(
        conflicted.stderr.contains("conflict") && conflicted.stderr.contains(".spec.replicas"),
        "{}",
        conflicted.stderr
    );
    let forced = c.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "--force-conflicts",
            "--field-manager=k8s-deploy",
            "-f",
            "-",
        ],
        Some(APP),
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        c.ok(&[
            "-n",
            "team",
            "get",
            "deployment",
            "api-gateway",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert_eq!(
        c.fake
            .get("", "v1", "configmaps", "team", "settings")
            .unwrap()["data"]["LOG_LEVEL"],
        "info"
    );
}

#[test]
fn kubectl_sees_failing_rollouts_fail() {
    let c = cluster();
    let manifest = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  progressDeadlineSeconds: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:does-not-exist
";
    let out = c.kubectl_stdin(
        &["apply", "--server-side", "--validate=false", "-f", "-"],
        Some(manifest),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert_ne!(status.code, 0);
    assert!(
        status
            .stderr
            .contains("deployment \"web\" exceeded its progress deadline"),
        "{}",
        status.stderr
    );
    let waiting = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].state.waiting.reason}",
    ]);
    assert_eq!(waiting, "ImagePullBackOff");

    c.ok(&[
        "create",
        "deployment",
        "crash",
        "--image=registry.local/crash:1",
    ]);
    c.ok(&["set", "env", "deployment/crash", "FAKE_CRASH=true"]);
    let reason = wait_for(
        || {
            c.ok(&[
                "get",
                "pods",
                "-l",
                "app=crash",
                "-o",
                "jsonpath={.items[*].status.containerStatuses[0].state.waiting.reason}",
            ])
        },
        |s| s.contains("CrashLoopBackOff"),
    );
    assert!(reason.contains("CrashLoopBackOff"), "{reason}");
}

/// Polls kubectl until `done` (bounded: 100 tries, the controller ticks every 20 ms).
fn wait_for(mut f: impl FnMut() -> String, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = f();
        if done(&last) {
            break;
        }
    }
    last
}

#[test]
fn a_wrong_token_is_refused_as_a_cluster_would() {
    let c = cluster();
    let bad = c
        .fake
        .kubeconfig()
        .replace("canary-kube-token", "wrong-token");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &path)
        .args(["get", "deployments", "--request-timeout=10s"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
}

/// kubectl referees field ownership: an applier that drops a list item keyed by `name` removes
/// it whole (before: a nameless `{"value": ...}` stayed behind), managedFields carry the
/// operation (`Apply` for server-side apply, `Update` for `kubectl set`), and an applier's
/// old value conflicts with the Update that changed it, under the same manager name too.
#[test]
fn kubectl_applies_drop_list_items_and_show_apply_and_update_owners() {
    let c = cluster();
    let deployment = |env: &str| {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
      - name: api
        image: registry.local/api:1
        env: [{env}]
"
        )
    };
    let apply = |manifest: &str, extra: &[&str]| server_side_apply(&c, manifest, extra);
    let two = apply(
        &deployment("{name: A, value: \"1\"}, {name: B, value: \"2\"}"),
        &[],
    );
    assert_eq!(two.code, 0, "{}", two.stderr);
    let one = apply(&deployment("{name: A, value: \"1\"}"), &[]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let env = c.ok(&[
        "get",
        "deployment",
        "api",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]);
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(env, serde_json::json!([{"name": "A", "value": "1"}]));

    // `kubectl set image` is an Update (strategic merge patch) by manager kubectl-set.
    c.ok(&["set", "image", "deployment/api", "api=registry.local/api:2"]);
    let yaml = c.ok(&[
        "get",
        "deployment",
        "api",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(
        yaml.contains("manager: k8s-deploy") && yaml.contains("operation: Apply"),
        "{yaml}"
    );
    assert!(
        yaml.contains("manager: kubectl-set") && yaml.contains("operation: Update"),
        "{yaml}"
    );
    assert!(
        yaml.contains("k:{\"name\":\"api\"}"),
        "fieldsV1 keys list items by name:\n{yaml}"
    );
    let conflicted = apply(&deployment("{name: A, value: \"1\"}"), &[]);
    assert_ne!(conflicted.code, 0);
    assert!(
        conflicted.stderr.contains("conflict") && conflicted.stderr.contains("kubectl-set"),
        "{}",
        conflicted.stderr
    );
    let forced = apply(
        &deployment("{name: A, value: \"1\"}"),
        &["--force-conflicts"],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "api",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "registry.local/api:1"
    );
}

/// `kubectl apply --server-side --dry-run=server` (what k8s-deploy's canary asks to know
/// whether a pod template changes): the answer shows the change, nothing is stored.
#[test]
fn kubectl_server_side_dry_run_changes_nothing() {
    let c = cluster();
    let apply = |extra: &[&str], text: &str| server_side_apply(&c, text, extra);
    assert_eq!(apply(&[], APP).code, 0);
    let changed = APP.replace("1111111111111111", "2222222222222222");
    let out = apply(&["--dry-run=server", "-o", "json"], &changed);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("2222222222222222"), "{}", out.stdout);
    let live = c.ok(&[
        "-n",
        "team",
        "get",
        "deployment/api-gateway",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert!(live.contains("1111111111111111"), "{live}");
    // A new object: answered, not created.
    let other = APP.replace("name: settings", "name: settings-2");
    assert_eq!(apply(&["--dry-run=server"], &other).code, 0);
    let missing = c.kubectl_stdin(&["-n", "team", "get", "configmap/settings-2"], None);
    assert_ne!(missing.code, 0);
}

/// `kubectl apply --server-side` as k8s-deploy's field manager, `extra` flags added, the
/// manifest on stdin.
fn server_side_apply(c: &common::Cluster, manifest: &str, extra: &[&str]) -> common::Out {
    let mut args = vec![
        "apply",
        "--server-side",
        "--validate=false",
        "--field-manager=k8s-deploy",
    ];
    args.extend_from_slice(extra);
    args.extend(["-f", "-"]);
    c.kubectl_stdin(&args, Some(manifest))
}
