//! The OCI distribution client.
//!
//! Hand-written on reqwest instead of oci-client 0.18, after reading and trying it: against a
//! registry without auth it pings `/v2/` before every request (its token cache only keeps
//! tokens, so "no auth needed" is never remembered), which doubles the requests of a check;
//! it swallows token-exchange errors (`get_auth_token` returns `None` and the request then
//! fails as a bare 401); and its errors drop `Retry-After`. Each of those breaks a goal of
//! gcr-image (request budgets, a clear error, honouring rate limits). The distribution API we
//! use is small: ping, token, manifests HEAD/GET/PUT, blobs HEAD/GET, uploads POST/PUT, mount,
//! tags/list.
//!
//! Request accounting: one `/v2/` ping per client (the challenge is remembered), one token per
//! scope (cached), then one request per operation. Retries: 429 (honouring `Retry-After`),
//! 5xx and broken connections, with exponential backoff under an overall deadline, each retry
//! logged; 401/403/404 are never retried.

//!
//! Rooms: `auth` (credentials, challenge, tokens), `transport` (attempts, retries, errors),
//! `manifests`, `blobs`, `tags`, `digest`. This client knows nothing of Concourse: the
//! resources turn their `source` keys into `Credentials` and `Hints`.

use crate::error::RegistryError;
use crate::reference::Repository;
pub(crate) use protocol::text::error_chain;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

pub(crate) use crate::auth::AuthState;
pub use crate::auth::{Credentials, scope};
pub use crate::blobs::Mount;
pub use crate::digest::{StreamingDigest, sha256_digest};
pub use crate::manifests::{MANIFEST_TYPES, Manifest};
pub use crate::tags::TagList;
pub(crate) use crate::transport::{give_up, retry_after};

/// Client settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Plain HTTP (loopback registries only; gcr-image validates that).
    pub insecure: bool,
    /// Extra CA certificates, PEM.
    pub ca_certs: Vec<String>,
    /// Overall budget for retries of one operation.
    pub retry_deadline: Duration,
    /// First backoff delay (doubles each retry, capped at 30 s).
    pub first_backoff: Duration,
    /// How long a silent registry may keep one request waiting (for its answer, between two
    /// chunks of a download, or without taking any byte of an upload) before the attempt
    /// counts as a transient fault and is retried under `retry_deadline`.
    pub read_timeout: Duration,
    pub user_agent: String,
    /// What a 401 or a 403 tells the user to check (the resource knows its own keys).
    pub hints: Hints,
}

/// The fix a 401 or 403 message suggests.
#[derive(Debug, Clone)]
pub struct Hints {
    pub unauthorized: String,
    pub denied: String,
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            unauthorized: "check the registry credentials".into(),
            denied: "the account lacks permission on this repository".into(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            insecure: false,
            ca_certs: Vec::new(),
            retry_deadline: Duration::from_secs(300),
            first_backoff: Duration::from_millis(500),
            read_timeout: httpc::READ_TIMEOUT,
            user_agent: concat!("concourse-resources/", env!("CARGO_PKG_VERSION")).to_owned(),
            hints: Hints::default(),
        }
    }
}

/// A client for one registry host.
pub struct Client {
    pub(crate) http: reqwest::Client,
    /// For blob uploads: no read timeout (the PUT answers after the whole body); their
    /// progress is watched instead (`finish_upload`).
    pub(crate) upload_http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) credentials: Credentials,
    pub(crate) options: Options,
    pub(crate) state: Mutex<AuthState>,
    pub(crate) requests: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Whether a registry host is a loopback one (`127.x`, `localhost`, `[::1]`), where plain
/// HTTP may be allowed.
pub fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

impl Client {
    pub fn new(host: &str, credentials: Credentials, options: Options) -> anyhow::Result<Self> {
        let mut http_options = httpc::Options::new(options.user_agent.clone());
        http_options.ca_certs = options.ca_certs.clone();
        // No single request waits longer than the whole operation may take.
        http_options.read_timeout = Some(options.read_timeout.min(options.retry_deadline));
        let http = httpc::client(&http_options)?;
        http_options.read_timeout = None;
        let upload_http = httpc::client(&http_options)?;
        let scheme = if options.insecure { "http" } else { "https" };
        Ok(Self {
            http,
            upload_http,
            base: format!("{scheme}://{host}"),
            credentials,
            options,
            state: Mutex::new(AuthState::default()),
            requests: AtomicUsize::new(0),
        })
    }

    /// HTTP requests sent so far (authentication included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn url(&self, repo: &Repository, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, repo.path)
    }

    /// The retry policy of every registry call (`Options::retry_deadline`, `first_backoff`).
    pub fn retry_policy(&self) -> protocol::retry::Policy {
        protocol::retry::Policy::new(self.options.retry_deadline, self.options.first_backoff)
    }

    /// The retry deadline and first backoff, for callers that retry whole sequences.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// Refuses a digest that is not `sha256:` and 64 lowercase hex digits before it reaches a URL
/// or a file name (digests come from manifests, i.e. from the registry: hostile data).
pub(crate) fn checked_digest(what: &str, digest: &str) -> Result<(), RegistryError> {
    crate::reference::validate_digest(digest).map_err(|m| RegistryError::Protocol {
        what: what.to_owned(),
        message: format!("the digest {:?} {m}", clip(digest)),
    })
}

/// At most 80 characters of remote text in a message.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

pub(crate) fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
