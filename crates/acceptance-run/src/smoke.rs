//! Smoke checks: each service answers through the gateway. Retried until `smoke_timeout`;
//! each check's outcome is printed as it settles.

use serde::Deserialize;
use std::time::{Duration, Instant};

/// One check as written in `params.smoke`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Its name in the log and the reports.
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub name: String,
    /// Path under the gateway URL, e.g. `/api-gateway/health`.
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub path: String,
    /// The status it must answer (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Text the body must contain.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub contains: Option<String>,
}

/// How the checks reach the gateway.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Straight to `gateway` (a URL).
    Http {
        client: &'a reqwest::Client,
        gateway: &'a str,
    },
    /// Through the Kubernetes API server's service proxy to `service` (`NAME:PORT`).
    Proxy {
        cluster: &'a kube_access::Cluster,
        namespace: &'a str,
        service: &'a str,
    },
}

/// A check's `path`: an absolute path (and query) on the gateway. Joined to the gateway's URL
/// by its path, never by pasting strings: `@evil.example/x` or `//evil.example/x` would
/// change the host.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(
            "must be a path on the gateway starting with a single /, e.g. \"/api-gateway/health\"",
        );
    }
    if path
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '#' || c == '\\')
    {
        return Err("must be a path without spaces, control characters, # or \\");
    }
    Ok(())
}

/// `gateway` + `path`, refused unless the result has the gateway's scheme, host and port.
fn join(gateway: &str, path: &str) -> Result<String, String> {
    let base = reqwest::Url::parse(gateway).map_err(|e| format!("the gateway URL: {e}"))?;
    let joined = reqwest::Url::parse(&format!("{}{path}", gateway.trim_end_matches('/')))
        .map_err(|e| format!("{path}: {e}"))?;
    if joined.origin() != base.origin() {
        return Err(format!("{path} would leave the gateway's host"));
    }
    Ok(joined.to_string())
}

impl Via<'_> {
    /// What a check hits, for messages.
    fn target(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        match self {
            Via::Http { gateway, .. } => format!("{}/{path}", gateway.trim_end_matches('/')),
            Via::Proxy {
                namespace, service, ..
            } => format!("service {namespace}/{service} /{path} (through the API server)"),
        }
    }

    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        match self {
            Via::Http {
                client, gateway, ..
            } => {
                let url = join(gateway, path)?;
                let r = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| protocol::text::error_chain(&e))?;
                let status = r.status().as_u16();
                Ok((status, r.text().await.unwrap_or_default()))
            }
            Via::Proxy {
                cluster,
                namespace,
                service,
            } => crate::kubernetes::proxy_get(cluster, namespace, service, path).await,
        }
    }
}

/// Runs every check until it passes or the deadline; returns the failures (name, last problem).
pub async fn run(via: Via<'_>, checks: &[Check], timeout: Duration) -> Vec<(String, String)> {
    // One deadline for all the checks; each check's looks start 200 ms apart, doubling to 5 s.
    let deadline = tokio::time::Instant::now() + timeout;
    let policy = protocol::retry::Policy::new(timeout, Duration::from_millis(200))
        .capped(Duration::from_secs(5));
    let mut failures = Vec::new();
    for check in checks {
        let url = via.target(&check.path);
        let want = check.expect_status.unwrap_or(200);
        let mut looks = policy.start_until(deadline);
        let mut attempts = 0;
        let mut last_said = Instant::now();
        let mut last_problem = String::new();
        let outcome = loop {
            attempts += 1;
            let problem = match via.get(&check.path).await {
                Err(e) if e.contains("certificate") || e.contains("UnknownIssuer") => {
                    // Retrying cannot make the worker trust a certificate.
                    break Err(format!(
                        "cannot reach {url}: {e}; the gateway's TLS certificate is not trusted by this worker"
                    ));
                }
                Err(e) => format!("cannot reach {url}: {e}"),
                Ok((status, body)) => {
                    if status != want {
                        let said: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
                        let said: String = said.chars().take(160).collect();
                        format!("{url} answered {status}, expected {want}: {said}")
                    } else if let Some(text) =
                        check.contains.as_deref().filter(|t| !body.contains(*t))
                    {
                        format!("{url} answered {status} without \"{text}\"")
                    } else {
                        break Ok(status);
                    }
                }
            };
            let left = looks.left();
            if left.is_zero() {
                break Err(problem);
            }
            // Each failed try is said, at most every 5 s unless the problem changed.
            if problem != last_problem || last_said.elapsed() >= Duration::from_secs(5) {
                tracing::info!(
                    "smoke {}: attempt {attempts}: {problem}; retrying for up to {}",
                    check.name,
                    protocol::duration::format(Duration::from_secs(left.as_secs()))
                );
                last_said = Instant::now();
                last_problem = problem;
            }
            looks.poll().await;
        };
        match outcome {
            Ok(status) => tracing::info!("smoke {}: ok ({status}, attempt {attempts})", check.name),
            Err(problem) => {
                tracing::warn!(
                    "smoke {}: FAILED after {attempts} attempts: {problem}",
                    check.name
                );
                failures.push((check.name.clone(), problem));
            }
        }
    }
    failures
}
