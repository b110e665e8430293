//! gcr-image next to skopeo (and umoci) on the same loopback registry, measured in the same run.
//!
//! Images are made once here: OCI layouts whose layers are real gzip streams (stored blocks, no
//! compression effort) of tar archives holding incompressible data, so neither tool has a
//! reason to recompress. Every push gets a fresh Debian docker-registry so neither tool finds
//! the other's blobs; both must push the same manifest digest and pull the same files, or the
//! bench stops (a ratio between different work is void). Request counts come from the
//! registry's access log, wall time, CPU time and peak RSS from GNU time. Prints ratios;
//! asserts nothing about speed.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use fakes::registry::{Auth, Registry};
use registry::sha256_digest;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Measure {
    seconds: f64,
    cpu: f64,
    rss_mb: f64,
    requests: usize,
    stdout: String,
}

/// Runs `cmd` under GNU time; counts the requests it made to `registry`.
fn measure(registry: &Registry, cmd: &mut Command, stdin: Option<&str>) -> Measure {
    let before = registry.requests().len();
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%e %M %U %S")
        .arg("-o")
        .arg(out_file.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let mut child = timed
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/time (apt-get install time)");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?} failed:\n{}",
        cmd,
        String::from_utf8_lossy(&output.stderr)
    );
    let timing = std::fs::read_to_string(out_file.path()).unwrap();
    let mut parts = timing.split_whitespace();
    let mut next = || -> f64 { parts.next().unwrap().parse().unwrap() };
    let (seconds, rss_kb, user, sys) = (next(), next(), next(), next());
    Measure {
        seconds,
        cpu: user + sys,
        rss_mb: rss_kb / 1024.0,
        requests: registry.requests().len() - before,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// A layer: a tar holding `size` incompressible bytes, as a gzip stream of stored blocks.
/// Returns (digest of the gzip file, its size, digest of the tar: the diff_id).
fn gzip_layer(path: &Path, size: usize, seed: u64) -> (String, usize, String) {
    let mut state = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(size);
    let mut tarball = tar::Builder::new(Vec::with_capacity(size + 4096));
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    tarball
        .append_data(&mut header, format!("data-{seed}.bin"), &data[..])
        .unwrap();
    let tar_bytes = tarball.into_inner().unwrap();
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(path, &gz).unwrap();
    (sha256_digest(&gz), gz.len(), diff_id)
}

/// An OCI layout with `layers` layers of `layer_mb` MB each, tagged `t`.
fn layout(dir: &Path, layers: usize, layer_mb: usize) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let tmp = dir.join("tmp");
        let (digest, size, diff_id) =
            gzip_layer(&tmp, layer_mb * 1_000_000, (layers * 100 + i) as u64);
        std::fs::rename(&tmp, blobs.join(&digest[7..])).unwrap();
        descriptors.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}));
        diff_ids.push(diff_id);
    }
    let write_blob = |bytes: Vec<u8>| {
        let digest = sha256_digest(&bytes);
        std::fs::write(blobs.join(&digest[7..]), &bytes).unwrap();
        (digest, bytes.len())
    };
    let config = json!({"architecture": "amd64", "os": "linux", "created": "2026-11-26T00:00:00Z", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (config_digest, config_size) = write_blob(serde_json::to_vec(&config).unwrap());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors});
    let (manifest_digest, manifest_size) = write_blob(serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir.to_path_buf()
}

fn ours(binary: &Path, step: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg(step);
    if step != "check" {
        cmd.arg(dir);
    }
    cmd
}

fn skopeo(args: &[String]) -> Command {
    let mut cmd = Command::new("skopeo");
    cmd.args(args);
    cmd
}

fn row(name: &str, o: &Measure, s: &Measure) {
    println!(
        "| {name} | {:.2} s | {:.2} s | {:.2} | {:.2} s | {:.2} s | {:.0} MB | {:.0} MB | {} | {} |",
        o.seconds,
        s.seconds,
        o.seconds / s.seconds.max(0.001),
        o.cpu,
        s.cpu,
        o.rss_mb,
        s.rss_mb,
        o.requests,
        s.requests
    );
}

/// The digest gcr-image's answer names.
fn our_digest(m: &Measure) -> String {
    let answer: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
    answer["version"]["digest"].as_str().unwrap().to_owned()
}

/// Both tools must have done the same work, or the ratio is void.
#[track_caller]
fn same(what: &str, ours: &str, theirs: &str) {
    assert_eq!(
        ours, theirs,
        "{what}: the two tools did not produce the same result; the ratio would be void"
    );
}

/// Relative paths and SHA-256 of every regular file under `dir`.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, sha256_digest(&std::fs::read(e.path()).unwrap())));
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/x86_64-unknown-linux-gnu/image/gcr-image");
    assert!(
        binary.is_file(),
        "{} not built; run `make image-bins` (make bench does)",
        binary.display()
    );
    let work = tempfile::tempdir().unwrap();
    println!(
        "gcr-image vs skopeo {} on a loopback docker-registry (fresh registry per push)",
        String::from_utf8_lossy(
            &Command::new("skopeo")
                .arg("--version")
                .output()
                .unwrap()
                .stdout
        )
        .trim()
    );
    println!();
    println!(
        "| operation | ours | peer | time ratio | ours CPU | peer CPU | ours peak RSS | peer peak RSS | ours requests | peer requests |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");

    for (name, layers, mb) in [
        ("fresh push, 1 layer x 200 MB", 1, 200),
        ("fresh push, 5 layers x 100 MB", 5, 100),
    ] {
        let dir = work.path().join(format!("img-{layers}"));
        std::fs::create_dir_all(&dir).unwrap();
        let image = layout(&dir.join("layout"), layers, mb);
        let sources = dir.clone();
        let (r1, r2) = (Registry::start(Auth::None), Registry::start(Auth::None));
        let req = |reg: &Registry| {
            json!({"source": {"repository": format!("{}/bench/app", reg.host()), "insecure": true}, "params": {"image": "layout", "tag": "1.0.0.dev"}}).to_string()
        };
        let o = measure(&r1, &mut ours(&binary, "out", &sources), Some(&req(&r1)));
        let digestfile = dir.join("skopeo-digest");
        let s = measure(
            &r2,
            &mut skopeo(&[
                "copy".into(),
                "--quiet".into(),
                "--dest-tls-verify=false".into(),
                "--digestfile".into(),
                digestfile.display().to_string(),
                format!("oci:{}:t", image.display()),
                format!("docker://{}/bench/app:1.0.0.dev", r2.host()),
            ]),
            None,
        );
        same(
            name,
            &our_digest(&o),
            std::fs::read_to_string(&digestfile).unwrap().trim(),
        );
        row(name, &o, &s);

        // Pulls of what was pushed: `in` with format oci-layout next to skopeo copy to an OCI
        // layout, and `in` with format rootfs next to skopeo copy + umoci unpack.
        let digest = our_digest(&o);
        let get = |format: &str| {
            json!({"source": {"repository": format!("{}/bench/app", r1.host()), "insecure": true},
                   "version": {"tag": "1.0.0.dev", "digest": digest}, "params": {"format": format}})
            .to_string()
        };
        let ours_dest = dir.join(format!("in-{layers}"));
        std::fs::create_dir_all(&ours_dest).unwrap();
        let o = measure(
            &r1,
            &mut ours(&binary, "in", &ours_dest),
            Some(&get("oci-layout")),
        );
        let peer_layout = dir.join(format!("skopeo-layout-{layers}"));
        let s = measure(
            &r1,
            &mut skopeo(&[
                "copy".into(),
                "--quiet".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{}/bench/app:1.0.0.dev", r1.host()),
                format!("oci:{}:t", peer_layout.display()),
            ]),
            None,
        );
        let blob_names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d.join("blobs/sha256"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        same(
            &format!("{name}: pull to an OCI layout"),
            &format!("{:?}", blob_names(&ours_dest.join("oci"))),
            &format!("{:?}", blob_names(&peer_layout)),
        );
        row(
            &format!("pull to an OCI layout ({layers} x {mb} MB)"),
            &o,
            &s,
        );

        let ours_root = dir.join(format!("root-{layers}"));
        std::fs::create_dir_all(&ours_root).unwrap();
        let o = measure(
            &r1,
            &mut ours(&binary, "in", &ours_root),
            Some(&get("rootfs")),
        );
        let bundle = dir.join(format!("bundle-{layers}"));
        let unpack = measure(
            &r1,
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:t", peer_layout.display()))
                .arg(&bundle),
            None,
        );
        let s = Measure {
            seconds: s.seconds + unpack.seconds,
            cpu: s.cpu + unpack.cpu,
            rss_mb: s.rss_mb.max(unpack.rss_mb),
            requests: s.requests + unpack.requests,
            stdout: String::new(),
        };
        same(
            &format!("{name}: unpacked root filesystem"),
            &format!("{:?}", files(&ours_root.join("rootfs"))),
            &format!("{:?}", files(&bundle.join("rootfs"))),
        );
        row(
            &format!("pull + unpack a rootfs ({layers} x {mb} MB; peer: skopeo + umoci)"),
            &o,
            &s,
        );

        if layers == 1 {
            // Re-push with every blob present.
            let o = measure(&r1, &mut ours(&binary, "out", &sources), Some(&req(&r1)));
            let s = measure(
                &r2,
                &mut skopeo(&[
                    "copy".into(),
                    "--quiet".into(),
                    "--dest-tls-verify=false".into(),
                    format!("oci:{}:t", image.display()),
                    format!("docker://{}/bench/app:1.0.0.dev", r2.host()),
                ]),
                None,
            );
            row("re-push, blobs present", &o, &s);

            // Promote to a new tag in the same repository.
            let got = sources.join("got");
            std::fs::create_dir_all(&got).unwrap();
            let digest = String::from_utf8_lossy(
                &Command::new("skopeo")
                    .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
                    .arg(format!("docker://{}/bench/app:1.0.0.dev", r1.host()))
                    .output()
                    .unwrap()
                    .stdout,
            )
            .trim()
            .to_owned();
            std::fs::write(got.join("repository"), format!("{}/bench/app", r1.host())).unwrap();
            std::fs::write(got.join("digest"), &digest).unwrap();
            std::fs::write(got.join("tag"), "1.0.0.dev").unwrap();
            let promote = json!({"source": {"repository": format!("{}/bench/app", r1.host()), "insecure": true}, "params": {"promote": "got", "strip_suffix": ".dev"}}).to_string();
            let o = measure(&r1, &mut ours(&binary, "out", &sources), Some(&promote));
            let s = measure(
                &r2,
                &mut skopeo(&[
                    "copy".into(),
                    "--quiet".into(),
                    "--src-tls-verify=false".into(),
                    "--dest-tls-verify=false".into(),
                    format!("docker://{}/bench/app:1.0.0.dev", r2.host()),
                    format!("docker://{}/bench/app:1.0.0", r2.host()),
                ]),
                None,
            );
            row("promote to a new tag", &o, &s);

            // Into a second repository of the same registry (mount).
            let promote = json!({"source": {"repository": format!("{}/prod/app", r1.host()), "insecure": true}, "params": {"promote": "got", "tag": "1.0.0"}}).to_string();
            let o = measure(&r1, &mut ours(&binary, "out", &sources), Some(&promote));
            let s = measure(
                &r2,
                &mut skopeo(&[
                    "copy".into(),
                    "--quiet".into(),
                    "--src-tls-verify=false".into(),
                    "--dest-tls-verify=false".into(),
                    format!("docker://{}/bench/app:1.0.0.dev", r2.host()),
                    format!("docker://{}/prod/app:1.0.0", r2.host()),
                ]),
                None,
            );
            row("copy into a second repository", &o, &s);

            // check on 1,000 tags with one new, next to list-tags + one inspect.
            let repo = registry::Repository::parse(&format!("{}/bench/app", r1.host())).unwrap();
            let client = registry::Client::new(
                &repo.host,
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
            let manifest = rt
                .block_on(client.manifest(&repo, "1.0.0.dev"))
                .unwrap()
                .unwrap();
            rt.block_on(async {
                for i in 0..1000 {
                    client
                        .put_manifest(
                            &repo,
                            &format!("2.{}.{}.dev", i / 100, i % 100),
                            manifest.bytes.clone(),
                            &manifest.media_type,
                        )
                        .await
                        .unwrap();
                }
            });
            let given = json!({"tag": "2.9.99.dev", "digest": manifest.digest});
            rt.block_on(client.put_manifest(
                &repo,
                "2.10.0.dev",
                manifest.bytes.clone(),
                &manifest.media_type,
            ))
            .unwrap();
            let check = json!({"source": {"repository": repo.to_string(), "tag_regex": "\\.dev$", "insecure": true}, "version": given}).to_string();
            let o = measure(&r1, &mut ours(&binary, "check", &sources), Some(&check));
            let list = measure(
                &r1,
                &mut skopeo(&[
                    "list-tags".into(),
                    "--tls-verify=false".into(),
                    format!("docker://{repo}"),
                ]),
                None,
            );
            let inspect = measure(
                &r1,
                &mut skopeo(&[
                    "inspect".into(),
                    "--tls-verify=false".into(),
                    "--format".into(),
                    "{{.Digest}}".into(),
                    format!("docker://{repo}:2.10.0.dev"),
                ]),
                None,
            );
            let s = Measure {
                seconds: list.seconds + inspect.seconds,
                cpu: list.cpu + inspect.cpu,
                rss_mb: list.rss_mb.max(inspect.rss_mb),
                requests: list.requests + inspect.requests,
                stdout: String::new(),
            };
            row(
                "check, 1,000 tags, 1 new (skopeo: list-tags + inspect)",
                &o,
                &s,
            );
        }
    }
    println!();
    println!(
        "time ratio = ours / peer (below 1: we are faster); CPU = user + system. GNU time has 10 ms resolution."
    );
}
