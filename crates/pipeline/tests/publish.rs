//! `pipeline publish` (what `make publish` runs) pushes the resource types' images with our
//! own gcr-image to a registry with auth; each pushed image is the one `make images` built
//! (its config digest is the Docker image ID), checked with skopeo; the password never shows.

#![allow(clippy::unwrap_used)]

use fakes::registry::{Auth, Registry};
use std::process::Command;
use testkit::{CANARY, Image};

#[test]
fn publish_pushes_every_resource_type_as_built_to_a_registry_with_auth() {
    for t in pipeline::publish::TYPES {
        let _ = Image::find(t);
    }
    let registry = Registry::start(Auth::Htpasswd(vec![("ci".into(), CANARY.into())]));
    let prefix = format!("{}/microservices-kube", registry.host());
    let gcr_image = testkit::target_dir().join("gcr-image");
    let out = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args([
            "publish",
            "--registry",
            &prefix,
            "--tag",
            "0.2.0",
            "--gcr-image",
        ])
        .arg(&gcr_image)
        .env("REGISTRY_USERNAME", "ci")
        .env("REGISTRY_PASSWORD", CANARY)
        .env("REGISTRY_INSECURE", "true")
        .env_remove("GOOGLE_CLOUD_AUTH_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), pipeline::publish::TYPES.len(), "{stdout}");
    for t in pipeline::publish::TYPES {
        let reference = format!("{prefix}/{t}:0.2.0");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{reference}@sha256:")))
            .unwrap_or_else(|| panic!("{reference} not printed: {stdout}"));
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("ci:{CANARY}"))
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
        let built = Command::new("docker")
            .args([
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                &format!("{t}:dev"),
            ])
            .output()
            .unwrap();
        let built = String::from_utf8_lossy(&built.stdout).trim().to_owned();
        assert_eq!(
            manifest["config"]["digest"], built,
            "{t}: the image make images built"
        );
        let digest = line.split('@').nth(1).unwrap();
        let pushed = registry::sha256_digest(&raw.stdout);
        assert_eq!(digest, pushed, "{t}: the printed digest is the manifest's");
    }
}
