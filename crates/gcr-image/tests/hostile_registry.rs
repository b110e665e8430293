//! `in` against a hostile registry: digests in manifests are remote data. A digest that is not
//! `sha256:` + 64 hex digits must fail the step before it names a file, and content that does
//! not match its digest must never be left under the blob's name, for every format.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use fakes::Server;
use gcr_image::GcrImage;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use testkit::{arg, build_env, in_process, temp_dir};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(data: &[u8]) -> String {
    registry::client::sha256_digest(data)
}

/// A registry serving exactly `blobs` (digest -> bytes, the digest as the registry claims it)
/// and `manifest` as repository `r`'s only manifest; any other blob path answers "pwned".
fn hostile_registry(
    manifest: Vec<u8>,
    media_type: &'static str,
    blobs: Vec<(String, Vec<u8>)>,
) -> (Server, String) {
    let digest = sha256(&manifest);
    let manifest = Arc::new(manifest);
    let blobs = Arc::new(blobs);
    let top = digest.clone();
    let router = axum::Router::new().fallback(move |req: Request<Body>| {
        let (manifest, blobs, top) = (manifest.clone(), blobs.clone(), top.clone());
        async move {
            let path = req.uri().path().to_owned();
            let ok = |ct: &str, body: Vec<u8>, digest: &str| {
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", ct)
                    .header("docker-content-digest", digest)
                    .body(Body::from(body))
                    .unwrap()
            };
            if path == "/v2/" {
                return ok("application/json", b"{}".to_vec(), "");
            }
            if let Some(reference) = path.strip_prefix("/v2/r/manifests/") {
                if reference == top || reference == "t" {
                    return ok(media_type, manifest.to_vec(), &top);
                }
                return Response::builder().status(404).body(Body::empty()).unwrap();
            }
            if let Some(digest) = path.strip_prefix("/v2/r/blobs/") {
                for (d, bytes) in blobs.iter() {
                    if d == digest {
                        return ok("application/octet-stream", bytes.clone(), d);
                    }
                }
            }
            ok("application/octet-stream", b"pwned".to_vec(), "")
        }
    });
    let server = Server::start(router);
    (server, digest)
}

fn config_blob() -> (String, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    (sha256(&config), config)
}

fn image_manifest(config: &str, layer_digest: &str, size: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": size}],
    }))
    .unwrap()
}

/// Every file and directory under `dir`, relative.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Runs `in` with each format in `work/dest`; the step must fail, `work` outside `dest` must
/// be unchanged, and nothing may be named after the hostile digest.
fn refuses_in_every_format(server: &Server, digest: &str, label: &str, expect: &str) {
    for format in ["oci", "oci-layout", "rootfs"] {
        let work = temp_dir();
        let dest = work.path().join("a/b/dest");
        std::fs::create_dir_all(&dest).unwrap();
        let before = tree(work.path());
        let request = json!({
            "source": {"repository": format!("127.0.0.1:{}/r", server.port()), "insecure": true},
            "version": {"tag": "t", "digest": digest},
            "params": {"format": format},
        });
        let run = in_process(
            &GcrImage,
            &["in", arg(&dest)],
            request.to_string().as_bytes(),
            &build_env(),
        );
        let line = run.failure();
        assert!(line.contains(expect), "{label} ({format}): {line}");
        let after: BTreeSet<String> = tree(work.path())
            .into_iter()
            .filter(|p| !p.starts_with("a/b/dest/"))
            .collect();
        assert_eq!(
            before, after,
            "{label} ({format}): files appeared outside dest"
        );
        for p in tree(&dest) {
            assert!(
                !p.contains("pwned") && !p.ends_with(".partial"),
                "{label} ({format}): left {p}"
            );
        }
        let all = tree(&dest);
        for p in &all {
            let full = dest.join(p);
            if full.is_file() {
                assert_ne!(
                    std::fs::read(&full).unwrap(),
                    b"pwned",
                    "{label} ({format}): unverified content kept as {p}"
                );
            }
        }
    }
}

#[test]
fn layer_digests_that_are_paths_are_refused_before_any_file_is_written() {
    let (config_digest, config) = config_blob();
    for hostile in [
        "sha256:../../../pwned",
        "sha256:/tmp/pwned",
        "/etc/pwned",
        "sha256:../../../../../../../../../../tmp/pwned-0123456789abcdef0123456789abcdef0123",
        "sha512:abc",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "",
    ] {
        let manifest = image_manifest(&config_digest, hostile, 5);
        let (server, digest) = hostile_registry(
            manifest,
            OCI_MANIFEST,
            vec![(config_digest.clone(), config.clone())],
        );
        refuses_in_every_format(&server, &digest, hostile, "digest");
    }
}

#[test]
fn a_config_digest_that_is_a_path_is_refused() {
    let (_, config) = config_blob();
    let layer = b"not used".to_vec();
    let manifest = image_manifest("sha256:../../pwned", &sha256(&layer), layer.len());
    let (server, digest) = hostile_registry(
        manifest,
        OCI_MANIFEST,
        vec![("sha256:../../pwned".into(), config)],
    );
    refuses_in_every_format(&server, &digest, "config", "digest");
}

#[test]
fn an_index_pointing_at_a_path_is_refused() {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:../../../pwned", "size": 5,
                        "platform": {"os": "linux", "architecture": "amd64"}}],
    }))
    .unwrap();
    let (server, digest) = hostile_registry(index, OCI_INDEX, vec![]);
    refuses_in_every_format(&server, &digest, "index", "digest");
}

#[test]
fn content_that_does_not_match_its_digest_never_takes_the_blobs_name() {
    let (config_digest, config) = config_blob();
    // A well-formed digest whose content the registry does not deliver ("pwned" comes back).
    let claimed = sha256(b"the real layer");
    let manifest = image_manifest(&config_digest, &claimed, 5);
    let (server, digest) = hostile_registry(manifest, OCI_MANIFEST, vec![(config_digest, config)]);
    // A whole body with the wrong content is tried twice, then the step fails.
    refuses_in_every_format(&server, &digest, "mismatch", "expected 5 bytes");
}
