//! `gcr-image`: container images in Artifact Registry (`gcr.io`-style and
//! `LOCATION-docker.pkg.dev` hosts) and any OCI distribution registry.
//!
//! check finds the newest images of a tag or a tag pattern; in records a version (no layer
//! download); out pushes an image from disk or promotes a tested digest to new tags. The
//! registry is reached through the `registry` crate; Google keys through `google-auth`.

pub mod check;
pub mod docker;
pub mod download;
pub mod get;
pub mod image_input;
pub mod put;
pub mod rootfs;
pub mod source;

use protocol::{Context, Resource, Response};
use serde::{Deserialize, Serialize};
use source::{Config, Source};
use std::path::Path;

/// The resource type.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcrImage;

/// An image version: a tag and the digest it pointed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub tag: String,
    pub digest: String,
}

/// `in` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// `none` (default: no download), `oci` (`image.tar`), `oci-layout` (`oci/`), `rootfs`
    /// (`rootfs/` and `metadata.json`).
    #[serde(default)]
    pub format: download::Format,
}

impl Resource for GcrImage {
    const NAME: &'static str = "gcr-image";
    const EXAMPLES: &'static [(&'static str, &'static str)] =
        &[("source.repository", source::REPOSITORY_EXAMPLE)];
    type Source = Source;
    type Version = Version;
    type GetParams = GetParams;
    type PutParams = put::PutParams;

    async fn check(
        &self,
        source: Source,
        version: Option<Version>,
        _ctx: &Context,
    ) -> anyhow::Result<Vec<Version>> {
        let config = Config::from_source(source)?;
        let client = config.client()?;
        let versions = check::check(&config, &client, version).await?;
        tracing::debug!("check used {} HTTP requests", client.requests());
        Ok(versions)
    }

    async fn get(
        &self,
        source: Source,
        version: Version,
        params: GetParams,
        dest: &Path,
        _ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::from_source(source)?;
        let client = config.client()?;
        let response = get::get(&config, &client, version.clone(), dest).await?;
        download::fetch(
            &config,
            &client,
            &version.digest,
            &version.tag,
            params.format,
            dest,
        )
        .await?;
        Ok(response)
    }

    async fn put(
        &self,
        source: Source,
        params: put::PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::from_source(source)?;
        let client = config.client()?;
        let response = put::put(&config, &client, params, sources, ctx).await?;
        tracing::debug!("out used {} HTTP requests", client.requests());
        Ok(response)
    }
}
