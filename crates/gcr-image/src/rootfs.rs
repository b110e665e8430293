//! Unpacking image layers into a root filesystem, the way a container runtime does
//! (OCI image spec, "Applying Changesets"): layers in order; `.wh.NAME` deletes NAME from lower
//! layers; `.wh..wh..opq` empties its directory of lower layers' content. Device nodes and
//! FIFOs are skipped: a task image does not need them and creating them needs privileges.
//!
//! The layer is hostile data: every path it names (entries, whiteouts, opaque markers, hard-link
//! targets) is resolved inside the root with [`resolve_in_root`] before anything is created or
//! removed, so a symlink a layer planted never leads a write or a delete out of the destination.

use anyhow::{Context as _, bail};
use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";
/// Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

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
    let root = root
        .canonicalize()
        .with_context(|| format!("resolve {}", root.display()))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // Paths (resolved) this layer wrote: an opaque marker must not delete them.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().context("read a layer as tar")? {
        let mut entry = entry.context("read a layer entry")?;
        let path = clean(&entry.path().context("a layer entry has a bad path")?)?;
        let Some(path) = path else { continue };
        let name = path
            .file_name()
            .context("a layer entry has no name")?
            .to_owned();
        let parent = resolve_in_root(&root, path.parent().unwrap_or(Path::new("")))?;
        let name_str = name.to_str().unwrap_or("");
        if name_str == OPAQUE {
            if let Ok(children) = std::fs::read_dir(&parent) {
                for child in children.flatten() {
                    let child = child.path();
                    if !written.contains(&child) {
                        remove(&child)?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                bail!("a layer has a malformed whiteout: {}", path.display());
            }
            remove(&parent.join(hidden))?;
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() || kind.is_fifo() {
            tracing::debug!("skipping device or FIFO {}", path.display());
            continue;
        }
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("unpack {}: create its directory", path.display()))?;
        let target = parent.join(&name);
        // Whatever a lower layer left here goes, unless both are directories (they merge).
        // `remove` never follows a symlink: a planted link is removed, not its target.
        if let Ok(meta) = std::fs::symlink_metadata(&target)
            && !(meta.is_dir() && kind.is_dir())
        {
            remove(&target)?;
        }
        if kind.is_hard_link() {
            let source = entry
                .link_name()
                .context("a hard link has a bad target")?
                .with_context(|| format!("the hard link {} has no target", path.display()))?;
            let source = clean(&source)?
                .with_context(|| format!("the hard link {} points at the root", path.display()))?;
            let source_parent = resolve_in_root(&root, source.parent().unwrap_or(Path::new("")))?;
            let source = source_parent.join(source.file_name().unwrap_or_default());
            // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
            std::fs::hard_link(&source, &target).with_context(|| {
                format!(
                    "unpack {}: link to {}",
                    path.display(),
                    source.strip_prefix(&root).unwrap_or(&source).display()
                )
            })?;
        } else {
            entry
                .unpack(&target)
                .with_context(|| format!("unpack {}", path.display()))?;
        }
        written.insert(target);
    }
    Ok(())
}

/// `rel` resolved inside `root` as if `root` were `/` (chroot semantics): each symlink met on
/// the way is followed, an absolute target starts again at `root`, and `..` never climbs above
/// it. What comes back has no symlink among its existing components, so whatever is done to
/// `result.join(name)` without following a final symlink stays inside `root`. This is how
/// umoci (filepath-securejoin) and containerd (continuity's RootPath) resolve layer paths.
/// Hand-written, about thirty lines over std: cap-std refuses, rather than resolves, the
/// absolute symlinks real images carry (Debian's `var/run -> /run`), and libpathrs is a large
/// dependency for this one walk. Single writer: only this process changes the tree meanwhile.
fn resolve_in_root(root: &Path, rel: &Path) -> anyhow::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = parts(rel).collect();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!(
                        "a layer path goes through more than {MAX_LINKS} symlinks: {}",
                        rel.display()
                    );
                }
                let target = std::fs::read_link(&candidate)
                    .with_context(|| format!("read the symlink {}", candidate.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for p in parts(&target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(p);
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(resolved);
    Ok(out)
}

/// The normal and `..` components of a path (`.` and the root dropped).
fn parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(p) => Some(p.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
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

/// Removes `path` itself: a directory with its content, anything else (a symlink included,
/// never its target) as a file. std's `remove_dir_all` does not follow symlinks inside.
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
        let entries: Vec<Entry> = files
            .iter()
            .map(|(p, c)| match c {
                Some(c) => Entry::File(p, c),
                None => Entry::Dir(p),
            })
            .collect();
        hostile(dir, name, &entries)
    }

    enum Entry<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
    }

    /// A layer written header by header, so names and link targets go in as given.
    fn hostile(dir: &Path, name: &str, entries: &[Entry]) -> PathBuf {
        let path = dir.join(name);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for e in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_size(0);
            let (p, data): (&str, &[u8]) = match e {
                Entry::File(p, c) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(c.len() as u64);
                    (p, c.as_bytes())
                }
                Entry::Dir(p) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    (p, &[])
                }
                Entry::Symlink(p, to) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_link_name_literal(to).unwrap();
                    (p, &[])
                }
                Entry::HardLink(p, to) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_link_name_literal(to).unwrap();
                    (p, &[])
                }
            };
            let bytes = p.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.finish().unwrap();
        path
    }

    /// A root and, beside it, an outside directory holding `victim/file` and `secret`.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(outside.join("victim")).unwrap();
        std::fs::write(outside.join("victim/file"), "keep").unwrap();
        std::fs::write(outside.join("secret"), "s3cret").unwrap();
        (tmp, root, outside)
    }

    fn outside_untouched(outside: &Path) {
        assert_eq!(
            std::fs::read_to_string(outside.join("victim/file")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "s3cret"
        );
        let names: Vec<_> = std::fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "nothing was added outside: {names:?}");
    }

    /// Each hostile layer is applied after a first layer that plants `evil`, a symlink to the
    /// outside directory (absolute, or relative with enough `..`). Whatever the step answers,
    /// nothing outside the root may change.
    #[test]
    fn hostile_layers_change_nothing_outside_the_root() {
        let cases: Vec<(&str, Vec<Entry>)> = vec![
            (
                "whiteout through a symlink",
                vec![Entry::File("evil/.wh.victim", "")],
            ),
            (
                "whiteout of a file through a symlink",
                vec![Entry::File("evil/.wh.secret", "")],
            ),
            (
                "opaque marker through a symlink",
                vec![Entry::File("evil/victim/.wh..wh..opq", "")],
            ),
            (
                "opaque marker on the symlink's directory",
                vec![Entry::File("evil/.wh..wh..opq", "")],
            ),
            (
                "a file replacing a directory through a symlink",
                vec![Entry::File("evil/victim", "x")],
            ),
            (
                "a directory replacing a file through a symlink",
                vec![Entry::Dir("evil/secret")],
            ),
            (
                "a file written through a symlink",
                vec![Entry::File("evil/new", "x")],
            ),
            (
                "a file overwriting through a symlink",
                vec![Entry::File("evil/secret", "pwned")],
            ),
            (
                "a symlink planted through a symlink",
                vec![Entry::Symlink("evil/victim", "/")],
            ),
            (
                "a hard link to a file through a symlink",
                vec![Entry::HardLink("stolen", "evil/secret")],
            ),
            (
                "a hard link written through a symlink",
                vec![Entry::HardLink("evil/new", "etc")],
            ),
            ("a whiteout named ..", vec![Entry::File("sub/.wh...", "")]),
            ("a whiteout named .", vec![Entry::File(".wh..", "")]),
            (
                "a second-level symlink chain",
                vec![
                    Entry::Symlink("hop", "evil/victim"),
                    Entry::File("hop/.wh.file", ""),
                ],
            ),
            (
                "a symlink loop",
                vec![
                    Entry::Symlink("a", "b"),
                    Entry::Symlink("b", "a"),
                    Entry::File("a/x", ""),
                ],
            ),
        ];
        for (label, entries) in cases {
            for absolute in [true, false] {
                let (tmp, root, outside) = setup();
                let to = if absolute {
                    outside.display().to_string()
                } else {
                    format!("../../../../../../../../..{}", outside.display())
                };
                let l1 = hostile(
                    tmp.path(),
                    "l1",
                    &[
                        Entry::Dir("etc"),
                        Entry::Dir("sub"),
                        Entry::Symlink("evil", &to),
                    ],
                );
                let l2 = hostile(tmp.path(), "l2", &entries);
                apply_layer(&l1, &root).unwrap();
                let outcome = apply_layer(&l2, &root);
                outside_untouched(&outside);
                assert!(root.exists(), "{label}: the root is still there");
                if let Err(e) = outcome {
                    let e = format!("{e:#}");
                    assert!(!e.contains("s3cret"), "{label}: {e}");
                }
            }
        }
    }

    #[test]
    fn paths_through_symlinks_resolve_inside_the_root_as_in_a_chroot() {
        let (tmp, root, outside) = setup();
        // Debian-style absolute and relative directory links, then a layer writing through them.
        let l1 = hostile(
            tmp.path(),
            "l1",
            &[
                Entry::Dir("usr"),
                Entry::Dir("usr/lib"),
                Entry::Symlink("lib", "usr/lib"),
                Entry::Dir("run"),
                Entry::Dir("var"),
                Entry::Symlink("var/run", "/run"),
                Entry::Symlink("up", "../../../.."),
            ],
        );
        let l2 = hostile(
            tmp.path(),
            "l2",
            &[
                Entry::File("lib/libc.so", "elf"),
                Entry::File("var/run/pid", "1"),
                Entry::File("up/top", "t"),
                Entry::HardLink("lib/again.so", "lib/libc.so"),
            ],
        );
        apply_layer(&l1, &root).unwrap();
        apply_layer(&l2, &root).unwrap();
        outside_untouched(&outside);
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/libc.so")).unwrap(),
            "elf"
        );
        assert_eq!(std::fs::read_to_string(root.join("run/pid")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(root.join("top")).unwrap(), "t");
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/again.so")).unwrap(),
            "elf"
        );
        assert!(
            std::fs::symlink_metadata(root.join("var/run"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_symlink_replaced_by_a_directory_becomes_a_directory_inside() {
        let (tmp, root, outside) = setup();
        let to = outside.display().to_string();
        let l1 = hostile(tmp.path(), "l1", &[Entry::Symlink("evil", &to)]);
        let l2 = hostile(
            tmp.path(),
            "l2",
            &[Entry::Dir("evil"), Entry::File("evil/x", "in")],
        );
        apply_layer(&l1, &root).unwrap();
        apply_layer(&l2, &root).unwrap();
        outside_untouched(&outside);
        assert!(root.join("evil").is_dir());
        assert_eq!(std::fs::read_to_string(root.join("evil/x")).unwrap(), "in");
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
