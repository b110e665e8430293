//! `in` with a `format`: the image itself, as an OCI tarball, an OCI layout, or an unpacked
//! root filesystem (`rootfs/` + `metadata.json`, what Concourse's `image:` of a task reads).
//! Layers stream to disk with their digests checked; a multi-platform index is resolved to
//! `source.platform`.

use crate::image_input::{DOCKER_LIST, OCI_INDEX};
use crate::source::Config;
use anyhow::{Context as _, bail};
use registry::{Client, Manifest};
use serde::Deserialize;
use std::path::Path;

/// `params.format` of `in`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// No download: only the reference files.
    #[default]
    None,
    /// `image.tar`: an OCI layout in an uncompressed tarball.
    Oci,
    /// `oci/`: an OCI layout directory.
    OciLayout,
    /// `rootfs/` and `metadata.json`.
    Rootfs,
}

/// Downloads `digest` of the configured repository into `dest` in `format`.
pub async fn fetch(
    config: &Config,
    client: &Client,
    digest: &str,
    tag: &str,
    format: Format,
    dest: &Path,
) -> anyhow::Result<()> {
    if format == Format::None {
        return Ok(());
    }
    let repo = &config.repository;
    let top = client
        .manifest(repo, digest)
        .await?
        .with_context(|| format!("{} vanished", repo.pinned(digest)))?;
    let manifest = resolve_platform(config, client, top).await?;
    let parsed = registry::oci::image_manifest(
        &manifest.bytes,
        &format!("the manifest of {}", repo.pinned(&manifest.digest)),
    )
    .map_err(anyhow::Error::msg)?;
    let config_digest = parsed.config.digest.clone();
    let image_config = client.blob(repo, &config_digest).await?;
    let layers: Vec<(String, u64)> = parsed
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    let total: u64 = layers.iter().map(|(_, s)| s).sum();
    tracing::info!(
        "downloading {} layers ({}) of {}",
        layers.len(),
        registry::push::human(total),
        repo.pinned(digest)
    );

    match format {
        Format::None => Ok(()),
        Format::Oci | Format::OciLayout => {
            let layout = if format == Format::OciLayout {
                dest.join("oci")
            } else {
                dest.join(".oci-layout-tmp")
            };
            let blobs = layout.join("blobs/sha256");
            tokio::fs::create_dir_all(&blobs).await?;
            for (i, (layer, size)) in layers.iter().enumerate() {
                let path = blobs.join(hex_of(layer)?);
                client
                    .download_blob(
                        repo,
                        layer,
                        *size,
                        &path,
                        &format!("layer {}/{}", i + 1, layers.len()),
                    )
                    .await?;
            }
            tokio::fs::write(blobs.join(hex_of(&config_digest)?), &image_config).await?;
            tokio::fs::write(blobs.join(hex_of(&manifest.digest)?), &manifest.bytes).await?;
            tokio::fs::write(
                layout.join("oci-layout"),
                r#"{"imageLayoutVersion":"1.0.0"}"#,
            )
            .await?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{
                    "mediaType": manifest.media_type,
                    "digest": manifest.digest,
                    "size": manifest.bytes.len(),
                    "annotations": {"org.opencontainers.image.ref.name": tag},
                }],
            });
            tokio::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?).await?;
            if format == Format::Oci {
                let tarball = dest.join("image.tar");
                let source = layout.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let mut builder = tar::Builder::new(std::fs::File::create(&tarball)?);
                    builder.append_dir_all(".", &source)?;
                    builder.finish()?;
                    std::fs::remove_dir_all(&source)?;
                    Ok(())
                })
                .await
                .context("write image.tar")??;
            }
            Ok(())
        }
        Format::Rootfs => {
            let rootfs = dest.join("rootfs");
            let scratch = dest.join(".layers");
            tokio::fs::create_dir_all(&rootfs).await?;
            tokio::fs::create_dir_all(&scratch).await?;
            for (i, (layer, size)) in layers.iter().enumerate() {
                let path = scratch.join(hex_of(layer)?);
                client
                    .download_blob(
                        repo,
                        layer,
                        *size,
                        &path,
                        &format!("layer {}/{}", i + 1, layers.len()),
                    )
                    .await?;
                let (file, root) = (path.clone(), rootfs.clone());
                tokio::task::spawn_blocking(move || crate::rootfs::apply_layer(&file, &root))
                    .await
                    .context("unpack a layer")?
                    .with_context(|| format!("unpack layer {layer}"))?;
                tokio::fs::remove_file(&path).await?;
            }
            tokio::fs::remove_dir_all(&scratch).await?;
            let container = registry::oci::image_config(&image_config, "the image config")
                .map_err(anyhow::Error::msg)?
                .config
                .unwrap_or_default();
            let metadata = serde_json::json!({
                "env": container.env.unwrap_or_default(),
                "user": container.user.unwrap_or_default(),
            });
            tokio::fs::write(dest.join("metadata.json"), serde_json::to_vec(&metadata)?).await?;
            tracing::info!("unpacked into rootfs/");
            Ok(())
        }
    }
}

/// The file name of a blob: its digest's hex, once the digest passed the spec's grammar (it
/// comes from the registry, so it is hostile until checked: `sha256:../../x` is no name).
fn hex_of(digest: &str) -> anyhow::Result<&str> {
    registry::reference::validate_digest(digest)
        .map_err(|m| anyhow::anyhow!("the registry sent a bad digest: {m}"))?;
    Ok(&digest["sha256:".len()..])
}

/// The manifest for `source.platform` when `top` is an index; `top` otherwise.
async fn resolve_platform(
    config: &Config,
    client: &Client,
    top: Manifest,
) -> anyhow::Result<Manifest> {
    if top.media_type != OCI_INDEX && top.media_type != DOCKER_LIST {
        return Ok(top);
    }
    let index = registry::oci::index(
        &top.bytes,
        &format!("the index {}", config.repository.pinned(&top.digest)),
    )
    .map_err(anyhow::Error::msg)?;
    let (os, arch) = &config.platform;
    let Some(chosen) = index.for_platform(os, arch) else {
        bail!(
            "source.platform: {os}/{arch} is not in this image; it has {}",
            index.platforms()
        );
    };
    let child = &chosen.digest;
    client
        .manifest(&config.repository, child)
        .await?
        .with_context(|| format!("{} is missing", config.repository.pinned(child)))
}
