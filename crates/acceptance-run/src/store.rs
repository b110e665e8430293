//! Runs stored as OCI artifacts in the registry (through the registry crate, as gcr-image):
//! each report file a layer titled with its name, an empty config, tag `run-<id>`.

use crate::{Source, Version};
use anyhow::Context as _;
use protocol::{FieldError, Metadata, Response, versions_since};
use registry::push::Blob;
use registry::{Client, Repository};
use std::path::Path;

pub const ARTIFACT_TYPE: &str = "application/vnd.concourse.acceptance-run.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

#[derive(Debug)]
pub struct Store {
    pub repository: Repository,
    client: Client,
}

impl Store {
    pub fn new(s: Source) -> anyhow::Result<Self> {
        let repo = s.reports_repository.ok_or_else(|| {
            FieldError::missing(
                "source.reports_repository",
                "\"us.gcr.io/microservices-kube/acceptance-reports\"",
            )
        })?;
        let repository = Repository::parse(&repo)
            .map_err(|m| FieldError::new("source.reports_repository", m))?;
        let (credentials, hints) = registry_source::credentials(
            s.google_credentials,
            s.username,
            s.password,
            &[],
            "acceptance-run",
        )?;
        if s.insecure && !registry::client::is_loopback(&repository.host) {
            return Err(FieldError::new(
                "source.insecure",
                "plain HTTP is allowed only for a loopback registry",
            )
            .into());
        }
        let client = Client::new(
            &repository.host,
            credentials,
            registry::Options {
                insecure: s.insecure,
                user_agent: "acceptance-run".into(),
                hints,
                ..Default::default()
            },
        )?;
        Ok(Self { repository, client })
    }

    /// Stores the files; returns the artifact's digest.
    pub async fn put(&self, run: &str, files: &[(String, Vec<u8>)]) -> anyhow::Result<String> {
        let dir = tempfile::tempdir()?;
        let mut layers = Vec::new();
        let mut blobs = Vec::new();
        for (name, bytes) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes)?;
            let digest = registry::sha256_digest(bytes);
            let media = match name.rsplit('.').next() {
                Some("json") => "application/json",
                Some("xml") => "application/xml",
                _ => "text/markdown",
            };
            layers.push(serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len(), "annotations": {"org.opencontainers.image.title": name}}));
            blobs.push(Blob {
                digest,
                size: bytes.len() as u64,
                path,
                offset: 0,
            });
        }
        let config = b"{}";
        let config_path = dir.path().join(".config");
        std::fs::write(&config_path, config)?;
        blobs.push(Blob {
            digest: registry::sha256_digest(config),
            size: 2,
            path: config_path,
            offset: 0,
        });
        for b in &blobs {
            self.client
                .push_blob(&self.repository, b, None, "reports")
                .await?;
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": registry::sha256_digest(config), "size": 2},
            "layers": layers,
            "annotations": {"org.opencontainers.image.title": format!("acceptance run {run}")},
        });
        let digest = self
            .client
            .put_manifest(
                &self.repository,
                &format!("run-{run}"),
                serde_json::to_vec(&manifest)?.into(),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await?;
        Ok(digest)
    }

    /// The stored runs, oldest first (numeric run ids).
    pub async fn check(&self, given: Option<Version>) -> anyhow::Result<Vec<Version>> {
        let tags = self.client.tags(&self.repository).await?;
        let mut runs: Vec<(u64, String)> = tags
            .tags
            .iter()
            .filter_map(|t| {
                t.strip_prefix("run-")
                    .map(|r| (r.parse().unwrap_or(0), r.to_owned()))
            })
            .collect();
        runs.sort();
        let start = given
            .as_ref()
            .and_then(|g| runs.iter().position(|(_, r)| *r == g.run))
            .unwrap_or(runs.len().saturating_sub(1));
        let mut available = Vec::new();
        for (_, run) in &runs[start.min(runs.len())..] {
            if let Some(digest) = self
                .client
                .manifest_digest(&self.repository, &format!("run-{run}"))
                .await?
            {
                available.push(Version {
                    run: run.clone(),
                    digest,
                });
            }
        }
        Ok(versions_since(given.as_ref(), available))
    }

    /// Writes the stored files into `dest`.
    pub async fn get(&self, version: Version, dest: &Path) -> anyhow::Result<Response<Version>> {
        let manifest = self
            .client
            .manifest(&self.repository, &version.digest)
            .await?
            .with_context(|| {
                format!(
                    "{} no longer exists; run check again",
                    self.repository.pinned(&version.digest)
                )
            })?;
        let value: serde_json::Value =
            serde_json::from_slice(&manifest.bytes).context("the stored manifest is not JSON")?;
        let mut names = Vec::new();
        for layer in value["layers"].as_array().into_iter().flatten() {
            let name = layer["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap_or("");
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                continue;
            }
            let digest = layer["digest"].as_str().unwrap_or("");
            let size = layer["size"].as_u64().unwrap_or(0);
            self.client
                .download_blob(&self.repository, digest, size, &dest.join(name), name)
                .await?;
            names.push(name.to_owned());
        }
        let summary: serde_json::Value = std::fs::read(dest.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let metadata = Metadata::new()
            .with("run", version.run.as_str())
            .with(
                "result",
                if summary["passed"] == true {
                    "passed"
                } else {
                    "failed"
                },
            )
            .with("files", names.join(" "))
            .with("reports", self.repository.pinned(&version.digest));
        Ok(Response::new(version).with_metadata(metadata))
    }
}
