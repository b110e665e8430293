//! Typed OCI (and Docker v2) documents: image manifests, indexes, their descriptors, the image
//! config's few fields we read. Parsed at the boundary, so a missing digest or size is an error
//! naming the document, never an empty string; every digest passes the spec's grammar here,
//! since it comes from a registry or a build's files and names URLs and files next. Our own small
//! serde types: `oci-spec` brings getters, builders and a dependency tree for the handful of
//! fields we read.

use serde::Deserialize;

/// What a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker v2 schema 2): one config, its layers in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// The config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// An image index (OCI) or manifest list (Docker): one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The entry for `os`/`arch`.
    pub fn for_platform(&self, os: &str, arch: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
    }

    /// The platforms it holds, for messages (`linux/amd64, linux/arm64/v8`).
    pub fn platforms(&self) -> String {
        let all: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref().map(Platform::to_string))
            .collect();
        all.join(", ")
    }
}

/// Either document; which one is said by its content (`manifests` makes an index), as
/// registries label media types loosely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Image(ImageManifest),
    Index(Index),
}

/// The image config fields we read (`created` orders tags; `Env` and `User` go to
/// `metadata.json` for a rootfs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
}

fn checked<'a>(digests: impl Iterator<Item = &'a Descriptor>, what: &str) -> Result<(), String> {
    for d in digests {
        crate::reference::validate_digest(&d.digest)
            .map_err(|m| format!("{what} names a bad digest: {m}"))?;
    }
    Ok(())
}

/// Parses an image manifest; `what` names it in errors (`the manifest of x@sha256:...`).
pub fn image_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest, String> {
    let m: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| format!("{what} is not an image manifest: {e}"))?;
    checked(m.blobs(), what)?;
    Ok(m)
}

/// Parses an index.
pub fn index(bytes: &[u8], what: &str) -> Result<Index, String> {
    let i: Index =
        serde_json::from_slice(bytes).map_err(|e| format!("{what} is not an image index: {e}"))?;
    checked(i.manifests.iter(), what)?;
    Ok(i)
}

/// Parses either document.
pub fn document(bytes: &[u8], what: &str) -> Result<Document, String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| format!("{what} is not JSON: {e}"))?;
    if probe.manifests.is_some() {
        index(bytes, what).map(Document::Index)
    } else {
        image_manifest(bytes, what).map(Document::Image)
    }
}

/// Parses an image config.
pub fn image_config(bytes: &[u8], what: &str) -> Result<ImageConfig, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what} is not an image config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn documents_are_told_apart_by_content_and_digests_are_checked() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":2}},"layers":[{{"digest":"{D}","size":3}}]}}"#
        );
        assert!(
            matches!(document(image.as_bytes(), "m"), Ok(Document::Image(m)) if m.layers.len() == 1)
        );
        let index_json = format!(
            r#"{{"manifests":[{{"digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let Ok(Document::Index(i)) = document(index_json.as_bytes(), "i") else {
            panic!("an index")
        };
        assert_eq!(i.platforms(), "linux/arm64/v8");
        assert!(i.for_platform("linux", "amd64").is_none());
        let no_digest = r#"{"config":{"size":2},"layers":[]}"#;
        assert!(
            image_manifest(no_digest.as_bytes(), "m")
                .unwrap_err()
                .contains("digest")
        );
        let hostile = r#"{"config":{"digest":"sha256:../../etc","size":2}}"#;
        assert!(
            image_manifest(hostile.as_bytes(), "the manifest")
                .unwrap_err()
                .contains("bad digest")
        );
    }
}
