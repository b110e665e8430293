//! The Job runner on a fake cluster: the manifest, the wait for the pod, the log followed.

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

fn pod(status: serde_json::Value) -> PodState {
    serde_json::from_value(
        json!({"metadata": {"name": "acceptance-42-1a2b-x7k2q"}, "status": status}),
    )
    .unwrap()
}

fn waiting(reason: &str, message: &str) -> PodState {
    pod(
        json!({"phase": "Pending", "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": reason, "message": message}}}]}),
    )
}

fn running() -> PodState {
    pod(
        json!({"phase": "Running", "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
               "state": {"running": {}}}]}),
    )
}

fn exited(code: i32) -> PodState {
    pod(
        json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{"name": "suite", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": code}}}]}),
    )
}

/// A scripted cluster: the pod states the first watch shows (`lists`, flattened), then those
/// the second shows (`gets`, an `Err` being the pod's deletion); each watch then stays open
/// with nothing new, as a real one does.
#[derive(Default)]
struct Script {
    create: RefCell<Option<ClusterError>>,
    lists: RefCell<VecDeque<Vec<PodState>>>,
    gets: RefCell<VecDeque<Result<PodState, String>>>,
    watches: RefCell<usize>,
    log: Vec<String>,
    delete_fails: bool,
    created: RefCell<Vec<Job>>,
    deleted: RefCell<Vec<String>>,
}

impl Jobs for Script {
    async fn create(&self, job: &Job) -> Result<(), ClusterError> {
        if let Some(e) = self.create.borrow_mut().take() {
            return Err(e);
        }
        self.created.borrow_mut().push(job.clone());
        Ok(())
    }
    async fn watch_pods(&self, _selector: &str) -> Result<PodStates, ClusterError> {
        let n = {
            let mut w = self.watches.borrow_mut();
            *w += 1;
            *w
        };
        let states: Vec<Result<PodState, ClusterError>> = if n == 1 {
            self.lists
                .borrow()
                .iter()
                .flatten()
                .cloned()
                .map(Ok)
                .collect()
        } else {
            self.gets
                .borrow()
                .iter()
                .cloned()
                .map(|g| g.map_err(ClusterError::NotFound))
                .collect()
        };
        Ok(futures_util::stream::iter(states)
            .chain(futures_util::stream::pending())
            .boxed_local())
    }
    async fn log(
        &self,
        _pod: &str,
        _container: &str,
    ) -> Result<LocalBoxStream<'static, Result<String, ClusterError>>, ClusterError> {
        let lines: Vec<Result<String, ClusterError>> = self.log.iter().cloned().map(Ok).collect();
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
