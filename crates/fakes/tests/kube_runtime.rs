//! The Kubernetes fake's container runtime, refereed by kubectl: Deployments' pods run as
//! Docker containers of the sample system's images, Services resolve by name between them and
//! answer through the API server's service proxy, Jobs run to completion or failure with their
//! logs, and a deleted namespace takes its containers with it. Needs the Docker daemon and the
//! images `make images` builds.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, cluster_with};
use fakes::kube::Options;
use std::process::Command;
use std::time::{Duration, Instant};

fn docker_cluster() -> Cluster {
    for image in ["sample/user-service:dev", "sample/api-gateway:dev"] {
        let found = Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "the Docker image {image} is missing: run `make images`"
        );
    }
    cluster_with(Options {
        docker: true,
        ..Options::default()
    })
}

/// Runs `f` until `done` holds (up to `secs`), returning the last output.
fn until(secs: u64, mut f: impl FnMut() -> String, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let last = f();
        if done(&last) || Instant::now() > deadline {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn containers_labelled(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

const SYSTEM: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: sample
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: user-service
  namespace: sample
spec:
  replicas: 1
  selector:
    matchLabels: {app: user-service}
  template:
    metadata:
      labels: {app: user-service}
    spec:
      containers:
      - name: user-service
        image: sample/user-service:dev
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /health, port: http}
---
apiVersion: v1
kind: Service
metadata:
  name: user-service
  namespace: sample
spec:
  selector: {app: user-service}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-gateway
  namespace: sample
spec:
  replicas: 1
  selector:
    matchLabels: {app: api-gateway}
  template:
    metadata:
      labels: {app: api-gateway}
    spec:
      containers:
      - name: api-gateway
        image: sample/api-gateway:dev
        env:
        - {name: ROLE_SERVICE_URL, value: 'http://role-service.sample.svc.cluster.local:8080'}
        readinessProbe:
          tcpSocket: {port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: api-gateway
  namespace: sample
spec:
  selector: {app: api-gateway}
  ports: [{name: http, port: 8080, targetPort: 8080}]
";

#[test]
fn deployments_run_as_containers_that_reach_each_other_by_service_name() {
    let c = docker_cluster();
    let applied = c.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], Some(SYSTEM));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    for d in ["user-service", "api-gateway"] {
        c.ok(&[
            "rollout",
            "status",
            &format!("deployment/{d}"),
            "-n",
            "sample",
            "--timeout=60s",
        ]);
    }
    // Through the API server's proxy to the gateway, and from it to the user service by DNS name.
    let body = until(
        20,
        || {
            c.kubectl(&[
                "get",
                "--raw",
                "/api/v1/namespaces/sample/services/api-gateway:http/proxy/users/1",
            ])
            .stdout
        },
        |o| o.contains("Ada"),
    );
    assert!(body.contains("Ada Lovelace"), "{body}");
    let health = c.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/sample/services/api-gateway:8080/proxy/user-service/health",
    ]);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    // The role service was never deployed: the gateway says so, and the proxy passes it back.
    let missing = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/sample/services/api-gateway:8080/proxy/role-service/health",
    ]);
    assert_ne!(missing.code, 0);
    // Pod status is the container's: an IP, running, ready.
    let pod = c.ok(&[
        "get",
        "pods",
        "-n",
        "sample",
        "-l",
        "app=api-gateway",
        "-o",
        "jsonpath={.items[0].metadata.name} {.items[0].status.phase} {.items[0].status.podIP} {.items[0].status.containerStatuses[0].ready}",
    ]);
    let fields: Vec<&str> = pod.split(' ').collect();
    assert_eq!(fields[1..].len(), 3, "{pod}");
    assert_eq!(fields[1], "Running", "{pod}");
    assert!(fields[2].parse::<std::net::Ipv4Addr>().is_ok(), "{pod}");
    assert_eq!(fields[3], "true", "{pod}");
    // kubectl's own columns (server-side printing, as a real apiserver answers).
    let table = c.ok(&["get", "pods,deployments", "-n", "sample"]);
    assert!(
        table.contains("READY   STATUS    RESTARTS   AGE"),
        "{table}"
    );
    assert!(table.contains("UP-TO-DATE   AVAILABLE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(fields[0]) && l.contains("1/1") && l.contains("Running")),
        "{table}"
    );
    // The API server's pod proxy reaches one pod itself (a canary's checks go this way): on the
    // port given, or on the first port its containers declare.
    let user_pod = c.ok(&[
        "get",
        "pods",
        "-n",
        "sample",
        "-l",
        "app=user-service",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    for target in [format!("{user_pod}:8080"), user_pod.clone()] {
        let health = c.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/sample/pods/{target}/proxy/health"),
        ]);
        assert!(health.contains("\"status\":\"ok\""), "{target}: {health}");
    }
    let gone = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/sample/pods/no-such-pod:8080/proxy/health",
    ]);
    assert_ne!(gone.code, 0);
    assert!(
        gone.stderr.contains("NotFound") || gone.stderr.contains("not found"),
        "{}",
        gone.stderr
    );
    // The pod's log is the container's output.
    let logs = c.ok(&["logs", fields[0], "-n", "sample"]);
    assert!(logs.contains("GET /users/1 200"), "{logs}");
    // A Service that does not exist.
    let none = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/sample/services/role-service:8080/proxy/health",
    ]);
    assert_ne!(none.code, 0);
    assert!(
        none.stderr.contains("NotFound") || none.stderr.contains("not found"),
        "{}",
        none.stderr
    );
    // Deleting the namespace removes its containers.
    let ns_label = "fake-kube.namespace=sample";
    assert!(!containers_labelled(ns_label).is_empty());
    c.ok(&["delete", "namespace", "sample"]);
    let left = until(
        20,
        || containers_labelled(ns_label).join(","),
        |o| o.is_empty(),
    );
    assert!(
        left.is_empty(),
        "containers left after the namespace was deleted: {left}"
    );
}

#[test]
fn jobs_run_to_completion_or_failure_with_their_logs() {
    let c = docker_cluster();
    c.ok(&[
        "create",
        "job",
        "checks",
        "--image=sample/user-service:dev",
        "--",
        "/sample-service",
        "users",
        "--check",
    ]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/checks",
        "--timeout=60s",
    ]);
    let logs = c.ok(&["logs", "job/checks"]);
    assert!(logs.contains("sample-service users: port 8080"), "{logs}");
    let status = c.ok(&[
        "get",
        "job",
        "checks",
        "-o",
        "jsonpath={.status.succeeded} {.status.failed}",
    ]);
    assert_eq!(status, "1 ");
    let listed = c.ok(&["get", "jobs"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("checks") && l.contains("Complete") && l.contains("1/1")),
        "{listed}"
    );

    // A failing command: one attempt and the backoff limit reached (backoffLimit 0).
    let job = "apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: sample/user-service:dev
        command: [/sample-service, nonsense]
";
    let created = c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], Some(job));
    assert_eq!(created.code, 0, "{}", created.stderr);
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/broken",
        "--timeout=60s",
    ]);
    let reason = c.ok(&[
        "get",
        "job",
        "broken",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}",
    ]);
    assert_eq!(reason, "BackoffLimitExceeded");
    let logs = c.ok(&["logs", "job/broken"]);
    assert!(logs.contains("usage: sample-service"), "{logs}");
    let exit = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=broken",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}",
    ]);
    assert_eq!(exit, "2");

    // The API server's validation: a Job's pods must not restart Always.
    let always = job
        .replace("name: broken", "name: always")
        .replace("restartPolicy: Never", "restartPolicy: Always");
    let refused = c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], Some(&always));
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("spec.template.spec.restartPolicy"),
        "{}",
        refused.stderr
    );

    // kubectl deletes in the background: the Job's pod and its container go too.
    c.ok(&["delete", "job", "checks"]);
    let pods = until(
        20,
        || c.ok(&["get", "pods", "-l", "job-name=checks", "-o", "name"]),
        |o| o.trim().is_empty(),
    );
    assert!(pods.trim().is_empty(), "{pods}");
}

#[test]
fn an_image_that_cannot_be_pulled_waits_in_image_pull_back_off_with_the_reason() {
    let c = docker_cluster();
    c.ok(&[
        "create",
        "job",
        "nopull",
        "--image=127.0.0.1:9/missing/image:dev",
    ]);
    let state = until(
        60,
        || {
            c.ok(&[
                "get",
                "pods",
                "-l",
                "job-name=nopull",
                "-o",
                "jsonpath={.items[0].status.containerStatuses[0].state.waiting.reason}|{.items[0].status.containerStatuses[0].state.waiting.message}",
            ])
        },
        |o| o.starts_with("ImagePullBackOff"),
    );
    assert!(
        state.starts_with(
            "ImagePullBackOff|Back-off pulling image \"127.0.0.1:9/missing/image:dev\""
        ),
        "{state}"
    );
    let logs = c.kubectl(&["logs", "job/nopull"]);
    assert_ne!(logs.code, 0);
    assert!(logs.stderr.contains("waiting to start"), "{}", logs.stderr);
}
