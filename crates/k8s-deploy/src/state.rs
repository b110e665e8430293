//! What runs: the deployed set of images of a namespace, and the revision that names it.

use crate::cluster::{Cluster, kube_error};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
    /// `sha256:...` when the image is pinned by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployed {
    pub name: String,
    pub containers: Vec<ContainerImage>,
    pub ready_replicas: i32,
    pub replicas: i32,
}

pub fn digest_of(image: &str) -> Option<String> {
    image.split_once('@').map(|(_, d)| d.to_owned())
}

/// The Deployments of `ns` (only `names` when not empty), sorted by name.
pub async fn deployed(
    cluster: &Cluster,
    ns: &str,
    names: &[String],
) -> anyhow::Result<Vec<Deployed>> {
    let list = cluster
        .deployments(ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("list the Deployments of {ns}: {}", kube_error(&e)))?;
    let mut out: Vec<Deployed> = list
        .items
        .iter()
        // A canary (`canary`) is part of a release in progress, not what runs.
        .filter(|d| {
            !d.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(crate::canary::CANARY_OF))
        })
        .filter(|d| {
            names.is_empty()
                || names
                    .iter()
                    .any(|n| Some(n.as_str()) == d.metadata.name.as_deref())
        })
        .map(summarize)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn summarize(d: &Deployment) -> Deployed {
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| {
                    let image = c.image.clone().unwrap_or_default();
                    ContainerImage {
                        name: c.name.clone(),
                        digest: digest_of(&image),
                        image,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    Deployed {
        name: d.metadata.name.clone().unwrap_or_default(),
        containers,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    }
}

/// 12 hex digits naming the set of (deployment, container, image).
pub fn revision(set: &[Deployed]) -> String {
    let mut lines: Vec<String> = set
        .iter()
        .flat_map(|d| {
            d.containers
                .iter()
                .map(move |c| format!("{}/{}={}", d.name, c.name, c.image))
        })
        .collect();
    lines.sort();
    protocol::text::sha256_hex(lines.join("\n").as_bytes())[..12].to_owned()
}
