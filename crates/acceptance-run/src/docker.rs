//! The `docker` runner: the suite's image run through the Docker Engine API (bollard), its
//! output streamed to the log, its `/reports` copied out of the container afterwards (no shared
//! directory needed), the container removed.

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt as _;
use protocol::text::one_line;
use std::path::Path;
use std::time::Duration;

/// Connects to `DOCKER_HOST` or the local socket, agreeing on an API version.
pub async fn connect(docker_host: Option<&str>) -> anyhow::Result<Docker> {
    let docker = match docker_host {
        Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
            Docker::connect_with_http(h, 600, bollard::API_DEFAULT_VERSION)
        }
        Some(h) => Docker::connect_with_socket(h, 600, bollard::API_DEFAULT_VERSION),
        None => {
            Docker::connect_with_socket("/var/run/docker.sock", 600, bollard::API_DEFAULT_VERSION)
        }
    }
    .context("connect to the Docker daemon")?;
    docker.negotiate_version().await.with_context(|| {
        format!(
            "reach the Docker daemon at {} (set DOCKER_HOST, or mount the socket)",
            docker_host.unwrap_or("/var/run/docker.sock")
        )
    })
}

/// Runs `image` (with `cmd` when given) and copies its `/reports` into `reports`. Returns the
/// exit code, or `None` at the timeout (the container is stopped).
/// The suite's container, as the docker runner starts it.
#[derive(Debug)]
pub struct Suite {
    pub image: String,
    /// The command, when given (else the image's own).
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub network: Option<String>,
    pub timeout: Duration,
}

pub async fn run(
    docker: &Docker,
    suite: Suite,
    reports: &Path,
    on_abort: &protocol::abort::OnAbort,
) -> anyhow::Result<Option<i64>> {
    let Suite {
        image,
        cmd,
        env,
        network,
        timeout,
    } = suite;
    let image = image.as_str();
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd,
        env: Some(env),
        host_config: Some(HostConfig {
            network_mode: network,
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "params.image: cannot create a container of {image}: {}",
                one_line(&e.to_string())
            )
        })?;
    let id = created.id;
    // Stopped by Concourse: the container goes (force-removed, running or not).
    let _abort = on_abort.register({
        let (docker, id) = (docker.clone(), id.clone());
        move || async move {
            match docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await
            {
                Ok(()) => format!("removed the suite's container {}", &id[..id.len().min(12)]),
                Err(e) => format!(
                    "could not remove the suite's container {id}: {}",
                    one_line(&e.to_string())
                ),
            }
        }
    });
    let result = async {
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!("start the suite's container: {}", one_line(&e.to_string()))
            })?;
        let logs = docker.logs(
            &id,
            Some(
                LogsOptionsBuilder::default()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        let forward = async {
            let mut logs = Box::pin(logs);
            let mut pending = String::new();
            while let Some(Ok(chunk)) = logs.next().await {
                pending.push_str(&chunk.to_string());
                while let Some(i) = pending.find('\n') {
                    tracing::info!("| {}", &pending[..i]);
                    pending.drain(..=i);
                }
            }
            if !pending.is_empty() {
                tracing::info!("| {pending}");
            }
        };
        let wait = async {
            let mut wait = Box::pin(
                docker.wait_container(&id, None::<bollard::query_parameters::WaitContainerOptions>),
            );
            match wait.next().await {
                Some(Ok(r)) => Some(r.status_code),
                // A non-zero exit arrives as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Some(code)
                }
                _ => None,
            }
        };
        let exit = match tokio::time::timeout(timeout, async { tokio::join!(forward, wait).1 })
            .await
        {
            Ok(code) => code,
            Err(_) => {
                let _ = docker
                    .stop_container(&id, None::<bollard::query_parameters::StopContainerOptions>)
                    .await;
                return Ok(None);
            }
        };
        // Copy /reports out (a tar of the directory).
        let mut tarball = Vec::new();
        let mut stream = docker.download_from_container(
            &id,
            Some(
                DownloadFromContainerOptionsBuilder::default()
                    .path("/reports")
                    .build(),
            ),
        );
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tarball.extend_from_slice(&bytes),
                Err(e) => {
                    tracing::warn!(
                        "no /reports in the suite's container: {}",
                        one_line(&e.to_string())
                    );
                    break;
                }
            }
        }
        let mut archive = tar::Archive::new(&tarball[..]);
        if let Ok(entries) = archive.entries() {
            for mut entry in entries.flatten() {
                let Ok(path) = entry.path().map(|p| p.into_owned()) else {
                    continue;
                };
                // `reports/cucumber.json`, `reports/junit/TEST-x.xml`: drop the first component.
                let rel: std::path::PathBuf = path.components().skip(1).collect();
                if !protocol::paths::is_plain_relative(&rel) {
                    continue;
                }
                if entry.header().entry_type().is_file() {
                    let target = reports.join(&rel);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    entry.unpack(&target)?;
                }
            }
        }
        Ok(exit)
    }
    .await;
    let _ = docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    result
}
