//! The canary's steps: a weight scales the canary and opens each pod's readiness gate once
//! its checks passed; a pause keeps checking; the built-in gates judge every pod all along.

use super::pods::{self, Judgement};
use super::{CANARY_OF, Canary, Check, GATE, Step, TRACK};
use crate::cluster::{Cluster, kube_error};
use crate::put::Plan;
use futures_util::future::try_join_all;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One canaried Deployment and its canary's state.
#[derive(Debug)]
pub(super) struct Target {
    name: String,
    pub(super) canary: String,
    /// The stable Deployment's replicas: what weights are shares of.
    stable: i32,
    /// The canary Deployment, without `spec.replicas`.
    object: Value,
    /// Label selector of its pods.
    pub(super) selector: String,
    checks: Vec<Check>,
    /// Pods whose gate k8s-deploy opened (they serve).
    serving: BTreeSet<String>,
    passed: u32,
    failed: u32,
    /// The first failed check, when it failed.
    first_failure: Option<Instant>,
    replicas: i32,
}

/// Why a canary stopped: the line, and when the first check failed (for the report).
pub(super) struct Stopped {
    pub(super) line: String,
    pub(super) first_failure: Option<Instant>,
}

/// The canary Deployment of `name`: the new template, the stable selector plus the canary
/// labels, the readiness gate.
pub(super) async fn target(
    cluster: &Cluster,
    plan: &Plan,
    canary: &Canary,
    name: &str,
) -> anyhow::Result<Target> {
    let ns = &plan.namespace;
    let live = cluster
        .deployments(ns)
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("read {name}: {}", kube_error(&e)))?;
    let spec = live.spec.unwrap_or_default();
    let doc = plan
        .manifests
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .map(|(_, d)| d);
    let mut template = match doc {
        Some(d) => d["spec"]["template"].clone(),
        None => serde_json::to_value(&spec.template)?,
    };
    for (deployment, container, reference) in &plan.set_images {
        if deployment == name
            && let Some(list) = template["spec"]["containers"].as_array_mut()
            && let Some(c) = list.iter_mut().find(|c| c["name"] == container.as_str())
        {
            c["image"] = Value::String(reference.clone());
        }
    }
    // What serves now (an autoscaler may have moved it from the manifest's count).
    let stable = spec
        .replicas
        .or_else(|| {
            doc.and_then(|d| d["spec"]["replicas"].as_i64())
                .and_then(|r| i32::try_from(r).ok())
        })
        .unwrap_or(1);
    let canary_name = format!("{name}-canary");
    let of = kube_access::label_value(name);
    let mut selector = json!({});
    if let Some(labels) = &spec.selector.match_labels {
        for (k, v) in labels {
            selector["matchLabels"][k] = json!(v);
        }
    }
    if let Some(expressions) = &spec.selector.match_expressions {
        selector["matchExpressions"] = json!(
            expressions
                .iter()
                .map(|e| {
                    let mut x = json!({"key": e.key, "operator": e.operator});
                    if let Some(values) = &e.values {
                        x["values"] = json!(values);
                    }
                    x
                })
                .collect::<Vec<_>>()
        );
    }
    selector["matchLabels"][TRACK] = json!("canary");
    selector["matchLabels"][CANARY_OF] = json!(of);
    template["metadata"]["labels"][TRACK] = json!("canary");
    template["metadata"]["labels"][CANARY_OF] = json!(of);
    let gates = &mut template["spec"]["readinessGates"];
    if !gates.is_array() {
        *gates = json!([]);
    }
    if let Some(list) = gates.as_array_mut()
        && !list.iter().any(|g| g["conditionType"] == GATE)
    {
        list.push(json!({"conditionType": GATE}));
    }
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": canary_name, "labels": {
            "app.kubernetes.io/managed-by": "k8s-deploy", CANARY_OF: of, TRACK: "canary"}},
        "spec": {"selector": selector, "template": template},
    });
    Ok(Target {
        name: name.to_owned(),
        canary: canary_name,
        stable,
        object,
        selector: format!("{TRACK}=canary,{CANARY_OF}={of}"),
        checks: canary
            .checks
            .iter()
            .filter(|c| c.deployment.as_deref().is_none_or(|d| d == name))
            .cloned()
            .collect(),
        serving: BTreeSet::new(),
        passed: 0,
        failed: 0,
        first_failure: None,
        replicas: 0,
    })
}

/// Canary replicas for `weight` percent of `stable` replicas: rounded up, at least one.
pub fn replicas_for(stable: i32, weight: u32) -> i32 {
    let stable = i64::from(stable.max(1));
    ((stable * i64::from(weight) + 99) / 100).max(1) as i32
}

pub(super) async fn run_steps(
    cluster: &Cluster,
    ns: &str,
    canary: &Canary,
    timeout: Duration,
    targets: &mut [Target],
    reached: &mut Vec<String>,
) -> Result<(), Stopped> {
    for (i, step) in canary.steps.iter().enumerate() {
        let label = format!("step {} ({step})", i + 1);
        match step {
            Step::Weight(100) => break,
            Step::Weight(w) => {
                try_join_all(
                    targets
                        .iter_mut()
                        .map(|t| scale(cluster, ns, canary, t, *w, timeout, &label)),
                )
                .await?;
            }
            Step::Pause(d) => {
                if targets.iter().all(|t| t.replicas == 0) {
                    tracing::info!("{label}: no canary pod yet, nothing to watch");
                } else {
                    try_join_all(
                        targets
                            .iter_mut()
                            .map(|t| hold(cluster, ns, canary, t, *d, &label)),
                    )
                    .await?;
                }
            }
        }
        reached.push(step.to_string());
    }
    Ok(())
}

impl Target {
    fn stop(&self, label: &str, why: impl std::fmt::Display) -> Stopped {
        Stopped {
            line: format!("{} canary stopped at {label}: {why}", self.name),
            first_failure: self.first_failure,
        }
    }

    fn progress(&self, label: &str) -> String {
        let checks = self.passed + self.failed;
        format!(
            "{} canary {label}: {} pod{} beside {} stable, checks {}/{checks} ok",
            self.name,
            self.replicas,
            if self.replicas == 1 { "" } else { "s" },
            self.stable,
            self.passed,
        )
    }

    /// Runs every check on `pod`; a failure counts against the budget. `Ok(true)` when all
    /// passed.
    async fn check_pod(
        &mut self,
        cluster: &Cluster,
        ns: &str,
        canary: &Canary,
        pod: &str,
        label: &str,
    ) -> Result<bool, Stopped> {
        let mut all = true;
        for check in self.checks.clone() {
            match pods::run_check(cluster, ns, pod, &check).await {
                Ok(()) => self.passed += 1,
                Err(evidence) => {
                    all = false;
                    self.failed += 1;
                    self.first_failure.get_or_insert_with(Instant::now);
                    if self.failed > canary.budget {
                        return Err(self.stop(
                            label,
                            format!(
                                "check {evidence} ({} failed, budget {})",
                                self.failed, canary.budget
                            ),
                        ));
                    }
                    tracing::warn!(
                        "{} canary: check {evidence} ({} failed, budget {})",
                        self.name,
                        self.failed,
                        canary.budget
                    );
                }
            }
        }
        Ok(all)
    }
}

/// How often the canary's pods are looked at while they start.
const LOOK: Duration = Duration::from_millis(500);

/// A weight step: the canary scaled to its share; each new pod checked before its gate opens;
/// done when the share is ready and serving.
async fn scale(
    cluster: &Cluster,
    ns: &str,
    canary: &Canary,
    t: &mut Target,
    weight: u32,
    timeout: Duration,
    label: &str,
) -> Result<(), Stopped> {
    let want = replicas_for(t.stable, weight);
    let mut object = t.object.clone();
    object["spec"]["replicas"] = json!(want);
    cluster
        .apply(&object, ns, true)
        .await
        .map_err(|e| t.stop(label, format!("{e:#}")))?;
    t.replicas = want;
    let deadline = protocol::duration::deadline_after(timeout);
    let mut last = String::new();
    loop {
        let pods = pods::list(cluster, ns, &t.selector)
            .await
            .map_err(|e| t.stop(label, e))?;
        let mut serving = 0;
        let mut waiting = Vec::new();
        let mut retry = false;
        for pod in &pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            match pods::judge(pod, t.serving.contains(&name)) {
                Judgement::Leaving => {}
                Judgement::Failed(why) => return Err(t.stop(label, why)),
                Judgement::Starting(why) => waiting.push(format!("pod {name}: {why}")),
                Judgement::Opening => waiting.push(format!("pod {name}: gate open, not Ready yet")),
                Judgement::Serving => serving += 1,
                Judgement::Unchecked => {
                    if t.check_pod(cluster, ns, canary, &name, label).await? {
                        pods::open_gate(cluster, ns, &name, t.checks.len())
                            .await
                            .map_err(|e| t.stop(label, e))?;
                        t.serving.insert(name.clone());
                        tracing::info!(
                            "{} canary: pod {name} passed {} check(s); its readiness gate is open",
                            t.name,
                            t.checks.len()
                        );
                    } else {
                        retry = true;
                    }
                }
            }
        }
        if serving >= want {
            tracing::info!("{}", t.progress(label));
            return Ok(());
        }
        let line = format!("{} canary {label}: {serving}/{want} pods serving", t.name);
        if line != last {
            tracing::info!("{line}");
            last = line;
        }
        if Instant::now() >= deadline {
            return Err(t.stop(
                label,
                format!(
                    "{serving}/{want} canary pods serving after {}{}",
                    protocol::duration::format(timeout),
                    waiting
                        .first()
                        .map(|w| format!("; {w}"))
                        .unwrap_or_default()
                ),
            ));
        }
        // A failed check (within the budget) is tried again after `interval`.
        let pace = if retry {
            canary.interval
        } else {
            LOOK.min(canary.interval)
        };
        tokio::time::sleep(pace).await;
    }
}

/// A pause: every `interval`, the gates on every canary pod and the checks on each.
async fn hold(
    cluster: &Cluster,
    ns: &str,
    canary: &Canary,
    t: &mut Target,
    pause: Duration,
    label: &str,
) -> Result<(), Stopped> {
    let end = protocol::duration::deadline_after(pause);
    loop {
        let pods = pods::list(cluster, ns, &t.selector)
            .await
            .map_err(|e| t.stop(label, e))?;
        for pod in &pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            match pods::judge(pod, t.serving.contains(&name)) {
                Judgement::Failed(why) => return Err(t.stop(label, why)),
                Judgement::Serving | Judgement::Opening | Judgement::Unchecked => {
                    t.check_pod(cluster, ns, canary, &name, label).await?;
                }
                Judgement::Leaving | Judgement::Starting(_) => {}
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::info!("{}", t.progress(label));
            return Ok(());
        }
        tokio::time::sleep(canary.interval.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_shares_of_the_stable_replicas_rounded_up() {
        assert_eq!(replicas_for(4, 25), 1);
        assert_eq!(replicas_for(4, 50), 2);
        assert_eq!(replicas_for(3, 10), 1);
        assert_eq!(replicas_for(3, 50), 2);
        assert_eq!(replicas_for(0, 50), 1);
        assert_eq!(replicas_for(10, 99), 10);
    }
}
