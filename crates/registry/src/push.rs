//! Pushing blobs: skip what exists, mount what the registry has elsewhere, stream the rest.
//!
//! A blob is a byte range of a file (a layout's blob file, or an entry of an uncompressed
//! tarball), streamed from disk: memory does not grow with its size. An upload is POST then
//! one PUT with the whole body (the reference registry has no single-request upload); a PUT
//! that fails part-way kills its session, so a retry starts a new session and streams the
//! range again from its start, under the client's retry deadline.

use crate::client::{Client, error_chain, short};
use crate::error::RegistryError;
use crate::reference::Repository;
use futures_util::StreamExt as _;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub path: PathBuf,
    pub offset: u64,
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Already in the repository (one HEAD).
    Existed,
    /// Mounted from another repository of the registry: no bytes sent.
    Mounted,
    /// Streamed.
    Uploaded,
}

impl Client {
    /// Makes `blob` present in `repo`. `mount_from`: a repository of the same registry that may
    /// hold it already.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        blob: &Blob,
        mount_from: Option<&Repository>,
        label: &str,
    ) -> Result<Pushed, RegistryError> {
        if self.blob_exists(repo, &blob.digest).await? {
            tracing::info!("{label}: {} already present", short(&blob.digest));
            return Ok(Pushed::Existed);
        }
        let mut location = None;
        if let Some(from) = mount_from.filter(|f| *f != repo) {
            match self.mount_blob(repo, from, &blob.digest).await? {
                crate::client::Mount::Mounted => {
                    tracing::info!("{label}: {} mounted from {from}", short(&blob.digest));
                    return Ok(Pushed::Mounted);
                }
                crate::client::Mount::Refused { upload } => location = Some(upload),
            }
        }
        let mut retries = self.retry_policy().start();
        loop {
            let session = match location.take() {
                Some(l) => l,
                None => self.start_upload(repo).await?,
            };
            let progress = Progress::default();
            let body = body(blob, label, &progress).await?;
            let started = Instant::now();
            match self
                .finish_upload(repo, &session, &blob.digest, blob.size, body, &progress)
                .await
            {
                Ok(()) => {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        "{label}: {} pushed, {} in {secs:.1}s ({}/s)",
                        short(&blob.digest),
                        human(blob.size),
                        human((blob.size as f64 / secs.max(0.001)) as u64)
                    );
                    return Ok(Pushed::Uploaded);
                }
                Err(e @ (RegistryError::Transient { .. } | RegistryError::RateLimited { .. })) => {
                    let after = match &e {
                        RegistryError::RateLimited { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let reason = format!("{e}; starting the upload again");
                    if retries.wait(label, &reason, after).await.is_err() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Client {
    /// Streams blob `digest` of `repo` into the file `dest`, checking its digest and size as it
    /// goes: memory does not grow with the blob. Retried from the start on transient faults.
    pub async fn download_blob(
        &self,
        repo: &Repository,
        digest: &str,
        size: u64,
        dest: &std::path::Path,
        label: &str,
    ) -> Result<(), RegistryError> {
        let what = format!("download blob {} of {repo}", short(digest));
        crate::client::checked_digest(&what, digest)?;
        // The content goes to a temporary name beside `dest` and takes its name only once its
        // digest matched: a failed or hostile download never leaves a file under the real name.
        let partial = {
            let mut name = dest.file_name().unwrap_or_default().to_os_string();
            name.push(".partial");
            dest.with_file_name(name)
        };
        let result = self
            .download_to(repo, digest, size, &partial, label, &what)
            .await
            .and_then(|()| {
                std::fs::rename(&partial, dest).map_err(|e| RegistryError::Protocol {
                    what: what.clone(),
                    message: format!("rename into {}: {e}", dest.display()),
                })
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    async fn download_to(
        &self,
        repo: &Repository,
        digest: &str,
        size: u64,
        dest: &std::path::Path,
        label: &str,
        what: &str,
    ) -> Result<(), RegistryError> {
        use tokio::io::AsyncWriteExt as _;
        let what = what.to_owned();
        let mut retries = self.retry_policy().start();
        let mut mismatches = 0u32;
        loop {
            let response = self.get_blob_response(repo, digest).await?;
            let mut stream = response.bytes_stream();
            let mut file =
                tokio::fs::File::create(dest)
                    .await
                    .map_err(|e| RegistryError::Protocol {
                        what: what.clone(),
                        message: format!("create {}: {e}", dest.display()),
                    })?;
            let mut hasher = crate::client::StreamingDigest::new();
            let (mut received, started, mut last_log) = (0u64, Instant::now(), Instant::now());
            let mut failure = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        hasher.update(&bytes);
                        received += bytes.len() as u64;
                        if let Err(e) = file.write_all(&bytes).await {
                            return Err(RegistryError::Protocol {
                                what,
                                message: format!("write {}: {e}", dest.display()),
                            });
                        }
                        if last_log.elapsed() >= Duration::from_secs(1) && received < size {
                            last_log = Instant::now();
                            let rate = received as f64 / started.elapsed().as_secs_f64().max(0.001);
                            tracing::info!(
                                "{label}: {} / {} ({}/s)",
                                human(received),
                                human(size),
                                human(rate as u64)
                            );
                        }
                    }
                    Err(e) => {
                        failure = Some(error_chain(&e));
                        break;
                    }
                }
            }
            if failure.is_none() {
                file.flush().await.map_err(|e| RegistryError::Protocol {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
                let got = hasher.finish();
                if got == digest && (size == 0 || received == size) {
                    return Ok(());
                }
                let reason = format!(
                    "received {received} bytes with digest {got}, expected {size} bytes of {digest}"
                );
                // A whole body with the wrong content is the registry's answer, not a cut
                // connection: one more try, then it is permanent (no five minutes of retries).
                mismatches += 1;
                if mismatches >= 2 {
                    return Err(RegistryError::Protocol {
                        what,
                        message: format!("{reason}, twice: the registry serves corrupt content"),
                    });
                }
                failure = Some(reason);
            }
            let reason = format!("{}; downloading again", failure.unwrap_or_default());
            if retries.wait(&what, &reason, None).await.is_err() {
                return Err(crate::client::give_up(&what, &reason, None, false));
            }
        }
    }
}

/// A streaming body over the blob's byte range, logging progress at most once a second.
/// How far an upload's body got: when it started, when it last handed a chunk to the
/// connection, and whether that was the last one. The PUT's own future says nothing until the
/// registry answers.
#[derive(Debug, Clone)]
pub struct Progress(std::sync::Arc<std::sync::Mutex<ProgressState>>);

#[derive(Debug)]
struct ProgressState {
    started: Instant,
    last: Instant,
    finished: bool,
}

impl Default for Progress {
    fn default() -> Self {
        let now = Instant::now();
        Self(std::sync::Arc::new(std::sync::Mutex::new(ProgressState {
            started: now,
            last: now,
            finished: false,
        })))
    }
}

impl Progress {
    fn moved(&self, finished: bool) {
        let mut p = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.last = Instant::now();
        p.finished = finished;
    }

    /// Runs `send`, failing when the body stops moving for `stall`, or when the registry has
    /// been handed the whole body and stays silent too long: a slow but moving upload is never
    /// cut. "Handed" is not "received": the socket buffers can hold megabytes still to cross a
    /// slow link, so after the last chunk the registry gets `stall` plus as long again as the
    /// body took to hand over.
    pub(crate) async fn watch<F: std::future::Future>(
        &self,
        send: F,
        stall: Duration,
    ) -> Result<F::Output, String> {
        let tick = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::pin!(send);
        loop {
            tokio::select! {
                out = &mut send => return Ok(out),
                () = tokio::time::sleep(tick) => {
                    let p = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let idle = p.last.elapsed();
                    if p.finished {
                        let allowed = stall + (p.last - p.started);
                        if idle >= allowed {
                            return Err(format!(
                                "the registry was sent the whole blob but did not answer within {:.1}s",
                                allowed.as_secs_f64()
                            ));
                        }
                    } else if idle >= stall {
                        return Err(format!(
                            "the upload made no progress for {:.1}s (the registry stopped reading)",
                            stall.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }
}

async fn body(
    blob: &Blob,
    label: &str,
    progress: &Progress,
) -> Result<reqwest::Body, RegistryError> {
    let progress = progress.clone();
    let what = || {
        format!(
            "read blob {} from {}",
            short(&blob.digest),
            blob.path.display()
        )
    };
    let mut file =
        tokio::fs::File::open(&blob.path)
            .await
            .map_err(|e| RegistryError::Protocol {
                what: what(),
                message: e.to_string(),
            })?;
    file.seek(SeekFrom::Start(blob.offset))
        .await
        .map_err(|e| RegistryError::Protocol {
            what: what(),
            message: e.to_string(),
        })?;
    let reader = file.take(blob.size);
    let total = blob.size;
    let label = format!("{label}: {}", short(&blob.digest));
    let mut sent = 0u64;
    let started = Instant::now();
    let mut last_log = Instant::now();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).map(move |chunk| {
            if let Ok(bytes) = &chunk {
                sent += bytes.len() as u64;
                progress.moved(sent >= total);
                if last_log.elapsed() >= Duration::from_secs(1) && sent < total {
                    last_log = Instant::now();
                    let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
                    tracing::info!(
                        "{label}: {} / {} ({}/s)",
                        human(sent),
                        human(total),
                        human(rate as u64)
                    );
                }
            }
            chunk.map_err(|e| std::io::Error::other(error_chain(&e)))
        });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// `12.3 MB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_are_human() {
        assert_eq!(super::human(999), "999 B");
        assert_eq!(super::human(210_000_000), "210.0 MB");
    }
}
