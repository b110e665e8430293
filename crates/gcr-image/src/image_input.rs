//! Reading an image from disk without unpacking it: an OCI layout directory, an OCI layout in
//! an (uncompressed) tarball, or a `docker save` tarball. Blobs stay where they are; a tarball
//! entry is a byte range of the tarball, streamed at push time.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use registry::oci::Document;
use registry::push::Blob;
use registry::sha256_digest;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A manifest to push, with its bytes as they must be stored.
#[derive(Debug, Clone)]
pub struct LocalManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

/// Everything to push: blobs, then child manifests (by digest), then the top manifest.
#[derive(Debug)]
pub struct LocalImage {
    pub blobs: Vec<Blob>,
    pub children: Vec<LocalManifest>,
    pub top: LocalManifest,
}

/// Where the bytes of named files are: a directory, or ranges of one tarball.
enum Store {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

impl Store {
    fn locate(&self, name: &str) -> Option<(PathBuf, u64, u64)> {
        match self {
            Store::Dir(dir) => {
                // Names come from the layout's own files (index.json, manifest.json): a name
                // with `..`, or a blob that is a symlink out of the layout, is not in it.
                let relative = Path::new(name);
                if !protocol::paths::is_plain_relative(relative) {
                    return None;
                }
                let path = dir.join(relative);
                let real = path.canonicalize().ok()?;
                if !real.starts_with(dir.canonicalize().ok()?) {
                    return None;
                }
                let size = std::fs::metadata(&real).ok()?.len();
                Some((real, 0, size))
            }
            Store::Tar { path, entries } => {
                let (offset, size) = entries.get(name.trim_start_matches("./"))?;
                Some((path.clone(), *offset, *size))
            }
        }
    }

    fn read(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let (path, offset, size) = self
            .locate(name)
            .with_context(|| format!("{name} is missing from the image"))?;
        if size > 64 * 1024 * 1024 {
            bail!("{name} is {size} bytes; too large for a manifest or config");
        }
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(size as usize);
        file.take(size).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn has(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }
}

/// Opens `path` (`params.image`) and finds what to push.
pub fn open(path: &Path) -> anyhow::Result<LocalImage> {
    let store = if path.is_dir() {
        Store::Dir(path.to_path_buf())
    } else if path.is_file() {
        index_tarball(path)?
    } else {
        bail!("params.image: {} does not exist", path.display());
    };
    if store.has("oci-layout") && store.has("index.json") {
        read_oci(&store)
    } else if store.has("manifest.json") {
        read_docker_save(&store)
    } else {
        bail!(
            "params.image: {} is neither an OCI layout (oci-layout + index.json) nor a docker save tarball (manifest.json)",
            path.display()
        )
    }
}

fn index_tarball(path: &Path) -> anyhow::Result<Store> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("params.image: open {}", path.display()))?;
    let mut magic = [0u8; 2];
    if file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b] {
        bail!(
            "params.image: {} is gzip-compressed; give the uncompressed .tar (what oci-build-task and docker save write)",
            path.display()
        );
    }
    file.seek(SeekFrom::Start(0))?;
    let mut archive = tar::Archive::new(file);
    let mut entries = HashMap::new();
    for entry in archive
        .entries_with_seek()
        .with_context(|| format!("params.image: {} is not a tar archive", path.display()))?
    {
        let entry = entry.with_context(|| {
            format!(
                "params.image: {} is not a readable tar archive",
                path.display()
            )
        })?;
        if entry.header().entry_type().is_file() {
            let name = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            entries.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    if entries.is_empty() {
        bail!(
            "params.image: {} is not a tar archive with files in it",
            path.display()
        );
    }
    Ok(Store::Tar {
        path: path.to_path_buf(),
        entries,
    })
}

fn blob_name(digest: &str) -> anyhow::Result<String> {
    registry::reference::validate_digest(digest)
        .map_err(|m| anyhow::anyhow!("params.image: a descriptor's digest {m}"))?;
    Ok(format!("blobs/{}", digest.replacen(':', "/", 1)))
}

fn blob(store: &Store, digest: &str) -> anyhow::Result<Blob> {
    let name = blob_name(digest)?;
    let (path, offset, size) = store
        .locate(&name)
        .with_context(|| format!("params.image: blob {digest} is missing from the layout"))?;
    Ok(Blob {
        digest: digest.to_owned(),
        size,
        path,
        offset,
    })
}

fn read_manifest(
    store: &Store,
    digest: &str,
    media_type: Option<&str>,
) -> anyhow::Result<(LocalManifest, Document)> {
    let bytes = store.read(&blob_name(digest)?)?;
    if sha256_digest(&bytes) != digest {
        bail!("params.image: manifest {digest} does not match its digest (corrupt layout)");
    }
    let document = registry::oci::document(&bytes, &format!("params.image: manifest {digest}"))
        .map_err(anyhow::Error::msg)?;
    let media_type = match &document {
        Document::Image(m) => m.media_type.clone(),
        Document::Index(i) => i.media_type.clone(),
    }
    .or(media_type.map(str::to_owned))
    .unwrap_or_else(|| match document {
        Document::Index(_) => OCI_INDEX.to_owned(),
        Document::Image(_) => OCI_MANIFEST.to_owned(),
    });
    Ok((
        LocalManifest {
            bytes: bytes.into(),
            media_type,
            digest: digest.to_owned(),
        },
        document,
    ))
}

fn read_oci(store: &Store) -> anyhow::Result<LocalImage> {
    let index = registry::oci::index(&store.read("index.json")?, "params.image: index.json")
        .map_err(anyhow::Error::msg)?;
    let entry = match index.manifests.as_slice() {
        [one] => one,
        [] => bail!("params.image: index.json lists no image"),
        many => bail!(
            "params.image: index.json lists {} images; push a layout holding one image (or one multi-platform index)",
            many.len()
        ),
    };
    let (top, document) = read_manifest(store, &entry.digest, entry.media_type.as_deref())?;
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let mut images = Vec::new();
    match document {
        Document::Index(index) => {
            for child in &index.manifests {
                let (manifest, child_doc) =
                    read_manifest(store, &child.digest, child.media_type.as_deref())?;
                match child_doc {
                    Document::Image(image) => images.push(image),
                    Document::Index(_) => bail!(
                        "params.image: index entry {} is itself an index; nested indexes are not supported",
                        child.digest
                    ),
                }
                children.push(manifest);
            }
        }
        Document::Image(image) => images.push(image),
    }
    for image in &images {
        for d in image.blobs() {
            blobs.push(blob(store, &d.digest)?);
        }
    }
    dedup(&mut blobs);
    Ok(LocalImage {
        blobs,
        children,
        top,
    })
}

/// One image of `docker save`'s `manifest.json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

/// `docker save` before Docker 25: `manifest.json` names a config file and uncompressed layer
/// tars. They become an OCI manifest with uncompressed layers (`...layer.v1.tar`, valid OCI;
/// their digests equal the config's diff_ids). Layer digests need one read of each layer.
fn read_docker_save(store: &Store) -> anyhow::Result<LocalImage> {
    let saved: Vec<SavedImage> = serde_json::from_slice(&store.read("manifest.json")?)
        .context("params.image: manifest.json is not docker save's list of images")?;
    let entry = match saved.as_slice() {
        [one] => one,
        [] => bail!("params.image: manifest.json lists no image"),
        many => bail!(
            "params.image: the tarball holds {} images; save one image per tarball",
            many.len()
        ),
    };
    let config_name = entry.config.as_str();
    let config_bytes = store.read(config_name)?;
    let (config_path, config_offset, config_size) =
        store.locate(config_name).context("config missing")?;
    let config = Blob {
        digest: sha256_digest(&config_bytes),
        size: config_size,
        path: config_path,
        offset: config_offset,
    };
    let mut blobs = vec![config.clone()];
    let mut layers = Vec::new();
    for name in &entry.layers {
        let (path, offset, size) = store
            .locate(name)
            .with_context(|| format!("params.image: layer {name} is missing"))?;
        let digest = hash_range(&path, offset, size)?;
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}));
        blobs.push(Blob {
            digest,
            size,
            path,
            offset,
        });
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    let bytes: Bytes = serde_json::to_vec(&manifest)?.into();
    let digest = sha256_digest(&bytes);
    dedup(&mut blobs);
    Ok(LocalImage {
        blobs,
        children: Vec::new(),
        top: LocalManifest {
            bytes,
            media_type: OCI_MANIFEST.to_owned(),
            digest,
        },
    })
}

fn hash_range(path: &Path, offset: u64, size: u64) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = file.take(size);
    let mut hasher = registry::client::StreamingDigest::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

fn dedup(blobs: &mut Vec<Blob>) {
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|b| seen.insert(b.digest.clone()));
}
