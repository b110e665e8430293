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

mod config;
mod pods;
mod steps;

pub use config::{Canary, Check, Step};

use crate::cluster::{Cluster, kube_error};
use crate::put::{Plan, apply};
use anyhow::bail;
use kube::api::{DeleteParams, Patch, PatchParams};
use protocol::{Context, FieldError};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use steps::{run_steps, target};

/// The label (and selector key) that tells canary pods from stable ones.
pub const TRACK: &str = "k8s-deploy/track";
/// The label naming the Deployment a canary is the canary of.
pub const CANARY_OF: &str = "k8s-deploy/canary-of";
/// The readiness gate of canary pods, set True by k8s-deploy once the checks passed.
pub const GATE: &str = "k8s-deploy/canary-checked";

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
        // The same type as `previous`, so only a real difference differs.
        let preview = cluster
            .preview_deployment(doc, &plan.namespace, plan.force)
            .await?;
        if let Some(spec) = &preview.spec {
            template = serde_json::to_value(&spec.template)?;
        }
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
    // Set once the stable Deployments start taking the release (the promotion's own hook
    // rolls them back then); until that, an abort leaves them as they were.
    let promoting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard = ctx.on_abort.register({
        let (cluster, ns, promoting) = (cluster.clone(), ns.clone(), promoting.clone());
        let canaries: Vec<(String, String)> = targets
            .iter()
            .map(|t| (t.canary.clone(), t.selector.clone()))
            .collect();
        move || async move {
            let gone = remove(&cluster, &ns, &canaries).await;
            if promoting.load(std::sync::atomic::Ordering::SeqCst) {
                return gone;
            }
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
        } else if targets.is_empty() {
            "no canaried pod template changes"
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
    promoting.store(true, std::sync::atomic::Ordering::SeqCst);
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
