//! A canary's pods: how each is judged (the built-in gates), the HTTP checks run on it through
//! the API server's pod proxy, and the readiness gate that lets it serve once they pass.

use super::{Check, GATE};
use crate::cluster::{Cluster, kube_error};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use std::time::Duration;

/// What a canary pod says about the release.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Being deleted (a scale-down): says nothing.
    Leaving,
    /// A gate failed: the evidence.
    Failed(String),
    /// Containers not ready yet (the Ready condition's message).
    Starting(String),
    /// Containers ready, readiness gate not open yet: to be checked.
    Unchecked,
    /// Gate open, Ready not yet True (the kubelet has not caught up): soon an endpoint.
    Opening,
    /// Ready with its gate open: an endpoint of the Service.
    Serving,
}

/// The built-in gates on one pod: it must not restart, nor wait in a reason that does not
/// clear by itself (`kube_access::STUCK_REASONS`), nor fail; `was_serving` pods must stay ready.
pub fn judge(pod: &Pod, was_serving: bool) -> Judgement {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if pod.metadata.deletion_timestamp.is_some() {
        return Judgement::Leaving;
    }
    let Some(status) = &pod.status else {
        return Judgement::Starting("not scheduled yet".into());
    };
    if status.phase.as_deref() == Some("Failed") {
        return Judgement::Failed(format!(
            "pod {name} failed: {}",
            status.message.clone().unwrap_or_default()
        ));
    }
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w
                .reason
                .as_deref()
                .filter(|r| kube_access::STUCK_REASONS.contains(r))
        {
            return Judgement::Failed(format!(
                "pod {name}: container {} is in {reason}: {}",
                c.name,
                w.message.clone().unwrap_or_default()
            ));
        }
        if c.restart_count > 0 {
            let last = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| {
                    format!(
                        " (last exit code {}{})",
                        t.exit_code,
                        t.reason
                            .as_deref()
                            .map(|r| format!(", {r}"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            return Judgement::Failed(format!(
                "pod {name}: container {} restarted {} time(s){last}",
                c.name, c.restart_count
            ));
        }
    }
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .cloned()
    };
    let containers_ready = condition("ContainersReady").is_some_and(|c| c.status == "True");
    if !containers_ready {
        let why = condition("Ready")
            .and_then(|c| c.message)
            .unwrap_or_else(|| "containers not ready".into());
        if was_serving {
            return Judgement::Failed(format!("pod {name} stopped being ready: {why}"));
        }
        return Judgement::Starting(why);
    }
    if condition(GATE).is_none_or(|c| c.status != "True") {
        return Judgement::Unchecked;
    }
    if condition("Ready").is_some_and(|c| c.status == "True") {
        Judgement::Serving
    } else {
        Judgement::Opening
    }
}

/// The canary's pods (by its selector), sorted by name.
pub async fn list(cluster: &Cluster, ns: &str, selector: &str) -> Result<Vec<Pod>, String> {
    let mut pods = cluster
        .pods(ns)
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("list the canary's pods: {}", kube_error(&e)))?
        .items;
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(pods)
}

/// How long one check may take, the API server's proxy included.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a body read for `contains` (a health answer is small; a huge one is cut).
const BODY_LIMIT: usize = 256 * 1024;

/// Runs `check` on `pod` through the API server's pod proxy
/// (`/api/v1/namespaces/NS/pods/NAME[:PORT]/proxy/PATH`): `Err` holds the evidence.
pub async fn run_check(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    check: &Check,
) -> Result<(), String> {
    let target = match check.port {
        Some(port) => format!("{pod}:{port}"),
        None => pod.to_owned(),
    };
    let url = format!("/api/v1/namespaces/{ns}/pods/{target}/proxy{}", check.path);
    let what = format!("GET {} on pod {target}", check.path);
    let request = http::Request::get(&url)
        .body(kube::client::Body::empty())
        .map_err(|e| format!("{what}: {e}"))?;
    let answer = tokio::time::timeout(CHECK_TIMEOUT, async {
        let response = cluster
            .client
            .send(request)
            .await
            .map_err(|e| format!("{what}: {}", kube_error(&e)))?;
        let status = response.status().as_u16();
        let body = read_capped(response.into_body()).await;
        Ok::<_, String>((status, body))
    })
    .await
    .map_err(|_| format!("{what}: no answer within {}s", CHECK_TIMEOUT.as_secs()))??;
    let (status, body) = answer;
    let excerpt = || {
        let text = protocol::text::one_line(&String::from_utf8_lossy(&body));
        let cut: String = text.chars().take(160).collect();
        if cut.len() < text.len() {
            format!("{cut}...")
        } else {
            cut
        }
    };
    if status != check.status {
        return Err(format!(
            "{what} answered {status}, expected {}: {:?}",
            check.status,
            excerpt()
        ));
    }
    if let Some(text) = &check.contains
        && !String::from_utf8_lossy(&body).contains(text.as_str())
    {
        return Err(format!(
            "{what} answered {status} without {text:?}: {:?}",
            excerpt()
        ));
    }
    Ok(())
}

/// The body up to `BODY_LIMIT` bytes (the rest is not read).
async fn read_capped(mut body: kube::client::Body) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    let mut out = Vec::new();
    while out.len() < BODY_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = BODY_LIMIT - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    out
}

/// Sets the pod's readiness gate: from now on it is Ready, an endpoint of the Service.
pub async fn open_gate(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    passed: usize,
) -> Result<(), String> {
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": GATE, "status": "True", "reason": "ChecksPassed",
        "message": format!("k8s-deploy: {passed} check(s) passed"),
        "lastTransitionTime": protocol::time::now_rfc3339(),
    }]}});
    cluster
        .pods(ns)
        .patch_status(pod, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| format!("open the readiness gate of pod {pod}: {}", kube_error(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "users-canary-1"}, "status": status}))
            .unwrap_or_default()
    }

    #[test]
    fn a_canary_pod_is_judged_by_restarts_stuck_reasons_and_its_gate() {
        let restarted = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "users", "image": "i", "imageID": "", "ready": true,
            "restartCount": 2, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        assert_eq!(
            judge(&restarted, false),
            Judgement::Failed(
                "pod users-canary-1: container users restarted 2 time(s) (last exit code 1, Error)"
                    .into()
            )
        );
        let stuck = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "users", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]}),
        );
        assert_eq!(
            judge(&stuck, false),
            Judgement::Failed(
                "pod users-canary-1: container users is in ImagePullBackOff: not found".into()
            )
        );
        let gated = pod(json!({"phase": "Running", "conditions": [
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady"}]}));
        assert_eq!(judge(&gated, false), Judgement::Unchecked);
        let opening = pod(json!({"phase": "Running", "conditions": [
            {"type": "ContainersReady", "status": "True"}, {"type": "Ready", "status": "False"},
            {"type": GATE, "status": "True"}]}));
        assert_eq!(judge(&opening, true), Judgement::Opening);
        let serving = pod(json!({"phase": "Running", "conditions": [
            {"type": "ContainersReady", "status": "True"}, {"type": "Ready", "status": "True"},
            {"type": GATE, "status": "True"}]}));
        assert_eq!(judge(&serving, true), Judgement::Serving);
        let unready = pod(json!({"phase": "Running", "conditions": [
            {"type": "ContainersReady", "status": "False"},
            {"type": "Ready", "status": "False", "message": "containers with unready status: [users]"}]}));
        assert_eq!(
            judge(&unready, false),
            Judgement::Starting("containers with unready status: [users]".into())
        );
        assert_eq!(
            judge(&unready, true),
            Judgement::Failed(
                "pod users-canary-1 stopped being ready: containers with unready status: [users]"
                    .into()
            )
        );
    }
}
