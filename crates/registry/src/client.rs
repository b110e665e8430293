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

use crate::error::{RegistryError, envelope_detail};
use crate::reference::Repository;
use base64::Engine as _;
use bytes::Bytes;
use protocol::Secret;
use protocol::retry::Retries;
pub(crate) use protocol::text::error_chain;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// Manifest media types we accept, most specific first (the Accept header of every manifest
/// request: without it a registry may convert Docker manifests to schema 1, or 404 on OCI).
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How to authenticate.
#[derive(Clone)]
pub enum Credentials {
    Anonymous,
    /// `username`/`password`, including `_json_key`, `_json_key_base64`, `oauth2accesstoken`.
    Basic {
        username: String,
        password: Secret,
    },
    /// A service-account key: its access token is the password of `oauth2accesstoken`.
    Google(Arc<google_auth::TokenSource>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Google(t) => write!(f, "Google({})", t.key().client_email),
        }
    }
}

impl Credentials {
    /// Credentials from the `source` keys every registry-backed resource takes:
    /// `google_credentials`, or `username` + `password`, or none (anonymous). Errors name the
    /// field; `ca_certs` are trusted for the Google token endpoint too.
    pub fn from_source(
        google_credentials: Option<Secret>,
        username: Option<String>,
        password: Option<Secret>,
        ca_certs: &[String],
        user_agent: &str,
    ) -> anyhow::Result<Self> {
        use protocol::FieldError;
        Ok(match (google_credentials, username, password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(FieldError::conflict(
                    "source.google_credentials",
                    "source.username/source.password",
                )
                .into());
            }
            (Some(key), None, None) => {
                let key = google_auth::ServiceAccountKey::parse(&key)
                    .map_err(|e| FieldError::new("source.google_credentials", e.to_string()))?;
                let mut options = httpc::Options::new(user_agent);
                options.ca_certs = ca_certs.to_vec();
                let http = httpc::client(&options)
                    .map_err(|e| anyhow::anyhow!("source.ca_certs: {e:#}"))?;
                Credentials::Google(Arc::new(google_auth::TokenSource::new(key, http)))
            }
            (None, Some(username), Some(password)) => {
                if password.is_empty() {
                    return Err(FieldError::new(
                        "source.password",
                        "is empty; set the password or remove source.username",
                    )
                    .into());
                }
                Credentials::Basic { username, password }
            }
            (None, Some(_), None) => {
                return Err(FieldError::missing("source.password", "((registry-password))").into());
            }
            (None, None, Some(_)) => {
                return Err(FieldError::missing("source.username", "\"_json_key\"").into());
            }
            (None, None, None) => Credentials::Anonymous,
        })
    }

    fn hint_401(&self) -> &'static str {
        match self {
            Credentials::Anonymous => {
                "the registry needs credentials: set source.google_credentials or source.username and source.password"
            }
            Credentials::Basic { .. } => "check source.username and source.password",
            Credentials::Google(_) => {
                "check source.google_credentials (a current key of a service account of this project)"
            }
        }
    }

    fn hint_403(&self) -> &'static str {
        match self {
            Credentials::Google(_) => {
                "grant the service account Artifact Registry Reader (pull) or Writer (push) on this repository"
            }
            _ => {
                "the account lacks permission on this repository (pull for check/in, push for out)"
            }
        }
    }
}

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
        }
    }
}

#[derive(Debug, Clone)]
enum Challenge {
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Secret>,
}

/// What a cross-repository mount did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// The blob is now in the repository: no bytes sent.
    Mounted,
    /// Not mounted; the registry opened an upload session at `upload` instead.
    Refused { upload: String },
}

/// A manifest as stored: bytes, media type, digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

/// `tags/list`, plus the upload times Google's registries add (`manifest` map).
#[derive(Debug, Clone, Default)]
pub struct TagList {
    pub tags: Vec<String>,
    /// Per tag: (digest, upload time in ms since the epoch), when the registry says.
    pub google: HashMap<String, (String, u64)>,
}

/// A client for one registry host.
pub struct Client {
    http: reqwest::Client,
    /// For blob uploads: no read timeout (the PUT answers after the whole body); their
    /// progress is watched instead (`finish_upload`).
    upload_http: reqwest::Client,
    base: String,
    credentials: Credentials,
    options: Options,
    state: Mutex<AuthState>,
    requests: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The token scope of `repo` for `actions` (`pull` or `pull,push`).
pub fn scope(repo: &Repository, actions: &str) -> String {
    format!("repository:{}:{actions}", repo.path)
}

/// A `sha256:` digest computed over a stream of chunks. ring's SHA-256 (ring is linked
/// already as the TLS provider): no second digest crate in the binaries.
#[derive(Clone)]
pub struct StreamingDigest(ring::digest::Context);

impl std::fmt::Debug for StreamingDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingDigest")
    }
}

impl Default for StreamingDigest {
    fn default() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl StreamingDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finish()))
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

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", protocol::text::sha256_hex(data))
}

enum Attempt {
    Done(reqwest::Response),
    /// Retrying cannot help (a certificate the client does not trust, TLS to a plain-HTTP port).
    Fatal(String),
    Retry {
        reason: String,
        after: Option<Duration>,
        rate_limited: bool,
    },
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

    fn url(&self, repo: &Repository, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, repo.path)
    }

    async fn basic(&self) -> Result<Option<(String, Secret)>, RegistryError> {
        Ok(match &self.credentials {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some((username.clone(), password.clone())),
            Credentials::Google(source) => {
                Some(("oauth2accesstoken".to_owned(), source.token().await?))
            }
        })
    }

    fn basic_header(user: &str, password: &Secret) -> Secret {
        let raw = format!("{user}:{}", password.expose());
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// The Authorization header for `scope`: none until a 401 told us the challenge (no ping:
    /// a check on an anonymous registry is one request), then Basic, or a token fetched once
    /// per scope. The lock is held across the token exchange on purpose: concurrent requests
    /// for one scope wait for the one token instead of each fetching their own.
    async fn authorization(&self, scope: &str) -> Result<Option<Secret>, RegistryError> {
        let mut state = self.state.lock().await;
        match state.challenge.clone() {
            None | Some(Challenge::Open) => Ok(None),
            Some(Challenge::Basic) => match self.basic().await? {
                Some((user, password)) => Ok(Some(Self::basic_header(&user, &password))),
                None => Err(RegistryError::Unauthorized {
                    what: format!("{}/v2/", self.base),
                    detail: String::new(),
                    hint: self.credentials.hint_401(),
                }),
            },
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(token) = state.tokens.get(scope) {
                    return Ok(Some(Secret::new(format!("Bearer {}", token.expose()))));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                let header = Secret::new(format!("Bearer {}", token.expose()));
                state.tokens.insert(scope.to_owned(), token);
                Ok(Some(header))
            }
        }
    }

    /// What a response without credentials taught: a 401's challenge (`true`: send again with
    /// credentials), or that this registry needs none.
    async fn learn(&self, what: &str, response: &reqwest::Response) -> Result<bool, RegistryError> {
        let mut state = self.state.lock().await;
        if response.status() != StatusCode::UNAUTHORIZED {
            if state.challenge.is_none() {
                state.challenge = Some(Challenge::Open);
            }
            return Ok(false);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // A 401 without a challenge we can answer stays a 401: the caller reports it.
        let Some(challenge) = parse_challenge(header) else {
            tracing::debug!("{what}: HTTP 401 without a usable WWW-Authenticate challenge");
            return Ok(false);
        };
        state.challenge = Some(challenge);
        Ok(true)
    }

    async fn forget_token(&self, scope: &str) {
        self.state.lock().await.tokens.remove(scope);
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, RegistryError> {
        let what = format!("get a registry token from {realm}");
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for s in scope.split(' ') {
            query.push(("scope", s));
        }
        let basic = self.basic().await?;
        if basic.is_some()
            && !realm.starts_with("https://")
            && !protocol::url::is_loopback_url(realm)
        {
            // The registry's challenge names where to send the password; a plain-http realm
            // on another host would carry it in cleartext.
            return Err(RegistryError::Protocol {
                what,
                message: "the registry's token realm is not https; refusing to send the credentials in cleartext (a registry that needs plain http must be on loopback)".into(),
            });
        }
        let response = self
            .send_with_retry(&what, || {
                let request = self.http.get(realm).query(&query);
                match &basic {
                    Some((user, password)) => {
                        request.header(AUTHORIZATION, Self::basic_header(user, password).expose())
                    }
                    None => request,
                }
            })
            .await?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: Token = serde_json::from_slice(&body).map_err(|_| RegistryError::Protocol {
            what: what.clone(),
            message: "the token answer is not JSON".into(),
        })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or(RegistryError::Protocol {
                what,
                message: "the token answer holds no token".into(),
            })
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> RegistryError {
        let detail = envelope_detail(body);
        let what = what.to_owned();
        match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                what,
                detail,
                hint: self.credentials.hint_401(),
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                what,
                detail,
                hint: self.credentials.hint_403(),
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound { what, detail },
            s => RegistryError::Protocol {
                what,
                message: format!("HTTP {s}{detail}"),
            },
        }
    }

    /// Sends with retries on 429/5xx/connection errors, without authentication (ping, token).
    async fn send_with_retry(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut retries = self.retry_policy().start();
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent =
                protocol::log::patiently(&format!("the registry ({what})"), build().send()).await;
            if let Some(response) = self.settle(what, classify(sent), &mut retries).await? {
                return Ok(response);
            }
        }
    }

    /// One attempt's outcome: the response to return, an error, or `None` after waiting
    /// for the next attempt (shared by the authenticated and unauthenticated loops).
    async fn settle(
        &self,
        what: &str,
        outcome: Attempt,
        retries: &mut Retries,
    ) -> Result<Option<reqwest::Response>, RegistryError> {
        match outcome {
            Attempt::Done(response) => Ok(Some(response)),
            Attempt::Fatal(message) => Err(RegistryError::Protocol {
                what: what.to_owned(),
                message,
            }),
            Attempt::Retry {
                reason,
                after,
                rate_limited,
            } => {
                retries
                    .wait(what, &reason, after)
                    .await
                    .map_err(|_| give_up(what, &reason, after, rate_limited))?;
                Ok(None)
            }
        }
    }

    /// An authenticated request with retries. `build` makes the request anew for each attempt.
    async fn execute(
        &self,
        what: &str,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut retries = self.retry_policy().start();
        let mut renewed = false;
        let mut learned = false;
        loop {
            let auth = self.authorization(scope).await?;
            let mut request = build();
            if let Some(auth) = &auth {
                request = request.header(AUTHORIZATION, auth.expose());
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("{what}");
            match classify(
                protocol::log::patiently(&format!("the registry ({what})"), request.send()).await,
            ) {
                Attempt::Done(response) if auth.is_none() && !learned => {
                    learned = true;
                    if self.learn(what, &response).await? {
                        let _ = response.bytes().await;
                        continue;
                    }
                    return Ok(response);
                }
                Attempt::Done(response)
                    if response.status() == StatusCode::UNAUTHORIZED
                        && auth.is_some()
                        && !renewed =>
                {
                    // A cached bearer token may have expired mid-run: fetch a fresh one once.
                    renewed = true;
                    self.forget_token(scope).await;
                    let _ = response.bytes().await;
                }
                other => {
                    if let Some(response) = self.settle(what, other, &mut retries).await? {
                        return Ok(response);
                    }
                }
            }
        }
    }

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
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Transient {
                what: what.clone(),
                message: e.to_string(),
            })?;
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
            let body = response
                .bytes()
                .await
                .map_err(|e| RegistryError::Transient {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
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
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Transient {
                what: what.clone(),
                message: e.to_string(),
            })?;
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

    fn location(&self, what: &str, headers: &HeaderMap) -> Result<String, RegistryError> {
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

    /// The retry policy of every registry call (`Options::retry_deadline`, `first_backoff`).
    pub fn retry_policy(&self) -> protocol::retry::Policy {
        protocol::retry::Policy::new(self.options.retry_deadline, self.options.first_backoff)
    }

    /// The retry deadline and first backoff, for callers that retry whole sequences.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// The error for a retried call that ran out of time.
pub(crate) fn give_up(
    what: &str,
    reason: &str,
    retry_after: Option<Duration>,
    rate_limited: bool,
) -> RegistryError {
    if rate_limited {
        RegistryError::RateLimited {
            what: what.to_owned(),
            retry_after,
        }
    } else {
        RegistryError::Transient {
            what: what.to_owned(),
            message: format!("{reason}; gave up at the retry deadline"),
        }
    }
}

fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Attempt {
    match result {
        Ok(response) => {
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retry {
                    reason: "rate limited (HTTP 429)".into(),
                    after: retry_after(response.headers()),
                    rate_limited: true,
                }
            } else if matches!(status.as_u16(), 500 | 502 | 503 | 504) {
                Attempt::Retry {
                    reason: format!("HTTP {status}"),
                    after: retry_after(response.headers()),
                    rate_limited: false,
                }
            } else {
                Attempt::Done(response)
            }
        }
        Err(e) => {
            let chain = error_chain(&e);
            if chain.contains("invalid peer certificate") {
                Attempt::Fatal(format!(
                    "{chain}; if the registry uses a private CA, add its certificate to source.ca_certs"
                ))
            } else if chain.contains("corrupt message") || chain.contains("InvalidContentType") {
                Attempt::Fatal(format!(
                    "{chain}; the server does not speak TLS (a plain-HTTP loopback registry needs source.insecure: true)"
                ))
            } else {
                Attempt::Retry {
                    reason: chain,
                    after: None,
                    rate_limited: false,
                }
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries; treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(600)))
}

fn digest_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Refuses a digest that is not `sha256:` and 64 lowercase hex digits before it reaches a URL
/// or a file name (digests come from manifests, i.e. from the registry: hostile data).
pub(crate) fn checked_digest(what: &str, digest: &str) -> Result<(), RegistryError> {
    crate::reference::validate_digest(digest).map_err(|m| RegistryError::Protocol {
        what: what.to_owned(),
        message: format!("the digest {:?} {m}", clip(digest)),
    })
}

/// A manifest reference is a tag or a digest, each by the distribution spec's grammar.
fn checked_reference(what: &str, reference: &str) -> Result<(), RegistryError> {
    if reference.contains(':') {
        return checked_digest(what, reference);
    }
    crate::reference::validate_tag(reference).map_err(|m| RegistryError::Protocol {
        what: what.to_owned(),
        message: format!("the tag {:?} {m}", clip(reference)),
    })
}

/// At most 80 characters of remote text in a message.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

pub(crate) fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn display_ref(repo: &Repository, reference: &str) -> String {
    if reference.starts_with("sha256:") {
        repo.pinned(reference)
    } else {
        repo.tagged(reference)
    }
}

/// `WWW-Authenticate: Bearer realm="...",service="..."` or `Basic realm="..."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut realm = None;
            let mut service = None;
            for part in split_params(params) {
                if let Some((k, v)) = part.split_once('=') {
                    let v = v.trim().trim_matches('"').to_owned();
                    match k.trim().to_ascii_lowercase().as_str() {
                        "realm" => realm = Some(v),
                        "service" => service = Some(v),
                        _ => {}
                    }
                }
            }
            Some(Challenge::Bearer {
                realm: realm?,
                service,
            })
        }
        _ => None,
    }
}

/// Splits `a="x,y",b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
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
    fn challenges_are_parsed() {
        assert!(matches!(
            parse_challenge("Basic realm=\"basic-realm\""),
            Some(Challenge::Basic)
        ));
        match parse_challenge(
            "Bearer realm=\"https://us.gcr.io/v2/token\",service=\"us.gcr.io\",scope=\"repository:a:pull,push\"",
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://us.gcr.io/v2/token");
                assert_eq!(service.as_deref(), Some("us.gcr.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_challenge("Negotiate").is_none());
        assert!(parse_challenge("Bearer service=\"x\"").is_none());
    }

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

    #[test]
    fn credentials_debug_hides_passwords() {
        let c = Credentials::Basic {
            username: "_json_key".into(),
            password: Secret::new("canary"),
        };
        assert_eq!(format!("{c:?}"), "Basic(_json_key, <redacted>)");
    }
}
