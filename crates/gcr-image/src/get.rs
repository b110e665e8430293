//! `in`: records the version where later steps read it; downloads no layer.
//!
//! Files written: `repository`, `tag`, `digest`, `image-ref` (`HOST/PATH@sha256:...`, what a
//! deploy pins) and `version.json`. One HEAD by digest proves the version still exists.

use crate::Version;
use crate::source::Config;
use protocol::{Metadata, Response};
use registry::Client;
use std::path::Path;

pub async fn get(
    config: &Config,
    client: &Client,
    version: Version,
    dest: &Path,
) -> anyhow::Result<Response<Version>> {
    registry::reference::validate_digest(&version.digest)
        .map_err(|m| protocol::FieldError::new("version.digest", m))?;
    let repo = &config.repository;
    let pinned = repo.pinned(&version.digest);
    if client
        .manifest_digest(repo, &version.digest)
        .await?
        .is_none()
    {
        anyhow::bail!(
            "{pinned} no longer exists in the registry (deleted or garbage-collected); run check again or pin another version"
        );
    }
    let files = [
        ("repository", repo.to_string()),
        ("tag", version.tag.clone()),
        ("digest", version.digest.clone()),
        (
            "version.json",
            serde_json::json!({"tag": version.tag, "digest": version.digest}).to_string(),
        ),
    ];
    protocol::image_ref::write(dest, &pinned)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "write {}/{}: {e}",
                dest.display(),
                protocol::image_ref::FILE
            )
        })?;
    for (name, content) in &files {
        tokio::fs::write(dest.join(name), content)
            .await
            .map_err(|e| anyhow::anyhow!("write {}/{name}: {e}", dest.display()))?;
    }
    tracing::info!("{} is {pinned}", repo.tagged(&version.tag));
    Ok(Response::new(version).with_metadata(metadata(&pinned, &files[1].1)))
}

pub fn metadata(pinned: &str, tag: &str) -> Metadata {
    Metadata::new().with("image", pinned).with("tag", tag)
}
