//! `acceptance-run`: did every service come up (smoke), and does the system behave (the
//! acceptance suite against the API gateway)? Each run's reports (cucumber.json, junit.xml,
//! summary.md, summary.json) are stored as an OCI artifact in the registry, tagged with the
//! run, so a person can look at them later; the put fails after storing them.
//!
//! Runners: `local` (the command runs in this resource's container) and `docker` (a
//! container of the suite's image, through the Docker Engine API); `kubernetes` is not yet
//! (see the README).

pub mod docker;
pub mod reports;
pub mod smoke;
pub mod store;
pub mod suite;

use protocol::{Context, FieldError, Metadata, Resource, Response, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The resource type.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptanceRun;

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub run: String,
    pub digest: String,
}

/// `source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `HOST/PATH` where runs are stored, e.g. `us.gcr.io/microservices-kube/acceptance-reports`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub reports_repository: Option<String>,
    /// A Google service-account key for the registry.
    #[serde(default)]
    pub google_credentials: Option<Secret>,
    /// Registry user (with `password`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub username: Option<String>,
    /// Registry password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Plain HTTP, for a loopback registry only.
    #[serde(default)]
    pub insecure: bool,
}

/// Which runner runs the suite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    #[default]
    Local,
    Docker,
}

/// `out` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// The API gateway of the test environment, e.g. `http://api-gateway.microservices-test-42:8080`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub gateway_url: Option<String>,
    /// File holding the gateway URL.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub gateway_url_file: Option<String>,
    /// Smoke checks through the gateway.
    #[serde(default)]
    pub smoke: Vec<smoke::Check>,
    /// How long smoke checks are retried (default `2m`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub smoke_timeout: Option<String>,
    /// `local` (default): the command runs in this container; `docker`: in a container of
    /// `image`, through the Docker Engine API.
    #[serde(default)]
    pub runner: Runner,
    /// With `docker`: the suite's image, a reference or a `gcr-image` get directory (its `image-ref`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub image: Option<String>,
    /// With `docker`: the container's network (e.g. `host`, or the test environment's network).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub network: Option<String>,
    /// The suite's command, as a list (no shell); `$API_GATEWAY_URL` and `$REPORTS_DIR` are
    /// replaced. Default: godog writing both reports.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub command: Vec<String>,
    /// Working directory, a path among the build's inputs (default: the build directory).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub dir: Option<String>,
    /// More environment for the suite.
    #[serde(default, deserialize_with = "protocol::lenient::string_map")]
    pub env: BTreeMap<String, String>,
    /// How long the suite may run (default `15m`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub timeout: Option<String>,
    /// Undefined and pending steps fail the run (default true).
    #[serde(default)]
    pub strict: Option<bool>,
}

impl Resource for AcceptanceRun {
    const NAME: &'static str = "acceptance-run";
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[(
        "source.reports_repository",
        "\"us.gcr.io/microservices-kube/acceptance-reports\"",
    )];
    type Source = Source;
    type Version = Version;
    type GetParams = protocol::resource::NoParams;
    type PutParams = PutParams;

    async fn check(
        &self,
        source: Source,
        version: Option<Version>,
        _ctx: &Context,
    ) -> anyhow::Result<Vec<Version>> {
        let store = store::Store::new(source)?;
        store.check(version).await
    }

    async fn get(
        &self,
        source: Source,
        version: Version,
        _p: protocol::resource::NoParams,
        dest: &Path,
        _ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let store = store::Store::new(source)?;
        store.get(version, dest).await
    }

    async fn put(
        &self,
        source: Source,
        params: PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let store = store::Store::new(source)?;
        let plan = suite::Plan::new(params, sources, ctx)?;
        let outcome = suite::run(&plan, ctx).await?;
        let run_id = ctx.build.id.clone().unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_default()
        });
        let digest = store.put(&run_id, &outcome.files).await?;
        let reference = store.repository.pinned(&digest);
        let s = &outcome.summary;
        let mut metadata = Metadata::new()
            .with("result", if outcome.passed { "passed" } else { "failed" })
            .with(
                "scenarios",
                format!(
                    "{} passed, {} failed, {} skipped, {} undefined, {} pending",
                    s.scenarios.passed,
                    s.scenarios.failed,
                    s.scenarios.skipped,
                    s.scenarios.undefined,
                    s.scenarios.pending
                ),
            )
            .with("duration", format!("{} ms", s.duration_ms))
            .with("reports", reference.as_str());
        for (i, f) in s.failures.iter().take(5).enumerate() {
            metadata.push(
                format!("failure_{}", i + 1),
                format!("{} / {}: {} ({})", f.feature, f.scenario, f.step, f.message),
            );
        }
        tracing::info!("reports stored as {reference}");
        if !outcome.passed {
            anyhow::bail!("{}; reports: {reference}", outcome.verdict);
        }
        Ok(Response::new(Version {
            run: run_id,
            digest,
        })
        .with_metadata(metadata))
    }
}

/// Shared by the steps: a path inside the build directory.
pub fn inside(
    sources: &Path,
    relative: &str,
    field: &str,
) -> Result<std::path::PathBuf, FieldError> {
    if relative.is_empty() || relative.starts_with('/') || relative.split('/').any(|c| c == "..") {
        return Err(FieldError::new(
            field,
            "must be a path inside the build's directory",
        ));
    }
    Ok(sources.join(relative))
}
