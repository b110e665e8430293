//! The GitHub REST API, the one external system of this resource.
//!
//! octocrab carries the requests (TLS, base URL, auth header); its raw calls keep the status,
//! the headers and the body in our hands, because the behaviour we promise lives there:
//! `If-None-Match`/`304` for free polls, `x-ratelimit-reset` and `retry-after` honoured under a
//! deadline, GitHub's 422/405/409 messages passed on. Every request is counted.

use crate::source::{Auth, Config};
use http::header::HeaderMap;
use protocol::Secret;
use protocol::text::one_line;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error(
        "{what}: GitHub said 401 ({message}); check source.access_token (or the App's key and installation)"
    )]
    Unauthorized { what: String, message: String },
    #[error(
        "{what}: GitHub said 403 ({message}); the token lacks permission (pull requests: write, contents/statuses/checks: read)"
    )]
    Forbidden { what: String, message: String },
    #[error(
        "{what}: not found (404); check source.repository, the branches, and that the token can see the repository"
    )]
    NotFound { what: String },
    #[error("{what}: GitHub refused it (422 {message})")]
    Validation {
        what: String,
        message: String,
        errors: Vec<String>,
    },
    #[error(
        "{what}: the token is out of API quota until {until} (x-ratelimit-reset), past the deadline"
    )]
    OutOfQuota { what: String, until: String },
    #[error("{what}: {message}")]
    Transient { what: String, message: String },
    #[error("{what}: GitHub said {status} ({message})")]
    Other {
        what: String,
        status: u16,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                e["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
                    format!(
                        "{} {} {}",
                        e["resource"].as_str().unwrap_or(""),
                        e["field"].as_str().unwrap_or(""),
                        e["code"].as_str().unwrap_or("")
                    )
                    .trim()
                    .to_owned()
                })
            })
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ref {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    #[serde(alias = "login")]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pull {
    pub number: u64,
    pub state: String,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub html_url: String,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub mergeable: Option<bool>,
    #[serde(default)]
    pub mergeable_state: Option<String>,
    pub head: Ref,
    pub base: Ref,
    #[serde(default)]
    pub labels: Vec<Named>,
    #[serde(default)]
    pub requested_reviewers: Vec<Named>,
    #[serde(default)]
    pub draft: Option<bool>,
}

/// A check's state on a commit: a commit status context or a check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckState {
    Success,
    Pending,
    Failure,
}

pub struct Github {
    octo: octocrab::Octocrab,
    pub owner: String,
    pub repo: String,
    head: String,
    base: String,
    deadline: Duration,
    token_fingerprint: String,
    requests: AtomicUsize,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Github({}/{})", self.owner, self.repo)
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fingerprint(token: &Secret) -> String {
    protocol::text::sha256_hex(token.expose().as_bytes())[..16].to_owned()
}

/// How long GitHub may keep one request waiting for its answer.
/// The first wait before retrying a 5xx or a broken connection (protocol::retry doubles it).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub const SILENT: Duration = Duration::from_secs(30);

impl Github {
    /// Connects: with a token, or by minting a GitHub App installation token (one request).
    pub async fn connect(config: &Config, deadline: Duration) -> anyhow::Result<Self> {
        httpc::install_crypto_provider();
        let builder = || -> anyhow::Result<octocrab::OctocrabBuilder<_, _, _, _>> {
            // A silent server fails a request after `silent` (no single request waits longer
            // than the whole deadline); `call` retries it as transient under the deadline.
            let silent = Some(SILENT.min(deadline));
            Ok(octocrab::Octocrab::builder()
                .base_uri(config.api_url.as_str())
                .map_err(|e| anyhow::anyhow!("source.api_url: {e}"))?
                .set_connect_timeout(Some(Duration::from_secs(10).min(deadline)))
                .set_read_timeout(silent)
                .set_write_timeout(silent))
        };
        let (token, minted) = match &config.auth {
            Auth::Token(t) => (t.clone(), false),
            Auth::App {
                app_id,
                key,
                installation_id,
            } => {
                let now = now_epoch();
                let jwt = key
                    .sign(json!({}), &json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": app_id.to_string()}))
                    .map_err(|e| anyhow::anyhow!("source.private_key: {e}"))?;
                let octo = builder()?
                    .add_header(
                        http::header::AUTHORIZATION,
                        format!("Bearer {}", jwt.expose()),
                    )
                    .build()
                    .map_err(|e| anyhow::anyhow!("set up the GitHub client: {e}"))?;
                let app = Self {
                    octo,
                    owner: config.owner.clone(),
                    repo: config.repo.clone(),
                    head: config.head.clone(),
                    base: config.base.clone(),
                    deadline,
                    token_fingerprint: String::new(),
                    requests: AtomicUsize::new(0),
                };
                let what = format!("mint an installation token for App {app_id}");
                let reply = app
                    .call(
                        &what,
                        http::Method::POST,
                        &format!("/app/installations/{installation_id}/access_tokens"),
                        Some(json!({})),
                        None,
                    )
                    .await?;
                if reply.status != 201 {
                    return Err(app.error(&what, &reply).into());
                }
                let token = reply.json()["token"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("{what}: no token in GitHub's answer"))?;
                tracing::info!("minted an installation token for GitHub App {app_id}");
                (Secret::new(token), true)
            }
        };
        let octo = builder()?
            .personal_token(token.expose().to_owned())
            .build()
            .map_err(|e| anyhow::anyhow!("set up the GitHub client: {e}"))?;
        let gh = Self {
            octo,
            owner: config.owner.clone(),
            repo: config.repo.clone(),
            head: config.head.clone(),
            base: config.base.clone(),
            deadline,
            token_fingerprint: fingerprint(&token),
            requests: AtomicUsize::new(usize::from(minted)),
        };
        Ok(gh)
    }

    /// Requests sent so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Identifies the token in cache keys without revealing it.
    pub fn token_fingerprint(&self) -> &str {
        &self.token_fingerprint
    }

    pub fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// One request, with rate limits (403/429 with `x-ratelimit-remaining: 0`, `retry-after`)
    /// and 5xx/connection faults waited out under the deadline.
    pub async fn call(
        &self,
        what: &str,
        method: http::Method,
        path: &str,
        body: Option<Value>,
        extra: Option<HeaderMap>,
    ) -> Result<Reply, GithubError> {
        let mut retries = protocol::retry::Policy::new(self.deadline, FIRST_BACKOFF).start();
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("{method} {path}");
            let send = async {
                match method.as_str() {
                    "GET" => Some(self.octo._get_with_headers(path, extra.clone()).await),
                    "POST" => Some(self.octo._post(path, body.as_ref()).await),
                    "PATCH" => Some(self.octo._patch(path, body.as_ref()).await),
                    "PUT" => Some(self.octo._put(path, body.as_ref()).await),
                    _ => None,
                }
            };
            let Some(sent) =
                protocol::log::patiently(&format!("GitHub to answer {method} {path}"), send).await
            else {
                return Err(GithubError::Other {
                    what: what.to_owned(),
                    status: 0,
                    message: format!("unsupported method {method}"),
                });
            };
            let (wait, reason) = match sent {
                Err(e) => {
                    let chain = one_line(&format!("{:#}", anyhow::Error::from(e)));
                    if let Some(why) = permanent_connect_error(&chain) {
                        return Err(GithubError::Other {
                            what: what.to_owned(),
                            status: 0,
                            message: why,
                        });
                    }
                    (None, format!("cannot reach GitHub: {chain}"))
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = self.octo.body_to_string(response).await.unwrap_or_default();
                    let reply = Reply {
                        status,
                        headers,
                        body,
                    };
                    let limited = (status == 403 || status == 429)
                        && (reply.header("x-ratelimit-remaining") == Some("0")
                            || reply.header("retry-after").is_some());
                    if limited {
                        let wait = match reply
                            .header("retry-after")
                            .and_then(|v| v.parse::<u64>().ok())
                        {
                            Some(secs) => secs,
                            None => reply
                                .header("x-ratelimit-reset")
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(0)
                                .saturating_sub(now_epoch())
                                .saturating_add(1),
                        };
                        let wait = Duration::from_secs(wait);
                        if wait > retries.left() {
                            let until = reply
                                .header("x-ratelimit-reset")
                                .map(|r| {
                                    format!(
                                        "epoch {r} (in {}s)",
                                        r.parse::<u64>().unwrap_or(0).saturating_sub(now_epoch())
                                    )
                                })
                                .unwrap_or_else(|| {
                                    format!("{}s from now (retry-after)", wait.as_secs())
                                });
                            return Err(GithubError::OutOfQuota {
                                what: what.to_owned(),
                                until,
                            });
                        }
                        (Some(wait), format!("rate limited ({})", reply.message()))
                    } else if status >= 500 {
                        (None, format!("GitHub said {status}"))
                    } else {
                        return Ok(reply);
                    }
                }
            };
            if retries.wait(what, &reason, wait).await.is_err() {
                return Err(GithubError::Transient {
                    what: what.to_owned(),
                    message: format!("{reason}; gave up at the deadline"),
                });
            }
        }
    }

    /// The error for an unexpected reply.
    pub fn error(&self, what: &str, reply: &Reply) -> GithubError {
        let what = what.to_owned();
        let message = reply.message();
        match reply.status {
            401 => GithubError::Unauthorized { what, message },
            403 => GithubError::Forbidden { what, message },
            404 => GithubError::NotFound { what },
            422 => {
                let errors = reply.errors();
                let message = if errors.is_empty() {
                    message
                } else {
                    format!("{message}: {}", errors.join("; "))
                };
                GithubError::Validation {
                    what,
                    message,
                    errors,
                }
            }
            status => GithubError::Other {
                what,
                status,
                message,
            },
        }
    }

    /// One call that must answer with status `expect`; its body parsed as `T`.
    pub(crate) async fn call_for<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        method: http::Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Result<T, GithubError> {
        let reply = self.call(what, method, path, body, None).await?;
        if reply.status != expect {
            return Err(self.error(what, &reply));
        }
        let text = if reply.body.trim().is_empty() {
            "null"
        } else {
            reply.body.as_str()
        };
        serde_json::from_str(text).map_err(|e| GithubError::Other {
            what: what.to_owned(),
            status: reply.status,
            message: format!("unexpected JSON: {e}"),
        })
    }
}

/// A connection failure that retrying cannot fix, said with what to do: a certificate the
/// worker does not trust, or TLS spoken to a plain-HTTP port.
fn permanent_connect_error(chain: &str) -> Option<String> {
    if chain.contains("certificate") || chain.contains("UnknownIssuer") {
        Some(format!(
            "{chain}; GitHub's TLS certificate is not trusted by this worker (GitHub Enterprise with a private CA: add the CA to the worker's /etc/ssl/certs)"
        ))
    } else if chain.contains("corrupt message") || chain.contains("InvalidContentType") {
        Some(format!(
            "{chain}; the server at source.api_url does not speak TLS (use http:// for a loopback test server)"
        ))
    } else {
        None
    }
}

mod api;
