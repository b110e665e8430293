//! `params.canary`: a release through a canary, driven by this resource alone (no service mesh,
//! no controller in the cluster), with Argo Rollouts' vocabulary: `steps` of `weight` and
//! `pause`, `checks`, a failure budget, abort and rollback.
//!
//! For each changed Deployment that already runs (the stable one), a Deployment
//! `<name>-canary` runs the new template with the stable selector's labels plus
//! `k8s-deploy/track: canary`, so the Service sends it traffic by replica share: a weight of
//! 25 % of 4 stable replicas is 1 canary pod beside the 4. Each canary pod carries a readiness
//! gate (`k8s-deploy/canary-checked`): it becomes an endpoint only after its containers are
//! ready *and* every check passed on it through the API server's pod proxy (a weight step is
//! done when its share of pods is Ready, i.e. serving), so a release that
//! fails its checks serves no client request. A `pause` keeps checking every canary pod (now
//! serving) every `interval`. Gates: a canary pod restarting, waiting in a reason that does not
//! clear (ImagePullBackOff, CrashLoopBackOff, ...), not ready in `timeout`, or no longer ready.
//!
//! When every step passed, the stable Deployment takes the new template through the normal
//! revision-judged rollout (rolled back if it fails), then the canary goes. On a failed gate,
//! a spent failure budget or an abort, the canary is scaled to zero and deleted; the stable
//! Deployment is never changed.

mod pods;

use crate::cluster::{Cluster, kube_error};
use crate::put::{Plan, apply};
use crate::source::CanaryParams;
use anyhow::bail;
use futures_util::future::try_join_all;
use kube::api::{DeleteParams, Patch, PatchParams};
use pods::Judgement;
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The label (and selector key) that tells canary pods from stable ones.
pub const TRACK: &str = "k8s-deploy/track";
/// The label naming the Deployment a canary is the canary of.
pub const CANARY_OF: &str = "k8s-deploy/canary-of";
/// The readiness gate of canary pods, set True by k8s-deploy once the checks passed.
pub const GATE: &str = "k8s-deploy/canary-checked";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Weight(u32),
    Pause(Duration),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Weight(w) => write!(f, "{w}%"),
            Step::Pause(d) => write!(f, "pause {}", protocol::duration::format(*d)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub deployment: Option<String>,
    pub path: String,
    pub port: Option<u16>,
    pub status: u16,
    pub contains: Option<String>,
}

/// `params.canary`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    pub interval: Duration,
    pub budget: u32,
    /// Only these Deployments get a canary (empty: every one that already runs).
    pub deployments: Vec<String>,
}

impl Canary {
    pub fn read(p: &CanaryParams) -> Result<Self, FieldError> {
        if p.steps.is_empty() {
            return Err(FieldError::new(
                "params.canary.steps",
                "must list at least one step, e.g. [{weight: 25}, {pause: 2m}, {weight: 50}]",
            ));
        }
        let mut steps = Vec::new();
        for (i, s) in p.steps.iter().enumerate() {
            let field = format!("params.canary.steps[{i}]");
            if steps.last() == Some(&Step::Weight(100)) {
                return Err(FieldError::new(
                    field,
                    "comes after weight: 100, where the release is complete; remove it",
                ));
            }
            steps.push(match (s.weight, &s.pause) {
                (Some(w), None) if (1..=100).contains(&w) => Step::Weight(w),
                (Some(_), None) => {
                    return Err(FieldError::new(
                        format!("{field}.weight"),
                        "must be a percentage from 1 to 100",
                    ));
                }
                (None, Some(d)) => Step::Pause(parse_duration(d).ok_or_else(|| {
                    FieldError::new(
                        format!("{field}.pause"),
                        "must be a duration like \"30s\", \"2m\"",
                    )
                })?),
                _ => {
                    return Err(FieldError::new(
                        field,
                        "set exactly one of weight (a percentage) or pause (a duration)",
                    ));
                }
            });
        }
        if !steps.iter().any(|s| matches!(s, Step::Weight(_))) {
            return Err(FieldError::new(
                "params.canary.steps",
                "needs a weight step, e.g. {weight: 25}: pauses alone start no canary",
            ));
        }
        let mut checks = Vec::new();
        for (i, c) in p.checks.iter().enumerate() {
            let field = format!("params.canary.checks[{i}]");
            let path_ok = c.path.starts_with('/')
                && !c
                    .path
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '#');
            if !path_ok {
                return Err(FieldError::new(
                    format!("{field}.path"),
                    "must start with / and hold no spaces, control characters or #, e.g. /health",
                ));
            }
            let status = c.expect_status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(FieldError::new(
                    format!("{field}.expect_status"),
                    "must be an HTTP status from 100 to 599",
                ));
            }
            if c.port == Some(0) {
                return Err(FieldError::new(
                    format!("{field}.port"),
                    "must be a port from 1 to 65535",
                ));
            }
            checks.push(Check {
                deployment: c.deployment.clone(),
                path: c.path.clone(),
                port: c.port,
                status,
                contains: c.contains.clone().filter(|t| !t.is_empty()),
            });
        }
        let interval = match &p.interval {
            None => Duration::from_secs(5),
            Some(t) => parse_duration(t)
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| {
                    FieldError::new(
                        "params.canary.interval",
                        "must be a duration of at least 100ms, like \"5s\"",
                    )
                })?,
        };
        Ok(Self {
            steps,
            checks,
            interval,
            budget: p.failure_budget,
            deployments: p.deployments.clone(),
        })
    }
}

/// One canaried Deployment and its canary's state.
#[derive(Debug)]
struct Target {
    name: String,
    canary: String,
    /// The stable Deployment's replicas: what weights are shares of.
    stable: i32,
    /// The canary Deployment, without `spec.replicas`.
    object: Value,
    /// Label selector of its pods.
    selector: String,
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
struct Stopped {
    line: String,
    first_failure: Option<Instant>,
}

/// The Deployments a plan changes that already run (a canary needs a stable version).
pub(crate) fn existing(plan: &Plan) -> Vec<String> {
    plan.planned
        .iter()
        .filter(|n| plan.previous.iter().any(|(p, _)| p == *n))
        .cloned()
        .collect()
}

/// The canaried Deployments: those of `canary.deployments` (or all) among `existing`.
fn canaried(plan: &Plan, canary: &Canary) -> Vec<String> {
    existing(plan)
        .into_iter()
        .filter(|n| canary.deployments.is_empty() || canary.deployments.contains(n))
        .collect()
}

/// Whether the put changes `name`'s pod template: a manifest is previewed by the API server
/// (server-side apply with `dryRun=All`, so defaults and merging are the server's); an image
/// set alone changes it when the container's image differs. An unchanged Deployment needs
/// no canary (a release of several services often changes one).
async fn changes(cluster: &Cluster, plan: &Plan, name: &str) -> anyhow::Result<bool> {
    let Some((_, before)) = plan.previous.iter().find(|(n, _)| n == name) else {
        return Ok(true);
    };
    let mut template = before.clone();
    if let Some((_, doc)) = plan
        .manifests
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
    {
        let preview = cluster.preview(doc, &plan.namespace, plan.force).await?;
        // Read through the same type as `previous`, so only a real difference differs.
        let typed: k8s_openapi::api::core::v1::PodTemplateSpec =
            serde_json::from_value(preview["spec"]["template"].clone())?;
        template = serde_json::to_value(typed)?;
    }
    for (deployment, container, reference) in &plan.set_images {
        if deployment == name
            && let Some(list) = template["spec"]["containers"].as_array_mut()
            && let Some(c) = list.iter_mut().find(|c| c["name"] == container.as_str())
        {
            c["image"] = Value::String(reference.clone());
        }
    }
    Ok(template != *before)
}

/// Checks that `deployments` and every check name a Deployment this put changes (before any
/// change). One that does not run yet is deployed without a canary: nothing to compare with.
pub(crate) fn check_names(canary: &Canary, plan: &Plan) -> Result<(), FieldError> {
    let changed = &plan.planned;
    let listing = || {
        if changed.is_empty() {
            "none".to_owned()
        } else {
            changed.join(", ")
        }
    };
    for (i, d) in canary.deployments.iter().enumerate() {
        if !changed.contains(d) {
            return Err(FieldError::new(
                format!("params.canary.deployments[{i}]"),
                format!(
                    "\"{d}\" is not a Deployment this put changes; those are: {}",
                    listing()
                ),
            ));
        }
    }
    for (i, c) in canary.checks.iter().enumerate() {
        if let Some(d) = &c.deployment
            && (!changed.contains(d)
                || !(canary.deployments.is_empty() || canary.deployments.contains(d)))
        {
            return Err(FieldError::new(
                format!("params.canary.checks[{i}].deployment"),
                format!(
                    "\"{d}\" is not a Deployment this put releases through the canary; those are: {}",
                    if canary.deployments.is_empty() {
                        listing()
                    } else {
                        canary.deployments.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Releases `plan` through the canary: what the canary does not cover first (other kinds,
/// Deployments new to the namespace), then the steps, then the promotion. Returns the
/// Deployments changed and the steps reached.
pub(crate) async fn release(
    cluster: &Cluster,
    plan: &Plan,
    canary: &Canary,
    ctx: &Context,
) -> anyhow::Result<(Vec<String>, String)> {
    let ns = &plan.namespace;
    let existing = existing(plan);
    let names = canaried(plan, canary);
    // Existing Deployments change at the promotion, all together; the rest goes first.
    let at_promotion = |doc: &Value| {
        doc["kind"] == "Deployment"
            && doc["metadata"]["name"]
                .as_str()
                .is_some_and(|n| existing.iter().any(|c| c == n))
    };
    let first = Plan {
        manifests: plan
            .manifests
            .iter()
            .filter(|(_, d)| !at_promotion(d))
            .cloned()
            .collect(),
        set_images: Vec::new(),
        planned: plan
            .planned
            .iter()
            .filter(|n| !existing.contains(n))
            .cloned()
            .collect(),
        previous: Vec::new(),
        canary: None,
        ..plan.clone()
    };
    let mut touched = Vec::new();
    if !first.manifests.is_empty() || first.ephemeral.is_some() {
        touched = apply(cluster, &first, ctx).await?;
    }
    let new: Vec<&String> = plan
        .planned
        .iter()
        .filter(|n| !existing.contains(n))
        .collect();
    if !new.is_empty() {
        tracing::info!(
            "{} did not run before: deployed without a canary (nothing to compare with)",
            new.iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if existing.is_empty() {
        return Ok((touched, "none (no stable version)".into()));
    }
    let mut targets = Vec::new();
    for name in &names {
        if changes(cluster, plan, name).await? {
            targets.push(target(cluster, plan, canary, name).await?);
        } else {
            tracing::info!("{name}: its pod template does not change; no canary");
        }
    }
    // A canary an earlier build left (killed before it could clean up) goes first: its pods
    // run another release and must not count for this one.
    for t in &targets {
        let left = cluster
            .deployments(ns)
            .get_opt(&t.canary)
            .await
            .map_err(|e| anyhow::anyhow!("read {}: {}", t.canary, kube_error(&e)))?;
        if left.is_some() {
            let gone = remove(cluster, ns, &[(t.canary.clone(), t.selector.clone())]).await;
            tracing::warn!("a canary left by an earlier build: {gone}");
        }
    }
    let guard = ctx.on_abort.register({
        let (cluster, ns) = (cluster.clone(), ns.clone());
        let canaries: Vec<(String, String)> = targets
            .iter()
            .map(|t| (t.canary.clone(), t.selector.clone()))
            .collect();
        move || async move {
            let gone = remove(&cluster, &ns, &canaries).await;
            format!(
                "{gone}; the stable {} not changed",
                if canaries.len() == 1 {
                    "Deployment was"
                } else {
                    "Deployments were"
                }
            )
        }
    });
    let mut reached = Vec::new();
    let outcome = if targets.is_empty() {
        Ok(())
    } else {
        run_steps(
            cluster,
            ns,
            canary,
            plan.timeout,
            &mut targets,
            &mut reached,
        )
        .await
    };
    let canaries: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.canary.clone(), t.selector.clone()))
        .collect();
    if let Err(stopped) = outcome {
        let gone = remove(cluster, ns, &canaries).await;
        let timing = stopped
            .first_failure
            .map(|t| {
                format!(
                    " {:.1}s after the first failed check",
                    t.elapsed().as_secs_f64()
                )
            })
            .unwrap_or_default();
        drop(guard);
        bail!(
            "{}; {gone}{timing}; {} still {} the previous release",
            stopped.line,
            existing.join(", "),
            if existing.len() == 1 { "runs" } else { "run" }
        );
    }
    // Promotion: the stable Deployments take the new templates (normal rollout, rolled back
    // if it fails), then the canaries go.
    tracing::info!(
        "{}: promoting {}",
        if names.is_empty() {
            "no canary asked for"
        } else {
            "canary passed every step"
        },
        existing.join(", ")
    );
    let promote = Plan {
        manifests: plan
            .manifests
            .iter()
            .filter(|(_, d)| at_promotion(d))
            .cloned()
            .collect(),
        planned: existing.clone(),
        ephemeral: None,
        rollback: true,
        canary: None,
        ..plan.clone()
    };
    let promoted = apply(cluster, &promote, ctx).await;
    let gone = remove(cluster, ns, &canaries).await;
    drop(guard);
    let promoted = promoted.map_err(|e| anyhow::anyhow!("{e:#}; {gone}"))?;
    tracing::info!("{gone}");
    reached.push("promoted".to_owned());
    for n in promoted {
        if !touched.contains(&n) {
            touched.push(n);
        }
    }
    Ok((touched, reached.join(", ")))
}

/// The canary Deployment of `name`: the new template, the stable selector plus the canary
/// labels, the readiness gate.
async fn target(
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
    let live = serde_json::to_value(&live)?;
    let doc = plan
        .manifests
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .map(|(_, d)| d);
    let mut template = match doc {
        Some(d) => d["spec"]["template"].clone(),
        None => live["spec"]["template"].clone(),
    };
    for (deployment, container, reference) in &plan.set_images {
        if deployment == name
            && let Some(list) = template["spec"]["containers"].as_array_mut()
            && let Some(c) = list.iter_mut().find(|c| c["name"] == container.as_str())
        {
            c["image"] = Value::String(reference.clone());
        }
    }
    let stable = doc
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .or_else(|| live["spec"]["replicas"].as_i64())
        .unwrap_or(1) as i32;
    let canary_name = format!("{name}-canary");
    let of = kube_access::label_value(name);
    let mut selector = live["spec"]["selector"].clone();
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

async fn run_steps(
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

/// How long a removal waits for the canary's pods to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// Scales each canary to zero, deletes it and waits (bounded) for its pods to go. Returns the
/// line to print.
async fn remove(cluster: &Cluster, ns: &str, canaries: &[(String, String)]) -> String {
    let api = cluster.deployments(ns);
    let mut said = Vec::new();
    for (name, selector) in canaries {
        let zero = json!({"spec": {"replicas": 0}});
        // Scaling first (the scale subresource) takes the pods out of the endpoints at once;
        // the delete follows.
        let scaled = api
            .patch_scale(name, &PatchParams::default(), &Patch::Merge(&zero))
            .await;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                if scaled.is_err() {
                    continue; // never made
                }
            }
            Err(e) => {
                said.push(format!("could not delete {name}: {}", kube_error(&e)));
                continue;
            }
        }
        let deadline = Instant::now() + GONE_WITHIN;
        loop {
            match pods::list(cluster, ns, selector).await {
                Ok(p) if p.is_empty() => {
                    said.push(format!("removed {name}"));
                    break;
                }
                Ok(p) if Instant::now() >= deadline => {
                    said.push(format!(
                        "deleted {name}, {} pod(s) still terminating",
                        p.len()
                    ));
                    break;
                }
                Err(e) => {
                    said.push(format!("deleted {name} ({e})"));
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    if said.is_empty() {
        "no canary was running".to_owned()
    } else {
        said.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{CanaryStepParam, CheckParam};

    fn params(steps: serde_json::Value) -> CanaryParams {
        serde_json::from_value(json!({"steps": steps})).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn weights_are_shares_of_the_stable_replicas_rounded_up() {
        assert_eq!(replicas_for(4, 25), 1);
        assert_eq!(replicas_for(4, 50), 2);
        assert_eq!(replicas_for(3, 10), 1);
        assert_eq!(replicas_for(3, 50), 2);
        assert_eq!(replicas_for(0, 50), 1);
        assert_eq!(replicas_for(10, 99), 10);
    }

    #[test]
    fn canary_params_are_read_with_one_line_per_mistake() {
        let ok = Canary::read(&params(
            json!([{"weight": 25}, {"pause": "1m"}, {"weight": 100}]),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok.steps,
            vec![
                Step::Weight(25),
                Step::Pause(Duration::from_secs(60)),
                Step::Weight(100)
            ]
        );
        assert_eq!((ok.interval, ok.budget), (Duration::from_secs(5), 0));
        let err = |p: CanaryParams| {
            Canary::read(&p)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err(params(json!([]))),
            "params.canary.steps: must list at least one step, e.g. [{weight: 25}, {pause: 2m}, {weight: 50}]"
        );
        assert!(err(params(json!([{"weight": 0}]))).starts_with("params.canary.steps[0].weight: "));
        assert!(
            err(params(json!([{"weight": 101}]))).starts_with("params.canary.steps[0].weight: ")
        );
        assert!(
            err(params(json!([{"weight": 5, "pause": "1m"}])))
                .starts_with("params.canary.steps[0]: set exactly one")
        );
        assert!(err(params(json!([{}]))).starts_with("params.canary.steps[0]: set exactly one"));
        assert!(
            err(params(json!([{"pause": "1 hour"}]))).starts_with("params.canary.steps[0].pause: ")
        );
        assert!(err(params(json!([{"pause": "1m"}]))).contains("needs a weight step"));
        assert!(
            err(params(json!([{"weight": 100}, {"pause": "1m"}])))
                .starts_with("params.canary.steps[1]: comes after weight: 100")
        );
        let with = |check: serde_json::Value| CanaryParams {
            steps: vec![CanaryStepParam {
                weight: Some(10),
                pause: None,
            }],
            checks: vec![
                serde_json::from_value::<CheckParam>(check).unwrap_or_else(|e| panic!("{e}")),
            ],
            interval: None,
            failure_budget: 0,
            deployments: Vec::new(),
        };
        assert!(err(with(json!({"path": "health"}))).starts_with("params.canary.checks[0].path: "));
        assert!(err(with(json!({"path": "/a b"}))).starts_with("params.canary.checks[0].path: "));
        assert!(
            err(with(json!({"path": "/", "expect_status": 42})))
                .starts_with("params.canary.checks[0].expect_status: ")
        );
        assert!(
            err(with(json!({"path": "/", "port": 0})))
                .starts_with("params.canary.checks[0].port: ")
        );
        let mut fast = with(json!({"path": "/"}));
        fast.interval = Some("10ms".into());
        assert!(err(fast).starts_with("params.canary.interval: "));
    }
}
