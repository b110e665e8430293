//! `demo bad-release` (`make demo-bad-release`): after a good release reached production, a
//! release of the user service that answers 500 on `/users/2` (the sample service's
//! `SAMPLE_BROKEN_PATH` switch), a path the acceptance suite does not cover, goes through the
//! pipeline again. The test environment passes it; production's canary checks `/users/2` on
//! its canary pod before the pod serves, stops the release, and production keeps serving the
//! previous digest. A client polls production's user service through the API server during
//! the whole production job and counts what failed.

use crate::env::{GKE_TOKEN, docker};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The repository whose release is broken, its Deployment, the path that breaks.
pub const REPO: &str = "sample-user-service";
pub const DEPLOYMENT: &str = "user-service";
pub const BROKEN_PATH: &str = "/users/2";
/// The broken build's image (the good image with the switch set).
pub const BAD_IMAGE: &str = "sample/user-service:bad-release";

/// Builds the broken release from the good image: the same binary, `SAMPLE_BROKEN_PATH` set
/// (a container created, never started, committed with the changed configuration: no base
/// image to pull).
pub fn build_bad_image(good: &str) -> anyhow::Result<()> {
    let id = docker(&["create", good])?.trim().to_owned();
    let committed = docker(&[
        "commit",
        "--change",
        &format!("ENV SAMPLE_BROKEN_PATH={BROKEN_PATH}"),
        &id,
        BAD_IMAGE,
    ]);
    let _ = docker(&["rm", &id]);
    committed?;
    Ok(())
}

/// Production as the demo's operator sees it: the API server, its CA and token.
#[derive(Debug, Clone)]
pub struct Production {
    server: String,
    client: reqwest::Client,
}

impl Production {
    pub fn new(info: &Value) -> anyhow::Result<Self> {
        let vars = &info["vars"];
        let mut options = httpc::Options::new("demo");
        options.ca_certs = vec![
            vars["PROD_CLUSTER_CA"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ];
        options.read_timeout = Some(Duration::from_secs(10));
        Ok(Self {
            server: vars["PROD_CLUSTER_SERVER"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            client: httpc::client(&options)?,
        })
    }

    /// GET `path` on the API server: the status and the body.
    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self
            .client
            .get(format!("{}{path}", self.server))
            .bearer_auth(GKE_TOKEN)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    }

    /// The image the production Deployment runs, and whether a canary Deployment exists.
    pub fn running(&self) -> anyhow::Result<(String, bool)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let base = "/apis/apps/v1/namespaces/microservices/deployments";
            let (status, body) = self
                .get(&format!("{base}/{DEPLOYMENT}"))
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(status == 200, "read {DEPLOYMENT} in production: {status}");
            let d: Value = serde_json::from_str(&body)?;
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (canary, _) = self
                .get(&format!("{base}/{DEPLOYMENT}-canary"))
                .await
                .map_err(anyhow::Error::msg)?;
            Ok((image, canary == 200))
        })
    }
}

/// A client of production's user service for the length of the production job: GET
/// `BROKEN_PATH` through the API server's service proxy every 50 ms.
#[derive(Debug)]
pub struct Client {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl Client {
    pub fn start(production: Production) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return (0, vec!["no runtime".to_owned()]);
            };
            rt.block_on(async move {
                let path = format!(
                    "/api/v1/namespaces/microservices/services/{DEPLOYMENT}:8080/proxy{BROKEN_PATH}"
                );
                let (mut total, mut failures) = (0, Vec::new());
                while !flag.load(Ordering::SeqCst) {
                    total += 1;
                    match production.get(&path).await {
                        Ok((200, _)) => {}
                        Ok((status, body)) => failures.push(format!("{status}: {body}")),
                        Err(e) => failures.push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (total, failures)
            })
        });
        Self { stop, thread }
    }

    /// (requests, the failed ones).
    pub fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap_or_else(|_| (0, vec!["the client panicked".to_owned()]))
    }
}
