//! `in` with a format: the image on disk, checked against independent tools (umoci unpacks
//! the same image, skopeo reads the OCI tarball and layout).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fakes::registry::{Auth, Registry};
use gcr_image::GcrImage;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use testkit::{Run, arg, build_env, in_process, temp_dir};

fn get(source: &Value, version: &Value, params: Value, dir: &Path) -> Run {
    let request = json!({"source": source, "version": version, "params": params});
    in_process(
        &GcrImage,
        &["in", arg(dir)],
        request.to_string().as_bytes(),
        &build_env(),
    )
}

/// Two layers: the second deletes a.txt (a whiteout) and adds c.txt; env and user set.
fn layered_image(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    let image = format!("{}:t", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    std::fs::write(bundle.join("rootfs/a.txt"), "a").unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/dir/sub")).unwrap();
    std::fs::write(bundle.join("rootfs/dir/sub/b.txt"), "b").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    // A second bundle from the repacked image, so the next repack adds a second layer.
    let bundle = dir.join("bundle2");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    std::fs::remove_file(bundle.join("rootfs/a.txt")).unwrap();
    std::fs::write(bundle.join("rootfs/c.txt"), "c").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "FOO=bar",
        "--config.user",
        "1000",
    ]));
    run(Command::new("umoci").args(["gc", "--layout"]).arg(&layout));
    layout
}

/// Regular files under `root` with their contents.
fn files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn rootfs_matches_what_umoci_unpacks_and_metadata_carries_env_and_user() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let layout = layered_image(work.path());
    let repo = format!("{}/team/task-image", registry.host());
    skopeo_push(&layout, &format!("{repo}:1.0.0"));
    let digest = skopeo_digest(&format!("{repo}:1.0.0"));
    let dest = temp_dir();
    let run = get(
        &json!({"repository": repo, "insecure": true}),
        &json!({"tag": "1.0.0", "digest": digest}),
        json!({"format": "rootfs"}),
        dest.path(),
    );
    run.success();
    assert!(run.log().contains("downloading 2 layers"), "{}", run.log());

    let reference = work.path().join("reference");
    run_umoci_unpack(&layout, &reference);
    let ours = files(&dest.path().join("rootfs"));
    assert_eq!(ours, files(&reference.join("rootfs")));
    assert!(
        !ours.contains_key("a.txt") && ours["c.txt"] == "c" && ours["dir/sub/b.txt"] == "b",
        "{ours:?}"
    );
    let metadata: Value =
        serde_json::from_str(&std::fs::read_to_string(dest.path().join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["user"], "1000");
    assert!(
        metadata["env"]
            .as_array()
            .unwrap()
            .contains(&json!("FOO=bar")),
        "{metadata}"
    );
    assert!(
        !dest.path().join(".layers").exists(),
        "scratch files are removed"
    );
}

fn run_umoci_unpack(layout: &Path, bundle: &Path) {
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(bundle));
}

#[test]
fn oci_tarball_and_layout_are_read_by_skopeo_with_the_same_digest() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let layout = oci_layout(work.path(), "oci formats");
    let repo = format!("{}/team/app", registry.host());
    skopeo_push(&layout, &format!("{repo}:1.0"));
    let digest = skopeo_digest(&format!("{repo}:1.0"));
    let source = json!({"repository": repo, "insecure": true});
    let version = json!({"tag": "1.0", "digest": digest});

    let dest = temp_dir();
    get(&source, &version, json!({"format": "oci"}), dest.path()).success();
    let archive = format!("oci-archive:{}", dest.path().join("image.tar").display());
    assert_eq!(
        run(Command::new("skopeo").args(["inspect", "--format", "{{.Digest}}", &archive])),
        digest
    );
    assert!(!dest.path().join(".oci-layout-tmp").exists());

    let dest = temp_dir();
    get(
        &source,
        &version,
        json!({"format": "oci-layout"}),
        dest.path(),
    )
    .success();
    let dir = format!("oci:{}", dest.path().join("oci").display());
    assert_eq!(
        run(Command::new("skopeo").args(["inspect", "--format", "{{.Digest}}", &dir])),
        digest
    );

    // What in wrote, out pushes back unchanged.
    let answer = in_process(
        &GcrImage,
        &["out", arg(dest.path())],
        json!({"source": source, "params": {"image": "oci", "tag": "again"}})
            .to_string()
            .as_bytes(),
        &build_env(),
    )
    .success();
    assert_eq!(answer["version"]["digest"], digest);
}

#[test]
fn a_multi_platform_index_resolves_to_source_platform() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let repo = format!("{}/team/multi", registry.host());
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let layout = oci_layout(&work.path().join(arch), &format!("built for {arch}"));
        skopeo_push(&layout, &format!("{repo}:{arch}"));
        let raw = skopeo_raw(&format!("{repo}:{arch}"));
        entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": skopeo_digest(&format!("{repo}:{arch}")), "size": raw.len(), "platform": {"os": "linux", "architecture": arch}}));
        let _ = i;
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let repository = registry::Repository::parse(&repo).unwrap();
    let client = registry::Client::new(
        &repository.host,
        registry::Credentials::Anonymous,
        registry::Options {
            insecure: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = rt
        .block_on(client.put_manifest(
            &repository,
            "1.0",
            serde_json::to_vec(&index).unwrap().into(),
            "application/vnd.oci.image.index.v1+json",
        ))
        .unwrap();
    let version = json!({"tag": "1.0", "digest": digest});

    let dest = temp_dir();
    get(
        &json!({"repository": repo, "insecure": true, "platform": "linux/arm64"}),
        &version,
        json!({"format": "rootfs"}),
        dest.path(),
    )
    .success();
    assert_eq!(
        std::fs::read_to_string(dest.path().join("rootfs/hello.txt")).unwrap(),
        "built for arm64"
    );

    let line = get(
        &json!({"repository": repo, "insecure": true, "platform": "windows/amd64"}),
        &version,
        json!({"format": "rootfs"}),
        temp_dir().path(),
    )
    .failure();
    assert_eq!(
        line,
        "source.platform: windows/amd64 is not in this image; it has linux/amd64, linux/arm64"
    );
}
