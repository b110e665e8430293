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
            Via::Http { client, .. } => {
                let url = self.target(path);
                let r = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| chain(&e))?;
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
    let deadline = protocol::duration::deadline_after(timeout);
    let mut failures = Vec::new();
    for check in checks {
        let url = via.target(&check.path);
        let want = check.expect_status.unwrap_or(200);
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let problem = match via.get(&check.path).await {
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
            if delay > deadline.saturating_duration_since(Instant::now()) {
                break Err(problem);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
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

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut s = e.source();
    while let Some(x) = s {
        let t = x.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        s = x.source();
    }
    out
}
