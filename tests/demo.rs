//! `make demo`, `make demo-prod` and `make demo-bad-release`, as a user runs them: the demo
//! binary walks the sample system's pipeline (rendered by the renderer of ci/pipeline.yml)
//! with our resource images under Docker against the real registry and our Kubernetes (pods
//! in Docker) and GitHub fakes; then the manual production job; then a broken release that
//! production's canary stops; then `demo down` removes everything. Needs the images `make
//! images` builds.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use testkit::{Binary, Image};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo(args: &[&str]) -> String {
    let bin = Binary::find("demo");
    let out = Command::new(&bin.path)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo {args:?} failed:\n{text}");
    text
}

fn containers(label: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn the_demo_walks_the_pipeline_to_production_and_cleans_up() {
    for image in [
        "gcr-image",
        "k8s-deploy",
        "github-promote-pr",
        "acceptance-run",
        "acceptance-suite",
        "sample/api-gateway",
        "sample/user-service",
        "sample/role-service",
    ] {
        let _ = Image::find(image);
    }
    let run = demo(&["run"]);
    for job in [
        "unit-sample-api-gateway",
        "build-sample-acceptance-tests",
        "deploy-test",
        "acceptance",
        "publish-prod-images",
        "open-promotion-prs",
    ] {
        assert!(run.contains(&format!("✔ {job} succeeded")), "{job}:\n{run}");
    }
    assert!(
        !run.contains("deploy-prod succeeded"),
        "production waits for a person"
    );
    assert!(run.contains("Stopped before deploy-prod"), "{run}");
    // Acceptance ran the sample system's suite as a Job, through the gateway to both services.
    assert!(run.contains("| 3 scenarios (3 passed)"), "{run}");
    assert!(run.contains("smoke role-service: ok"), "{run}");
    assert_eq!(run.matches("opened #1 ").count(), 4, "{run}");

    let dir = root().join("target/demo");
    let env: Value = serde_json::from_slice(&std::fs::read(dir.join("env.json")).unwrap()).unwrap();
    let prod = demo(&["prod"]);
    assert!(prod.contains("✔ deploy-prod succeeded"), "{prod}");
    assert!(
        prod.contains("exchanging the service-account key"),
        "production is reached as GKE is, with the Google key: {prod}"
    );

    // What shipped is what was tested: each prod tag is the digest of its .dev tag.
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    for service in ["api-gateway", "user-service", "role-service"] {
        let dev = &state["versions"][format!("sample-{service}-dev")];
        let prod = &state["versions"][format!("sample-{service}-prod")];
        let dev = dev.as_array().unwrap().last().unwrap();
        let prod = prod.as_array().unwrap().last().unwrap();
        assert_eq!(dev["digest"], prod["digest"], "{service}");
        assert_eq!(
            format!("{}.dev", prod["tag"].as_str().unwrap()),
            dev["tag"].as_str().unwrap()
        );
    }
    // A broken release of the user service (/users/2 answers 500; the suite does not look
    // there): the test environment passes it, production's canary stops it before it serves.
    let bad = demo(&["bad-release"]);
    eprintln!("{bad}");
    for job in ["build-sample-user-service", "deploy-test", "acceptance"] {
        assert!(bad.contains(&format!("✔ {job} succeeded")), "{job}:\n{bad}");
    }
    assert!(bad.contains("✘ deploy-prod failed"), "{bad}");
    assert!(
        bad.contains("user-service canary stopped at step 1 (25%): check GET /users/2 on pod user-service-canary-"),
        "{bad}"
    );
    assert!(
        bad.contains("answered 500, expected 200"),
        "the evidence is quoted: {bad}"
    );
    assert!(
        bad.contains("production still serves user-service"),
        "{bad}"
    );
    let polled = bad
        .lines()
        .find(|l| l.starts_with("demo: a client polled production's user-service/users/2"))
        .unwrap_or_else(|| panic!("{bad}"));
    assert!(polled.contains(", 0 failed"), "{polled}");

    // No secret of the pipeline's vars is printed.
    let all = format!(
        "{run}{prod}{bad}{}",
        std::fs::read_to_string(dir.join("serve.log")).unwrap()
    );
    let key: Value =
        serde_json::from_str(env["vars"]["GOOGLE_CLOUD_AUTH_KEY"].as_str().unwrap()).unwrap();
    for secret in [
        env["vars"]["GITHUB_TOKEN"].as_str().unwrap(),
        "PRIVATE KEY",
        key["private_key_id"].as_str().unwrap(),
        "demo-gke-access-token",
    ] {
        assert!(!all.contains(secret), "a secret was printed");
    }

    // Down: the environment stops, and the clusters' containers go with it.
    let ports: Vec<String> = ["TEST_KUBECONFIG", "PROD_CLUSTER_SERVER"]
        .iter()
        .map(|v| {
            let text = env["vars"][v].as_str().unwrap();
            let at = text.find("127.0.0.1:").unwrap() + "127.0.0.1:".len();
            text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect()
        })
        .collect();
    assert!(containers(&format!("fake-kube.instance=fk{}", ports[1])) > 0);
    demo(&["down"]);
    for port in ports {
        assert_eq!(containers(&format!("fake-kube.instance=fk{port}")), 0);
    }
    assert!(!dir.join("env.json").exists());
}
