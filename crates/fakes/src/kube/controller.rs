//! A simulated deployment controller (and the kubelet's side of it): ReplicaSets per template
//! revision, pods, replica counts and conditions moving forward one step per tick, the way
//! `kubectl rollout status` sees a real rollout.
//!
//! Failures, by what the template says: an image the configured registry does not have (or
//! whose reference contains `does-not-exist`) gives ImagePullBackOff; a container env
//! `FAKE_CRASH=true` gives CrashLoopBackOff; the annotation `fake.k8s.io/stall: "true"` stalls
//! the rollout. A rollout without progress for `progressDeadlineSeconds` gets
//! `Progressing=False, reason ProgressDeadlineExceeded`.

use super::resources;
use super::store::{self, key};
use super::{Shared, World, lock, notify};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const REVISION: &str = "deployment.kubernetes.io/revision";

/// How the controller tells an image that cannot be pulled.
#[derive(Debug, Clone, Default)]
pub enum Pullable {
    /// Every image pulls, except references containing `does-not-exist`.
    #[default]
    Any,
    /// Images of this registry host (`127.0.0.1:5000`) must exist in it (checked with a
    /// HEAD over plain HTTP); other hosts pull.
    Registry(String),
}

fn template_hash(template: &Value) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, template.to_string().as_bytes());
    d.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// Whether `image` can be pulled, per `pullable`.
pub fn can_pull(pullable: &Pullable, image: &str) -> bool {
    if image.contains("does-not-exist") {
        return false;
    }
    let Pullable::Registry(host) = pullable else {
        return true;
    };
    let Some(rest) = image.strip_prefix(&format!("{host}/")) else {
        return true;
    };
    let (repo, reference) = match rest.split_once('@') {
        Some((r, d)) => (r, d.to_owned()),
        None => match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t.to_owned()),
            _ => (rest, "latest".to_owned()),
        },
    };
    head_ok(host, &format!("/v2/{repo}/manifests/{reference}"))
}

/// A HEAD over plain HTTP/1.1 on loopback (hand-written: the fake has no HTTP client, and
/// this one request needs none).
fn head_ok(host: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    if s.write_all(
        format!(
            "HEAD {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).split(' ').nth(1) == Some("200")
}

/// One step of every rollout.
pub fn tick(world: &Shared, progress_at: &mut std::collections::HashMap<String, Instant>) {
    let mut w = lock(world);
    let deploy_r = resources::find("apps", "v1", "deployments").expect("served");
    let deployments = w.store.list(deploy_r, "", "", "");
    let mut changed = false;
    for d in deployments {
        changed |= step(&mut w, &d, progress_at);
    }
    changed |= endpoints(&mut w);
    drop(w);
    if changed {
        notify(world);
    }
}

fn pod_state(w: &World, template: &Value) -> Option<(String, String)> {
    for c in template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let image = c["image"].as_str().unwrap_or("");
        if !can_pull(&w.pullable, image) {
            return Some((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image \"{image}\": manifest unknown"),
            ));
        }
        let crash = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "FAKE_CRASH" && e["value"] == "true");
        if crash {
            return Some((
                "CrashLoopBackOff".into(),
                format!(
                    "back-off 10s restarting failed container={} pod=",
                    c["name"].as_str().unwrap_or("")
                ),
            ));
        }
    }
    None
}

fn pods_of<'a>(w: &'a World, ns: &str, rs_name: &str) -> impl Iterator<Item = Value> + 'a {
    let pod_r = resources::find("", "v1", "pods").expect("served");
    let rs_name = rs_name.to_owned();
    w.store
        .list(pod_r, ns, "", "")
        .into_iter()
        .filter(move |p| p["metadata"]["ownerReferences"][0]["name"] == rs_name.as_str())
}

/// Pods of a ReplicaSet whose Ready condition is true (container runtime).
fn ready_pods(w: &World, ns: &str, rs_name: &str) -> i64 {
    pods_of(w, ns, rs_name)
        .filter(super::kubelet::is_ready)
        .count() as i64
}

/// The first waiting reason among a ReplicaSet's pods that means the rollout cannot go on
/// (container runtime).
fn failure_of_pods(w: &World, ns: &str, rs_name: &str) -> Option<(String, String)> {
    pods_of(w, ns, rs_name).find_map(|p| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| {
                let waiting = &c["state"]["waiting"];
                let reason = waiting["reason"].as_str()?;
                matches!(
                    reason,
                    "ImagePullBackOff"
                        | "ErrImagePull"
                        | "CrashLoopBackOff"
                        | "CreateContainerConfigError"
                )
                .then(|| {
                    (
                        reason.to_owned(),
                        waiting["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
            })
    })
}

fn step(
    w: &mut World,
    d: &Value,
    progress_at: &mut std::collections::HashMap<String, Instant>,
) -> bool {
    let rs_r = resources::find("apps", "v1", "replicasets").expect("served");
    let deploy_r = resources::find("apps", "v1", "deployments").expect("served");
    let ns = d["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
    let name = d["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let id = format!("{ns}/{name}");
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let template = d["spec"]["template"].clone();
    let hash = template_hash(&template);
    let owned: Vec<Value> = w
        .store
        .list(rs_r, &ns, "", "")
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"])
        .collect();
    let max_revision = owned
        .iter()
        .filter_map(|rs| {
            rs["metadata"]["annotations"][REVISION]
                .as_str()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let mut changed = false;

    // The ReplicaSet of the current template, created (or revived by a rollback) at the next revision.
    let new_name = format!("{name}-{hash}");
    let mut new_rs = match owned
        .iter()
        .find(|rs| rs["metadata"]["name"] == new_name.as_str())
        .cloned()
    {
        Some(rs) => rs,
        None => {
            let mut t = template.clone();
            t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({"metadata": {"name": new_name, "labels": t["metadata"]["labels"],
                    "annotations": {REVISION: (max_revision + 1).to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": 0, "selector": selector, "template": t}, "status": {"replicas": 0}});
            progress_at.insert(id.clone(), Instant::now());
            changed = true;
            match w.store.create(rs_r, &ns, rs) {
                Ok(o) => o,
                Err(_) => return false,
            }
        }
    };
    // A revived ReplicaSet (rollback) moves to the newest revision.
    let current_revision = new_rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    if current_revision < max_revision {
        new_rs["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
        new_rs = w
            .store
            .update(rs_r, &ns, &new_name, new_rs.clone(), false)
            .unwrap_or(new_rs);
        progress_at.insert(id.clone(), Instant::now());
        changed = true;
    }
    let revision = new_rs["metadata"]["annotations"][REVISION]
        .as_str()
        .unwrap_or("1")
        .to_owned();
    let failure = if w.docker {
        failure_of_pods(w, &ns, &new_name)
    } else {
        pod_state(w, &template)
    };
    let stalled = d["metadata"]["annotations"]["fake.k8s.io/stall"] == "true";
    let paused = d["spec"]["paused"].as_bool().unwrap_or(false);

    // Replica movement: surge the new ReplicaSet by one, then retire old ones as new pods are ready.
    let new_replicas = new_rs["spec"]["replicas"].as_i64().unwrap_or(0);
    let new_ready = new_rs["status"]["readyReplicas"].as_i64().unwrap_or(0);
    let olds: Vec<Value> = owned
        .iter()
        .filter(|rs| rs["metadata"]["name"] != new_name.as_str())
        .cloned()
        .collect();
    let old_total: i64 = olds
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    if !paused && !stalled {
        let mut target_new = new_replicas;
        if new_replicas < desired && (failure.is_none() || new_replicas == 0) {
            target_new = new_replicas + 1;
        } else if new_replicas > desired {
            target_new = desired;
        }
        if target_new != new_replicas {
            new_rs["spec"]["replicas"] = json!(target_new);
            progress_at.insert(id.clone(), Instant::now());
        }
        // New pods become ready one tick after they are created, unless they fail.
        // Readiness gates hold a pod's Ready (kubelet rule), simulated pods included.
        let gated = new_rs["spec"]["template"]["spec"]["readinessGates"]
            .as_array()
            .is_some_and(|g| !g.is_empty());
        let ready = if w.docker || gated {
            ready_pods(w, &ns, &new_name).min(target_new)
        } else if failure.is_some() {
            0
        } else {
            new_replicas.min(target_new)
        };
        new_rs["status"] = json!({"replicas": target_new, "fullyLabeledReplicas": target_new, "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": new_rs["metadata"]["generation"]});
        if ready > new_ready {
            progress_at.insert(id.clone(), Instant::now());
        }
        if let Ok(o) = w.store.update(rs_r, &ns, &new_name, new_rs.clone(), false) {
            changed |= o["metadata"]["resourceVersion"] != new_rs["metadata"]["resourceVersion"];
            new_rs = o;
        }
        // Old ReplicaSets give up one replica per ready new pod above what is needed.
        let mut excess = (ready + old_total - desired).max(0);
        for old in &olds {
            let mut old = old.clone();
            let r = old["spec"]["replicas"].as_i64().unwrap_or(0);
            let give = r.min(excess);
            excess -= give;
            let left = r - give;
            old["spec"]["replicas"] = json!(left);
            old["status"] = json!({"replicas": left, "fullyLabeledReplicas": left, "readyReplicas": left, "availableReplicas": left, "observedGeneration": old["metadata"]["generation"]});
            let old_name = old["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if let Ok(o) = w.store.update(rs_r, &ns, &old_name, old.clone(), false) {
                changed |= o["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"];
            }
        }
    }
    changed |= sync_pods(w, &ns, &new_rs, failure.as_ref());
    for old in w.store.list(rs_r, &ns, "", "").into_iter().filter(|rs| {
        rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
            && rs["metadata"]["name"] != new_name.as_str()
    }) {
        // An old ReplicaSet's pods run its own template: a crash-looping revision keeps
        // crash-looping while it is scaled down, as on a real cluster.
        let own = if w.docker {
            None
        } else {
            pod_state(w, &old["spec"]["template"])
        };
        changed |= sync_pods(w, &ns, &old, own.as_ref());
    }

    // Deployment status, as the real controller reports it.
    let all: Vec<Value> = w
        .store
        .list(rs_r, &ns, "", "")
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"])
        .collect();
    let replicas: i64 = all
        .iter()
        .map(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    let available: i64 = all
        .iter()
        .map(|rs| rs["status"]["availableReplicas"].as_i64().unwrap_or(0))
        .sum();
    let updated = new_rs["status"]["replicas"].as_i64().unwrap_or(0);
    let complete = updated == desired && replicas == desired && available == desired;
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    if complete && w.completions.get(&id).is_none_or(|(g, _)| *g != generation) {
        w.completions
            .insert(id.clone(), (generation, Instant::now()));
    }
    let deadline =
        Duration::from_secs(d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600));
    let last_progress = *progress_at.entry(id.clone()).or_insert_with(Instant::now);
    let now = store::now();
    let progressing = if complete {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{new_name}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now})
    } else if last_progress.elapsed() > deadline {
        json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{new_name}\" has timed out progressing."), "lastUpdateTime": now, "lastTransitionTime": now})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet \"{new_name}\" is progressing."), "lastUpdateTime": now, "lastTransitionTime": now})
    };
    let available_ok = available >= desired - desired / 4;
    let available_cond = json!({"type": "Available", "status": if available_ok { "True" } else { "False" },
        "reason": if available_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
        "message": if available_ok { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
        "lastUpdateTime": now, "lastTransitionTime": now});
    let mut next = d.clone();
    let previous_conditions = d["status"]["conditions"].clone();
    let same_reasons = previous_conditions.as_array().is_some_and(|c| {
        c.iter()
            .any(|x| x["type"] == "Progressing" && x["reason"] == progressing["reason"])
            && c.iter()
                .any(|x| x["type"] == "Available" && x["status"] == available_cond["status"])
    });
    let conditions = if same_reasons {
        previous_conditions
    } else {
        json!([available_cond, progressing])
    };
    next["status"] = json!({"observedGeneration": d["metadata"]["generation"], "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": available, "availableReplicas": available, "unavailableReplicas": (replicas - available).max(0), "conditions": conditions});
    if next["status"]["unavailableReplicas"] == 0 {
        next["status"]
            .as_object_mut()
            .map(|m| m.remove("unavailableReplicas"));
    }
    next["metadata"]["annotations"][REVISION] = json!(revision);
    if next != *d {
        let k = key(deploy_r, &ns, &name);
        if w.store.get(&k).is_some() && w.store.update(deploy_r, &ns, &name, next, false).is_ok() {
            changed = true;
        }
    }
    changed
}

/// Keeps `rs`'s pods in step with its replica count and its failure, if any.
fn sync_pods(w: &mut World, ns: &str, rs: &Value, failure: Option<&(String, String)>) -> bool {
    let pod_r = resources::find("", "v1", "pods").expect("served");
    let rs_name = rs["metadata"]["name"].as_str().unwrap_or("");
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(0) as usize;
    let mut pods: Vec<Value> = w
        .store
        .list(pod_r, ns, "", "")
        .into_iter()
        .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == rs_name)
        .collect();
    let mut changed = false;
    while pods.len() > want {
        if let Some(p) = pods.pop() {
            let _ = w
                .store
                .delete(pod_r, ns, p["metadata"]["name"].as_str().unwrap_or(""));
            changed = true;
        }
    }
    let containers = rs["spec"]["template"]["spec"]["containers"].clone();
    let docker = w.docker;
    while pods.len() < want {
        w.pod_counter += 1;
        let pod_name = format!("{rs_name}-{:05x}", w.pod_counter * 7919 % 0xfffff);
        let pod = json!({"metadata": {"name": pod_name, "labels": rs["spec"]["template"]["metadata"]["labels"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs["metadata"]["uid"], "controller": true}]},
            "spec": rs["spec"]["template"]["spec"], "status": {"phase": "Pending"}});
        if let Ok(p) = w.store.create(pod_r, ns, pod) {
            pods.push(p);
            changed = true;
        }
    }
    // With a container runtime, the kubelet (`runtime`) writes pod status.
    for p in pods.into_iter().filter(|_| !docker) {
        let pod_name = p["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let statuses: Vec<Value> = containers
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| match failure {
                Some((reason, message)) => {
                    let message = if reason == "CrashLoopBackOff" { format!("{message}{pod_name}") } else { message.clone() };
                    json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": if reason == "CrashLoopBackOff" { 3 } else { 0 },
                           "state": {"waiting": {"reason": reason, "message": message}},
                           "lastState": if reason == "CrashLoopBackOff" { json!({"terminated": {"exitCode": 1, "reason": "Error"}}) } else { json!({}) }})
                }
                None => json!({"name": c["name"], "image": c["image"], "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": store::now()}}}),
            })
            .collect();
        let phase = if failure.is_some() {
            "Pending"
        } else {
            "Running"
        };
        let ready = if failure.is_some() { "False" } else { "True" };
        let status = super::kubelet::merge(
            &p,
            json!({"phase": phase, "conditions": [{"type": "ContainersReady", "status": ready}, {"type": "Ready", "status": ready}],
                   "containerStatuses": statuses, "podIP": "10.0.0.1"}),
        );
        if p["status"]["phase"] != phase
            || p["status"]["conditions"] != status["conditions"]
            || p["status"]["containerStatuses"].as_array().map(Vec::len) != Some(statuses.len())
            || p["status"]["containerStatuses"][0]["state"]
                .get("waiting")
                .is_some()
                != failure.is_some()
        {
            let mut next = p.clone();
            next["status"] = status;
            if w.store.update(pod_r, ns, &pod_name, next, false).is_ok() {
                changed = true;
            }
        }
    }
    changed
}

/// The Job controller: one pod at a time, a new one after each failure until `backoffLimit`,
/// `activeDeadlineSeconds`, and the conditions `kubectl wait --for=condition=complete` reads.
/// Without a container runtime the pods are simulated: an image that cannot be pulled waits
/// in ImagePullBackOff, any other pod succeeds on the next tick with an empty log.
pub fn jobs(world: &Shared) {
    let mut w = lock(world);
    let job_r = resources::find("batch", "v1", "jobs").expect("served");
    let pod_r = resources::find("", "v1", "pods").expect("served");
    let mut changed = false;
    for job in w.store.list(job_r, "", "", "") {
        let ns = job["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let uid = job["metadata"]["uid"].clone();
        let finished = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True");
        let pods: Vec<Value> = w
            .store
            .list(pod_r, &ns, "", "")
            .into_iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["uid"] == uid)
            .collect();
        if !w.docker {
            for p in &pods {
                changed |= simulate_job_pod(&mut w, p);
            }
        }
        let pods: Vec<Value> = w
            .store
            .list(pod_r, &ns, "", "")
            .into_iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["uid"] == uid)
            .collect();
        let phase = |p: &Value, ph: &str| p["status"]["phase"] == ph;
        let succeeded = pods.iter().filter(|p| phase(p, "Succeeded")).count() as i64;
        let failed = pods.iter().filter(|p| phase(p, "Failed")).count() as i64;
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !phase(p, "Succeeded") && !phase(p, "Failed"))
            .collect();
        let ready = active
            .iter()
            .filter(|p| super::kubelet::is_ready(p))
            .count();
        let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
        let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
        let now = store::now();
        let start_time = job["status"]["startTime"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| now.clone());
        // As the API serves it: zero counters are omitted, `ready` and `terminating` are not.
        let mut status = json!({"startTime": start_time, "ready": ready, "terminating": 0,
                                "uncountedTerminatedPods": {}});
        for (field, n) in [
            ("active", active.len() as i64),
            ("succeeded", succeeded),
            ("failed", failed),
        ] {
            if n > 0 {
                status[field] = json!(n);
            }
        }
        let deadline_passed = job["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .is_some_and(|limit| seconds_since(&start_time) >= limit);
        let outcome = if finished {
            None
        } else if succeeded >= completions {
            Some(("Complete", "", ""))
        } else if failed > backoff_limit {
            Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline_passed {
            Some((
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        if finished {
            status = job["status"].clone();
            status["ready"] = json!(ready);
        } else if let Some((kind, reason, message)) = outcome {
            let (interim, final_cond) = if kind == "Complete" {
                (
                    json!({"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now}),
                    json!({"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now}),
                )
            } else {
                (
                    json!({"type": "FailureTarget", "status": "True", "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now}),
                    json!({"type": "Failed", "status": "True", "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now}),
                )
            };
            status["conditions"] = json!([interim, final_cond]);
            if kind == "Complete" {
                status["completionTime"] = json!(now);
            }
            // A failed Job's running pods are killed.
            if kind == "Failed" {
                for p in &active {
                    let _ =
                        w.store
                            .delete(pod_r, &ns, p["metadata"]["name"].as_str().unwrap_or(""));
                }
                if let Some(m) = status.as_object_mut() {
                    m.remove("active");
                }
                status["ready"] = json!(0);
            }
        } else if active.is_empty() {
            // Another attempt (the first, or after a failure within the backoff limit).
            w.pod_counter += 1;
            let suffix: String = format!("{:05x}", w.pod_counter * 104_729 % 0xfffff);
            let pod = json!({"metadata": {"name": format!("{name}-{suffix}"), "labels": job["spec"]["template"]["metadata"]["labels"],
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": job["spec"]["template"]["spec"], "status": {"phase": "Pending"}});
            if w.store.create(pod_r, &ns, pod).is_ok() {
                status["active"] = json!(1);
            }
        }
        if job["status"] != status {
            let mut next = job.clone();
            next["status"] = status;
            if w.store.update(job_r, &ns, &name, next, false).is_ok() {
                changed = true;
            }
        }
    }
    changed |= collect_garbage(&mut w);
    drop(w);
    if changed {
        notify(world);
    }
}

/// Seconds since an RFC 3339 timestamp written by `store::now` (UTC, `Z`).
pub(crate) fn seconds_since(rfc3339: &str) -> i64 {
    let parse = |s: &str| -> Option<i64> {
        let (date, time) = s.trim_end_matches('Z').split_once('T')?;
        let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
        let t: Vec<i64> = time
            .split(':')
            .filter_map(|x| x.split('.').next()?.parse().ok())
            .collect();
        let (y, m, day) = (*d.first()?, *d.get(1)?, *d.get(2)?);
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + t.first()? * 3600 + t.get(1)? * 60 + t.get(2)?)
    };
    match (parse(rfc3339), parse(&store::now())) {
        (Some(then), Some(now)) => now - then,
        _ => 0,
    }
}

/// A Job's pod without a container runtime: ImagePullBackOff when its image cannot be
/// pulled, otherwise it runs and succeeds at once.
fn simulate_job_pod(w: &mut World, p: &Value) -> bool {
    let pod_r = resources::find("", "v1", "pods").expect("served");
    if p["status"]["phase"] != "Pending" {
        return false;
    }
    let ns = p["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
    let name = p["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let containers: Vec<Value> = p["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let blocked = containers
        .iter()
        .find(|c| !can_pull(&w.pullable, c["image"].as_str().unwrap_or("")));
    let now = store::now();
    let status = match blocked {
        Some(c) => {
            let image = c["image"].as_str().unwrap_or("");
            json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                   "containerStatuses": containers.iter().map(|c| json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": 0,
                       "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\": manifest unknown")}}})).collect::<Vec<_>>()})
        }
        None => {
            json!({"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
                       "containerStatuses": containers.iter().map(|c| json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": 0,
                           "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}})).collect::<Vec<_>>()})
        }
    };
    if p["status"] == status {
        return false;
    }
    let mut next = p.clone();
    next["status"] = status;
    w.store.update(pod_r, &ns, &name, next, false).is_ok()
}

/// The garbage collector: ReplicaSets, pods and Jobs' pods whose controlling owner is gone
/// are deleted (dependents orphaned on purpose carry no owner reference any more).
fn collect_garbage(w: &mut World) -> bool {
    let mut changed = false;
    for (plural, group) in [("replicasets", "apps"), ("pods", "")] {
        let r = resources::find(group, "v1", plural).expect("served");
        for o in w.store.list(r, "", "", "") {
            let Some(owner) = o["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|a| a.first())
            else {
                continue;
            };
            let owner_r = match owner["kind"].as_str() {
                Some("Deployment") => resources::find("apps", "v1", "deployments"),
                Some("ReplicaSet") => resources::find("apps", "v1", "replicasets"),
                Some("Job") => resources::find("batch", "v1", "jobs"),
                _ => None,
            };
            let Some(owner_r) = owner_r else { continue };
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
            let alive = w
                .store
                .get(&key(owner_r, ns, owner["name"].as_str().unwrap_or("")))
                .is_some_and(|x| x["metadata"]["uid"] == owner["uid"]);
            if !alive {
                let ns = ns.to_owned();
                let _ = w
                    .store
                    .delete(r, &ns, o["metadata"]["name"].as_str().unwrap_or(""));
                changed = true;
            }
        }
    }
    changed
}

/// The endpoints controller: for each Service with a selector, an `Endpoints` object of the
/// same name listing the pods it selects that have an IP and are not being deleted: Ready ones
/// under `addresses`, the others under `notReadyAddresses` (all under `addresses` with
/// `publishNotReadyAddresses`), with the Service's ports resolved to the target port.
fn endpoints(w: &mut World) -> bool {
    let svc_r = resources::find("", "v1", "services").expect("served");
    let ep_r = resources::find("", "v1", "endpoints").expect("served");
    let pod_r = resources::find("", "v1", "pods").expect("served");
    let mut changed = false;
    for svc in w.store.list(svc_r, "", "", "") {
        let ns = svc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = svc["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let selector = store::selector_string(&svc["spec"]["selector"]);
        if selector.is_empty() {
            continue;
        }
        let publish_all = svc["spec"]["publishNotReadyAddresses"] == true;
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        let mut pods = w.store.list(pod_r, &ns, &selector, "");
        pods.sort_by(|a, b| {
            a["status"]["podIP"]
                .as_str()
                .cmp(&b["status"]["podIP"].as_str())
        });
        for p in &pods {
            let Some(ip) = p["status"]["podIP"].as_str() else {
                continue;
            };
            if !p["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let address = json!({"ip": ip, "targetRef": {"kind": "Pod", "namespace": ns,
                "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}});
            if super::kubelet::is_ready(p) || publish_all {
                ready.push(address);
            } else {
                not_ready.push(address);
            }
        }
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|port| {
                let target = match &port["targetPort"] {
                    Value::Number(n) => json!(n),
                    Value::String(named) => pods
                        .iter()
                        .flat_map(|p| {
                            p["spec"]["containers"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                        })
                        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                        .find(|cp| cp["name"] == named.as_str())
                        .map(|cp| cp["containerPort"].clone())
                        .unwrap_or(Value::Null),
                    _ => port["port"].clone(),
                };
                let mut out =
                    json!({"port": target, "protocol": port["protocol"].as_str().unwrap_or("TCP")});
                if let Some(n) = port["name"].as_str() {
                    out["name"] = json!(n);
                }
                out
            })
            .collect();
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        let subsets = if ready.is_empty() && not_ready.is_empty() {
            json!([])
        } else {
            json!([subset])
        };
        let labels = svc["metadata"]["labels"].clone();
        match w.store.get(&store::key(ep_r, &ns, &name)).cloned() {
            Some(current) if current["subsets"] == subsets => {}
            Some(mut current) => {
                current["subsets"] = subsets;
                changed |= w.store.update(ep_r, &ns, &name, current, false).is_ok();
            }
            None => {
                let ep = json!({"metadata": {"name": name, "labels": labels}, "subsets": subsets});
                changed |= w.store.create(ep_r, &ns, ep).is_ok();
            }
        }
    }
    changed
}
