//! `out`: apply manifests, set images (by digest), wait for every touched Deployment, roll
//! back on failure when asked; or create/delete an ephemeral namespace.
//!
//! Everything is read and checked before the first change: manifests parsed (file and line on
//! a YAML error), image directories read, Deployments and containers looked up (a missing one
//! lists those that exist).

use crate::Version;
use crate::cluster::Cluster;
use crate::source::{Config, PutParams, valid_name};
use crate::state;
use crate::wait;
use anyhow::bail;
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError, Metadata, Response};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::paths::{inside, read_text, stays_inside};

/// The manifests' documents, in order, with where they came from.
fn read_manifests(sources: &Path, paths: &[String]) -> anyhow::Result<Vec<(String, Value)>> {
    let mut files = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let path = inside(sources, p, &format!("params.manifests[{i}]"))?;
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect();
            entries.sort();
            files.extend(entries.into_iter().map(|e| {
                (
                    format!(
                        "{p}/{}",
                        e.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    e,
                )
            }));
        } else if path.is_file() {
            files.push((p.clone(), path));
        } else {
            return Err(FieldError::new(
                format!("params.manifests[{i}]"),
                format!("{p} does not exist"),
            )
            .into());
        }
    }
    let mut docs = Vec::new();
    for (name, path) in files {
        let text = read_text(sources, &path, "params.manifests")?;
        // The parser's message and position only: its snippet would quote the manifest's
        // lines, and a Secret's stringData is in them.
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
            anyhow::anyhow!(
                "params.manifests: {name}: invalid YAML: {}",
                crate::cluster::one_line(&e.without_snippet().to_string())
            )
        })?;
        for (n, doc) in parsed.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
            for field in ["apiVersion", "kind"] {
                if !doc[field].is_string() {
                    bail!(
                        "params.manifests: {name}: document {} has no {field}",
                        n + 1
                    );
                }
            }
            if !doc["metadata"]["name"].is_string() {
                bail!(
                    "params.manifests: {name}: document {} has no metadata.name",
                    n + 1
                );
            }
            docs.push((name.clone(), doc));
        }
    }
    Ok(docs)
}

/// The image reference for one `images` entry: a gcr-image get directory's `image-ref`, or a reference.
fn resolve_image(sources: &Path, image: &str, field: &str) -> anyhow::Result<String> {
    if let Ok(dir) = inside(sources, image, field)
        && dir.is_dir()
    {
        stays_inside(sources, &dir.join("image-ref"), field)?;
        let reference = std::fs::read_to_string(dir.join("image-ref"))
            .map_err(|_| FieldError::new(field, format!("{image} has no image-ref file; give the directory of a gcr-image get step, or an image reference")))?;
        return Ok(reference.trim().to_owned());
    }
    if !image.contains('/') && !image.contains(':') {
        return Err(FieldError::new(
            field,
            format!("{image} is neither a directory of the build nor an image reference"),
        )
        .into());
    }
    if !image.contains('@') {
        tracing::warn!(
            "{field}: {image} is a tag, not a digest; the deploy is not pinned to what was tested"
        );
    }
    Ok(image.to_owned())
}

pub async fn put(
    config: &Config,
    params: PutParams,
    sources: &Path,
    ctx: &Context,
) -> anyhow::Result<Response<Version>> {
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
        (None, Some(f)) => Some(
            read_text(
                sources,
                &inside(sources, f, "params.namespace_file")?,
                "params.namespace_file",
            )?
            .trim()
            .to_owned(),
        ),
        (None, None) => None,
    };
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
        if params.ephemeral_namespace.is_some()
            || !params.images.is_empty()
            || !params.manifests.is_empty()
        {
            return Err(FieldError::new(
                "params.delete_namespace",
                "goes alone, with namespace or namespace_file",
            )
            .into());
        }
        let cluster = Cluster::connect(config).await?;
        let deleted = cluster.delete_namespace(&namespace).await?;
        tracing::info!(
            "namespace {namespace} {}",
            if deleted {
                "deleted"
            } else {
                "was already gone"
            }
        );
        return Ok(Response::new(Version {
            namespace: namespace.clone(),
            revision: "deleted".into(),
        })
        .with_metadata(
            Metadata::new()
                .with("namespace", namespace)
                .with("deleted", deleted.to_string()),
        ));
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

    let cluster = Cluster::connect(config).await?;
    if let Some(prefix) = &params.ephemeral_namespace {
        let labels = [
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
        ];
        let labels: Vec<(&str, String)> = labels
            .into_iter()
            .map(|(k, v)| (k, label_value(&v)))
            .collect();
        cluster.ensure_namespace(&namespace, &labels).await?;
        tracing::info!("namespace {namespace} ready");
    }

    // Templates before the change, for rollback.
    let before = state::deployed(&cluster, &namespace, &[]).await?;
    let mut previous: Vec<(String, Value)> = Vec::new();
    for d in &before {
        if let Ok(full) = cluster.deployments(&namespace).get(&d.name).await {
            let template = serde_json::to_value(full.spec.map(|s| s.template).unwrap_or_default())?;
            previous.push((d.name.clone(), template));
        }
    }

    // If Concourse stops the step from here on (abort, step timeout), undo what can be undone.
    let mut planned: Vec<String> = manifests
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
        .filter_map(|(_, d)| d["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    for (entry, _) in &images {
        if !planned.contains(&entry.deployment) {
            planned.push(entry.deployment.clone());
        }
    }
    let abort_guard = ctx.on_abort.register({
        let (cluster, namespace, previous) = (cluster.clone(), namespace.clone(), previous.clone());
        let rollback = params.rollback_on_failure;
        move || abort_rollout(cluster, namespace, planned, previous, rollback)
    });

    let mut touched: Vec<String> = Vec::new();
    for (source_name, doc) in &manifests {
        let applied = cluster
            .apply(doc, &namespace, params.force_conflicts)
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

    // Images: Deployments and containers must exist (after the manifests).
    let now = state::deployed(&cluster, &namespace, &[]).await?;
    for (i, (entry, reference)) in images.iter().enumerate() {
        let Some(d) = now.iter().find(|d| d.name == entry.deployment) else {
            let names: Vec<&str> = now.iter().map(|d| d.name.as_str()).collect();
            bail!(FieldError::new(
                format!("params.images[{i}].deployment"),
                format!(
                    "no Deployment \"{}\" in namespace {namespace}; it has: {}",
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
            None if d.containers.len() == 1 => d.containers[0].name.clone(),
            None => d
                .containers
                .iter()
                .find(|c| c.name == d.name)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        };
        if !d.containers.iter().any(|c| c.name == container) {
            let names: Vec<&str> = d.containers.iter().map(|c| c.name.as_str()).collect();
            bail!(FieldError::new(
                format!("params.images[{i}].container"),
                format!(
                    "Deployment {} has no container \"{container}\"; it has: {}",
                    d.name,
                    names.join(", ")
                )
            ));
        }
        if !in_manifests.contains(&i) {
            cluster
                .set_image(&namespace, &d.name, &container, reference)
                .await?;
        }
        tracing::info!("{}/{container} -> {reference}", d.name);
        if !touched.contains(&d.name) {
            touched.push(d.name.clone());
        }
    }

    if params.wait.unwrap_or(true) {
        let deadline = protocol::duration::deadline_after(timeout);
        let mut failures = Vec::new();
        for name in &touched {
            if let Err(why) = wait::wait(&cluster, &namespace, name, deadline).await {
                failures.push(why);
            }
        }
        if !failures.is_empty() {
            if params.rollback_on_failure {
                // This path rolls back itself; an abort during it still finds the hook.
                let mut restored = Vec::new();
                for name in &touched {
                    match previous.iter().find(|(n, _)| n == name) {
                        Some((_, template)) => {
                            cluster.restore_template(&namespace, name, template).await?;
                            restored.push(name.clone());
                        }
                        None => {
                            tracing::warn!("{name} is new in this deploy: nothing to roll back to")
                        }
                    }
                }
                let deadline = protocol::duration::deadline_after(timeout);
                for name in &restored {
                    if let Err(why) = wait::wait(&cluster, &namespace, name, deadline).await {
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
            bail!("{}", failures.join("; "));
        }
    }

    drop(abort_guard);
    let after = state::deployed(&cluster, &namespace, &config.deployments).await?;
    let revision = state::revision(&after);
    let mut metadata = Metadata::new().with("namespace", namespace.as_str());
    for d in after.iter().filter(|d| touched.contains(&d.name)) {
        let images: Vec<String> = d.containers.iter().map(|c| c.image.clone()).collect();
        metadata.push(d.name.as_str(), images.join(" "));
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
            Some((_, template)) => match cluster.restore_template(&namespace, name, template).await
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

/// Label values: at most 63 characters of [A-Za-z0-9._-].
fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect::<String>()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Writes each `images` entry into the Deployment of the manifests it names (its container: the
/// one named, the only one, or the one named like the Deployment). Returns the entries placed.
fn images_into_manifests(
    manifests: &mut [(String, Value)],
    images: &[(crate::source::ImageParam, String)],
) -> Vec<usize> {
    let mut placed = Vec::new();
    for (i, (entry, reference)) in images.iter().enumerate() {
        for (_, doc) in manifests.iter_mut() {
            if doc["kind"] != "Deployment" || doc["metadata"]["name"] != entry.deployment.as_str() {
                continue;
            }
            let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array_mut()
            else {
                continue;
            };
            let index = match &entry.container {
                Some(c) => containers.iter().position(|x| x["name"] == c.as_str()),
                None if containers.len() == 1 => Some(0),
                None => containers
                    .iter()
                    .position(|x| x["name"] == entry.deployment.as_str()),
            };
            if let Some(index) = index {
                containers[index]["image"] = Value::String(reference.clone());
                placed.push(i);
            }
        }
    }
    placed
}
