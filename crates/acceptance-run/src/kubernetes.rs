//! The `kubernetes` runner: the suite as a Job in the test environment's namespace, so it
//! reaches the services by their Service names, as they reach each other. The Job's pod gets
//! the reporter (see `reporter`) from an init container, its log is streamed to the build log,
//! its reports come back through that log, and the Job is deleted (with its pod) whatever
//! happened. Smoke checks can go through the API server's service proxy (`gateway_service`),
//! so the Concourse worker needs nothing but the cluster credentials.

use crate::reporter::{self, Collector};
use anyhow::Context as _;
use futures_util::stream::LocalBoxStream;
use futures_util::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams, WatchParams};
use kube_access::{Cluster, kube_error, one_line};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// What the runner needs from the cluster, in one namespace: the seam its step logic is tested
/// on (`KubeJobs` is the real one, on the kube client).
// Our one runtime is current-thread: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Jobs {
    async fn create(&self, job: &Job) -> Result<(), ClusterError>;
    /// Every state of the pods matching a label selector, as it changes (the current ones
    /// first), until dropped; a deleted pod is `NotFound`.
    async fn watch_pods(&self, selector: &str) -> Result<PodStates, ClusterError>;
    /// A container's log, followed, line by line.
    async fn log(
        &self,
        pod: &str,
        container: &str,
    ) -> Result<LocalBoxStream<'static, Result<String, ClusterError>>, ClusterError>;
    /// Deletes a Job and, in the background, its pods.
    async fn delete(&self, name: &str) -> Result<(), ClusterError>;
}

/// The states of a Job's pods, as they change.
pub type PodStates = LocalBoxStream<'static, Result<PodState, ClusterError>>;

/// One line of a watch: `{"type": "ADDED", "object": {...}}`.
#[derive(Debug, serde::Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: PodState,
}

/// What the runner reads of a pod: its name, phase and message, and each container's state.
/// Our own few fields rather than k8s-openapi's `Pod`, whose full deserializer (instantiated
/// once more for watch events) weighed over a megabyte in the image.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PodState {
    #[serde(default)]
    pub metadata: PodMeta,
    #[serde(default)]
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PodMeta {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: Option<ContainerState>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ContainerState {
    #[serde(default)]
    pub waiting: Option<Waiting>,
    #[serde(default)]
    pub running: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub terminated: Option<Terminated>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Waiting {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
}

/// The cluster's answers the runner acts on.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

impl From<kube::Error> for ClusterError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 404 => Self::NotFound(one_line(&s.message)),
            _ => Self::Other(kube_error(&e)),
        }
    }
}

/// `Jobs` on the kube client.
#[derive(Clone)]
pub struct KubeJobs {
    jobs: Api<Job>,
    client: kube::Client,
    namespace: String,
    log_pods: Api<Pod>,
}

impl std::fmt::Debug for KubeJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeJobs")
    }
}

impl KubeJobs {
    pub fn new(cluster: &Cluster, namespace: &str) -> Self {
        Self {
            jobs: Api::namespaced(cluster.client.clone(), namespace),
            client: cluster.client.clone(),
            namespace: namespace.to_owned(),
            // A suite may print nothing for minutes: its log has no read timeout (the step's
            // timeout bounds it).
            log_pods: Api::namespaced(cluster.streaming.clone(), namespace),
        }
    }
}

impl Jobs for KubeJobs {
    async fn create(&self, job: &Job) -> Result<(), ClusterError> {
        self.jobs.create(&PostParams::default(), job).await?;
        Ok(())
    }

    /// One watch after another (the server ends each within `WATCH_SECONDS`), each from
    /// resource version 0, so it starts with the pods as they are.
    async fn watch_pods(&self, selector: &str) -> Result<PodStates, ClusterError> {
        // The raw stream, one JSON event per line, read like the log: kube's typed watch
        // decoding adds half a megabyte to the image for the same result.
        type Watch = LocalBoxStream<'static, Result<WatchLine, ClusterError>>;
        let params = WatchParams::default()
            .labels(selector)
            .timeout(kube_access::WATCH_SECONDS);
        let request =
            kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", self.namespace));
        let open = move |client: kube::Client,
                         request: kube::core::Request,
                         params: WatchParams| async move {
            let req = request
                .watch(&params, "0")
                .map_err(|e| ClusterError::Other(format!("build the watch of the pods: {e}")))?;
            let reader = client.request_stream(req).await?;
            let lines = reader.lines().map(|line| {
                let line = line.map_err(|e| ClusterError::Other(format!("read the watch: {e}")))?;
                serde_json::from_str::<WatchLine>(&line)
                    .map_err(|e| ClusterError::Other(format!("a watch event is not JSON: {e}")))
            });
            Ok::<Watch, ClusterError>(lines.boxed_local())
        };
        let first = open(self.client.clone(), request.clone(), params.clone()).await?;
        let client = self.client.clone();
        Ok(futures_util::stream::unfold(
            (client, request, params, Some(first)),
            move |(client, request, params, mut current)| async move {
                loop {
                    let watch = match current.take() {
                        Some(w) => w,
                        None => match open(client.clone(), request.clone(), params.clone()).await {
                            Ok(w) => w,
                            Err(e) => return Some((Err(e), (client, request, params, None))),
                        },
                    };
                    let mut watch = watch;
                    let item = match watch.next().await {
                        // The server ended this watch (or said it expired): open the next one.
                        None => continue,
                        Some(Ok(event)) => match event.kind.as_str() {
                            "ADDED" | "MODIFIED" => Ok(event.object),
                            "DELETED" => Err(ClusterError::NotFound(format!(
                                "pod {} was deleted",
                                event.object.metadata.name.unwrap_or_default()
                            ))),
                            "ERROR" => continue,
                            // BOOKMARK, and anything newer.
                            _ => {
                                current = Some(watch);
                                continue;
                            }
                        },
                        Some(Err(e)) => Err(e),
                    };
                    return Some((item, (client, request, params, Some(watch))));
                }
            },
        )
        .boxed_local())
    }

    async fn log(
        &self,
        pod: &str,
        container: &str,
    ) -> Result<LocalBoxStream<'static, Result<String, ClusterError>>, ClusterError> {
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: true,
            ..LogParams::default()
        };
        let reader = self.log_pods.log_stream(pod, &params).await?;
        Ok(reader
            .lines()
            .map(|l| l.map_err(|e| ClusterError::Other(format!("read the log: {e}"))))
            .boxed_local())
    }

    async fn delete(&self, name: &str) -> Result<(), ClusterError> {
        self.jobs.delete(name, &DeleteParams::background()).await?;
        Ok(())
    }
}

const SUITE: &str = "suite";
const TOOLS: &str = "/acceptance-tools";
const REPORTS: &str = "/reports";

/// What the Job runs.
#[derive(Debug)]
pub struct JobSpec<'a> {
    pub namespace: &'a str,
    pub name: String,
    pub image: &'a str,
    pub reporter_image: &'a str,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub labels: Vec<(String, String)>,
}

/// The Job as sent to the API server.
pub fn manifest(spec: &JobSpec<'_>) -> serde_json::Value {
    let mut command = vec![
        format!("{TOOLS}/{}", reporter::REPORTER),
        REPORTS.to_owned(),
        "--".to_owned(),
    ];
    command.extend(spec.command.iter().cloned());
    let env: Vec<serde_json::Value> = spec
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let labels: serde_json::Map<String, serde_json::Value> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            // One attempt: a failing suite is a result, not something to retry.
            "backoffLimit": 0,
            // The cluster's backstop; this step stops the suite at `timeout` itself.
            "activeDeadlineSeconds": spec.timeout.as_secs() + 60,
            // Removed by the cluster even if this step dies before its own cleanup.
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "volumes": [{"name": "tools", "emptyDir": {}}, {"name": "reports", "emptyDir": {}}],
                    "initContainers": [{
                        "name": "install-reporter",
                        "image": spec.reporter_image,
                        "command": ["/opt/resource/acceptance-run", "install-reporter", format!("{TOOLS}/{}", reporter::REPORTER)],
                        "volumeMounts": [{"name": "tools", "mountPath": TOOLS}]
                    }],
                    "containers": [{
                        "name": SUITE,
                        "image": spec.image,
                        "command": command,
                        "env": env,
                        "volumeMounts": [{"name": "tools", "mountPath": TOOLS}, {"name": "reports", "mountPath": REPORTS}]
                    }]
                }
            }
        }
    })
}

/// Runs the Job and copies its reports into `reports`. The suite's exit code, or `None` at
/// the timeout. The Job is deleted before this returns.
pub async fn run(
    jobs: &impl Jobs,
    spec: &JobSpec<'_>,
    reports: &Path,
) -> anyhow::Result<Option<i32>> {
    let job: Job = serde_json::from_value(manifest(spec)).context("the Job manifest")?;
    jobs.create(&job).await.map_err(|e| match &e {
        ClusterError::NotFound(_) => anyhow::anyhow!(
            "params.namespace: the cluster has no namespace {} (was the test environment deployed?)",
            spec.namespace
        ),
        ClusterError::Other(m) => anyhow::anyhow!("create the Job {}: {m}", spec.name),
    })?;
    tracing::info!(
        "job {}/{} created from {}",
        spec.namespace,
        spec.name,
        spec.image
    );
    let outcome = tokio::time::timeout(spec.timeout, follow(jobs, spec, reports)).await;
    match jobs.delete(&spec.name).await {
        Ok(()) => tracing::info!("job {} deleted", spec.name),
        Err(e) => tracing::warn!(
            "could not delete the job {} (the cluster removes it an hour after it finished): {e}",
            spec.name
        ),
    }
    match outcome {
        Ok(r) => r,
        Err(_) => Ok(None),
    }
}

/// Waits for the suite's container to start, streams its log, and reads its exit code.
async fn follow(
    jobs: &impl Jobs,
    spec: &JobSpec<'_>,
    reports: &Path,
) -> anyhow::Result<Option<i32>> {
    let selector = format!("batch.kubernetes.io/job-name={}", spec.name);
    let pod = wait_started(jobs, &selector, &spec.name).await?;
    let mut collector = Collector::default();
    match jobs.log(&pod, SUITE).await {
        Ok(mut lines) => {
            while let Some(line) = lines.next().await {
                match line {
                    Ok(line) => {
                        if let Some(l) = collector.line(&line) {
                            tracing::info!("| {l}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("the suite's log broke off: {e}");
                        break;
                    }
                }
            }
        }
        Err(e) => tracing::warn!("cannot read the suite's log: {e}"),
    }
    collector.finish();
    for b in &collector.broken {
        tracing::warn!("report {b}");
    }
    collector
        .write(reports)
        .context("write the reports received")?;
    // The log ends when the container exits; its status follows shortly.
    let mut states = jobs
        .watch_pods(&selector)
        .await
        .map_err(|e| anyhow::anyhow!("watch the pod {pod}: {e}"))?;
    let exit = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(state) = states.next().await {
            let p = state.map_err(|e| match e {
                ClusterError::NotFound(_) => anyhow::anyhow!(
                    "the suite's pod {pod} was deleted before it finished (by the Job's deadline, or by hand)"
                ),
                ClusterError::Other(m) => anyhow::anyhow!("read the pod {pod}: {m}"),
            })?;
            if p.metadata.name.as_deref() != Some(pod.as_str()) {
                continue;
            }
            if let Some(code) = suite_status(&p)
                .and_then(|s| s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
            {
                return Ok(code);
            }
        }
        anyhow::bail!("the watch of the pod {pod} ended")
    })
    .await;
    match exit {
        Ok(code) => Ok(Some(code?)),
        Err(_) => anyhow::bail!(
            "the suite's log ended but its container {pod}/{SUITE} has not terminated after 60s"
        ),
    }
}

fn suite_status(p: &PodState) -> Option<&ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == SUITE)
}

/// The pod's name once the suite's container runs (or already ended), from a watch of the
/// Job's pods. Fails at once when the pod cannot get there, quoting the reason; prints each new
/// state.
async fn wait_started(jobs: &impl Jobs, selector: &str, job: &str) -> anyhow::Result<String> {
    let mut last = String::new();
    let mut states = jobs
        .watch_pods(selector)
        .await
        .map_err(|e| anyhow::anyhow!("watch the pods of job {job}: {e}"))?;
    while let Some(state) = states.next().await {
        let p = match state {
            Ok(p) => p,
            // A pod the Job replaces: wait for the next.
            Err(ClusterError::NotFound(_)) => continue,
            Err(ClusterError::Other(m)) => anyhow::bail!("watch the pods of job {job}: {m}"),
        };
        {
            let p = &p;
            let name = p.metadata.name.clone().unwrap_or_default();
            let status = p.status.clone().unwrap_or_default();
            for init in status.init_container_statuses.iter().flatten() {
                if let Some(t) = init.state.as_ref().and_then(|s| s.terminated.as_ref())
                    && t.exit_code != 0
                {
                    anyhow::bail!(
                        "the reporter could not be installed in the suite's pod {name} (init container {} exited {}); params.reporter_image must be this resource type's image",
                        init.name,
                        t.exit_code
                    );
                }
                if let Some(w) = init.state.as_ref().and_then(|s| s.waiting.as_ref())
                    && kube_access::STUCK_REASONS.contains(&w.reason.as_deref().unwrap_or(""))
                {
                    anyhow::bail!(
                        "params.reporter_image: the suite's pod {name} cannot start its init container: {}: {}",
                        w.reason.as_deref().unwrap_or(""),
                        one_line(w.message.as_deref().unwrap_or(""))
                    );
                }
            }
            if let Some(c) = suite_status(p) {
                let state = c.state.clone().unwrap_or_default();
                if state.running.is_some() || state.terminated.is_some() {
                    tracing::info!("pod {name}: suite started");
                    return Ok(name);
                }
                if let Some(w) = &state.waiting {
                    let reason = w.reason.clone().unwrap_or_default();
                    let message = one_line(w.message.as_deref().unwrap_or(""));
                    if kube_access::STUCK_REASONS.contains(&reason.as_str()) {
                        anyhow::bail!(
                            "params.image: the suite's pod {name} cannot start: {reason}: {message}"
                        );
                    }
                    let now = format!("pod {name}: {reason}");
                    if now != last {
                        tracing::info!("{now}");
                        last = now;
                    }
                }
            }
            if status.phase.as_deref() == Some("Failed") {
                anyhow::bail!(
                    "the suite's pod {name} failed before the suite started: {}",
                    one_line(status.message.as_deref().unwrap_or("no message"))
                );
            }
        }
    }
    anyhow::bail!("the watch of job {job}'s pods ended before the suite started")
}

/// Smoke checks through the API server's service proxy:
/// `/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`. Returns (status, body).
pub async fn proxy_get(
    cluster: &Cluster,
    namespace: &str,
    service: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let uri = format!(
        "/api/v1/namespaces/{namespace}/services/{service}/proxy/{}",
        path.trim_start_matches('/')
    );
    let request = http::Request::get(&uri)
        .body(kube::client::Body::empty())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), cluster.client.send(request))
        .await
        .map_err(|_| format!("no answer through the API server's proxy in 10s ({uri})"))?
        .map_err(|e| kube_error(&e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| kube_error(&e))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests;
