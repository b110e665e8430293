//! Canary releases (`params.canary`) against the Kubernetes fake whose pods are real Docker
//! containers (the sample user service, built by `make images`), with a client polling the
//! Service through the API server's proxy during the whole release, and kubectl as referee of
//! the objects (two Deployments, the Service's endpoints, the canary gone).

#![allow(clippy::unwrap_used)]

use fakes::kube::{FakeKube, Options};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use testkit::{Binary, Image, Run, arg, build_env, temp_dir};

/// The user service (2 replicas) and its Service; `env` marks the release, `args` its role
/// (an unknown role exits at once: a crash loop).
fn system(env: &str, args: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: users}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: users}}}}
  template:
    metadata: {{labels: {{app: users}}}}
    spec:
      containers:
      - name: users
        image: sample/user-service:dev
        args: [{args}]
        env: [{env}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /health, port: 8080}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: users}}
spec:
  selector: {{app: users}}
  ports: [{{port: 8080, targetPort: 8080}}]
"
    )
}

const V1: &str = "{name: RELEASE, value: \"1\"}";
const V2: &str = "{name: RELEASE, value: \"2\"}";
/// A release that answers 500 on `/users/2` (the sample service's switch).
const BROKEN: &str = "{name: SAMPLE_BROKEN_PATH, value: /users/2}";

struct Cluster {
    k: FakeKube,
    kubeconfig: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let _ = Image::find("sample/user-service");
        let k = FakeKube::start(Options {
            docker: true,
            ..Options::default()
        });
        let kubeconfig = temp_dir();
        std::fs::write(kubeconfig.path().join("config"), k.kubeconfig()).unwrap();
        Self { k, kubeconfig }
    }

    fn request(&self, manifests: &str, params: Value) -> (tempfile::TempDir, Vec<u8>) {
        let dir = temp_dir();
        std::fs::write(dir.path().join("app.yml"), manifests).unwrap();
        let mut p = json!({"manifests": ["app.yml"], "timeout": "90s"});
        for (key, v) in params.as_object().unwrap() {
            p[key] = v.clone();
        }
        let body = json!({"source": {"kubeconfig": self.k.kubeconfig()}, "params": p});
        (dir, body.to_string().into_bytes())
    }

    /// `out` as Concourse runs it: the built binary, in the background.
    fn start_put(&self, manifests: &str, params: Value) -> (tempfile::TempDir, testkit::Running) {
        let (dir, body) = self.request(manifests, params);
        let running = Binary::at(env!("CARGO_BIN_EXE_k8s-deploy")).start(
            "out",
            &[arg(dir.path())],
            &body,
            &build_env(),
        );
        (dir, running)
    }

    fn put(&self, manifests: &str, params: Value) -> Run {
        let (_dir, running) = self.start_put(manifests, params);
        running.finish(Duration::from_secs(180))
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig.path().join("config"))
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn deployments(&self) -> String {
        self.kubectl(&["get", "deployments", "-o", "name"])
    }

    /// The pods behind the Service's ready addresses (kubectl reads the Endpoints).
    fn endpoints(&self) -> String {
        self.kubectl(&[
            "get",
            "endpoints",
            "users",
            "-o",
            "jsonpath={.subsets[*].addresses[*].targetRef.name}",
        ])
    }

    fn env_of_stable(&self) -> Value {
        self.k
            .get("apps", "v1", "deployments", "default", "users")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["env"]
            .clone()
    }
}

/// A client of the Service for the whole test: GET /users/2 through the API server's service
/// proxy (ready endpoints in turn) every 20 ms; counts the answers that were not 200.
struct Client {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, u32, Vec<String>)>,
}

impl Client {
    fn start(k: &FakeKube) -> Self {
        let address = k.url().trim_start_matches("http://").to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut total, mut failed, mut seen) = (0, 0, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                total += 1;
                let line = get(
                    &address,
                    "/api/v1/namespaces/default/services/users:8080/proxy/users/2",
                );
                if !line.contains(" 200 ") {
                    failed += 1;
                    seen.push(line);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (total, failed, seen)
        });
        Self { stop, thread }
    }

    /// (requests, failures, the failures' status lines).
    fn stop(self) -> (u32, u32, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// One HTTP/1.1 GET; the status line (or the connection error).
fn get(address: &str, path: &str) -> String {
    let mut stream = match std::net::TcpStream::connect(address) {
        Ok(s) => s,
        Err(e) => return format!("connect: {e}"),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return format!("write: {e}");
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or("no answer").to_owned()
}

fn canary(steps: Value) -> Value {
    json!({"canary": {"steps": steps, "interval": "300ms",
                      "checks": [{"path": "/users/2", "contains": "Grace"}, {"path": "/health"}]}})
}

#[test]
fn a_good_release_goes_through_every_step_while_the_service_keeps_answering() {
    let c = Cluster::start();
    c.put(&system(V1, "users"), json!({})).success();
    let client = Client::start(&c.k);

    let (_dir, running) = c.start_put(
        &system(V2, "users"),
        canary(json!([{"weight": 50}, {"pause": "2s"}, {"weight": 100}])),
    );
    running.wait_for(
        "users canary step 1 (50%): 1 pod beside 2 stable",
        Duration::from_secs(90),
    );
    // Mid-release: two Deployments, and the canary pod is one of the Service's endpoints
    // beside the two stable pods (the endpoints controller follows Ready within a tick).
    assert_eq!(
        c.deployments(),
        "deployment.apps/users\ndeployment.apps/users-canary"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut endpoints = c.endpoints();
    while endpoints.split_whitespace().count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        endpoints = c.endpoints();
    }
    let names: Vec<&str> = endpoints.split_whitespace().collect();
    assert_eq!(names.len(), 3, "{endpoints}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("users-canary-"))
            .count(),
        1,
        "{endpoints}"
    );
    let run = running.finish(Duration::from_secs(180));
    let (requests, failures, seen) = client.stop();
    let response = run.success();
    let log = run.log();
    eprintln!("{log}\nclient: {requests} requests, {failures} failed");
    assert!(
        log.contains("users canary step 1 (50%): 1 pod beside 2 stable, checks 2/2 ok"),
        "{log}"
    );
    assert!(
        log.contains("users canary step 2 (pause 2s): 1 pod beside 2 stable, checks"),
        "{log}"
    );
    assert!(
        log.contains("canary passed every step: promoting users"),
        "{log}"
    );
    let metadata = response["metadata"].as_array().unwrap();
    assert!(
        metadata.contains(&json!({"name": "canary", "value": "50%, pause 2s, promoted"})),
        "{metadata:?}"
    );
    // The stable Deployment took the release; the canary is gone.
    assert_eq!(
        c.env_of_stable(),
        json!([{"name": "RELEASE", "value": "2"}])
    );
    assert_eq!(c.deployments(), "deployment.apps/users");
    assert!(!c.endpoints().contains("users-canary"), "{}", c.endpoints());
    assert!(requests > 50, "{requests}");
    assert_eq!(failures, 0, "{seen:?}");
}

#[test]
fn a_release_failing_a_checked_path_is_stopped_at_the_first_step_and_serves_nobody() {
    let c = Cluster::start();
    c.put(&system(V1, "users"), json!({})).success();
    let stable_env = c.env_of_stable();
    let client = Client::start(&c.k);
    let run = c.put(
        &system(BROKEN, "users"),
        canary(json!([{"weight": 50}, {"pause": "1m"}, {"weight": 100}])),
    );
    // Let the client poll a while after the canary went.
    std::thread::sleep(Duration::from_secs(1));
    let (requests, failures, seen) = client.stop();
    let line = run.failure();
    eprintln!(
        "{}\nclient: {requests} requests, {failures} failed",
        run.log()
    );
    assert!(
        line.starts_with(
            "users canary stopped at step 1 (50%): check GET /users/2 on pod users-canary-"
        ),
        "{line}"
    );
    assert!(
        line.contains("answered 500, expected 200: \"{\\\"error\\\":\\\"/users/2 is broken in this release\\\"}\" (1 failed, budget 0); removed users-canary"),
        "{line}"
    );
    assert!(
        line.contains("s after the first failed check; users still runs the previous release"),
        "{line}"
    );
    assert_eq!(
        c.env_of_stable(),
        stable_env,
        "the stable Deployment never changed"
    );
    assert_eq!(c.deployments(), "deployment.apps/users");
    assert_eq!(c.endpoints().split_whitespace().count(), 2);
    // The failing pod never became an endpoint: no client request reached it.
    assert!(requests > 20, "{requests}");
    assert_eq!(failures, 0, "{seen:?}");

    // With a failure budget the check is tried again every interval; one failure past the
    // budget stops the release all the same, still before the pod serves.
    let client = Client::start(&c.k);
    let mut params = canary(json!([{"weight": 50}]));
    params["canary"]["failure_budget"] = json!(2);
    let line = c.put(&system(BROKEN, "users"), params).failure();
    let (_, failures, seen) = client.stop();
    assert!(
        line.contains("(3 failed, budget 2); removed users-canary"),
        "{line}"
    );
    assert_eq!(failures, 0, "{seen:?}");
    assert_eq!(c.env_of_stable(), stable_env);
}

#[test]
fn a_release_that_crash_loops_is_stopped_and_sigterm_mid_canary_removes_it() {
    let c = Cluster::start();
    c.put(&system(V1, "users"), json!({})).success();
    let stable_env = c.env_of_stable();

    let line = c
        .put(&system(V2, "bogus"), canary(json!([{"weight": 25}])))
        .failure();
    eprintln!("{line}");
    assert!(
        line.starts_with("users canary stopped at step 1 (25%): pod users-canary-"),
        "{line}"
    );
    assert!(
        line.contains("restarted") || line.contains("CrashLoopBackOff"),
        "{line}"
    );
    assert!(line.contains("removed users-canary"), "{line}");
    assert_eq!(c.deployments(), "deployment.apps/users");

    // Concourse aborts the build during a pause: the canary goes, the stable stays.
    let (_dir, running) = c.start_put(
        &system(V2, "users"),
        canary(json!([{"weight": 50}, {"pause": "5m"}])),
    );
    running.wait_for(
        "users canary step 1 (50%): 1 pod beside 2 stable",
        Duration::from_secs(90),
    );
    assert!(c.deployments().contains("users-canary"));
    let started = Instant::now();
    let (run, took) = running.terminate();
    let line = run.failure();
    eprintln!("{line} (the step ended {took:?} after SIGTERM)");
    assert_eq!(
        line,
        "aborted by SIGTERM: removed users-canary; the stable Deployment was not changed"
    );
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(c.deployments(), "deployment.apps/users");
    assert!(!c.endpoints().contains("users-canary"));
    assert_eq!(c.env_of_stable(), stable_env);
}
