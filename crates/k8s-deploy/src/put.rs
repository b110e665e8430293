//! `out`: apply manifests, set images (by digest), wait for every touched Deployment, roll
//! back on failure when asked; or create/delete an ephemeral namespace.
//!
//! Everything is read and checked before the first change: manifests parsed (file and line on
//! a YAML error), image directories read, Deployments and containers looked up (a missing one
//! lists those that exist).

use crate::Version;
use crate::canary::{self, Canary};
use crate::cluster::Cluster;
use crate::source::{Config, PutParams, valid_name};
use crate::state;
use crate::wait;
use anyhow::bail;
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError, Metadata, Response};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

use crate::manifests::{images_into_manifests, read_manifests, resolve_image};
use crate::namespaces::{delete_namespace, label_value, prune};

/// Everything a deploy will do, read and checked before the first change: a typo in an
/// `images` entry, a bad manifest or a missing container changes nothing in the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub namespace: String,
    /// Labels of the ephemeral namespace to create, when asked.
    pub ephemeral: Option<Vec<(&'static str, String)>>,
    /// Manifests to apply, with the `images` of the Deployments they describe written in.
    pub manifests: Vec<(String, Value)>,
    /// `(deployment, container, reference)` for Deployments the manifests do not describe.
    pub set_images: Vec<(String, String, String)>,
    /// The Deployments this deploy changes, in order.
    pub planned: Vec<String>,
    /// Their templates before the change (those that existed), for a rollback.
    pub previous: Vec<(String, Value)>,
    pub timeout: Duration,
    pub wait: bool,
    pub rollback: bool,
    pub force: bool,
    /// Release through a canary (`canary`).
    pub canary: Option<Canary>,
}

pub async fn put(
    config: &Config,
    params: PutParams,
    sources: &Path,
    ctx: &Context,
) -> anyhow::Result<Response<Version>> {
    let request = read(config, params, sources, ctx)?;
    let cluster = Cluster::connect(config).await?;
    let request = match request {
        Request::DeleteNamespace(namespace) => return delete_namespace(&cluster, namespace).await,
        Request::Prune(prefix, older_than) => return prune(&cluster, &prefix, older_than).await,
        Request::Deploy(r) => r,
    };
    let plan = plan(&cluster, request).await?;
    let (touched, steps) = match &plan.canary {
        Some(canary) => {
            let (touched, steps) = canary::release(&cluster, &plan, canary, ctx).await?;
            (touched, Some(steps))
        }
        None => (apply(&cluster, &plan, ctx).await?, None),
    };
    respond(&cluster, config, &plan, &touched, steps).await
}

/// A deploy as read from the request, before the one look at the cluster.
struct Read {
    namespace: String,
    ephemeral: Option<Vec<(&'static str, String)>>,
    manifests: Vec<(String, Value)>,
    images: Vec<(crate::source::ImageParam, String)>,
    in_manifests: Vec<usize>,
    timeout: Duration,
    wait: bool,
    rollback: bool,
    force: bool,
    canary: Option<Canary>,
}

enum Request {
    DeleteNamespace(String),
    /// The janitor: namespaces of this prefix older than this.
    Prune(String, Duration),
    Deploy(Read),
}

/// Reads and checks the request and the build's files; no request to the cluster.
fn read(
    config: &Config,
    params: PutParams,
    sources: &Path,
    ctx: &Context,
) -> anyhow::Result<Request> {
    let timeout = match &params.timeout {
        Some(t) => parse_duration(t).ok_or_else(|| {
            FieldError::new("params.timeout", "must be a duration like \"5m\", \"90s\"")
        })?,
        None => Duration::from_secs(300),
    };
    let explicit_ns = match (&params.namespace, &params.namespace_file) {
        (Some(_), Some(_)) => {
            return Err(FieldError::conflict("params.namespace", "params.namespace_file").into());
        }
        (Some(n), None) => Some(n.clone()),
        (None, Some(f)) => Some(protocol::paths::param_text(
            sources,
            f,
            "params.namespace_file",
        )?),
        (None, None) => None,
    };
    if let Some(age) = &params.delete_namespaces_older_than {
        let older_than = parse_duration(age).ok_or_else(|| {
            FieldError::new(
                "params.delete_namespaces_older_than",
                "must be a duration like \"6h\", \"90m\"",
            )
        })?;
        let Some(prefix) = &params.ephemeral_namespace else {
            return Err(FieldError::new(
                "params.delete_namespaces_older_than",
                "goes with ephemeral_namespace: PREFIX (the namespaces it made)",
            )
            .into());
        };
        if params.delete_namespace
            || explicit_ns.is_some()
            || !params.images.is_empty()
            || !params.manifests.is_empty()
            || params.canary.is_some()
        {
            return Err(FieldError::new(
                "params.delete_namespaces_older_than",
                "goes alone, with ephemeral_namespace",
            )
            .into());
        }
        return Ok(Request::Prune(prefix.clone(), older_than));
    }
    let namespace = match (&params.ephemeral_namespace, &explicit_ns) {
        (Some(_), Some(_)) => {
            return Err(
                FieldError::conflict("params.ephemeral_namespace", "params.namespace").into(),
            );
        }
        (Some(prefix), None) => {
            let id = ctx
                .build
                .id
                .clone()
                .unwrap_or_else(|| std::process::id().to_string());
            format!("{prefix}-{id}")
        }
        (None, Some(n)) => n.clone(),
        (None, None) => config.namespace.clone(),
    };
    if !valid_name(&namespace) {
        return Err(FieldError::new(
            "params.namespace",
            format!("\"{namespace}\" is not a DNS label (lowercase letters, digits and -)"),
        )
        .into());
    }
    if params.delete_namespace {
        if !params.images.is_empty() || !params.manifests.is_empty() || params.canary.is_some() {
            return Err(FieldError::new(
                "params.delete_namespace",
                "goes alone, with namespace, namespace_file or ephemeral_namespace",
            )
            .into());
        }
        return Ok(Request::DeleteNamespace(namespace));
    }
    let mut manifests = read_manifests(sources, &params.manifests)?;
    let mut images = Vec::new();
    for (i, entry) in params.images.iter().enumerate() {
        let field = format!("params.images[{i}].image");
        images.push((entry.clone(), resolve_image(sources, &entry.image, &field)?));
    }
    // An image for a Deployment the manifests describe goes into the manifest itself, so the
    // apply rolls out the right image at once (never the manifest's placeholder first).
    let in_manifests = images_into_manifests(&mut manifests, &images);
    if manifests.is_empty() && images.is_empty() && params.ephemeral_namespace.is_none() {
        return Err(FieldError::new(
            "params",
            "set images, manifests or ephemeral_namespace (or delete_namespace)",
        )
        .into());
    }
    let canary = match &params.canary {
        None => None,
        Some(_) if params.wait == Some(false) => {
            return Err(FieldError::conflict("params.canary", "params.wait: false").into());
        }
        Some(_) if images.is_empty() && manifests.is_empty() => {
            return Err(FieldError::new(
                "params.canary",
                "goes with images or manifests: it releases the Deployments they change",
            )
            .into());
        }
        Some(c) => Some(Canary::read(c)?),
    };
    let ephemeral = params.ephemeral_namespace.as_ref().map(|prefix| {
        [
            ("app.kubernetes.io/managed-by", "k8s-deploy".to_owned()),
            ("concourse.ci/prefix", prefix.clone()),
            (
                "concourse.ci/pipeline",
                ctx.build.pipeline_name.clone().unwrap_or_default(),
            ),
            (
                "concourse.ci/job",
                ctx.build.job_name.clone().unwrap_or_default(),
            ),
            (
                "concourse.ci/build",
                ctx.build.name.clone().unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, label_value(&v)))
        .collect()
    });
    Ok(Request::Deploy(Read {
        namespace,
        ephemeral,
        manifests,
        images,
        in_manifests,
        timeout,
        wait: params.wait.unwrap_or(true),
        rollback: params.rollback_on_failure,
        force: params.force_conflicts,
        canary,
    }))
}

/// Checks every `images` entry against the Deployments the manifests describe and those the
/// namespace has (one LIST), and keeps the current templates for a rollback. No change yet.
async fn plan(cluster: &Cluster, r: Read) -> anyhow::Result<Plan> {
    let namespace = r.namespace;
    let existing = cluster
        .deployments(&namespace)
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "list the Deployments of {namespace}: {}",
                crate::cluster::kube_error(&e)
            )
        })?
        .items;
    // Containers per Deployment: the manifests' word wins (they are applied first).
    let mut known: Vec<(String, Vec<String>)> = Vec::new();
    for (_, doc) in r
        .manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
    {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let containers = doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        known.push((name, containers));
    }
    for d in &existing {
        let summary = state::summarize(d);
        if !known.iter().any(|(n, _)| *n == summary.name) {
            known.push((
                summary.name,
                summary.containers.into_iter().map(|c| c.name).collect(),
            ));
        }
    }
    let mut planned: Vec<String> = r
        .manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
        .filter_map(|(_, d)| d["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut set_images = Vec::new();
    for (i, (entry, reference)) in r.images.iter().enumerate() {
        let Some((name, containers)) = known.iter().find(|(n, _)| *n == entry.deployment) else {
            let mut names: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            bail!(FieldError::new(
                format!("params.images[{i}].deployment"),
                format!(
                    "no Deployment \"{}\" in namespace {namespace} or the manifests; there are: {}",
                    entry.deployment,
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            ));
        };
        let container = match &entry.container {
            Some(c) => c.clone(),
            None if containers.len() == 1 => containers[0].clone(),
            None => containers
                .iter()
                .find(|c| *c == name)
                .cloned()
                .unwrap_or_default(),
        };
        if !containers.contains(&container) {
            bail!(FieldError::new(
                format!("params.images[{i}].container"),
                format!(
                    "Deployment {name} has no container \"{container}\"; it has: {}",
                    containers.join(", ")
                )
            ));
        }
        if !r.in_manifests.contains(&i) {
            set_images.push((name.clone(), container, reference.clone()));
        }
        if !planned.contains(name) {
            planned.push(name.clone());
        }
    }
    let mut previous = Vec::new();
    for d in &existing {
        let name = d.metadata.name.clone().unwrap_or_default();
        if planned.contains(&name)
            && let Some(spec) = &d.spec
        {
            previous.push((name, serde_json::to_value(&spec.template)?));
        }
    }
    let plan = Plan {
        namespace,
        ephemeral: r.ephemeral,
        manifests: r.manifests,
        set_images,
        planned,
        previous,
        timeout: r.timeout,
        wait: r.wait,
        rollback: r.rollback,
        force: r.force,
        canary: r.canary,
    };
    if let Some(c) = &plan.canary {
        canary::check_names(c, &plan)?;
    }
    Ok(plan)
}

/// Makes the changes, waits for the rollouts, and rolls back when asked. Returns the
/// Deployments changed.
pub(crate) async fn apply(
    cluster: &Cluster,
    plan: &Plan,
    ctx: &Context,
) -> anyhow::Result<Vec<String>> {
    let namespace = &plan.namespace;
    if let Some(labels) = &plan.ephemeral {
        let labels: Vec<(&str, String)> = labels.iter().map(|(k, v)| (*k, v.clone())).collect();
        cluster.ensure_namespace(namespace, &labels).await?;
        tracing::info!("namespace {namespace} ready");
    }
    // If Concourse stops the step from here on (abort, step timeout), undo what can be undone.
    let abort_guard = ctx.on_abort.register({
        let (cluster, namespace) = (cluster.clone(), namespace.clone());
        let (planned, previous, rollback, force) = (
            plan.planned.clone(),
            plan.previous.clone(),
            plan.rollback,
            plan.force,
        );
        move || abort_rollout(cluster, namespace, planned, previous, rollback, force)
    });
    let mut touched: Vec<String> = Vec::new();
    for (source_name, doc) in &plan.manifests {
        let applied = cluster
            .apply(doc, namespace, plan.force)
            .await
            .map_err(|e| anyhow::anyhow!("{source_name}: {e:#}"))?;
        tracing::info!("applied {applied}");
        if doc["kind"] == "Deployment" {
            touched.push(
                doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for (deployment, container, reference) in &plan.set_images {
        cluster
            .set_image(namespace, deployment, container, reference, plan.force)
            .await?;
        tracing::info!("{deployment}/{container} -> {reference}");
        if !touched.contains(deployment) {
            touched.push(deployment.clone());
        }
    }
    if plan.wait {
        wait_or_roll_back(cluster, plan, &touched).await?;
    }
    drop(abort_guard);
    Ok(touched)
}

/// Waits for every changed Deployment; on a failure, with `rollback_on_failure`, restores the
/// previous templates and waits for them (judged by revision, like the rollout).
async fn wait_or_roll_back(
    cluster: &Cluster,
    plan: &Plan,
    touched: &[String],
) -> anyhow::Result<()> {
    let namespace = &plan.namespace;
    let deadline = protocol::duration::deadline_after(plan.timeout);
    let mut failures = Vec::new();
    for name in touched {
        if let Err(why) = wait::wait(cluster, namespace, name, deadline).await {
            failures.push(why);
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    if !plan.rollback {
        bail!("{}", failures.join("; "));
    }
    let mut restored = Vec::new();
    for name in touched {
        match plan.previous.iter().find(|(n, _)| n == name) {
            Some((_, template)) => {
                cluster
                    .restore_template(namespace, name, template, plan.force)
                    .await?;
                restored.push(name.clone());
            }
            None => tracing::warn!("{name} is new in this deploy: nothing to roll back to"),
        }
    }
    let deadline = protocol::duration::deadline_after(plan.timeout);
    for name in &restored {
        if let Err(why) = wait::wait(cluster, namespace, name, deadline).await {
            bail!(
                "{}; the rollback of {name} did not finish either: {why}",
                failures.join("; ")
            );
        }
    }
    bail!(
        "{}; rolled back {} to the previous images",
        failures.join("; "),
        if restored.is_empty() {
            "nothing".to_owned()
        } else {
            restored.join(", ")
        }
    );
}

/// The version: the set of images now running.
async fn respond(
    cluster: &Cluster,
    config: &Config,
    plan: &Plan,
    touched: &[String],
    canary_steps: Option<String>,
) -> anyhow::Result<Response<Version>> {
    let namespace = plan.namespace.clone();
    let after = state::deployed(cluster, &namespace, &config.deployments).await?;
    let revision = state::revision(&after);
    let mut metadata = Metadata::new().with("namespace", namespace.as_str());
    for d in after.iter().filter(|d| touched.contains(&d.name)) {
        let images: Vec<String> = d.containers.iter().map(|c| c.image.clone()).collect();
        metadata.push(d.name.as_str(), images.join(" "));
    }
    if let Some(steps) = canary_steps {
        metadata.push("canary", steps);
    }
    metadata.push("rolled_out_at", protocol::time::now_rfc3339());
    Ok(Response::new(Version {
        namespace,
        revision,
    })
    .with_metadata(metadata))
}

/// The abort hook of a deploy: with `rollback_on_failure`, each planned Deployment that
/// existed before gets its previous template back (its rollout starts; the grace period leaves
/// no time to wait for it); without, the rollouts are left where they stood, and said so.
async fn abort_rollout(
    cluster: Cluster,
    namespace: String,
    planned: Vec<String>,
    previous: Vec<(String, Value)>,
    rollback: bool,
    force: bool,
) -> String {
    if !rollback {
        return format!(
            "left the rollout of {} in {namespace} where it stood (rollback_on_failure is off)",
            planned.join(", ")
        );
    }
    let mut said = Vec::new();
    for name in &planned {
        match previous.iter().find(|(n, _)| n == name) {
            Some((_, template)) => match cluster
                .restore_template(&namespace, name, template, force)
                .await
            {
                Ok(()) => {
                    let images: Vec<&str> = template["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["image"].as_str())
                        .collect();
                    said.push(format!("rolled back {name} to {}", images.join(" ")));
                }
                Err(e) => said.push(format!("could not roll back {name}: {e:#}")),
            },
            None => said.push(format!("{name} is new in this deploy; left as it is")),
        }
    }
    said.join(", ")
}
