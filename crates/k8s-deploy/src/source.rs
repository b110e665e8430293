//! `source` and `params` as written, and the cluster connection built from them in one place.

pub use kube_access::{Access, valid_name};
use protocol::{FieldError, Secret};
use serde::Deserialize;

/// `source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A kubeconfig, its content (YAML).
    #[serde(default)]
    pub kubeconfig: Option<Secret>,
    /// The kubeconfig context to use (default: its current-context).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub context: Option<String>,
    /// API server URL (with `token` or `google_credentials`, instead of a kubeconfig).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub server: Option<String>,
    /// Bearer token for `server`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The API server's CA certificate (PEM).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub certificate_authority: Option<String>,
    /// A Google service-account key (GKE): exchanged for an access token used as the bearer token.
    #[serde(default)]
    pub google_credentials: Option<Secret>,
    /// Namespace (default `default`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub namespace: Option<String>,
    /// Deployments whose images make a version (default: every Deployment of the namespace).
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub deployments: Vec<String>,
}

/// One `params.images` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageParam {
    /// The Deployment.
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub deployment: String,
    /// Its container (default: the only one, or the one named like the Deployment).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub container: Option<String>,
    /// An image reference, or the path of a `gcr-image` get directory (its `image-ref`).
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub image: String,
}

/// `out` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Which container of which Deployment runs which image.
    #[serde(default)]
    pub images: Vec<ImageParam>,
    /// Files or directories of YAML applied with server-side apply (field manager `k8s-deploy`).
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub manifests: Vec<String>,
    /// Take over fields other managers own instead of failing on the conflict.
    #[serde(default)]
    pub force_conflicts: bool,
    /// Namespace for this put (overrides `source.namespace`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub namespace: Option<String>,
    /// File holding the namespace (e.g. `test-cluster/namespace` from a get).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub namespace_file: Option<String>,
    /// Create a fresh namespace `PREFIX-BUILD_ID` for this build.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub ephemeral_namespace: Option<String>,
    /// Delete the namespace (with `namespace`, `namespace_file`, or `ephemeral_namespace`:
    /// this build's `PREFIX-BUILD_ID`, for an `on_failure`/`on_abort` hook) instead of deploying.
    #[serde(default)]
    pub delete_namespace: bool,
    /// Janitor: with `ephemeral_namespace: PREFIX`, delete the namespaces this resource made
    /// with that prefix (by their labels) that are older than this, e.g. `6h`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub delete_namespaces_older_than: Option<String>,
    /// Wait for every touched Deployment to finish rolling out (default true).
    #[serde(default)]
    pub wait: Option<bool>,
    /// How long to wait, e.g. `5m` (default `5m`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub timeout: Option<String>,
    /// On failure, restore every touched Deployment's previous template, wait, then fail.
    #[serde(default)]
    pub rollback_on_failure: bool,
    /// Release the changed Deployments through a canary: steps, checks, a failure budget.
    #[serde(default)]
    pub canary: Option<CanaryParams>,
}

/// `params.canary` as written (see `canary` for what it does).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryParams {
    /// `{weight: PERCENT}` and `{pause: DURATION}`, in order.
    #[serde(default)]
    pub steps: Vec<CanaryStepParam>,
    /// HTTP checks run on every canary pod through the API server's pod proxy.
    #[serde(default)]
    pub checks: Vec<CheckParam>,
    /// How often the checks run during a pause (default `5s`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub interval: Option<String>,
    /// Failed checks tolerated per Deployment before the canary is stopped (default 0).
    #[serde(default)]
    pub failure_budget: u32,
    /// The Deployments released through a canary (default: every one this put changes that
    /// already runs); the others change with the promotion.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub deployments: Vec<String>,
}

/// One canary step: exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryStepParam {
    /// Canary replicas as a share of the stable replicas, 1 to 100.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Hold this long, checking, e.g. `30s`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub pause: Option<String>,
}

/// One canary check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckParam {
    /// The Deployment whose canary pods it checks (default: every canaried Deployment).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub deployment: Option<String>,
    /// The path to GET, starting with `/`.
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub path: String,
    /// The pod's port (default: the first port its containers declare).
    #[serde(default)]
    pub port: Option<u16>,
    /// The status the check expects (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Text the body must contain.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub contains: Option<String>,
}

/// `in` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Succeed even when what runs is no longer this version.
    #[serde(default)]
    pub allow_drift: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub access: Access,
    pub namespace: String,
    pub deployments: Vec<String>,
}

impl TryFrom<Source> for Config {
    type Error = FieldError;

    fn try_from(s: Source) -> Result<Self, FieldError> {
        let access = Access::from_fields(kube_access::Fields {
            kubeconfig: s.kubeconfig,
            context: s.context,
            server: s.server,
            token: s.token,
            certificate_authority: s.certificate_authority,
            google_credentials: s.google_credentials,
        })?;
        let namespace = s.namespace.unwrap_or_else(|| "default".to_owned());
        if !valid_name(&namespace) {
            return Err(FieldError::new(
                "source.namespace",
                "must be a DNS label: lowercase letters, digits and -",
            ));
        }
        Ok(Self {
            access,
            namespace,
            deployments: s.deployments,
        })
    }
}
