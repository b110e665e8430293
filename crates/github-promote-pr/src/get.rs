//! `in`: the pull request as files: `pull_request.json`, `number`, `url`, `merged`,
//! `merge_commit_sha`. Version `0` (nothing was promoted) writes `number` 0 and `null` JSON.

use crate::Version;
use crate::github::Github;
use protocol::{Metadata, Response};
use std::path::Path;

pub async fn get(gh: &Github, version: Version, dest: &Path) -> anyhow::Result<Response<Version>> {
    let number: u64 = version.number.parse().map_err(|_| {
        protocol::FieldError::new("version.number", "must be a pull request number")
    })?;
    let write = |name: &str, content: &str| {
        std::fs::write(dest.join(name), content)
            .map_err(|e| anyhow::anyhow!("write {}/{name}: {e}", dest.display()))
    };
    if number == 0 {
        for (name, content) in [
            ("pull_request.json", "null"),
            ("number", "0"),
            ("url", ""),
            ("merged", "false"),
            ("merge_commit_sha", ""),
        ] {
            write(name, content)?;
        }
        tracing::info!("no pull request: there was nothing to promote");
        return Ok(Response::new(version)
            .with_metadata(Metadata::new().with("state", "nothing to promote")));
    }
    let json = gh.get_pull_json(number).await?;
    let url = json["html_url"].as_str().unwrap_or("").to_owned();
    let merged = json["merged"].as_bool().unwrap_or(false);
    let merge_sha = json["merge_commit_sha"].as_str().unwrap_or("").to_owned();
    let state = json["state"].as_str().unwrap_or("").to_owned();
    write("pull_request.json", &serde_json::to_string_pretty(&json)?)?;
    write("number", &number.to_string())?;
    write("url", &url)?;
    write("merged", if merged { "true" } else { "false" })?;
    write("merge_commit_sha", &merge_sha)?;
    let head = json["head"]["sha"].as_str().unwrap_or("");
    if head != version.head_sha {
        tracing::info!("#{number} has moved on to {head} since this version");
    }
    tracing::info!(
        "#{number} {url} ({state}{})",
        if merged { ", merged" } else { "" }
    );
    Ok(Response::new(version).with_metadata(metadata(&url, &state, merged, &merge_sha)))
}

pub fn metadata(url: &str, state: &str, merged: bool, merge_sha: &str) -> Metadata {
    let mut m = Metadata::new()
        .with("url", url)
        .with("state", state)
        .with("merged", merged.to_string());
    if !merge_sha.is_empty() {
        m.push("merge_commit_sha", merge_sha);
    }
    m
}
