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
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube_access::{Cluster, kube_error, one_line};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the runner needs from the cluster, in one namespace: the seam its step logic is tested
/// on (`KubeJobs` is the real one, on the kube client).
// Our one runtime is current-thread: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Jobs {
    async fn create(&self, job: &Job) -> Result<(), ClusterError>;
    /// Pods matching a label selector.
    async fn pods(&self, selector: &str) -> Result<Vec<Pod>, ClusterError>;
    async fn pod(&self, name: &str) -> Result<Pod, ClusterError>;
    /// A container's log, followed, line by line.
    async fn log(
        &self,
        pod: &str,
        container: &str,
    ) -> Result<LocalBoxStream<'static, Result<String, ClusterError>>, ClusterError>;
    /// Deletes a Job and, in the background, its pods.
    async fn delete(&self, name: &str) -> Result<(), ClusterError>;
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
    pods: Api<Pod>,
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
            pods: Api::namespaced(cluster.client.clone(), namespace),
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

    async fn pods(&self, selector: &str) -> Result<Vec<Pod>, ClusterError> {
        Ok(self
            .pods
            .list(&ListParams::default().labels(selector))
            .await?
            .items)
    }

    async fn pod(&self, name: &str) -> Result<Pod, ClusterError> {
        Ok(self.pods.get(name).await?)
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
    let started = Instant::now();
    loop {
        let p = jobs.pod(&pod).await.map_err(|e| match e {
            ClusterError::NotFound(_) => anyhow::anyhow!(
                "the suite's pod {pod} was deleted before it finished (by the Job's deadline, or by hand)"
            ),
            ClusterError::Other(m) => anyhow::anyhow!("read the pod {pod}: {m}"),
        })?;
        if let Some(code) = suite_status(&p)
            .and_then(|s| s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
        {
            return Ok(Some(code));
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the suite's log ended but its container {pod}/{SUITE} has not terminated after 60s"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn suite_status(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == SUITE)
}

/// The pod's name once the suite's container runs (or already ended). Fails at once when the
/// pod cannot get there, quoting the reason. Polls every 250 ms (a pod starts once; a watch
/// buys nothing here), printing each new state.
async fn wait_started(jobs: &impl Jobs, selector: &str, job: &str) -> anyhow::Result<String> {
    let mut last = String::new();
    loop {
        let list = jobs
            .pods(selector)
            .await
            .map_err(|e| anyhow::anyhow!("list the pods of job {job}: {e}"))?;
        if let Some(p) = list.first() {
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
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    fn spec(timeout: Duration) -> JobSpec<'static> {
        JobSpec {
            namespace: "microservices-test-42",
            name: "acceptance-42-1a2b".into(),
            image: "us.gcr.io/p/acceptance-tests@sha256:ab",
            reporter_image: "us.gcr.io/p/acceptance-run:1.0",
            command: vec!["godog".into(), "--strict".into()],
            env: vec![("API_GATEWAY_URL".into(), "http://api-gateway:8080".into())],
            timeout,
            labels: vec![(
                "app.kubernetes.io/managed-by".into(),
                "acceptance-run".into(),
            )],
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "acceptance-42-1a2b-x7k2q"}, "status": status}),
        )
        .unwrap()
    }

    fn waiting(reason: &str, message: &str) -> Pod {
        pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"waiting": {"reason": reason, "message": message}}}]}),
        )
    }

    fn running() -> Pod {
        pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                   "state": {"running": {}}}]}),
        )
    }

    fn exited(code: i32) -> Pod {
        pod(
            json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": code}}}]}),
        )
    }

    /// A scripted cluster: successive answers to `pods` and `pod` (the last one repeats).
    #[derive(Default)]
    struct Script {
        create: RefCell<Option<ClusterError>>,
        lists: RefCell<VecDeque<Vec<Pod>>>,
        gets: RefCell<VecDeque<Result<Pod, String>>>,
        log: Vec<String>,
        delete_fails: bool,
        created: RefCell<Vec<Job>>,
        deleted: RefCell<Vec<String>>,
    }

    fn next<T: Clone>(q: &RefCell<VecDeque<T>>) -> T {
        let mut q = q.borrow_mut();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        }
    }

    impl Jobs for Script {
        async fn create(&self, job: &Job) -> Result<(), ClusterError> {
            if let Some(e) = self.create.borrow_mut().take() {
                return Err(e);
            }
            self.created.borrow_mut().push(job.clone());
            Ok(())
        }
        async fn pods(&self, _selector: &str) -> Result<Vec<Pod>, ClusterError> {
            Ok(next(&self.lists))
        }
        async fn pod(&self, _name: &str) -> Result<Pod, ClusterError> {
            next(&self.gets).map_err(ClusterError::NotFound)
        }
        async fn log(
            &self,
            _pod: &str,
            _container: &str,
        ) -> Result<LocalBoxStream<'static, Result<String, ClusterError>>, ClusterError> {
            let lines: Vec<Result<String, ClusterError>> =
                self.log.iter().cloned().map(Ok).collect();
            Ok(futures_util::stream::iter(lines).boxed_local())
        }
        async fn delete(&self, name: &str) -> Result<(), ClusterError> {
            self.deleted.borrow_mut().push(name.to_owned());
            if self.delete_fails {
                return Err(ClusterError::Other("forbidden (403)".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn reports_in_the_log_are_written_and_the_exit_code_is_read_once_the_pod_has_it() {
        let mut log = vec!["Feature: gateway".to_owned()];
        log.extend(reporter::encode("cucumber.json", b"[]"));
        let script = Script {
            lists: RefCell::new(VecDeque::from([
                vec![waiting("ContainerCreating", "")],
                vec![running()],
            ])),
            // The log can end before the kubelet reports the exit.
            gets: RefCell::new(VecDeque::from([Ok(running()), Ok(exited(3))])),
            log,
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let code = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap();
        assert_eq!(code, Some(3));
        assert_eq!(
            std::fs::read(dir.path().join("cucumber.json")).unwrap(),
            b"[]"
        );
        assert_eq!(script.created.borrow().len(), 1);
        assert_eq!(*script.deleted.borrow(), ["acceptance-42-1a2b"]);
    }

    #[tokio::test]
    async fn a_failing_init_container_names_reporter_image_and_the_job_is_deleted() {
        let init = pod(
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "install-reporter", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                              "state": {"terminated": {"exitCode": 127}}}]}),
        );
        let script = Script {
            lists: RefCell::new(VecDeque::from([vec![init]])),
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let e = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("init container install-reporter exited 127); params.reporter_image must be this resource type's image"), "{e}");
        assert_eq!(*script.deleted.borrow(), ["acceptance-42-1a2b"]);
    }

    #[tokio::test]
    async fn a_missing_namespace_is_named_and_nothing_is_left_behind() {
        let script = Script::default();
        *script.create.borrow_mut() = Some(ClusterError::NotFound(
            "namespaces \"microservices-test-42\" not found".into(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let e = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "params.namespace: the cluster has no namespace microservices-test-42 (was the test environment deployed?)"
        );
        assert!(script.deleted.borrow().is_empty());
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_deleted_does_not_hide_the_result() {
        let script = Script {
            lists: RefCell::new(VecDeque::from([vec![exited(0)]])),
            gets: RefCell::new(VecDeque::from([Ok(exited(0))])),
            delete_fails: true,
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let code = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap();
        assert_eq!(code, Some(0));
        assert_eq!(script.deleted.borrow().len(), 1);
    }

    #[tokio::test]
    async fn a_pod_deleted_under_the_runner_is_said_plainly() {
        let script = Script {
            lists: RefCell::new(VecDeque::from([vec![running()]])),
            gets: RefCell::new(VecDeque::from([Err("pods \"x\" not found".to_owned())])),
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let e = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("was deleted before it finished"),
            "{e}"
        );
        assert_eq!(script.deleted.borrow().len(), 1);
    }

    #[tokio::test]
    async fn a_pod_that_never_starts_is_stopped_at_the_timeout_and_deleted() {
        let script = Script {
            lists: RefCell::new(VecDeque::from([vec![waiting("ContainerCreating", "")]])),
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let code = run(&script, &spec(Duration::from_millis(300)), dir.path())
            .await
            .unwrap();
        assert_eq!(code, None);
        assert_eq!(script.deleted.borrow().len(), 1);
    }

    #[tokio::test]
    async fn an_image_that_cannot_be_pulled_fails_at_once_with_the_kubelet_message() {
        let script = Script {
            lists: RefCell::new(VecDeque::from([vec![waiting(
                "ErrImagePull",
                "manifest unknown",
            )]])),
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let e = run(&script, &spec(Duration::from_secs(30)), dir.path())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "params.image: the suite's pod acceptance-42-1a2b-x7k2q cannot start: ErrImagePull: manifest unknown"
        );
    }

    #[test]
    fn the_job_runs_once_wraps_the_suite_and_gets_the_reporter_from_an_init_container() {
        let spec = JobSpec {
            namespace: "microservices-test-42",
            name: "acceptance-42-1a2b".into(),
            image: "us.gcr.io/p/acceptance-tests@sha256:ab",
            reporter_image: "us.gcr.io/p/acceptance-run:1.0",
            command: vec!["godog".into(), "--strict".into()],
            env: vec![("API_GATEWAY_URL".into(), "http://api-gateway:8080".into())],
            timeout: Duration::from_secs(900),
            labels: vec![(
                "app.kubernetes.io/managed-by".into(),
                "acceptance-run".into(),
            )],
        };
        let job = manifest(&spec);
        // It parses as a batch/v1 Job.
        let _: Job = serde_json::from_value(job.clone()).unwrap();
        assert_eq!(job["metadata"]["namespace"], "microservices-test-42");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 960);
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "acceptance-run"
        );
        let init = &pod["initContainers"][0];
        assert_eq!(init["image"], "us.gcr.io/p/acceptance-run:1.0");
        assert_eq!(
            init["command"],
            json!([
                "/opt/resource/acceptance-run",
                "install-reporter",
                "/acceptance-tools/acceptance-reporter"
            ])
        );
        let suite = &pod["containers"][0];
        assert_eq!(suite["name"], "suite");
        assert_eq!(suite["image"], "us.gcr.io/p/acceptance-tests@sha256:ab");
        assert_eq!(
            suite["command"],
            json!([
                "/acceptance-tools/acceptance-reporter",
                "/reports",
                "--",
                "godog",
                "--strict"
            ])
        );
        assert_eq!(
            suite["env"],
            json!([{"name": "API_GATEWAY_URL", "value": "http://api-gateway:8080"}])
        );
        let mounts: Vec<&str> = suite["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["/acceptance-tools", "/reports"]);
    }
}
