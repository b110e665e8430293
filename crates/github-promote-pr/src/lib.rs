//! `github-promote-pr`: the pull request that promotes `develop` into `master` once the
//! acceptance tests pass. Idempotent (one pull request however often the put runs), merges only
//! when GitHub says it is mergeable and the base's required checks are green, and with the head
//! sha it checked, so a head that moved in between is refused rather than merged.

pub mod check;
pub mod get;
pub mod github;
pub mod put;
pub mod source;

use protocol::{Context, Resource, Response};
use serde::{Deserialize, Serialize};
use source::{Config, PutParams, Source};
use std::path::Path;
use std::time::Duration;

/// The resource type.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromotePr;

/// A pull request at a head commit. `number` is `0` when there was nothing to promote and no
/// pull request exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub number: String,
    pub head_sha: String,
}

/// `in` params: none.
pub type GetParams = protocol::resource::NoParams;

/// Deadline for rate-limit and fault retries of one API call.
pub const API_DEADLINE: Duration = Duration::from_secs(300);

impl Resource for PromotePr {
    const NAME: &'static str = "github-promote-pr";
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[
        ("source.repository", "\"microservices/micro-api-gateway\""),
        ("source.access_token", "((github-token))"),
    ];
    type Source = Source;
    type Version = Version;
    type GetParams = GetParams;
    type PutParams = PutParams;

    async fn check(
        &self,
        source: Source,
        version: Option<Version>,
        ctx: &Context,
    ) -> anyhow::Result<Vec<Version>> {
        let config = Config::try_from(source)?;
        let gh = github::Github::connect(&config, API_DEADLINE).await?;
        let versions = check::check(&config, &gh, version, ctx).await?;
        tracing::debug!("check used {} GitHub requests", gh.requests());
        Ok(versions)
    }

    async fn get(
        &self,
        source: Source,
        version: Version,
        _params: GetParams,
        dest: &Path,
        _ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::try_from(source)?;
        let gh = github::Github::connect(&config, API_DEADLINE).await?;
        get::get(&gh, version, dest).await
    }

    async fn put(
        &self,
        source: Source,
        params: PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::try_from(source)?;
        let plan = put::Plan::new(&config, params, sources, ctx)?;
        let gh = github::Github::connect(&config, API_DEADLINE).await?;
        let response = put::put(&config, &gh, plan).await?;
        tracing::info!("used {} GitHub API requests", gh.requests());
        Ok(response)
    }
}
