//! Sending: one attempt classified (done, retry, fatal), retries under the one policy
//! (`protocol::retry`), authentication learnt and renewed on the way, errors by status.

use crate::client::*;
use crate::error::{RegistryError, envelope_detail};
use protocol::retry::Retries;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) enum Attempt {
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
    /// The whole body of a response; a connection cut while reading it is transient.
    pub(crate) async fn body(
        what: &str,
        response: reqwest::Response,
    ) -> Result<bytes::Bytes, RegistryError> {
        response
            .bytes()
            .await
            .map_err(|e| RegistryError::Transient {
                what: what.to_owned(),
                message: e.to_string(),
            })
    }

    pub(crate) fn status_error(
        &self,
        what: &str,
        status: StatusCode,
        body: &[u8],
    ) -> RegistryError {
        let detail = envelope_detail(body);
        let what = what.to_owned();
        match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                what,
                detail,
                hint: self.options.hints.unauthorized.clone(),
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                what,
                detail,
                hint: self.options.hints.denied.clone(),
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound { what, detail },
            s => RegistryError::Protocol {
                what,
                message: format!("HTTP {s}{detail}"),
            },
        }
    }

    /// Sends with retries on 429/5xx/connection errors, without authentication (ping, token).
    pub(crate) async fn send_with_retry(
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
    pub(crate) async fn settle(
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
    pub(crate) async fn execute(
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

pub(crate) fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Attempt {
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
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(600)))
}
