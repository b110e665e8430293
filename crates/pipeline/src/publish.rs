//! `pipeline publish`: pushes the resource types' images (what `make images` built as
//! `<type>:dev`) to a registry, with our own gcr-image (`out` with a `docker save` tarball), so
//! the pipeline's `resource_types` (and acceptance-run's `reporter_image`, the same image as
//! acceptance-run) can be pulled. Credentials come from the environment and go only into the
//! request on gcr-image's stdin.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};

/// The images the pipeline pulls: the four resource types (acceptance-run's is the reporter too).
pub const TYPES: &[&str] = &[
    "gcr-image",
    "k8s-deploy",
    "github-promote-pr",
    "acceptance-run",
];

/// How to reach the registry, from the environment: `REGISTRY_USERNAME` with
/// `REGISTRY_PASSWORD`, or `GOOGLE_CLOUD_AUTH_KEY` (a service-account key, as the team holds
/// it); `REGISTRY_INSECURE=true` for a plain-HTTP loopback registry.
pub fn source_for(repository: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Value> {
    let mut source = json!({"repository": repository});
    match (
        env("REGISTRY_USERNAME"),
        env("REGISTRY_PASSWORD"),
        env("GOOGLE_CLOUD_AUTH_KEY"),
    ) {
        (Some(user), Some(password), None) => {
            source["username"] = json!(user);
            source["password"] = json!(password);
        }
        (None, None, Some(key)) => source["google_credentials"] = json!(key),
        (None, None, None) => {}
        _ => bail!(
            "set REGISTRY_USERNAME and REGISTRY_PASSWORD, or GOOGLE_CLOUD_AUTH_KEY (not both)"
        ),
    }
    if env("REGISTRY_INSECURE").as_deref() == Some("true") {
        source["insecure"] = json!(true);
    }
    Ok(source)
}

/// Pushes every type's `<type>:dev` as `REGISTRY/<type>:TAG`; returns `(reference, digest)`.
pub fn publish(
    registry: &str,
    tag: &str,
    gcr_image: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    if !gcr_image.is_file() {
        bail!(
            "{} is not built; `make publish` builds it (make images)",
            gcr_image.display()
        );
    }
    let mut pushed = Vec::new();
    for t in TYPES {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let tarball = dir.path().join("image.tar");
        let saved = Command::new("docker")
            .args(["save", "-o"])
            .arg(&tarball)
            .arg(format!("{t}:dev"))
            .output()
            .context("run docker save (the Docker CLI and daemon are needed)")?;
        if !saved.status.success() {
            bail!(
                "docker save {t}:dev: {}; run `make images` first",
                String::from_utf8_lossy(&saved.stderr).trim()
            );
        }
        let repository = format!("{registry}/{t}");
        let request = json!({"source": source_for(&repository, env)?,
                             "params": {"image": "image.tar", "tag": tag}});
        eprintln!("publishing {t}:dev as {repository}:{tag}");
        let mut child = Command::new(gcr_image)
            .arg("out")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("run {}", gcr_image.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin
                .write_all(request.to_string().as_bytes())
                .context("write the request")?;
        }
        let out = child.wait_with_output().context("wait for gcr-image")?;
        if !out.status.success() {
            bail!("pushing {t} failed (gcr-image's error above)");
        }
        let answer: Value =
            serde_json::from_slice(&out.stdout).context("gcr-image's answer is not JSON")?;
        let digest = answer["version"]["digest"]
            .as_str()
            .context("gcr-image's answer has no digest")?
            .to_owned();
        pushed.push((format!("{repository}:{tag}"), digest));
    }
    Ok(pushed)
}
