//! Interop both ways with skopeo: what skopeo pushes (Docker v2s2, a multi-platform index) our
//! check and in see with skopeo's digests; what we push (an index from a layout, a promote
//! into another repository) skopeo copies out whole.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fakes::registry::{Auth, Registry};
use gcr_image::GcrImage;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use testkit::{arg, build_env, in_process, temp_dir};

fn step(args: &[&str], request: serde_json::Value) -> serde_json::Value {
    in_process(
        &GcrImage,
        args,
        request.to_string().as_bytes(),
        &build_env(),
    )
    .success()
}

#[test]
fn a_docker_v2s2_image_pushed_by_skopeo_is_seen_with_skopeos_digest() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let layout = oci_layout(work.path(), "v2s2");
    let repo = format!("{}/team/legacy", registry.host());
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
        ])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("docker://{repo}:1.0.0.dev")));
    let raw = skopeo_raw(&format!("{repo}:1.0.0.dev"));
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    let digest = skopeo_digest(&format!("{repo}:1.0.0.dev"));
    let source = json!({"repository": repo, "tag_regex": "\\.dev$", "insecure": true});
    assert_eq!(
        in_process(
            &GcrImage,
            &["check"],
            json!({"source": source}).to_string().as_bytes(),
            &BTreeMap::new()
        )
        .success(),
        json!([{"tag": "1.0.0.dev", "digest": digest}])
    );
    let dest = temp_dir();
    step(
        &["in", arg(dest.path())],
        json!({"source": source, "version": {"tag": "1.0.0.dev", "digest": digest}, "params": {"format": "rootfs"}}),
    );
    assert_eq!(
        std::fs::read_to_string(dest.path().join("rootfs/hello.txt")).unwrap(),
        "v2s2"
    );
}

#[test]
fn a_multi_platform_index_round_trips_between_skopeo_and_us() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let repo = format!("{}/team/multi", registry.host());
    // Two single-platform images and an index over them, all pushed by skopeo.
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layout = oci_layout(&work.path().join(arch), &format!("for {arch}"));
        skopeo_push(&layout, &format!("{repo}:{arch}"));
        let raw = skopeo_raw(&format!("{repo}:{arch}"));
        entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": skopeo_digest(&format!("{repo}:{arch}")), "size": raw.len(), "platform": {"os": "linux", "architecture": arch}}));
    }
    // skopeo copies a whole index from an OCI layout with --all; build that layout from the
    // registry's two images.
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let multi_layout = work.path().join("multi");
    for arch in ["amd64", "arm64"] {
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{repo}:{arch}"))
            .arg(format!("oci:{}:{arch}", multi_layout.display())));
    }
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = registry::sha256_digest(&index_bytes);
    std::fs::write(
        multi_layout.join("blobs/sha256").join(&index_digest[7..]),
        &index_bytes,
    )
    .unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_bytes.len()}]});
    std::fs::write(
        multi_layout.join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();

    // We push the layout's index into a fresh repository: children first, then the index.
    let sources = work.path();
    let pushed = step(
        &["out", arg(sources)],
        json!({"source": {"repository": format!("{}/team/pushed", registry.host()), "insecure": true}, "params": {"image": "multi", "tag": "1.0"}}),
    );
    assert_eq!(pushed["version"]["digest"], index_digest);
    assert_eq!(
        skopeo_digest(&format!("{}/team/pushed:1.0", registry.host())),
        index_digest
    );

    // Promote the index into another repository (children mounted and put by digest), then
    // skopeo copies every platform out of it: nothing is missing.
    let got = work.path().join("got");
    std::fs::create_dir(&got).unwrap();
    step(
        &["in", arg(&got)],
        json!({"source": {"repository": format!("{}/team/pushed", registry.host()), "insecure": true}, "version": {"tag": "1.0", "digest": index_digest}}),
    );
    let prod = format!("{}/prod/multi", registry.host());
    let promoted = step(
        &["out", arg(sources)],
        json!({"source": {"repository": prod, "insecure": true}, "params": {"promote": "got", "tag": "1.0"}}),
    );
    assert_eq!(promoted["version"]["digest"], index_digest);
    assert_eq!(
        skopeo_raw(&format!("{prod}:1.0")).as_bytes(),
        index_bytes.as_slice(),
        "the index is stored unchanged"
    );
    // skopeo pulls every platform's image whole out of the promoted repository: no blob is
    // missing after the mounts.
    for (i, entry) in index["manifests"].as_array().unwrap().iter().enumerate() {
        let child = entry["digest"].as_str().unwrap();
        let copy = work.path().join(format!("copied-{i}"));
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{prod}@{child}"))
            .arg(format!("oci:{}:x", copy.display())));
        assert_eq!(
            run(Command::new("skopeo")
                .args(["inspect", "--format", "{{.Digest}}"])
                .arg(format!("oci:{}:x", copy.display()))),
            child
        );
    }
}
