//! Blobs: existence, download, cross-repository mount, upload sessions.

use crate::client::*;
use crate::error::{RegistryError, envelope_detail};
use crate::reference::Repository;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering;

/// What a cross-repository mount did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// The blob is now in the repository: no bytes sent.
    Mounted,
    /// Not mounted; the registry opened an upload session at `upload` instead.
    Refused { upload: String },
}

impl Client {
    /// Whether `digest` exists in `repo` (HEAD).
    pub async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let what = format!("look up blob {} in {repo}", short(digest));
        checked_digest(&what, digest)?;
        let response = self
            .execute(&what, &scope(repo, "pull"), || self.http.head(&url))
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(&what, s, &[])),
        }
    }

    /// The streaming response of a blob GET (status checked).
    pub(crate) async fn get_blob_response(
        &self,
        repo: &Repository,
        digest: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let what = format!("download blob {} of {repo}", short(digest));
        checked_digest(&what, digest)?;
        let response = self
            .execute(&what, &scope(repo, "pull"), || self.http.get(&url))
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(self.status_error(&what, status, &body));
        }
        Ok(response)
    }

    /// A small blob (an image config), checked against its digest.
    pub async fn blob(&self, repo: &Repository, digest: &str) -> Result<Bytes, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let what = format!("get blob {} of {repo}", short(digest));
        checked_digest(&what, digest)?;
        let response = self
            .execute(&what, &scope(repo, "pull"), || self.http.get(&url))
            .await?;
        let status = response.status();
        let bytes = Self::body(&what, response).await?;
        if !status.is_success() {
            return Err(self.status_error(&what, status, &bytes));
        }
        if sha256_digest(&bytes) != digest {
            return Err(RegistryError::Protocol {
                what,
                message: "content does not match its digest".into(),
            });
        }
        Ok(bytes)
    }

    /// Tries a cross-repository mount of `digest` from `from` into `repo`.
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        from: &Repository,
        digest: &str,
    ) -> Result<Mount, RegistryError> {
        let url = self.url(repo, "blobs/uploads/");
        let what = format!("mount blob {} from {from} into {repo}", short(digest));
        checked_digest(&what, digest)?;
        let scopes = format!("{} {}", scope(repo, "pull,push"), scope(from, "pull"));
        let response = self
            .execute(&what, &scopes, || {
                self.http
                    .post(&url)
                    .query(&[("mount", digest), ("from", from.path.as_str())])
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Refused {
                upload: self.location(&what, response.headers())?,
            }),
            s => Err(self.status_error(&what, s, &response.bytes().await.unwrap_or_default())),
        }
    }

    /// Opens an upload session; returns its location.
    pub async fn start_upload(&self, repo: &Repository) -> Result<String, RegistryError> {
        let url = self.url(repo, "blobs/uploads/");
        let what = format!("start an upload to {repo}");
        let response = self
            .execute(&what, &scope(repo, "pull,push"), || self.http.post(&url))
            .await?;
        match response.status() {
            StatusCode::ACCEPTED => self.location(&what, response.headers()),
            s => Err(self.status_error(&what, s, &response.bytes().await.unwrap_or_default())),
        }
    }

    /// Finishes an upload session with the whole blob in one PUT (`body` is made anew for each
    /// attempt: a stream cannot be replayed). Not retried here: a failed PUT invalidates the
    /// session, so the caller starts a new one.
    pub async fn finish_upload(
        &self,
        repo: &Repository,
        location: &str,
        digest: &str,
        size: u64,
        body: reqwest::Body,
        progress: &crate::push::Progress,
    ) -> Result<(), RegistryError> {
        let what = format!("upload blob {} to {repo}", short(digest));
        checked_digest(&what, digest)?;
        let auth = self.authorization(&scope(repo, "pull,push")).await?;
        let mut request = self
            .upload_http
            .request(Method::PUT, location)
            .query(&[("digest", digest)])
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        if let Some(auth) = &auth {
            request = request.header(AUTHORIZATION, auth.expose());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = progress
            .watch(request.send(), self.options.read_timeout)
            .await
            .map_err(|message| RegistryError::Transient {
                what: what.clone(),
                message,
            })?
            .map_err(|e| RegistryError::Transient {
                what: what.clone(),
                message: error_chain(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(RegistryError::RateLimited { what, retry_after });
        }
        if status.is_server_error() {
            return Err(RegistryError::Transient {
                what,
                message: format!("HTTP {status}{}", envelope_detail(&body)),
            });
        }
        Err(self.status_error(&what, status, &body))
    }

    pub(crate) fn location(
        &self,
        what: &str,
        headers: &HeaderMap,
    ) -> Result<String, RegistryError> {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                what: what.to_owned(),
                message: "no Location for the upload".into(),
            })?;
        Ok(
            if location.starts_with("http://") || location.starts_with("https://") {
                location.to_owned()
            } else {
                format!("{}{location}", self.base)
            },
        )
    }
}
