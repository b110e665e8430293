//! `example-resource`: the smallest real resource, written with nothing but the protocol kit.
//!
//! It follows a "version feed": an HTTP URL that lists versions one per line, oldest first.
//! `check` reads the feed, `in` writes the version to `<dest>/ref` (failing if it left the
//! feed), `out` appends the content of a file to the feed with a POST. It exists to prove the
//! kit (argv dispatch, strict parsing, secrets, the image layout, name resolution inside a
//! container) and is used only by tests; it is not shipped in the pipeline.

mod feed;
pub mod source;

use protocol::{Context, Metadata, Resource, Response, versions_since};
use serde::{Deserialize, Serialize};
use source::{Config, GetParams, PutParams, Source};
use std::path::Path;

/// The resource type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Example;

/// One line of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    #[serde(rename = "ref")]
    pub reference: String,
}

impl Resource for Example {
    const NAME: &'static str = "example-resource";
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[
        ("source.url", "\"http://feed.example.com/versions\""),
        ("params.file", "\"build-output/version\""),
    ];
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
        let config = Config::try_from(source)?;
        let available = feed::list(&config).await?;
        Ok(versions_since(version.as_ref(), available))
    }

    async fn get(
        &self,
        source: Source,
        version: Version,
        _params: GetParams,
        dest: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::try_from(source)?;
        let available = feed::list(&config).await?;
        if !available.contains(&version) {
            anyhow::bail!(
                "version {:?} is no longer in the feed at {}; run check again",
                version.reference,
                config.url
            );
        }
        tokio::fs::write(dest.join("ref"), &version.reference)
            .await
            .map_err(|e| anyhow::anyhow!("write {}/ref: {e}", dest.display()))?;
        tracing::info!("fetched {}", version.reference);
        Ok(Response::new(version).with_metadata(metadata(&config, ctx)))
    }

    async fn put(
        &self,
        source: Source,
        params: PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        let config = Config::try_from(source)?;
        let file = params.file()?;
        let path = sources.join(&file);
        let reference = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| anyhow::anyhow!("params.file: cannot read {file}: {e}"))?
            .trim()
            .to_owned();
        if reference.is_empty() || reference.contains('\n') {
            anyhow::bail!("params.file: {file} must hold one non-empty line");
        }
        let version = Version { reference };
        feed::append(&config, &version).await?;
        tracing::info!("published {}", version.reference);
        Ok(Response::new(version).with_metadata(metadata(&config, ctx)))
    }
}

fn metadata(config: &Config, ctx: &Context) -> Metadata {
    let mut m = Metadata::new().with("feed", config.url.as_str());
    if let Some(url) = ctx.build.build_url() {
        m.push("build", url);
    }
    m
}
