//! Paths a step's params name inside its build directory (`out`'s sources, the inputs Concourse
//! mounted). The build directory holds other steps' outputs, so its files are not trusted to
//! stay inside it: a `tag_file` that is a symlink to `/etc/passwd` must not be read. Every
//! path is checked lexically (relative, no `..`) and, when it exists, by its real path with
//! every symlink resolved. Errors name the file and the problem, never its content.

use crate::FieldError;
use std::path::{Component, Path, PathBuf};

/// A relative path that names something below its base by its spelling alone: only plain
/// components and `.` (no root, no `..`, no NUL). Names from requests, layouts and archives are
/// held to this before any filesystem check.
pub fn is_plain_relative(relative: &Path) -> bool {
    !relative.as_os_str().is_empty()
        && !relative.as_os_str().as_encoded_bytes().contains(&0)
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// `sources/relative`, refused when it leaves the build directory by its spelling or through
/// a symlink.
pub fn inside(sources: &Path, relative: &str, field: &str) -> Result<PathBuf, FieldError> {
    if !is_plain_relative(Path::new(relative)) {
        return Err(FieldError::new(
            field,
            "must be a relative path inside the build's directory (no leading /, no ..), e.g. \"image/tag\"",
        ));
    }
    let path = sources.join(relative);
    stays_inside(sources, &path, field)?;
    Ok(path)
}

/// Refuses `path` (under `sources`) when its real path leaves `sources`. A path that does not
/// exist passes: the read that follows fails and says so.
pub fn stays_inside(sources: &Path, path: &Path, field: &str) -> Result<(), FieldError> {
    let Ok(real) = path.canonicalize() else {
        return Ok(());
    };
    let root = sources
        .canonicalize()
        .unwrap_or_else(|_| sources.to_path_buf());
    if real.starts_with(&root) {
        return Ok(());
    }
    Err(FieldError::new(
        field,
        format!(
            "{} leads outside the build's directory (a symlink); give a file the build produced",
            shown(sources, path)
        ),
    ))
}

/// The trimmed text of the build file a param names (`params.namespace_file: env/namespace`):
/// [`inside`], then [`read_text`].
pub fn param_text(sources: &Path, relative: &str, field: &str) -> Result<String, FieldError> {
    let path = inside(sources, relative, field)?;
    Ok(read_text(sources, &path, field)?.trim().to_owned())
}

/// The text of `path` (under `sources`), checked with [`stays_inside`]; the error names the
/// file and why it cannot be read.
pub fn read_text(sources: &Path, path: &Path, field: &str) -> Result<String, FieldError> {
    stays_inside(sources, path, field)?;
    std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            std::io::ErrorKind::InvalidData => "is not UTF-8 text".to_owned(),
            std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            _ => format!("cannot be read ({e})"),
        };
        FieldError::new(field, format!("{} {why}", shown(sources, path)))
    })
}

/// `path` as the user wrote it: relative to the build directory.
fn shown(sources: &Path, path: &Path) -> String {
    path.strip_prefix(sources)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_refused_by_spelling_and_by_symlink() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sources = tmp.path().join("build");
        std::fs::create_dir_all(sources.join("img")).unwrap_or_default();
        std::fs::write(sources.join("img/tag"), "1.0").unwrap_or_default();
        std::fs::write(tmp.path().join("secret"), "root:x:0:0").unwrap_or_default();
        std::os::unix::fs::symlink(tmp.path().join("secret"), sources.join("img/evil"))
            .unwrap_or_default();
        std::os::unix::fs::symlink(tmp.path(), sources.join("up")).unwrap_or_default();
        std::os::unix::fs::symlink("tag", sources.join("img/alias")).unwrap_or_default();

        for bad in ["", "/etc/passwd", "../x", "img/../../x", "a\0b"] {
            let e = inside(&sources, bad, "params.tag_file").unwrap_err();
            assert!(
                e.to_string().starts_with("params.tag_file: must be"),
                "{bad:?}: {e}"
            );
        }
        for evil in ["img/evil", "up/secret", "up"] {
            let e = inside(&sources, evil, "params.tag_file")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("leads outside the build's directory"),
                "{evil}: {e}"
            );
            assert!(!e.contains("root:x"), "{e}");
        }
        let ok = inside(&sources, "img/alias", "params.tag_file").unwrap_or_default();
        assert_eq!(
            read_text(&sources, &ok, "params.tag_file").unwrap_or_default(),
            "1.0"
        );
        let e = read_text(&sources, &sources.join("img/none"), "params.tag_file").unwrap_err();
        assert_eq!(e.to_string(), "params.tag_file: img/none does not exist");
        let e = read_text(&sources, &sources.join("up/secret"), "f")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("root:x"), "{e}");
    }
}
