//! What `out` reads from the build before anything changes: the manifests (file and line on a
//! YAML error, never the source text), the image of each `images` entry (a gcr-image get
//! directory's `image-ref`, or a reference), and the images written into the Deployments the
//! manifests describe.

use anyhow::bail;
use protocol::FieldError;
use protocol::paths::{inside, read_text};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The manifests' documents, in order, with where they came from.
pub fn read_manifests(sources: &Path, paths: &[String]) -> anyhow::Result<Vec<(String, Value)>> {
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
pub fn resolve_image(sources: &Path, image: &str, field: &str) -> anyhow::Result<String> {
    if let Some(reference) = protocol::image_ref::read(sources, image, field)? {
        return Ok(reference);
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

/// Writes each `images` entry into the Deployment of the manifests it names (its container: the
/// one named, the only one, or the one named like the Deployment). Returns the entries placed.
pub fn images_into_manifests(
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
