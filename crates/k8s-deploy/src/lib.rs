//! `k8s-deploy`: deploys the services' images (by digest) to Kubernetes with the kube crate,
//! waits like `kubectl rollout status` (a watch, not polling), fails fast on pod-level reasons
//! quoting the container's message, and rolls back on failure when asked. No kubectl, no
//! gcloud in the image.

pub mod canary;
pub mod check;
pub mod cluster;
pub mod get;
pub mod manifests;
pub mod namespaces;
pub mod put;
pub mod source;
pub mod state;
pub mod wait;

use protocol::{Context, Resource, Response};
use serde::{Deserialize, Serialize};
use source::{Config, GetParams, PutParams, Source};
use std::path::Path;

/// The resource type.
#[derive(Debug, Clone, Copy, Default)]
pub struct K8sDeploy;

/// A namespace running a set of images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub namespace: String,
    pub revision: String,
}

impl Resource for K8sDeploy {
    const NAME: &'static str = "k8s-deploy";
    const EXAMPLES: &'static [(&'static str, &'static str)] =
        &[("source.kubeconfig", "((TEST_KUBECONFIG))")];
    type Source = Source;
    type Version = Version;
    type GetParams = GetParams;
    type PutParams = PutParams;

    async fn check(
        &self,
        source: Source,
        version: Option<Version>,
        _ctx: &Context,
    ) -> anyhow::Result<Vec<Version>> {
        check::check(&Config::try_from(source)?, version).await
    }

    async fn get(
        &self,
        source: Source,
        version: Version,
        params: GetParams,
        dest: &Path,
        _ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        get::get(&Config::try_from(source)?, version, params, dest).await
    }

    async fn put(
        &self,
        source: Source,
        params: PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        put::put(&Config::try_from(source)?, params, sources, ctx).await
    }
}
