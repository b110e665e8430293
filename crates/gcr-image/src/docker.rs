//! Building an image through the Docker Engine API (bollard): the one place gcr-image talks to
//! a Docker daemon. The build context is streamed as a tar, the build log goes to stderr line
//! by line, and the result is exported (`docker save` format) into a temporary file that the
//! push path reads like any other tarball; the daemon's copy is removed afterwards.

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt as _;
use protocol::text::one_line;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// What `params.build` asks for, validated.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    /// Name for the daemon's temporary copy.
    pub local_tag: String,
}

/// Connects to `DOCKER_HOST` (`unix://...` or `tcp://...`), or the local socket.
pub async fn connect(docker_host: Option<&str>) -> anyhow::Result<Docker> {
    let docker = match docker_host {
        Some(host) if host.starts_with("tcp://") || host.starts_with("http://") => {
            Docker::connect_with_http(host, 600, bollard::API_DEFAULT_VERSION)
        }
        Some(host) => Docker::connect_with_socket(host, 600, bollard::API_DEFAULT_VERSION),
        None => {
            Docker::connect_with_socket("/var/run/docker.sock", 600, bollard::API_DEFAULT_VERSION)
        }
    }
    .with_context(|| {
        format!(
            "connect to the Docker daemon at {}",
            docker_host.unwrap_or("/var/run/docker.sock")
        )
    })?;
    // Older daemons refuse a newer client version: agree on the highest both speak.
    docker.negotiate_version().await.with_context(|| {
        format!(
            "reach the Docker daemon at {} (set DOCKER_HOST, or mount the socket)",
            docker_host.unwrap_or("/var/run/docker.sock")
        )
    })
}

/// Builds `request` and writes the image as a `docker save` tarball in `out_dir`; returns its path.
pub async fn build(
    docker: &Docker,
    request: &BuildRequest,
    out_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let context_tar = out_dir.join("context.tar");
    let (context, tar_path) = (request.context.clone(), context_tar.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path)?);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &context)?;
        builder.finish()?;
        Ok(())
    })
    .await
    .context("pack the build context")?
    .with_context(|| {
        format!(
            "params.build: pack the build context {}",
            request.context.display()
        )
    })?;

    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&request.dockerfile)
        .t(&request.local_tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&request.build_args);
    if let Some(target) = &request.target {
        options = options.target(target);
    }
    let file = tokio::fs::File::open(&context_tar).await?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    tracing::info!(
        "building {} with the Docker daemon",
        request.context.display()
    );
    let mut stream = docker.build_image(options.build(), None, Some(body));
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| {
            let text = e.to_string();
            // bollard reports the daemon's build error as a stream error.
            anyhow::anyhow!(
                "docker build failed: {}",
                one_line(text.trim_start_matches("Docker stream error: "))
            )
        })?;
        if let Some(text) = info.stream.as_deref() {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!("{line}");
            }
        }
        if let Some(detail) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
            bail!("docker build failed: {}", one_line(&detail));
        }
        if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
            image_id = Some(id);
        }
    }
    let _ = tokio::fs::remove_file(&context_tar).await;
    let image = image_id.unwrap_or_else(|| request.local_tag.clone());

    let saved = out_dir.join("image.tar");
    let mut file = tokio::fs::File::create(&saved).await?;
    let mut export = docker.export_image(&image);
    while let Some(chunk) = export.next().await {
        let chunk = chunk
            .map_err(|e| anyhow::anyhow!("export the built image: {}", one_line(&e.to_string())))?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    let removal = RemoveImageOptionsBuilder::default().force(true).build();
    if let Err(e) = docker
        .remove_image(&request.local_tag, Some(removal), None)
        .await
    {
        tracing::warn!(
            "could not remove the daemon's copy {}: {}",
            request.local_tag,
            one_line(&e.to_string())
        );
    }
    Ok(saved)
}
