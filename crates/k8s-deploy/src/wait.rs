//! Waiting for rollouts with the completion rule of `kubectl rollout status`, driven by a
//! watch on each Deployment (and a look at its pods on every change), not by polling.
//!
//! Complete: `observedGeneration >= generation`, `updatedReplicas == replicas (spec)`,
//! `status.replicas == updatedReplicas` (no old replicas left), `availableReplicas ==
//! updatedReplicas`. Failed: the `Progressing` condition says `ProgressDeadlineExceeded`, or a
//! pod's container waits with a reason that does not clear by itself
//! (`kube_access::STUCK_REASONS`: ImagePullBackOff, CrashLoopBackOff, ...; its message quoted).

use crate::cluster::{Cluster, kube_error};
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use std::time::Instant;

#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Done,
    Waiting(String),
    Failed(String),
}

/// The rule of `kubectl rollout status` on one Deployment.
pub fn evaluate(d: &Deployment) -> Progress {
    let name = d.metadata.name.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Progress::Waiting(format!("{name}: waiting for the rollout to be observed"));
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting(format!("{name}: waiting for the new spec to be observed"));
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Progress::Failed(format!(
            "{name}: exceeded its progress deadline ({})",
            c.message.clone().unwrap_or_default()
        ));
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < want || replicas > updated || available < updated {
        return Progress::Waiting(format!(
            "{name}: {updated}/{want} updated, {available} available{}",
            if replicas > updated {
                format!(", {} old pending termination", replicas - updated)
            } else {
                String::new()
            }
        ));
    }
    Progress::Done
}

fn selector_of(d: &Deployment) -> Option<String> {
    Some(
        d.spec
            .as_ref()?
            .selector
            .match_labels
            .as_ref()?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The `pod-template-hash` of the Deployment's current ReplicaSet: the one it controls whose
/// pod template, without that label, is the Deployment's template (the deployment controller's
/// and kubectl's rule, `FindNewReplicaSet`). `None` until the controller has made it. Pods are
/// judged by this hash, not by their images: a rollout that changes only configuration (env,
/// args, probes) keeps the image and still replaces every pod.
async fn current_hash(cluster: &Cluster, ns: &str, d: &Deployment) -> Option<String> {
    let uid = d.metadata.uid.as_deref()?;
    let selector = selector_of(d)?;
    let template = &d.spec.as_ref()?.template;
    let sets = cluster
        .replica_sets(ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    sets.items.into_iter().find_map(|rs| {
        let controlled = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true));
        if !controlled {
            return None;
        }
        let mut t = rs.spec?.template?;
        let hash = t.metadata.as_mut()?.labels.as_mut()?.remove(HASH)?;
        let mut want = template.clone();
        // An empty label map and no labels are the same template.
        for m in [&mut t.metadata, &mut want.metadata].into_iter().flatten() {
            if m.labels.as_ref().is_some_and(|l| l.is_empty()) {
                m.labels = None;
            }
        }
        (t == want).then_some(hash)
    })
}

const HASH: &str = "pod-template-hash";

/// Whether `pod` belongs to the current ReplicaSet (by `pod-template-hash`) and is not being
/// deleted (a terminating pod of any revision says nothing about this rollout).
fn is_current(pod: &Pod, hash: Option<&str>) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && hash.is_some_and(|h| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH))
                .is_some_and(|p| p == h)
        })
}

/// A failing container in a pod, with its own message.
fn failing_container(deployment: &str, pod: &Pod) -> Option<String> {
    for cs in pod.status.as_ref()?.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w
                .reason
                .as_ref()
                .filter(|r| kube_access::STUCK_REASONS.contains(&r.as_str()))
        {
            return Some(format!(
                "{deployment}: container {} of pod {} is in {reason}: {}",
                cs.name,
                pod.metadata.name.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default()
            ));
        }
    }
    None
}

/// Waits for `name` until done, failed or `deadline`, watching the Deployment and its pods.
/// Prints a line on every change.
pub async fn wait(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    deadline: Instant,
) -> Result<(), String> {
    let api = cluster.deployments(ns);
    let pods_api = cluster.pods(ns);
    let mut current = api
        .get(name)
        .await
        .map_err(|e| format!("{name}: {}", kube_error(&e)))?;
    let selector = selector_of(&current).unwrap_or_default();
    let mut hash = current_hash(cluster, ns, &current).await;
    let mut last_line = String::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("{name}: timed out; last seen: {last_line}"));
        }
        let secs = (remaining
            .as_secs()
            .clamp(1, u64::from(kube_access::WATCH_SECONDS))) as u32;
        let deployments = api
            .watch(
                &WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(secs),
                "0",
            )
            .await
            .map_err(|e| format!("{name}: watch failed: {}", kube_error(&e)))?;
        let pods = pods_api
            .watch(&WatchParams::default().labels(&selector).timeout(secs), "0")
            .await
            .map_err(|e| format!("{name}: watch of its pods failed: {}", kube_error(&e)))?;
        let (mut deployments, mut pods) = (Box::pin(deployments), Box::pin(pods));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(left) => return Err(format!("{name}: timed out; last seen: {last_line}")),
                event = deployments.next() => {
                    let d = match event {
                        None => break, // the server ended the watch: open new ones
                        Some(Err(e)) => return Err(format!("{name}: watch failed: {}", kube_error(&e))),
                        Some(Ok(WatchEvent::Added(d) | WatchEvent::Modified(d))) => d,
                        Some(Ok(WatchEvent::Deleted(_))) => return Err(format!("{name}: was deleted during the rollout")),
                        Some(Ok(WatchEvent::Bookmark(_))) => continue,
                        Some(Ok(WatchEvent::Error(e))) if e.code == 410 => break,
                        Some(Ok(WatchEvent::Error(e))) => return Err(format!("{name}: watch error: {}", e.message)),
                    };
                    current = d.clone();
                    hash = current_hash(cluster, ns, &current).await;
                    match evaluate(&d) {
                        Progress::Done => {
                            tracing::info!("{name}: rolled out");
                            return Ok(());
                        }
                        Progress::Failed(why) => return Err(why),
                        Progress::Waiting(line) => {
                            if line != last_line {
                                tracing::info!("{line}");
                                last_line = line;
                            }
                        }
                    }
                }
                event = pods.next() => {
                    match event {
                        None => break,
                        // Pods of an older template (what a rollback replaces) do not count.
                        Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                            if let Some(failure) = failing_container(name, &p) {
                                if !is_current(&p, hash.as_deref()) {
                                    // The current ReplicaSet may be newer than our last look.
                                    hash = current_hash(cluster, ns, &current).await;
                                }
                                if is_current(&p, hash.as_deref()) {
                                    return Err(failure);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
