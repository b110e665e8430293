//! `tags/list`, every page (the `Link` header), with the upload times Google adds.

use crate::client::*;
use crate::error::RegistryError;
use crate::reference::Repository;
use reqwest::StatusCode;
use std::collections::HashMap;

/// `tags/list`, plus the upload times Google's registries add (`manifest` map).
#[derive(Debug, Clone, Default)]
pub struct TagList {
    pub tags: Vec<String>,
    /// Per tag: (digest, upload time in ms since the epoch), when the registry says.
    pub google: HashMap<String, (String, u64)>,
}

impl Client {
    /// Every tag of `repo`, following `Link` pagination, with Google's upload times if given.
    pub async fn tags(&self, repo: &Repository) -> Result<TagList, RegistryError> {
        let what = format!("list the tags of {repo}");
        let mut list = TagList::default();
        let mut next = Some(self.url(repo, "tags/list"));
        while let Some(url) = next.take() {
            let response = self
                .execute(&what, &scope(repo, "pull"), || self.http.get(&url))
                .await?;
            let status = response.status();
            let link = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Self::body(&what, response).await?;
            if status == StatusCode::NOT_FOUND {
                // A repository with no image yet: no tags, not an error for check.
                return Ok(list);
            }
            if !status.is_success() {
                return Err(self.status_error(&what, status, &body));
            }
            parse_tag_page(&body, &mut list).map_err(|message| RegistryError::Protocol {
                what: what.clone(),
                message,
            })?;
            next = link
                .and_then(|l| protocol::text::next_link(&l))
                .map(|path| {
                    if path.starts_with("http") {
                        path
                    } else {
                        format!("{}{path}", self.base)
                    }
                });
        }
        Ok(list)
    }
}

fn parse_tag_page(body: &[u8], list: &mut TagList) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "tags/list is not JSON".to_owned())?;
    if let Some(tags) = value["tags"].as_array() {
        list.tags
            .extend(tags.iter().filter_map(|t| t.as_str().map(str::to_owned)));
    }
    // Google: "manifest": {"sha256:...": {"tag": [...], "timeUploadedMs": "1700000000000", ...}}
    if let Some(manifests) = value["manifest"].as_object() {
        for (digest, info) in manifests {
            let uploaded = info["timeUploadedMs"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| info["timeUploadedMs"].as_u64());
            if let (Some(uploaded), Some(tags)) = (uploaded, info["tag"].as_array()) {
                for tag in tags.iter().filter_map(|t| t.as_str()) {
                    list.google
                        .insert(tag.to_owned(), (digest.clone(), uploaded));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_tag_lists_carry_upload_times() {
        let body = br#"{"child":[],"manifest":{"sha256:aa":{"imageSizeBytes":"1","layerId":"","mediaType":"application/vnd.docker.distribution.manifest.v2+json","tag":["1.0.dev","x"],"timeCreatedMs":"1","timeUploadedMs":"1700000000000"}},"name":"p/api","tags":["1.0.dev","x"]}"#;
        let mut list = TagList::default();
        parse_tag_page(body, &mut list).unwrap();
        assert_eq!(list.tags, ["1.0.dev", "x"]);
        assert_eq!(
            list.google["x"],
            ("sha256:aa".to_owned(), 1_700_000_000_000)
        );
    }
}
