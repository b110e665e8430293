//! The feed over HTTP: the one external system of this resource.

use crate::Version;
use crate::source::Config;
use anyhow::Context as _;

fn client() -> anyhow::Result<reqwest::Client> {
    httpc::client(&httpc::Options::new(concat!(
        "example-resource/",
        env!("CARGO_PKG_VERSION")
    )))
}

fn authorize(req: reqwest::RequestBuilder, config: &Config) -> reqwest::RequestBuilder {
    match &config.token {
        Some(token) => req.bearer_auth(token.expose()),
        None => req,
    }
}

/// Every version in the feed, oldest first.
pub async fn list(config: &Config) -> anyhow::Result<Vec<Version>> {
    tracing::debug!("GET {}", config.url);
    let response = authorize(client()?.get(config.url.clone()), config)
        .send()
        .await
        .with_context(|| format!("read the feed at {}", config.url))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!(
            "read the feed at {}: HTTP {status}{}",
            config.url,
            if status == reqwest::StatusCode::UNAUTHORIZED {
                "; check source.token"
            } else {
                ""
            }
        );
    }
    let body = response.text().await.context("read the feed's body")?;
    Ok(body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.starts_with(&config.prefix))
        .map(|l| Version {
            reference: l.to_owned(),
        })
        .collect())
}

/// Appends a version to the feed.
pub async fn append(config: &Config, version: &Version) -> anyhow::Result<()> {
    let response = authorize(client()?.post(config.url.clone()), config)
        .body(version.reference.clone())
        .send()
        .await
        .with_context(|| format!("publish to the feed at {}", config.url))?;
    if !response.status().is_success() {
        anyhow::bail!(
            "publish to the feed at {}: HTTP {}",
            config.url,
            response.status()
        );
    }
    Ok(())
}
