//! `out`: push an image from disk, or promote an existing digest to new tags.
//!
//! Push: every blob is made present first (HEAD; skip if there, else stream it), then child
//! manifests by digest, then the top manifest under each tag: a failure part-way never leaves
//! a tag pointing at missing blobs. Promote: the stored manifest is fetched by digest and put
//! under the new tags unchanged (same digest, no layer bytes); into another repository of the
//! same registry its blobs are mounted first.

use crate::Version;
use crate::image_input::{self, LocalManifest};
use crate::source::Config;
use anyhow::{Context as _, bail};
use protocol::{FieldError, Metadata, Response};
use registry::{Client, Repository};
use serde::Deserialize;
use std::path::Path;
use std::sync::PoisonError;

/// `out` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Path of an OCI layout directory, an OCI tarball, or a `docker save` tarball to push.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub image: Option<String>,
    /// Path of a build context to build with the Docker daemon (`DOCKER_HOST` or the local
    /// socket), then push.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub build: Option<String>,
    /// With `build`: the Dockerfile, relative to the context.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub dockerfile: Option<String>,
    /// With `build`: `--build-arg`s.
    #[serde(default, deserialize_with = "protocol::lenient::string_map")]
    pub build_args: std::collections::BTreeMap<String, String>,
    /// With `build`: the stage to build.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub target: Option<String>,
    /// Path of a `gcr-image` get directory (or a `sha256:` digest in this repository) to
    /// publish under new tags without pulling or pushing layers.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub promote: Option<String>,
    /// The tag to push or promote to.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub tag: Option<String>,
    /// Path of a file holding the tag.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub tag_file: Option<String>,
    /// Removed from the end of the tag (`.dev` turns `1.4.0.dev` into `1.4.0`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub strip_suffix: Option<String>,
    /// Appended to the tag (`.dev` turns a commit's short ref `1a2b3c4` into `1a2b3c4.dev`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub tag_suffix: Option<String>,
    /// More tags for the same digest.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub additional_tags: Vec<String>,
    /// Path of a file with more tags, separated by white space.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub additional_tags_file: Option<String>,
    /// With `image` or `build`: a repository of the same registry that likely holds some of
    /// the blobs (a shared base image); they are mounted from it instead of uploaded.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub mount_from: Option<String>,
}

enum Action {
    Push(String),
    Build(crate::docker::BuildRequest),
    /// From this repository, this digest.
    Promote(Repository, String),
}

pub async fn put(
    config: &Config,
    client: &Client,
    params: PutParams,
    sources: &Path,
    ctx: &protocol::Context,
) -> anyhow::Result<Response<Version>> {
    let repo = &config.repository;
    // Everything is read and validated before the first request.
    let chosen = [
        params.image.is_some(),
        params.promote.is_some(),
        params.build.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err(FieldError::new("params", "set only one of image, build and promote").into());
    }
    if params.build.is_none()
        && (params.dockerfile.is_some() || !params.build_args.is_empty() || params.target.is_some())
    {
        return Err(FieldError::new(
            "params.dockerfile",
            "dockerfile, build_args and target go with params.build",
        )
        .into());
    }
    let (action, promote_dir) = match (
        params.image.clone(),
        params.promote.clone(),
        params.build.clone(),
    ) {
        (Some(image), _, _) => (Action::Push(image), None),
        (_, Some(digest), _) if digest.starts_with("sha256:") => {
            registry::reference::validate_digest(&digest)
                .map_err(|m| FieldError::new("params.promote", m))?;
            (Action::Promote(repo.clone(), digest), None)
        }
        (_, Some(dir), _) => {
            let dir = inside(sources, &dir, "params.promote")?;
            let (from, digest) = read_get_dir(sources, &dir, repo)?;
            (Action::Promote(from, digest), Some(dir))
        }
        (_, _, Some(context)) => (
            Action::Build(build_request(&params, sources, &context, ctx)?),
            None,
        ),
        (None, None, None) => {
            return Err(FieldError::new(
                "params",
                "set params.image (a path to push), params.build (a context to build) or params.promote (a gcr-image get directory)",
            )
            .into());
        }
    };
    let tags = tags(&params, sources, promote_dir.as_deref())?;
    let mount_from = match &params.mount_from {
        None => None,
        Some(_) if params.promote.is_some() => {
            return Err(FieldError::new(
                "params.mount_from",
                "goes with image or build; promote mounts from its source by itself",
            )
            .into());
        }
        Some(m) => {
            let from = Repository::parse(m).map_err(|e| FieldError::new("params.mount_from", e))?;
            if from.host != repo.host {
                return Err(FieldError::new(
                    "params.mount_from",
                    format!(
                        "{from} is in another registry than {repo}; mounts work within one registry"
                    ),
                )
                .into());
            }
            Some(from)
        }
    };

    // Stopped by Concourse mid-push: nothing to undo (a blob without a manifest harms no one
    // and the registry's garbage collection takes it), but say which tags moved.
    let moved: Moved = Default::default();
    let _abort = ctx.on_abort.register({
        let (moved, tags, repo) = (moved.clone(), tags.clone(), repo.to_string());
        move || async move {
            let moved = moved.lock().unwrap_or_else(PoisonError::into_inner).clone();
            if moved.is_empty() {
                format!(
                    "stopped before any tag of {repo} moved; blobs uploaded so far stay unreferenced until the registry's garbage collection"
                )
            } else {
                let rest: Vec<&String> = tags.iter().filter(|t| !moved.contains(t)).collect();
                format!(
                    "stopped after moving {} of {repo}; not moved: {}",
                    moved.join(", "),
                    if rest.is_empty() {
                        "none".to_owned()
                    } else {
                        rest.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    }
                )
            }
        }
    });
    let digest = match action {
        Action::Push(image) => {
            let path = inside(sources, &image, "params.image")?;
            let local = image_input::open(&path)?;
            push(client, repo, &local, &tags, mount_from.as_ref(), &moved).await?
        }
        Action::Promote(from, digest) => {
            promote(client, &from, &digest, repo, &tags, &moved).await?
        }
        Action::Build(request) => {
            let docker = crate::docker::connect(ctx.env("DOCKER_HOST")).await?;
            let scratch = tempfile::tempdir().context("a temporary directory for the build")?;
            let saved = crate::docker::build(&docker, &request, scratch.path()).await?;
            let local = image_input::open(&saved)?;
            push(client, repo, &local, &tags, mount_from.as_ref(), &moved).await?
        }
    };
    let pinned = repo.pinned(&digest);
    let mut metadata = Metadata::new()
        .with("image", pinned.as_str())
        .with("tag", tags[0].as_str());
    if tags.len() > 1 {
        metadata.push("additional_tags", tags[1..].join(" "));
    }
    Ok(Response::new(Version {
        tag: tags[0].clone(),
        digest,
    })
    .with_metadata(metadata))
}

fn build_request(
    params: &PutParams,
    sources: &Path,
    context: &str,
    ctx: &protocol::Context,
) -> anyhow::Result<crate::docker::BuildRequest> {
    let dir = inside(sources, context, "params.build")?;
    if !dir.is_dir() {
        return Err(FieldError::new(
            "params.build",
            format!("{context} is not a directory (the build context)"),
        )
        .into());
    }
    let dockerfile = params
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let file = inside(&dir, &dockerfile, "params.dockerfile")?;
    if !file.is_file() {
        return Err(FieldError::new(
            "params.dockerfile",
            format!("{dockerfile} is not a file in {context}"),
        )
        .into());
    }
    let id: String = ctx
        .build
        .id
        .clone()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Ok(crate::docker::BuildRequest {
        context: dir,
        dockerfile,
        build_args: params
            .build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        target: params.target.clone(),
        local_tag: format!("gcr-image-build:b{id}-{}", std::process::id()),
    })
}

use protocol::paths::{inside, read_text, stays_inside};

fn read_file(sources: &Path, relative: &str, field: &str) -> anyhow::Result<String> {
    Ok(read_text(
        sources,
        &inside(sources, relative, field)?,
        field,
    )?)
}

/// The tags to write, the main one first, validated.
fn tags(
    params: &PutParams,
    sources: &Path,
    promote_dir: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    let main = match (&params.tag, &params.tag_file) {
        (Some(_), Some(_)) => {
            return Err(FieldError::conflict("params.tag", "params.tag_file").into());
        }
        (Some(tag), None) => tag.clone(),
        (None, Some(file)) => read_file(sources, file, "params.tag_file")?
            .trim()
            .to_owned(),
        (None, None) => match promote_dir {
            Some(dir) => stays_inside(sources, &dir.join("tag"), "params.promote")
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(std::fs::read_to_string(dir.join("tag"))?))
                .map_err(|_| {
                    FieldError::new(
                        "params.tag",
                        "missing, and the promote directory has no tag file to start from",
                    )
                })?
                .trim()
                .to_owned(),
            None => {
                return Err(FieldError::missing(
                    "params.tag",
                    "\"1.4.0.dev\" (or params.tag_file)",
                )
                .into());
            }
        },
    };
    let main = match &params.strip_suffix {
        Some(suffix) => main
            .strip_suffix(suffix.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                FieldError::new(
                    "params.strip_suffix",
                    format!("the tag \"{main}\" does not end with \"{suffix}\""),
                )
            })?,
        None => main,
    };
    let main = match &params.tag_suffix {
        Some(suffix) => format!("{main}{suffix}"),
        None => main,
    };
    registry::reference::validate_tag(&main)
        .map_err(|m| FieldError::new("params.tag", format!("\"{main}\" {m}")))?;
    let mut all = vec![main];
    let mut extra = params.additional_tags.clone();
    if let Some(file) = &params.additional_tags_file {
        extra.extend(
            read_file(sources, file, "params.additional_tags_file")?
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    for tag in extra {
        registry::reference::validate_tag(&tag)
            .map_err(|m| FieldError::new("params.additional_tags", format!("\"{tag}\" {m}")))?;
        if !all.contains(&tag) {
            all.push(tag);
        }
    }
    Ok(all)
}

/// `repository` and `digest` of a gcr-image get directory, which must be in our registry.
fn read_get_dir(
    sources: &Path,
    dir: &Path,
    target: &Repository,
) -> anyhow::Result<(Repository, String)> {
    let read = |name: &str| {
        stays_inside(sources, &dir.join(name), "params.promote")?;
        std::fs::read_to_string(dir.join(name))
            .map(|s| s.trim().to_owned())
            .map_err(|_| {
                FieldError::new(
                    "params.promote",
                    format!(
                        "{} has no {name} file; give the directory of a gcr-image get step",
                        dir.display()
                    ),
                )
            })
    };
    let repo = Repository::parse(&read("repository")?)
        .map_err(|m| FieldError::new("params.promote", format!("its repository file {m}")))?;
    let digest = read("digest")?;
    registry::reference::validate_digest(&digest)
        .map_err(|m| FieldError::new("params.promote", format!("its digest file {m}")))?;
    if repo.host != target.host {
        bail!(FieldError::new(
            "params.promote",
            format!(
                "{repo} is in another registry than {target}; promote copies within one registry"
            )
        ));
    }
    Ok((repo, digest))
}

async fn push(
    client: &Client,
    repo: &Repository,
    image: &image_input::LocalImage,
    tags: &[String],
    mount_from: Option<&Repository>,
    moved: &Moved,
) -> anyhow::Result<String> {
    let total: u64 = image.blobs.iter().map(|b| b.size).sum();
    tracing::info!(
        "pushing {} ({} blobs, {}) to {repo}",
        image.top.digest,
        image.blobs.len(),
        registry::push::human(total)
    );
    for blob in &image.blobs {
        client.push_blob(repo, blob, mount_from, &repo.path).await?;
    }
    for child in &image.children {
        client
            .put_manifest(repo, &child.digest, child.bytes.clone(), &child.media_type)
            .await?;
    }
    put_tags(client, repo, &image.top, tags, moved).await
}

/// The tags moved so far (for the abort line).
type Moved = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

async fn put_tags(
    client: &Client,
    repo: &Repository,
    manifest: &LocalManifest,
    tags: &[String],
    moved: &Moved,
) -> anyhow::Result<String> {
    for tag in tags {
        let digest = client
            .put_manifest(repo, tag, manifest.bytes.clone(), &manifest.media_type)
            .await?;
        if digest != manifest.digest {
            bail!(
                "{} was stored as {digest}, expected {}",
                repo.tagged(tag),
                manifest.digest
            );
        }
        tracing::info!("{} -> {}", repo.tagged(tag), manifest.digest);
        moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tag.clone());
    }
    Ok(manifest.digest.clone())
}

async fn promote(
    client: &Client,
    from: &Repository,
    digest: &str,
    to: &Repository,
    tags: &[String],
    moved: &Moved,
) -> anyhow::Result<String> {
    let manifest = client.manifest(from, digest).await?.with_context(|| {
        format!(
            "{} no longer exists; nothing to promote",
            from.pinned(digest)
        )
    })?;
    let top = LocalManifest {
        bytes: manifest.bytes,
        media_type: manifest.media_type,
        digest: manifest.digest,
    };
    if from != to {
        tracing::info!(
            "copying {} from {from} to {to} by mounting its blobs",
            top.digest
        );
        let what = format!("the manifest of {}", from.pinned(&top.digest));
        match registry::oci::document(&top.bytes, &what).map_err(anyhow::Error::msg)? {
            registry::oci::Document::Index(index) => {
                for child in &index.manifests {
                    let m = client
                        .manifest(from, &child.digest)
                        .await?
                        .with_context(|| format!("{} is missing", from.pinned(&child.digest)))?;
                    let image = registry::oci::image_manifest(
                        &m.bytes,
                        &format!("the manifest of {}", from.pinned(&child.digest)),
                    )
                    .map_err(anyhow::Error::msg)?;
                    mount_all(client, from, to, &image).await?;
                    client
                        .put_manifest(to, &child.digest, m.bytes, &m.media_type)
                        .await?;
                }
            }
            registry::oci::Document::Image(image) => mount_all(client, from, to, &image).await?,
        }
    }
    put_tags(client, to, &top, tags, moved).await
}

async fn mount_all(
    client: &Client,
    from: &Repository,
    to: &Repository,
    manifest: &registry::oci::ImageManifest,
) -> anyhow::Result<()> {
    for d in manifest.blobs() {
        let (digest, size) = (d.digest.as_str(), d.size);
        if client.blob_exists(to, digest).await? {
            continue;
        }
        if client.mount_blob(to, from, digest).await? != registry::Mount::Mounted {
            bail!(
                "{to} could not mount blob {digest} ({}) from {from}; the registry does not allow cross-repository mounts here",
                registry::push::human(size)
            );
        }
    }
    Ok(())
}
