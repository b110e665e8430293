//! acceptance-run's kubernetes runner end to end: the sample system deployed (by kubectl) to
//! the Kubernetes fake, whose pods run as Docker containers; smoke checks through the API
//! server's service proxy; the suite (`acceptance-suite:dev`, cucumber-rs) as a Job in the
//! namespace, reaching the gateway by its Service name; the reporter from `acceptance-run:dev`
//! handing the reports back through the pod's log; the Job cleaned up on every path.

#![allow(clippy::unwrap_used)]

use acceptance_run::AcceptanceRun;
use fakes::kube::{FakeKube, Options};
use fakes::registry::{Auth, Registry};
use serde_json::{Value, json};
use std::process::Command;
use testkit::{Image, arg, build_env, in_process, temp_dir};

const SYSTEM: &str = "apiVersion: v1
kind: Namespace
metadata: {name: accept}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: user-service, namespace: accept}
spec:
  selector: {matchLabels: {app: user-service}}
  template:
    metadata: {labels: {app: user-service}}
    spec:
      containers:
      - {name: user-service, image: 'sample/user-service:dev', readinessProbe: {httpGet: {path: /health, port: 8080}}}
---
apiVersion: v1
kind: Service
metadata: {name: user-service, namespace: accept}
spec: {selector: {app: user-service}, ports: [{port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-gateway, namespace: accept}
spec:
  selector: {matchLabels: {app: api-gateway}}
  template:
    metadata: {labels: {app: api-gateway}}
    spec:
      containers:
      - {name: api-gateway, image: 'sample/api-gateway:dev', readinessProbe: {httpGet: {path: /health, port: 8080}}}
---
apiVersion: v1
kind: Service
metadata: {name: api-gateway, namespace: accept}
spec: {selector: {app: api-gateway}, ports: [{port: 8080}]}
";

struct Env {
    fake: FakeKube,
    registry: Registry,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn kubectl(env: &Env, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", &env.kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl (installed on our machines) deploys the sample system");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deployed() -> Env {
    for image in [
        "acceptance-run",
        "acceptance-suite",
        "sample/user-service",
        "sample/api-gateway",
    ] {
        let _ = Image::find(image);
    }
    let fake = FakeKube::start(Options {
        docker: true,
        tls: true,
        token: Some("canary-kube-token".into()),
        ..Options::default()
    });
    let dir = temp_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    let env = Env {
        fake,
        registry: Registry::start(Auth::None),
        kubeconfig,
        _dir: dir,
    };
    kubectl(
        &env,
        &["apply", "--validate=false", "-f", "-"],
        Some(SYSTEM),
    );
    for d in ["user-service", "api-gateway"] {
        kubectl(
            &env,
            &[
                "rollout",
                "status",
                &format!("deployment/{d}"),
                "-n",
                "accept",
                "--timeout=60s",
            ],
            None,
        );
    }
    env
}

impl Env {
    fn source(&self) -> Value {
        json!({"reports_repository": format!("{}/p/reports", self.registry.host()), "insecure": true,
               "kubeconfig": self.fake.kubeconfig()})
    }

    fn put(&self, params: Value, build: &str) -> testkit::Run {
        let dir = temp_dir();
        let mut env = build_env();
        env.insert("BUILD_ID".into(), build.into());
        in_process(
            &AcceptanceRun,
            &["out", arg(dir.path())],
            json!({"source": self.source(), "params": params})
                .to_string()
                .as_bytes(),
            &env,
        )
    }

    /// `in` of a stored run into a fresh directory.
    fn fetch(&self, version: &Value) -> tempfile::TempDir {
        let dest = temp_dir();
        in_process(
            &AcceptanceRun,
            &["in", arg(dest.path())],
            json!({"source": self.source(), "version": version})
                .to_string()
                .as_bytes(),
            &build_env(),
        )
        .success();
        dest
    }

    fn jobs_left(&self) -> String {
        kubectl(self, &["get", "jobs", "-n", "accept", "-o", "name"], None)
    }
}

fn params(extra: Value) -> Value {
    let mut p = json!({
        "runner": "kubernetes", "namespace": "accept", "gateway_service": "api-gateway:8080",
        "image": "acceptance-suite:dev", "reporter_image": "acceptance-run:dev",
        "command": ["/suite/acceptance-suite"], "timeout": "60s",
        "smoke": [{"name": "api-gateway", "path": "/api-gateway/health", "contains": "ok"},
                  {"name": "user-service", "path": "/user-service/health"}]
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            p.as_object_mut().unwrap().remove(k);
        } else {
            p[k] = v.clone();
        }
    }
    p
}

fn metadata(answer: &Value, name: &str) -> String {
    answer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn the_suite_runs_as_a_job_in_the_namespace_and_its_reports_come_back_through_the_log() {
    let env = deployed();
    let run = env.put(params(json!({})), "5001");
    let answer = run.success();
    let log = run.log();
    assert!(log.contains("smoke api-gateway: ok"), "{log}");
    assert!(
        log.contains("(through the API server)") || log.contains("smoke user-service: ok"),
        "{log}"
    );
    assert!(log.contains("job accept/acceptance-5001-"), "{log}");
    assert!(
        log.contains("| 1 scenario (1 passed)"),
        "the pod's log is streamed:\n{log}"
    );
    assert!(
        !log.contains("::acceptance-run:report"),
        "report blocks stay out of the build log:\n{log}"
    );
    assert_eq!(
        metadata(&answer, "scenarios"),
        "1 passed, 0 failed, 0 skipped, 0 undefined, 0 pending"
    );
    run.assert_no_secret("canary-kube-token");
    assert_eq!(env.jobs_left(), "", "the Job is deleted");

    // The stored reports are the suite's own: `in` reads cucumber.json and junit.xml back.
    let dest = env.fetch(&answer["version"]);
    let cucumber: Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("cucumber.json")).unwrap()).unwrap();
    assert_eq!(cucumber[0]["name"], "API gateway");
    assert!(
        std::fs::read_to_string(dest.path().join("junit.xml"))
            .unwrap()
            .contains("versions are listed")
    );
}

#[test]
fn a_failing_scenario_fails_the_put_after_storing_reports_that_say_where() {
    let env = deployed();
    // The user service has no /versions: the scenario fails at its status step.
    let run = env.put(
        params(json!({"gateway_service": null, "gateway_url": "http://user-service:8080", "smoke": []})),
        "5002",
    );
    let line = run.failure();
    assert!(
        line.starts_with(
            "1 of 1 scenarios did not pass; first: API gateway / versions are listed: "
        ),
        "{line}"
    );
    assert!(
        line.contains("status 404, expected 200; reports: "),
        "{line}"
    );
    let reference = line.split("; reports: ").nth(1).unwrap();
    let digest = reference.split('@').nth(1).unwrap();
    assert_eq!(env.jobs_left(), "");
    let dest = env.fetch(&json!({"run": "5002", "digest": digest}));
    let summary = std::fs::read_to_string(dest.path().join("summary.md")).unwrap();
    assert!(summary.starts_with("# Acceptance: FAILED"), "{summary}");
    assert!(summary.contains("versions are listed"), "{summary}");
    assert!(summary.contains("status 404, expected 200"), "{summary}");
    assert!(summary.lines().count() < 40, "under a screen:\n{summary}");
}

#[test]
fn an_image_that_cannot_be_pulled_or_a_suite_past_its_timeout_fails_and_cleans_up() {
    let env = deployed();
    let run = env.put(
        params(json!({"image": "127.0.0.1:9/acceptance-tests:missing"})),
        "5003",
    );
    let line = run.failure();
    assert!(
        line.starts_with("params.image: the suite's pod acceptance-5003-"),
        "{line}"
    );
    assert!(
        line.contains("cannot start: ImagePullBackOff: Back-off pulling image \"127.0.0.1:9/acceptance-tests:missing\""),
        "{line}"
    );
    assert_eq!(env.jobs_left(), "");

    // A suite that never ends (a server): stopped at the timeout, the Job deleted.
    let run = env.put(
        params(json!({"image": "sample/user-service:dev", "command": ["/sample-service", "users"], "timeout": "3s"})),
        "5004",
    );
    let line = run.failure();
    assert!(
        line.starts_with("the suite ran past its timeout of 3s and was stopped; reports: "),
        "{line}"
    );
    assert_eq!(env.jobs_left(), "");

    // A namespace the cluster does not have (smoke skipped to reach the Job).
    let run = env.put(params(json!({"namespace": "gone-42", "smoke": []})), "5006");
    assert_eq!(
        run.failure(),
        "params.namespace: the cluster has no namespace gone-42 (was the test environment deployed?)"
    );

    // Smoke through the proxy: a service that is not there fails smoke, and the suite never runs.
    let run = env.put(
        params(json!({"smoke": [{"name": "role-service", "path": "/role-service/health"}], "smoke_timeout": "2s"})),
        "5005",
    );
    let line = run.failure();
    assert!(
        line.starts_with("smoke failed for role-service: service accept/api-gateway:8080 /role-service/health (through the API server) answered 502, expected 200"),
        "{line}"
    );
    assert!(!run.log().contains("job accept/"), "{}", run.log());
}

/// Concourse stops a step with SIGTERM: the suite's Job (and its pod) is deleted before the
/// process exits (before: only the Job's own deadline and TTL would remove it).
#[test]
fn sigterm_mid_suite_deletes_the_job() {
    let env = deployed();
    let mut build = build_env();
    build.insert("BUILD_ID".into(), "5008".into());
    let dir = temp_dir();
    let request = json!({"source": env.source(), "params": params(json!({
        "image": "sample/user-service:dev", "command": ["/sample-service", "users"], "timeout": "5m", "smoke": []}))});
    let running = testkit::Binary::find("acceptance-run").start(
        "out",
        &[arg(dir.path())],
        request.to_string().as_bytes(),
        &build,
    );
    running.wait_for("created from", std::time::Duration::from_secs(30));
    assert_ne!(env.jobs_left(), "");
    let (run, took) = running.terminate();
    run.assert_no_secret("canary-kube-token");
    let line = run.failure();
    assert!(
        line.starts_with("aborted by SIGTERM: deleted the Job accept/acceptance-5008-"),
        "{line}"
    );
    assert!(took < std::time::Duration::from_secs(9), "{took:?}");
    assert_eq!(env.jobs_left(), "", "the Job is gone");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kubectl(&env, &["get", "pods", "-n", "accept", "-o", "name"], None)
        .contains("acceptance-5008")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the suite's pod is left"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
