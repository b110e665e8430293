//! Unpacking image layers into a root filesystem, the way a container runtime does
//! (OCI image spec, "Applying Changesets"): layers in order; `.wh.NAME` deletes NAME from lower
//! layers; `.wh..wh..opq` empties its directory of lower layers' content; entries never escape
//! the destination (absolute paths and `..` are refused by tar's `unpack_in`). Device nodes and
//! FIFOs are skipped: a task image does not need them and creating them needs privileges.

use anyhow::{Context as _, bail};
use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

/// Applies the layer file `layer` (tar, gzip'd tar) on top of `root`.
pub fn apply_layer(layer: &Path, root: &Path) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(layer).with_context(|| format!("open {}", layer.display()))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    drop(file);
    let file = BufReader::new(std::fs::File::open(layer)?);
    let reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            bail!("a layer is zstd-compressed; only gzip and uncompressed layers can be unpacked")
        }
        _ => Box::new(file),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // Paths this layer wrote: an opaque marker must not delete them.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().context("read a layer as tar")? {
        let mut entry = entry.context("read a layer entry")?;
        let path = clean(&entry.path().context("a layer entry has a bad path")?)?;
        let Some(path) = path else { continue };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if name == OPAQUE {
            let dir = root.join(&parent);
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    let rel = parent.join(child.file_name());
                    if !written.contains(&rel) {
                        remove(&child.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            remove(&root.join(&parent).join(hidden))?;
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() || kind.is_fifo() {
            tracing::debug!("skipping device or FIFO {}", path.display());
            continue;
        }
        let target = root.join(&path);
        // A file replacing a directory (or the reverse) from a lower layer.
        if let Ok(meta) = std::fs::symlink_metadata(&target)
            && (meta.is_dir() != kind.is_dir() || meta.file_type().is_symlink())
        {
            remove(&target)?;
        }
        entry
            .unpack_in(root)
            .with_context(|| format!("unpack {}", path.display()))?;
        written.insert(path);
    }
    Ok(())
}

/// The entry's path relative to the root, or `None` for the root itself. Refuses escapes.
fn clean(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("a layer entry escapes the root: {}", path.display())
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(path).with_context(|| format!("remove {}", path.display()))
        }
        Ok(_) => std::fs::remove_file(path).with_context(|| format!("remove {}", path.display())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, files: &[(&str, Option<&str>)]) -> PathBuf {
        let path = dir.join(name);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (p, content) in files {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    header.set_size(c.len() as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, p, c.as_bytes()).unwrap();
                }
                None => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, p, &[][..]).unwrap();
                }
            }
        }
        builder.finish().unwrap();
        path
    }

    #[test]
    fn whiteouts_and_opaque_directories_follow_the_oci_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let l1 = layer(
            tmp.path(),
            "l1",
            &[
                ("etc", None),
                ("etc/a", Some("1")),
                ("etc/b", Some("1")),
                ("var", None),
                ("var/x", Some("x")),
                ("keep", Some("k")),
            ],
        );
        let l2 = layer(
            tmp.path(),
            "l2",
            &[
                ("etc/.wh.a", Some("")),
                ("var", None),
                ("var/new", Some("n")),
                ("var/.wh..wh..opq", Some("")),
                ("keep", Some("k2")),
            ],
        );
        apply_layer(&l1, &root).unwrap();
        apply_layer(&l2, &root).unwrap();
        assert!(!root.join("etc/a").exists(), "whiteout removed etc/a");
        assert_eq!(std::fs::read_to_string(root.join("etc/b")).unwrap(), "1");
        assert!(
            !root.join("var/x").exists(),
            "opaque dir dropped the lower layer's var/x"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("var/new")).unwrap(),
            "n",
            "but kept this layer's var/new"
        );
        assert_eq!(std::fs::read_to_string(root.join("keep")).unwrap(), "k2");
    }

    #[test]
    fn entries_cannot_escape_the_root() {
        assert!(clean(Path::new("../etc/passwd")).is_err());
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(clean(Path::new("./")).unwrap(), None);
    }
}
