//! The `image-ref` file: how one resource hands an image to another. gcr-image's `get` writes
//! the pinned reference (`HOST/PATH@sha256:...`) into `image-ref` in its directory; k8s-deploy's
//! `images` and acceptance-run's `image` read it when given that directory. One writer, one
//! reader, so the two sides cannot drift.

use crate::error::FieldError;
use crate::paths::{inside, stays_inside};
use std::path::Path;

/// The file's name in a get directory.
pub const FILE: &str = "image-ref";

/// Writes `reference` as the image of get directory `dir`.
pub async fn write(dir: &Path, reference: &str) -> std::io::Result<()> {
    tokio::fs::write(dir.join(FILE), reference).await
}

/// The reference in `sources/image/image-ref` when `image` is a directory of the build
/// (`None` when it is not: the caller reads `image` as a reference). A directory without the
/// file, or one leading outside the build, is an error naming `field`.
pub fn read(sources: &Path, image: &str, field: &str) -> Result<Option<String>, FieldError> {
    if !sources.join(image).is_dir() {
        return Ok(None);
    }
    let dir = inside(sources, image, field)?;
    let file = dir.join(FILE);
    stays_inside(sources, &file, field)?;
    let text = std::fs::read_to_string(&file).map_err(|_| {
        FieldError::new(
            field,
            format!("{image} has no {FILE} file; give the directory of a gcr-image get step, or an image reference"),
        )
    })?;
    Ok(Some(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_written_is_read_and_a_bare_directory_is_refused() {
        let sources = tempfile::tempdir().unwrap();
        let dir = sources.path().join("api-image");
        std::fs::create_dir(&dir).unwrap();
        assert!(
            read(sources.path(), "api-image", "params.images.api")
                .unwrap_err()
                .to_string()
                .contains("has no image-ref")
        );
        write(&dir, "r.example/api@sha256:ab").await.unwrap();
        assert_eq!(
            read(sources.path(), "api-image", "f").unwrap().as_deref(),
            Some("r.example/api@sha256:ab")
        );
        assert_eq!(
            read(sources.path(), "r.example/api:1.0", "f").unwrap(),
            None
        );
    }
}
