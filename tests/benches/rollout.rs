//! Rollout-complete to step-returns latency: k8s-deploy `out` (watch-driven) next to
//! `kubectl rollout status` (watch-driven) and a 2-second polling loop of `kubectl get` (what
//! the bash resources do), against the Kubernetes fake in the same run. The fake records the
//! instant its controller marks each rollout complete; each client's latency is the time from
//! then to its return. Prints medians; asserts nothing about time.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use fakes::kube::{FakeKube, Options};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn generation(fake: &FakeKube) -> i64 {
    fake.get("apps", "v1", "deployments", "default", "api")
        .unwrap()["metadata"]["generation"]
        .as_i64()
        .unwrap()
}

fn latency(fake: &FakeKube, generation: i64, returned: Instant) -> Duration {
    let done = fake
        .completed_at("default", "api", generation)
        .expect("the rollout completed");
    returned.saturating_duration_since(done)
}

/// The Deployment `api` (2 replicas) made by kubectl and rolled out.
fn create_api(kubeconfig: &Path) {
    kubectl(
        kubeconfig,
        &[
            "create",
            "deployment",
            "api",
            "--image=registry.local/api:0",
            "--replicas=2",
        ],
    );
    kubectl(
        kubeconfig,
        &["rollout", "status", "deployment/api", "--timeout=60s"],
    );
}

/// Runs k8s-deploy `out` with `request`; the instant it returned (it must succeed).
fn deploy(binary: &Path, dir: &Path, request: &str) -> Instant {
    let mut child = Command::new(binary)
        .arg("out")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let returned = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    returned
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/x86_64-unknown-linux-gnu/image/k8s-deploy");
    assert!(
        binary.is_file(),
        "{} not built; run `make image-bins` (make bench does)",
        binary.display()
    );
    // Rollouts slower than a client's start (~150 ms for kubectl), so every client is waiting
    // when the rollout completes: 2 replicas at a 200 ms tick take about a second.
    let fake = FakeKube::start(Options {
        token: Some("bench".into()),
        tls: true,
        tick: Duration::from_millis(200),
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    create_api(&kubeconfig);
    let source = json!({"kubeconfig": fake.kubeconfig()});
    let mut n = 0;
    let mut next_image = || {
        n += 1;
        format!("registry.local/api:{n}")
    };

    // kubectl (create, set image) owns the image field between our runs: each of ours takes it
    // over, as a server-side apply must be told to (`force_conflicts`).
    let mut ours = Vec::new();
    for _ in 0..20 {
        let request = json!({"source": source, "params": {"images": [{"deployment": "api", "image": next_image()}], "timeout": "60s", "force_conflicts": true}}).to_string();
        let returned = deploy(&binary, dir.path(), &request);
        ours.push(latency(&fake, generation(&fake), returned));
    }
    let mut kubectl_status = Vec::new();
    for _ in 0..20 {
        kubectl(
            &kubeconfig,
            &[
                "set",
                "image",
                "deployment/api",
                &format!("api={}", next_image()),
            ],
        );
        let g = generation(&fake);
        kubectl(
            &kubeconfig,
            &["rollout", "status", "deployment/api", "--timeout=60s"],
        );
        kubectl_status.push(latency(&fake, g, Instant::now()));
    }
    // The polling loop costs ~2 s a rollout: 5 rollouts.
    let mut polling = Vec::new();
    for _ in 0..5 {
        kubectl(
            &kubeconfig,
            &[
                "set",
                "image",
                "deployment/api",
                &format!("api={}", next_image()),
            ],
        );
        let g = generation(&fake);
        let script = format!(
            "until [ \"$(kubectl get deployment api -o jsonpath='{{.status.observedGeneration}}/{{.status.updatedReplicas}}/{{.status.availableReplicas}}/{{.status.replicas}}')\" = \"{g}/2/2/2\" ]; do sleep 2; done"
        );
        let status = Command::new("sh")
            .env("KUBECONFIG", &kubeconfig)
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        polling.push(latency(&fake, g, Instant::now()));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (o, k, p) = (median(ours), median(kubectl_status), median(polling));
    println!(
        "rollout complete -> step returns (fake apiserver, 2 replicas, controller tick 200 ms)"
    );
    println!();
    println!("| client | rollouts | median latency |");
    println!("|---|---|---|");
    println!("| k8s-deploy out (watch) | 20 | {:.0} ms |", ms(o));
    println!("| kubectl rollout status (watch) | 20 | {:.0} ms |", ms(k));
    println!("| 2 s polling loop of kubectl get | 5 | {:.0} ms |", ms(p));
    println!();
    println!(
        "ratio ours / kubectl: {:.2}; ours / polling: {:.2}",
        ms(o) / ms(k).max(0.001),
        ms(o) / ms(p).max(0.001)
    );

    // End to end, on a fake with its default tick: from starting the client to its return,
    // k8s-deploy `out` (connect, one LIST, server-side apply, watch) next to `kubectl set
    // image` + `kubectl rollout status` (two processes, as a bash resource runs them). Start to
    // the controller's completion holds the client's start-up and its request, then the
    // rollout, which the fake's tick (50 ms: a replica per tick) sets; after completion is
    // the client noticing and exiting.
    let fake = FakeKube::start(Options {
        token: Some("bench".into()),
        tls: true,
        ..Options::default()
    });
    let kubeconfig = dir.path().join("kubeconfig-default-tick");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    create_api(&kubeconfig);
    let source = json!({"kubeconfig": fake.kubeconfig()});
    let (mut ours_total, mut ours_rollout) = (Vec::new(), Vec::new());
    let (mut kube_total, mut kube_rollout) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let image = next_image();
        let request = json!({"source": source, "params": {"images": [{"deployment": "api", "image": image}], "timeout": "60s", "force_conflicts": true}}).to_string();
        let started = Instant::now();
        let returned = deploy(&binary, dir.path(), &request);
        let done = fake
            .completed_at("default", "api", generation(&fake))
            .unwrap();
        ours_total.push(returned - started);
        ours_rollout.push(done.saturating_duration_since(started));

        let image = next_image();
        let started = Instant::now();
        kubectl(
            &kubeconfig,
            &["set", "image", "deployment/api", &format!("api={image}")],
        );
        let g = generation(&fake);
        kubectl(
            &kubeconfig,
            &["rollout", "status", "deployment/api", "--timeout=60s"],
        );
        let returned = Instant::now();
        let done = fake.completed_at("default", "api", g).unwrap();
        kube_total.push(returned - started);
        kube_rollout.push(done.saturating_duration_since(started));
    }
    let (ot, or, kt, kr) = (
        median(ours_total),
        median(ours_rollout),
        median(kube_total),
        median(kube_rollout),
    );
    println!();
    println!("image change -> step returns, end to end (fake with its default tick, 2 replicas)");
    println!();
    println!(
        "| client | rollouts | median total | start -> rollout complete | complete -> return |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| k8s-deploy out | 10 | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(ot),
        ms(or),
        ms(ot.saturating_sub(or))
    );
    println!(
        "| kubectl set image + rollout status | 10 | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(kt),
        ms(kr),
        ms(kt.saturating_sub(kr))
    );
    println!();
    println!(
        "ratio ours / kubectl (total): {:.2}; (after completion): {:.2}",
        ms(ot) / ms(kt).max(0.001),
        ms(ot.saturating_sub(or)) / ms(kt.saturating_sub(kr)).max(0.001)
    );
}
