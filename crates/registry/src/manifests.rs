//! Manifests: HEAD for a digest (one request), GET with every media type we accept, PUT.

use crate::client::*;
use crate::error::RegistryError;
use crate::reference::Repository;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};

/// Manifest media types we accept, most specific first (the Accept header of every manifest
/// request: without it a registry may convert Docker manifests to schema 1, or 404 on OCI).
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest as stored: bytes, media type, digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

impl Client {
    /// The digest of `reference` (tag or digest), or `None` if it does not exist. One HEAD
    /// (a GET only when the registry gives no `Docker-Content-Digest`).
    pub async fn manifest_digest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let what = format!("look up {}", display_ref(repo, reference));
        checked_reference(&what, reference)?;
        let response = self
            .execute(&what, &scope(repo, "pull"), || {
                self.http
                    .head(&url)
                    .header(ACCEPT, MANIFEST_TYPES.join(", "))
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match digest_header(response.headers()) {
                Some(d) => Ok(Some(d)),
                None => Ok(self.manifest(repo, reference).await?.map(|m| m.digest)),
            },
            s => Err(self.status_error(&what, s, &[])),
        }
    }

    /// The manifest of `reference`, or `None`. Its digest is computed from the bytes and
    /// checked against the registry's header and against `reference` when it is a digest.
    pub async fn manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let what = format!("get the manifest of {}", display_ref(repo, reference));
        checked_reference(&what, reference)?;
        let response = self
            .execute(&what, &scope(repo, "pull"), || {
                self.http
                    .get(&url)
                    .header(ACCEPT, MANIFEST_TYPES.join(", "))
            })
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let headers = response.headers().clone();
        let bytes = Self::body(&what, response).await?;
        if !status.is_success() {
            return Err(self.status_error(&what, status, &bytes));
        }
        let digest = sha256_digest(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_owned())
        } else {
            digest_header(&headers)
        };
        if let Some(expected) = expected.filter(|e| e.starts_with("sha256:") && *e != digest) {
            return Err(RegistryError::Protocol {
                what,
                message: format!("manifest digest mismatch: got {digest}, expected {expected}"),
            });
        }
        let media_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| MANIFEST_TYPES[2].to_owned());
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// Stores a manifest under `reference` (a tag or its digest). Returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let what = format!("put the manifest of {}", display_ref(repo, reference));
        checked_reference(&what, reference)?;
        let digest = sha256_digest(&bytes);
        let response = self
            .execute(&what, &scope(repo, "pull,push"), || {
                self.http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        if let Some(returned) = digest_header(&headers).filter(|d| *d != digest) {
            return Err(RegistryError::Protocol {
                what,
                message: format!("the registry stored digest {returned}, we sent {digest}"),
            });
        }
        Ok(digest)
    }
}

pub(crate) fn digest_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A manifest reference is a tag or a digest, each by the distribution spec's grammar.
pub(crate) fn checked_reference(what: &str, reference: &str) -> Result<(), RegistryError> {
    if reference.contains(':') {
        return checked_digest(what, reference);
    }
    crate::reference::validate_tag(reference).map_err(|m| RegistryError::Protocol {
        what: what.to_owned(),
        message: format!("the tag {:?} {m}", clip(reference)),
    })
}

pub(crate) fn display_ref(repo: &Repository, reference: &str) -> String {
    if reference.starts_with("sha256:") {
        repo.pinned(reference)
    } else {
        repo.tagged(reference)
    }
}
