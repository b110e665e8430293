//! `check`: the promotion pull requests (`head` -> `base`, any state) by number, oldest first.
//!
//! The listing is a conditional request: its ETag and answer are kept in the check container's
//! temporary directory (Concourse reuses a resource's check container), so an unchanged poll is
//! one request answered `304 Not Modified`, which GitHub does not count against the rate limit.
//! The cache key is the API URL, the repository, the branches and a fingerprint of the token,
//! never the token.

use crate::Version;
use crate::github::{Github, Pull};
use crate::source::Config;
use protocol::{Context, versions_since};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize)]
struct Cached {
    etag: String,
    versions: Vec<(u64, String)>,
}

fn cache_path(config: &Config, gh: &Github, ctx: &Context) -> PathBuf {
    let key = format!(
        "{}|{}/{}|{}|{}|{}",
        config.api_url,
        config.owner,
        config.repo,
        config.head,
        config.base,
        gh.token_fingerprint()
    );
    let name = protocol::text::sha256_hex(key.as_bytes())[..24].to_owned();
    let dir = ctx
        .env("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    dir.join("github-promote-pr").join(format!("{name}.json"))
}

pub async fn check(
    config: &Config,
    gh: &Github,
    given: Option<Version>,
    ctx: &Context,
) -> anyhow::Result<Vec<Version>> {
    let path = cache_path(config, gh, ctx);
    let cached: Option<Cached> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let listed = gh
        .list_pulls(
            &config.head,
            &config.base,
            "all",
            cached.as_ref().map(|c| c.etag.as_str()),
        )
        .await?;
    let all: Vec<(u64, String)> = match (listed, cached) {
        (None, Some(c)) => {
            tracing::debug!("unchanged since the last check (304)");
            c.versions
        }
        (None, None) => Vec::new(),
        (Some((pulls, etag)), _) => {
            let mut versions: Vec<(u64, String)> = pulls
                .iter()
                .map(|p: &Pull| (p.number, p.head.sha.clone()))
                .collect();
            versions.sort_by_key(|v| v.0);
            if let Some(etag) = etag {
                // A cache that cannot be written only costs the next poll a full request.
                let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path));
                let _ = serde_json::to_vec(&Cached {
                    etag,
                    versions: versions.clone(),
                })
                .map(|b| std::fs::write(&path, b));
            }
            versions
        }
    };
    let available = all
        .into_iter()
        .map(|(n, sha)| Version {
            number: n.to_string(),
            head_sha: sha,
        })
        .collect();
    Ok(versions_since(given.as_ref(), available))
}
