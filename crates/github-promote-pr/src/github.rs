//! The GitHub REST API, the one external system of this resource.
//!
//! octocrab carries the requests (TLS, base URL, auth header); its raw calls keep the status,
//! the headers and the body in our hands, because the behaviour we promise lives there:
//! `If-None-Match`/`304` for free polls, `x-ratelimit-reset` and `retry-after` honoured under a
//! deadline, GitHub's 422/405/409 messages passed on. Every request is counted.

use crate::source::{Auth, Config};
use http::header::{HeaderMap, HeaderName, HeaderValue};
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
    async fn call_for<T: serde::de::DeserializeOwned>(
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

    /// Commits of `head` that `base` lacks, and `head`'s sha.
    pub async fn compare(&self, base: &str, head: &str) -> Result<(u64, String), GithubError> {
        let what = format!("compare {base}...{head} of {}/{}", self.owner, self.repo);
        let reply = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!(
                    "/compare/{}...{}?per_page=1",
                    in_path(base),
                    in_path(head)
                )),
                None,
                None,
            )
            .await?;
        if reply.status != 200 {
            return Err(self.error(&what, &reply));
        }
        let v = reply.json();
        let ahead = v["ahead_by"].as_u64().unwrap_or(0);
        let sha = v["commits"]
            .as_array()
            .and_then(|c| c.last())
            .and_then(|c| c["sha"].as_str())
            .map(str::to_owned)
            .unwrap_or_default();
        Ok((ahead, sha))
    }

    /// Pull requests `head` -> `base` in `state` (`open`, `all`), with an optional ETag for a
    /// conditional request. `Ok(None)`: not modified.
    pub async fn list_pulls(
        &self,
        head: &str,
        base: &str,
        state: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<Pull>, Option<String>)>, GithubError> {
        let what = format!(
            "list the pull requests {head} -> {base} of {}/{}",
            self.owner, self.repo
        );
        let mut headers = HeaderMap::new();
        if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(HeaderName::from_static("if-none-match"), tag);
        }
        let mut path = Some(self.repo_path(&format!(
            "/pulls?state={state}&head={}&base={}&per_page=100&direction=asc",
            in_query(&format!("{}:{head}", self.owner)),
            in_query(base)
        )));
        let mut all = Vec::new();
        let mut first_etag = None;
        while let Some(p) = path.take() {
            let reply = self
                .call(&what, http::Method::GET, &p, None, Some(headers.clone()))
                .await?;
            if reply.status == 304 {
                return Ok(None);
            }
            if reply.status != 200 {
                return Err(self.error(&what, &reply));
            }
            if first_etag.is_none() {
                first_etag = reply.header("etag").map(str::to_owned);
            }
            let page: Vec<Pull> =
                serde_json::from_str(&reply.body).map_err(|e| GithubError::Other {
                    what: what.clone(),
                    status: 200,
                    message: format!("unexpected JSON: {e}"),
                })?;
            all.extend(page);
            path = reply
                .header("link")
                .and_then(protocol::text::next_link)
                .map(|u| {
                    u.split_once("://")
                        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                        .unwrap_or(u)
                });
            headers = HeaderMap::new();
        }
        Ok(Some((all, first_etag)))
    }

    pub async fn create_pull(
        &self,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Result<Result<Pull, Vec<String>>, GithubError> {
        let what = format!("open a pull request in {}/{}", self.owner, self.repo);
        let reply = self.call(&what, http::Method::POST, &self.repo_path("/pulls"), Some(json!({"title": title, "body": body, "head": self.head_label(), "base": self.base_name(), "draft": draft, "maintainer_can_modify": false})), None).await?;
        match reply.status {
            201 => serde_json::from_str(&reply.body)
                .map(Ok)
                .map_err(|e| GithubError::Other {
                    what,
                    status: 201,
                    message: e.to_string(),
                }),
            422 => Ok(Err(reply.errors())),
            _ => Err(self.error(&what, &reply)),
        }
    }

    fn head_label(&self) -> String {
        format!("{}:{}", self.owner, self.head)
    }

    fn base_name(&self) -> String {
        self.base.clone()
    }

    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<Pull, GithubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        self.call_for(
            &format!("update pull request #{number}"),
            http::Method::PATCH,
            &path,
            Some(json!({"title": title, "body": body})),
            200,
        )
        .await
    }

    pub async fn get_pull(&self, number: u64) -> Result<Pull, GithubError> {
        let what = format!(
            "read pull request #{number} of {}/{}",
            self.owner, self.repo
        );
        self.call_for(
            &what,
            http::Method::GET,
            &self.repo_path(&format!("/pulls/{number}")),
            None,
            200,
        )
        .await
    }

    /// The raw JSON of a pull request (what `in` writes).
    pub async fn get_pull_json(&self, number: u64) -> Result<Value, GithubError> {
        let what = format!(
            "read pull request #{number} of {}/{}",
            self.owner, self.repo
        );
        self.call_for(
            &what,
            http::Method::GET,
            &self.repo_path(&format!("/pulls/{number}")),
            None,
            200,
        )
        .await
    }

    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GithubError> {
        let path = self.repo_path(&format!("/issues/{number}/labels"));
        let _: Value = self
            .call_for(
                &format!("label pull request #{number}"),
                http::Method::POST,
                &path,
                Some(json!({"labels": labels})),
                200,
            )
            .await?;
        Ok(())
    }

    pub async fn request_reviewers(
        &self,
        number: u64,
        users: &[String],
        teams: &[String],
    ) -> Result<(), GithubError> {
        let path = self.repo_path(&format!("/pulls/{number}/requested_reviewers"));
        let body = json!({"reviewers": users, "team_reviewers": teams});
        let _: Value = self
            .call_for(
                &format!("request reviewers on pull request #{number}"),
                http::Method::POST,
                &path,
                Some(body),
                201,
            )
            .await?;
        Ok(())
    }

    /// The contexts branch protection requires on `base`; `None` when it requires none.
    pub async fn required_checks(&self, base: &str) -> Result<Option<Vec<String>>, GithubError> {
        let what = format!("read the required checks of {base}");
        let reply = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!(
                    "/branches/{}/protection/required_status_checks",
                    in_path(base)
                )),
                None,
                None,
            )
            .await?;
        match reply.status {
            200 => {
                let v = reply.json();
                let mut contexts: Vec<String> = v["contexts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                for c in v["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["context"].as_str())
                {
                    if !contexts.iter().any(|x| x == c) {
                        contexts.push(c.to_owned());
                    }
                }
                Ok(Some(contexts))
            }
            // Not protected, or protected without required checks; 403 when the token may not
            // read protection: then every reported check must pass.
            404 | 403 => Ok(None),
            _ => Err(self.error(&what, &reply)),
        }
    }

    /// Every commit status context and check run on `sha`, reduced to one state each.
    pub async fn checks(&self, sha: &str) -> Result<Vec<(String, CheckState)>, GithubError> {
        let what = format!("read the checks of {}", &sha[..sha.len().min(12)]);
        let statuses = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!("/commits/{sha}/status")),
                None,
                None,
            )
            .await?;
        if statuses.status != 200 {
            return Err(self.error(&what, &statuses));
        }
        let runs = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!("/commits/{sha}/check-runs?per_page=100")),
                None,
                None,
            )
            .await?;
        if runs.status != 200 {
            return Err(self.error(&what, &runs));
        }
        let mut out = Vec::new();
        for s in statuses.json()["statuses"].as_array().into_iter().flatten() {
            let state = match s["state"].as_str() {
                Some("success") => CheckState::Success,
                Some("failure" | "error") => CheckState::Failure,
                _ => CheckState::Pending,
            };
            out.push((s["context"].as_str().unwrap_or("").to_owned(), state));
        }
        for r in runs.json()["check_runs"].as_array().into_iter().flatten() {
            let state = match (r["status"].as_str(), r["conclusion"].as_str()) {
                (Some("completed"), Some("success" | "neutral" | "skipped")) => CheckState::Success,
                (Some("completed"), _) => CheckState::Failure,
                _ => CheckState::Pending,
            };
            out.push((r["name"].as_str().unwrap_or("").to_owned(), state));
        }
        Ok(out)
    }

    /// Merges `number` if its head is still `sha`. `Ok(merge commit sha)`, or GitHub's refusal.
    pub async fn merge(
        &self,
        number: u64,
        sha: &str,
        method: &str,
    ) -> Result<Result<String, (u16, String)>, GithubError> {
        let what = format!("merge pull request #{number}");
        let reply = self
            .call(
                &what,
                http::Method::PUT,
                &self.repo_path(&format!("/pulls/{number}/merge")),
                Some(json!({"sha": sha, "merge_method": method})),
                None,
            )
            .await?;
        match reply.status {
            200 => Ok(Ok(reply.json()["sha"].as_str().unwrap_or("").to_owned())),
            405 | 409 => Ok(Err((reply.status, reply.message()))),
            _ => Err(self.error(&what, &reply)),
        }
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

/// A branch name as a URL path segment: everything but unreserved characters and `/` (which
/// GitHub reads as part of the name there) percent-encoded, so `#` or `?` cannot end the path.
fn in_path(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &UNRESERVED_KEPT.remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A value in a query string (`owner:branch`): only unreserved characters and `:` kept.
fn in_query(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &UNRESERVED_KEPT.remove(b':');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Everything encoded but RFC 3986's unreserved characters.
const UNRESERVED_KEPT: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
