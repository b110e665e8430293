//! `acceptance-run`: did every service come up (smoke), and does the system behave (the
//! acceptance suite against the API gateway)? Each run's reports (cucumber.json, junit.xml,
//! summary.md, summary.json) are stored as an OCI artifact in the registry, tagged with the
//! run, so a person can look at them later; the put fails after storing them.
//!
//! Runners: `local` (the command runs in this resource's container), `docker` (a container of
//! the suite's image, through the Docker Engine API) and `kubernetes` (a Job in the test
//! environment's namespace, see `kubernetes` and `reporter`).

pub mod docker;
pub mod kubernetes;
pub mod plan;
pub mod reporter;
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
    /// `runner: kubernetes`: the test cluster, as in k8s-deploy: a kubeconfig (YAML) ...
    #[serde(default)]
    pub kubeconfig: Option<Secret>,
    /// ... and its context (default: the current-context) ...
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub context: Option<String>,
    /// ... or the API server's URL with `token`, or with `google_credentials` (GKE) ...
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub server: Option<String>,
    /// ... a bearer token for `server` ...
    #[serde(default)]
    pub token: Option<Secret>,
    /// ... and the API server's CA certificate (PEM).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub certificate_authority: Option<String>,
}

impl Source {
    /// The cluster access, when the source has any (`kubeconfig` or `server`).
    pub fn cluster(&self) -> Result<Option<kube_access::Access>, FieldError> {
        if self.kubeconfig.is_none() && self.server.is_none() {
            for (field, set) in [
                ("source.context", self.context.is_some()),
                ("source.token", self.token.is_some()),
                (
                    "source.certificate_authority",
                    self.certificate_authority.is_some(),
                ),
            ] {
                if set {
                    return Err(FieldError::new(
                        field,
                        "goes with source.kubeconfig or source.server",
                    ));
                }
            }
            return Ok(None);
        }
        kube_access::Access::from_fields(kube_access::Fields {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            server: self.server.clone(),
            token: self.token.clone(),
            certificate_authority: self.certificate_authority.clone(),
            // The Google key serves the registry too; it is the cluster's only with `server` (GKE).
            google_credentials: self.server.as_ref().and(self.google_credentials.clone()),
        })
        .map(Some)
    }
}

/// Which runner runs the suite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    #[default]
    Local,
    Docker,
    Kubernetes,
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
    /// With `kubernetes`: the gateway's Service as `NAME:PORT` (e.g. `api-gateway:8080`); the
    /// suite gets `http://NAME:PORT`, smoke checks go through the API server's service proxy.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub gateway_service: Option<String>,
    /// With `kubernetes`: the namespace of the test environment ...
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub namespace: Option<String>,
    /// ... or a file holding it (e.g. `test-cluster/namespace` from a k8s-deploy get).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub namespace_file: Option<String>,
    /// With `kubernetes`: this resource type's own image (as in `resource_types`), whose binary
    /// hands the reports back through the pod's log.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub reporter_image: Option<String>,
    /// Smoke checks through the gateway.
    #[serde(default)]
    pub smoke: Vec<smoke::Check>,
    /// How long smoke checks are retried (default `2m`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub smoke_timeout: Option<String>,
    /// `local` (default): the command runs in this container; `docker`: in a container of
    /// `image`, through the Docker Engine API; `kubernetes`: a Job of `image` in the test
    /// environment's namespace.
    #[serde(default)]
    pub runner: Runner,
    /// With `docker` and `kubernetes`: the suite's image, a reference or a `gcr-image` get
    /// directory (its `image-ref`).
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
        // The same source serves every step: a bad cluster field is said at the first check,
        // not at the first put.
        source.cluster()?;
        if let Some(v) = &version {
            registry::reference::validate_digest(&v.digest)
                .map_err(|m| FieldError::new("version.digest", m))?;
        }
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
        source.cluster()?;
        registry::reference::validate_digest(&version.digest)
            .map_err(|m| FieldError::new("version.digest", m))?;
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
        let cluster = source.cluster()?;
        let store = store::Store::new(source)?;
        let plan = suite::Plan::new(params, sources, cluster, ctx)?;
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
            .with("result", if outcome.passed() { "passed" } else { "failed" })
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
        if !outcome.passed() {
            anyhow::bail!("{}; reports: {reference}", outcome.verdict);
        }
        Ok(Response::new(Version {
            run: run_id,
            digest,
        })
        .with_metadata(metadata))
    }
}

pub use protocol::paths::inside;
