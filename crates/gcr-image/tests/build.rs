//! `out` with `build`: the real Docker daemon builds, we push, skopeo and the daemon read it
//! back.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fakes::registry::{Auth, Registry};
use gcr_image::GcrImage;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use testkit::{arg, build_env, in_process, temp_dir};

fn env() -> BTreeMap<String, String> {
    let mut env = build_env();
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        env.insert("DOCKER_HOST".into(), host);
    }
    env
}

#[test]
fn build_args_and_target_reach_the_daemon_and_the_result_is_pushed() {
    let registry = Registry::start(Auth::None);
    let sources = temp_dir();
    let ctx = sources.path().join("src");
    std::fs::create_dir_all(ctx.join("docker")).unwrap();
    std::fs::write(ctx.join("app.txt"), "the app").unwrap();
    std::fs::write(
        ctx.join("docker/Dockerfile.release"),
        "FROM scratch AS base\nARG VERSION\nLABEL version=$VERSION\nCOPY app.txt /app.txt\nFROM base AS release\nLABEL stage=release\nFROM base AS debug\nLABEL stage=debug\n",
    )
    .unwrap();
    let repo = format!("{}/microservices-kube/api-gateway", registry.host());
    let request = json!({
        "source": {"repository": repo, "insecure": true},
        "params": {"build": "src", "dockerfile": "docker/Dockerfile.release", "build_args": {"VERSION": 7}, "target": "release", "tag": "7.dev"},
    });
    let run = in_process(
        &GcrImage,
        &["out", arg(sources.path())],
        request.to_string().as_bytes(),
        &env(),
    );
    let answer = run.success();
    assert!(
        run.log().contains("Step 1/"),
        "the build log streams to stderr:\n{}",
        run.log()
    );
    let digest = answer["version"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(skopeo_digest(&format!("{repo}:7.dev")), digest);
    let config = run_output(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--config"])
            .arg(format!("docker://{repo}:7.dev")),
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config"]["Labels"]["version"], "7");
    assert_eq!(config["config"]["Labels"]["stage"], "release");
    // The daemon's temporary copy is gone.
    let leftovers = run_output(Command::new("docker").args(["images", "-q", "gcr-image-build"]));
    assert!(leftovers.is_empty(), "left behind: {leftovers}");
}

#[test]
fn a_failing_build_is_one_clear_line_and_pushes_nothing() {
    let registry = Registry::start(Auth::None);
    let sources = temp_dir();
    std::fs::create_dir(sources.path().join("src")).unwrap();
    std::fs::write(
        sources.path().join("src/Dockerfile"),
        "FROM scratch\nCOPY missing.txt /\n",
    )
    .unwrap();
    let request = json!({"source": {"repository": format!("{}/p/app", registry.host()), "insecure": true}, "params": {"build": "src", "tag": "1"}});
    let run = in_process(
        &GcrImage,
        &["out", arg(sources.path())],
        request.to_string().as_bytes(),
        &env(),
    );
    let line = run.failure();
    assert!(
        line.starts_with("docker build failed: COPY failed"),
        "{line}"
    );
    assert!(
        registry.requests().iter().all(|r| r.method != "PUT"),
        "nothing pushed"
    );
}

#[test]
fn build_params_are_checked_before_anything_runs() {
    let sources = temp_dir();
    std::fs::create_dir(sources.path().join("src")).unwrap();
    let source = json!({"repository": "127.0.0.1:1/p/app", "insecure": true});
    for (params, expected) in [
        (
            json!({"build": "nope", "tag": "1"}),
            "params.build: nope is not a directory (the build context)",
        ),
        (
            json!({"build": "src", "tag": "1"}),
            "params.dockerfile: Dockerfile is not a file in src",
        ),
        (
            json!({"image": "x", "dockerfile": "D", "tag": "1"}),
            "params.dockerfile: dockerfile, build_args and target go with params.build",
        ),
        (
            json!({"image": "x", "build": "src", "tag": "1"}),
            "params: set only one of image, build and promote",
        ),
        (
            json!({"build": "src", "build_args": {"A": [1]}, "tag": "1"}),
            "params.build_args.A: expected a string, got a list",
        ),
    ] {
        let request = json!({"source": source, "params": params});
        let run = in_process(
            &GcrImage,
            &["out", arg(sources.path())],
            request.to_string().as_bytes(),
            &env(),
        );
        assert_eq!(run.one_line_failure(), expected);
    }
}

fn run_output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
