//! `check`: the versions `{tag, digest}` of the watched tag or tags, oldest first.
//!
//! With `tag`: one HEAD. With `tag_regex`: one `tags/list`, the matching tags put in order
//! without looking at them (semver, see `semver_of`; else Google's upload
//! times from the listing), then one HEAD for the given version (still valid?) and one per
//! newer tag. Only when neither order exists does it fall back to each image's creation time,
//! which costs a lookup per tag; it says so in the log.

use crate::Version;
use crate::source::{Config, Watch};
use anyhow::Context as _;
use protocol::versions_since;
use registry::{Client, Repository, TagList};
use std::cmp::Ordering;
use std::collections::HashMap;

pub async fn check(
    config: &Config,
    client: &Client,
    given: Option<Version>,
) -> anyhow::Result<Vec<Version>> {
    let repo = &config.repository;
    match &config.watch {
        Watch::Tag(tag) => {
            let digest = client.manifest_digest(repo, tag).await?;
            let current: Vec<Version> = digest
                .into_iter()
                .map(|digest| Version {
                    tag: tag.clone(),
                    digest,
                })
                .collect();
            Ok(versions_since(given.as_ref(), current))
        }
        Watch::Regex(regex) => {
            let list = client.tags(repo).await?;
            let matching: Vec<String> = list
                .tags
                .iter()
                .filter(|t| regex.is_match(t))
                .cloned()
                .collect();
            if matching.is_empty() {
                tracing::info!("no tag of {repo} matches {}", regex.as_str());
                return Ok(Vec::new());
            }
            let ordered = match order_without_lookups(&matching, regex, &list) {
                Some(ordered) => ordered,
                None => order_by_creation(client, repo, &matching).await?,
            };
            since(client, repo, &list, ordered, given).await
        }
    }
}

/// The versions from `given` on, looking up digests only for `given` and newer tags.
async fn since(
    client: &Client,
    repo: &Repository,
    list: &TagList,
    ordered: Vec<String>,
    given: Option<Version>,
) -> anyhow::Result<Vec<Version>> {
    let start = given
        .as_ref()
        .and_then(|g| ordered.iter().position(|t| *t == g.tag))
        .unwrap_or(ordered.len().saturating_sub(1));
    let mut available = Vec::new();
    for tag in &ordered[start..] {
        let digest = match list.google.get(tag) {
            Some((digest, _)) => Some(digest.clone()),
            None => client.manifest_digest(repo, tag).await?,
        };
        // A tag deleted between the listing and now is simply not a version.
        if let Some(digest) = digest {
            available.push(Version {
                tag: tag.clone(),
                digest,
            });
        }
    }
    let answer = versions_since(given.as_ref(), available);
    if answer.len() == 1
        && given
            .as_ref()
            .is_some_and(|g| answer[0] != *g && ordered.contains(&g.tag))
    {
        // The given tag now points elsewhere: `versions_since` answered the latest, as the
        // protocol asks; say why the history jumps.
        tracing::info!(
            "tag {} was pushed again since the last check",
            given.as_ref().map_or("", |g| g.tag.as_str())
        );
    }
    Ok(answer)
}

/// The semver a tag stands for, tried in this order (a leading `v` dropped each time): what
/// the regex's `version` group, else its first group, captured (`^(.*)\.dev$`); the whole tag
/// (`^\d+\.\d+\.\d+$` matches all of it); the tag with what the regex matched removed
/// (`\.dev$` on `1.2.0.dev`).
pub fn semver_of(tag: &str, regex: &regex::Regex) -> Option<semver::Version> {
    let parse = |s: &str| semver::Version::parse(s.strip_prefix('v').unwrap_or(s)).ok();
    let captures = regex.captures(tag)?;
    let group = captures
        .name("version")
        .or_else(|| captures.get(1))
        .and_then(|m| parse(m.as_str()));
    group
        .or_else(|| parse(tag))
        .or_else(|| parse(&regex.replace(tag, "")))
}

/// Semver order (see `semver_of`), else Google's upload times; `None` when neither covers
/// every matching tag.
pub fn order_without_lookups(
    matching: &[String],
    regex: &regex::Regex,
    list: &TagList,
) -> Option<Vec<String>> {
    let versions: Option<Vec<(semver::Version, &String)>> = matching
        .iter()
        .map(|t| semver_of(t, regex).map(|v| (v, t)))
        .collect();
    if let Some(mut versions) = versions {
        versions.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        return Some(versions.into_iter().map(|(_, t)| t.clone()).collect());
    }
    let times: Option<Vec<(u64, &String)>> = matching
        .iter()
        .map(|t| list.google.get(t).map(|(_, ms)| (*ms, t)))
        .collect();
    times.map(|mut times| {
        times.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        times.into_iter().map(|(_, t)| t.clone()).collect()
    })
}

/// Orders by the `created` time in each image's config: a HEAD per tag, then a manifest and a
/// config per distinct digest. The expensive fallback.
async fn order_by_creation(
    client: &Client,
    repo: &Repository,
    matching: &[String],
) -> anyhow::Result<Vec<String>> {
    tracing::info!(
        "{} tags match but are neither semver nor listed with upload times: ordering them by image creation time (one lookup per tag; semver tags are cheaper)",
        matching.len()
    );
    let mut created_by_digest: HashMap<String, String> = HashMap::new();
    let mut dated = Vec::new();
    for tag in matching {
        let Some(digest) = client.manifest_digest(repo, tag).await? else {
            continue;
        };
        if !created_by_digest.contains_key(&digest) {
            let created = creation_time(client, repo, &digest).await?;
            created_by_digest.insert(digest.clone(), created);
        }
        dated.push((created_by_digest[&digest].clone(), tag.clone()));
    }
    // RFC 3339 timestamps in UTC sort as strings.
    dated.sort_by(|a, b| match a.0.cmp(&b.0) {
        Ordering::Equal => a.1.cmp(&b.1),
        other => other,
    });
    Ok(dated.into_iter().map(|(_, t)| t).collect())
}

async fn creation_time(client: &Client, repo: &Repository, digest: &str) -> anyhow::Result<String> {
    let manifest = client
        .manifest(repo, digest)
        .await?
        .with_context(|| format!("{} vanished while checking", repo.pinned(digest)))?;
    let what = format!("the manifest of {}", repo.pinned(digest));
    let image = match registry::oci::document(&manifest.bytes, &what).map_err(anyhow::Error::msg)? {
        registry::oci::Document::Image(image) => image,
        // An index: its first image stands for it.
        registry::oci::Document::Index(index) => {
            let child = &index
                .manifests
                .first()
                .with_context(|| format!("{what} is an empty index"))?
                .digest;
            let m = client
                .manifest(repo, child)
                .await?
                .with_context(|| format!("{} vanished", repo.pinned(child)))?;
            registry::oci::image_manifest(
                &m.bytes,
                &format!("the manifest of {}", repo.pinned(child)),
            )
            .map_err(anyhow::Error::msg)?
        }
    };
    let config = client.blob(repo, &image.config.digest).await?;
    let config = registry::oci::image_config(
        &config,
        &format!("the image config of {}", repo.pinned(digest)),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(config.created.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn semver_order_after_removing_the_matched_suffix() {
        let re = regex::Regex::new(r"\.dev$").unwrap();
        let got = order_without_lookups(
            &tags(&["1.10.0.dev", "1.2.0.dev", "v1.9.1.dev", "1.2.0-rc.1.dev"]),
            &re,
            &TagList::default(),
        );
        assert_eq!(
            got.unwrap(),
            ["1.2.0-rc.1.dev", "1.2.0.dev", "v1.9.1.dev", "1.10.0.dev"]
        );
    }

    #[test]
    fn semver_order_with_a_full_match_regex_or_a_capture_group() {
        let full = regex::Regex::new(r"^\d+\.\d+\.\d+$").unwrap();
        let got = order_without_lookups(
            &tags(&["1.10.0", "1.2.0", "1.9.1"]),
            &full,
            &TagList::default(),
        );
        assert_eq!(got.unwrap(), ["1.2.0", "1.9.1", "1.10.0"]);
        let group = regex::Regex::new(r"^release-(?<version>.+)-final$").unwrap();
        let got = order_without_lookups(
            &tags(&["release-2.0.0-final", "release-1.10.0-final"]),
            &group,
            &TagList::default(),
        );
        assert_eq!(
            got.unwrap(),
            ["release-1.10.0-final", "release-2.0.0-final"]
        );
    }

    #[test]
    fn upload_times_order_non_semver_tags() {
        let re = regex::Regex::new(r"\.dev$").unwrap();
        let mut list = TagList::default();
        list.google
            .insert("abc123.dev".into(), ("sha256:1".into(), 300));
        list.google
            .insert("fff000.dev".into(), ("sha256:2".into(), 100));
        let got = order_without_lookups(&tags(&["abc123.dev", "fff000.dev"]), &re, &list);
        assert_eq!(got.unwrap(), ["fff000.dev", "abc123.dev"]);
    }

    #[test]
    fn no_order_without_semver_or_times() {
        let re = regex::Regex::new(r"\.dev$").unwrap();
        assert!(
            order_without_lookups(&tags(&["abc.dev", "1.0.0.dev"]), &re, &TagList::default())
                .is_none()
        );
    }
}
