//! gcr-image's steps through the protocol, against the real reference registry, with skopeo
//! (and for docker save, the Docker daemon) as independent clients. Request counts are the
//! registry's own access log.

// Test code: unwrap is how a test says "this must hold" (helpers outside #[test] too).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fakes::google::{GoogleTokenServer, service_account_json};
use fakes::registry::{Auth, Registry};
use gcr_image::GcrImage;
use registry::{Client, Credentials, Options, Repository};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use testkit::{Binary, CANARY, Run, arg, build_env, in_process, temp_dir};

fn check(source: &Value, version: Option<Value>) -> Run {
    let mut request = json!({"source": source});
    if let Some(v) = version {
        request["version"] = v;
    }
    in_process(
        &GcrImage,
        &["check"],
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    )
}

fn get(source: &Value, version: &Value, dir: &std::path::Path) -> Run {
    let request = json!({"source": source, "version": version});
    in_process(
        &GcrImage,
        &["in", arg(dir)],
        request.to_string().as_bytes(),
        &build_env(),
    )
}

fn put(source: &Value, params: Value, dir: &std::path::Path) -> Run {
    let request = json!({"source": source, "params": params});
    in_process(
        &GcrImage,
        &["out", arg(dir)],
        request.to_string().as_bytes(),
        &build_env(),
    )
}

fn since(registry: &Registry, mark: usize) -> Vec<String> {
    registry.requests()[mark..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Registry with one image pushed by skopeo under `tags`; returns (registry, repo, digest).
fn registry_with(tags: &[&str]) -> (Registry, String, String, tempfile::TempDir) {
    let registry = Registry::start(Auth::None);
    let dir = temp_dir();
    let layout = oci_layout(dir.path(), "v1");
    let repo = format!("{}/microservices-kube/api-gateway", registry.host());
    for tag in tags {
        skopeo_push(&layout, &format!("{repo}:{tag}"));
    }
    let digest = skopeo_digest(&format!("{repo}:{}", tags[0]));
    (registry, repo, digest, dir)
}

#[test]
fn check_of_one_tag_is_one_head_request() {
    let (registry, repo, digest, _dir) = registry_with(&["1.0.0.dev"]);
    let source = json!({"repository": repo, "tag": "1.0.0.dev", "insecure": true});
    let mark = registry.requests().len();
    assert_eq!(
        check(&source, None).success(),
        json!([{"tag": "1.0.0.dev", "digest": digest}])
    );
    assert_eq!(
        since(&registry, mark),
        // One request: no ping on a registry that asks for no credentials.
        ["HEAD /v2/microservices-kube/api-gateway/manifests/1.0.0.dev"]
    );
    // Unchanged: the given version alone. A missing tag: no versions.
    let given = json!({"tag": "1.0.0.dev", "digest": digest});
    assert_eq!(
        check(&source, Some(given.clone())).success(),
        json!([given])
    );
    let missing = json!({"repository": repo, "tag": "nope", "insecure": true});
    assert_eq!(check(&missing, None).success(), json!([]));
}

#[test]
fn check_of_a_tag_regex_on_1000_tags_with_one_new_costs_3_requests_besides_auth() {
    let (registry, repo, _digest, _dir) = registry_with(&["0.0.1.dev"]);
    let repository = Repository::parse(&repo).unwrap();
    let client = Client::new(
        &repository.host,
        Credentials::Anonymous,
        Options {
            insecure: true,
            ..Options::default()
        },
    )
    .unwrap();
    let manifest = rt()
        .block_on(client.manifest(&repository, "0.0.1.dev"))
        .unwrap()
        .unwrap();
    rt().block_on(async {
        for i in 0..1000 {
            let tag = format!("1.{}.{}.dev", i / 100, i % 100);
            client
                .put_manifest(
                    &repository,
                    &tag,
                    manifest.bytes.clone(),
                    &manifest.media_type,
                )
                .await
                .unwrap();
        }
        client
            .put_manifest(
                &repository,
                "latest",
                manifest.bytes.clone(),
                &manifest.media_type,
            )
            .await
            .unwrap();
    });
    let source = json!({"repository": repo, "tag_regex": "\\.dev$", "insecure": true});

    // First check: only the newest by semver (1.9.99 > 1.10.0? no: 1.9.99 < 1.10.x is absent; 1.9.99 is newest).
    let first = check(&source, None).success();
    assert_eq!(
        first,
        json!([{"tag": "1.9.99.dev", "digest": manifest.digest}])
    );

    // A new tag arrives; check from the previous newest.
    rt().block_on(client.put_manifest(
        &repository,
        "1.10.0.dev",
        manifest.bytes.clone(),
        &manifest.media_type,
    ))
    .unwrap();
    let mark = registry.requests().len();
    let answer = check(&source, Some(first[0].clone())).success();
    assert_eq!(
        answer,
        json!([{"tag": "1.9.99.dev", "digest": manifest.digest}, {"tag": "1.10.0.dev", "digest": manifest.digest}])
    );
    let requests = since(&registry, mark);
    assert_eq!(
        requests,
        [
            "GET /v2/microservices-kube/api-gateway/tags/list",
            "HEAD /v2/microservices-kube/api-gateway/manifests/1.9.99.dev",
            "HEAD /v2/microservices-kube/api-gateway/manifests/1.10.0.dev",
        ]
    );
}

#[test]
fn a_retagged_version_yields_the_latest_and_never_ends_with_an_old_one() {
    let (registry, repo, digest, dir) = registry_with(&["1.0.0.dev", "1.1.0.dev"]);
    let source = json!({"repository": repo, "tag_regex": "\\.dev$", "insecure": true});
    // 1.0.0.dev is pushed again with other content: the old version is gone.
    let other = oci_layout(&dir.path().join("other"), "v2");
    skopeo_push(&other, &format!("{repo}:1.0.0.dev"));
    let answer = check(&source, Some(json!({"tag": "1.0.0.dev", "digest": digest}))).success();
    assert_eq!(answer, json!([{"tag": "1.1.0.dev", "digest": digest}]));
    drop(registry);
}

#[test]
fn non_semver_tags_are_ordered_by_image_creation_time() {
    let registry = Registry::start(Auth::None);
    let dir = temp_dir();
    let repo = format!("{}/team/app", registry.host());
    // Pushed oldest first; umoci stamps each config's `created`.
    for (i, tag) in ["zzz111.dev", "aaa222.dev"].iter().enumerate() {
        let layout = oci_layout(&dir.path().join(format!("l{i}")), tag);
        skopeo_push(&layout, &format!("{repo}:{tag}"));
    }
    let newest = skopeo_digest(&format!("{repo}:aaa222.dev"));
    let source = json!({"repository": repo, "tag_regex": "\\.dev$", "insecure": true});
    assert_eq!(
        check(&source, None).success(),
        json!([{"tag": "aaa222.dev", "digest": newest}])
    );
}

#[test]
fn in_writes_the_pinned_reference_and_fails_when_the_version_is_gone() {
    let (registry, repo, digest, _dir) = registry_with(&["1.0.0.dev"]);
    let source = json!({"repository": repo, "tag": "1.0.0.dev", "insecure": true});
    let dest = temp_dir();
    let version = json!({"tag": "1.0.0.dev", "digest": digest});
    let mark = registry.requests().len();
    let answer = get(&source, &version, dest.path()).success();
    assert_eq!(answer["version"], version);
    assert_eq!(
        answer["metadata"][0],
        json!({"name": "image", "value": format!("{repo}@{digest}")})
    );
    let read = |f: &str| std::fs::read_to_string(dest.path().join(f)).unwrap();
    assert_eq!(read("image-ref"), format!("{repo}@{digest}"));
    assert_eq!(read("repository"), repo);
    assert_eq!(read("digest"), digest);
    assert_eq!(read("tag"), "1.0.0.dev");
    assert_eq!(
        since(&registry, mark).len(),
        1,
        "one HEAD, no layer download"
    );

    let gone = json!({"tag": "1.0.0.dev", "digest": format!("sha256:{}", "0".repeat(64))});
    let line = get(&source, &gone, temp_dir().path()).failure();
    assert_eq!(
        line,
        format!(
            "{repo}@sha256:{} no longer exists in the registry (deleted or garbage-collected); run check again or pin another version",
            "0".repeat(64)
        )
    );
}

#[test]
fn out_pushes_an_oci_layout_and_an_oci_tarball_that_skopeo_reads_back() {
    let registry = Registry::start(Auth::None);
    let sources = temp_dir();
    let layout = oci_layout(sources.path(), "pushed by us");
    run(std::process::Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .args(["-cf"])
        .arg(sources.path().join("image.tar"))
        .arg("."));
    let repo = format!("{}/microservices-kube/api-gateway", registry.host());
    let source = json!({"repository": repo, "insecure": true});

    let mark = registry.requests().len();
    let pushed = put(
        &source,
        json!({"image": "layout", "tag": "1.2.0.dev", "additional_tags": ["dev"]}),
        sources.path(),
    );
    let answer = pushed.success();
    assert!(
        pushed.log().contains(" pushed, "),
        "a progress line per blob:\n{}",
        pushed.log()
    );
    let digest = answer["version"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(answer["version"]["tag"], "1.2.0.dev");
    // (HEAD, POST, PUT) x 2 blobs, PUT manifest x 2 tags: no ping.
    assert_eq!(
        since(&registry, mark).len(),
        8,
        "{:#?}",
        since(&registry, mark)
    );
    assert_eq!(skopeo_digest(&format!("{repo}:1.2.0.dev")), digest);
    assert_eq!(skopeo_digest(&format!("{repo}:dev")), digest);

    // Into another repository with mount_from: every blob mounted, no byte uploaded.
    let other = format!("{}/microservices-kube/auth-service", registry.host());
    let mark = registry.requests().len();
    let mounted = put(
        &json!({"repository": other, "insecure": true}),
        json!({"image": "layout", "tag": "1", "tag_suffix": ".dev", "mount_from": repo}),
        sources.path(),
    );
    let mounted = mounted.success();
    assert_eq!(mounted["version"]["digest"], digest);
    assert_eq!(mounted["version"]["tag"], "1.dev");
    let requests = since(&registry, mark);
    assert_eq!(
        requests.iter().filter(|r| r.contains("mount=")).count(),
        2,
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PUT") && r.contains("/blobs/uploads/")),
        "{requests:?}"
    );

    // The same image as a tarball: same digest, nothing uploaded again.
    let mark = registry.requests().len();
    let answer = put(
        &source,
        json!({"image": "image.tar", "tag": "1.2.0.dev"}),
        sources.path(),
    )
    .success();
    assert_eq!(answer["version"]["digest"], digest);
    let requests = since(&registry, mark);
    assert_eq!(
        requests.len(),
        3,
        "two HEADs, one manifest PUT: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| !r.starts_with("POST")),
        "{requests:?}"
    );
}

#[test]
fn out_pushes_a_docker_save_tarball_that_docker_pulls_back() {
    let registry = Registry::start(Auth::None);
    let sources = temp_dir();
    let ctx = sources.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "from docker save").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    let local = format!("gcr-image-test-save:{}", registry.port());
    run(std::process::Command::new("docker")
        .args(["build", "-q", "-t", &local])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0"));
    run(std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(sources.path().join("saved.tar"))
        .arg(&local));
    let repo = format!("{}/team/saved", registry.host());
    let answer = put(
        &json!({"repository": repo, "insecure": true}),
        json!({"image": "saved.tar", "tag": "1"}),
        sources.path(),
    )
    .success();
    let digest = answer["version"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(skopeo_digest(&format!("{repo}:1")), digest);
    // The daemon pulls it (127.0.0.0/8 registries are plain HTTP for Docker) and sees our file.
    let pulled = format!("{repo}@{digest}");
    run(std::process::Command::new("docker").args(["pull", "-q", &pulled]));
    let image_id = run(std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &pulled]));
    let local_id = run(std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &local]));
    assert_eq!(image_id, local_id, "the pulled image is the saved one");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &local, &pulled])
        .output();
}

#[test]
fn promote_within_a_repository_is_one_get_and_one_put() {
    let (registry, repo, digest, _dir) = registry_with(&["1.4.0.dev"]);
    let source = json!({"repository": repo, "tag": "1.4.0.dev", "insecure": true});
    let build = temp_dir();
    let got = build.path().join("api-dev");
    std::fs::create_dir(&got).unwrap();
    get(
        &source,
        &json!({"tag": "1.4.0.dev", "digest": digest}),
        &got,
    )
    .success();

    let mark = registry.requests().len();
    let answer = put(
        &source,
        json!({"promote": "api-dev", "strip_suffix": ".dev"}),
        build.path(),
    )
    .success();
    assert_eq!(answer["version"], json!({"tag": "1.4.0", "digest": digest}));
    assert_eq!(
        since(&registry, mark),
        [
            format!("GET /v2/microservices-kube/api-gateway/manifests/{digest}"),
            "PUT /v2/microservices-kube/api-gateway/manifests/1.4.0".to_owned(),
        ]
    );
    assert_eq!(skopeo_digest(&format!("{repo}:1.4.0")), digest);
}

#[test]
fn promote_into_another_repository_mounts_the_blobs() {
    let (registry, repo, digest, _dir) = registry_with(&["1.4.0.dev"]);
    let build = temp_dir();
    let got = build.path().join("api-dev");
    std::fs::create_dir(&got).unwrap();
    get(
        &json!({"repository": repo, "insecure": true}),
        &json!({"tag": "1.4.0.dev", "digest": digest}),
        &got,
    )
    .success();
    let prod = format!("{}/prod/api-gateway", registry.host());
    let mark = registry.requests().len();
    let answer = put(
        &json!({"repository": prod, "insecure": true}),
        json!({"promote": "api-dev", "tag": "1.4.0"}),
        build.path(),
    )
    .success();
    assert_eq!(answer["version"], json!({"tag": "1.4.0", "digest": digest}));
    assert_eq!(skopeo_digest(&format!("{prod}:1.4.0")), digest);
    let requests = since(&registry, mark);
    assert!(
        requests.iter().any(|r| r.contains("mount=")),
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PATCH") || (r.starts_with("PUT") && r.contains("uploads"))),
        "no layer bytes: {requests:?}"
    );
}

#[test]
fn google_credentials_work_end_to_end_and_the_key_is_never_printed() {
    let google = GoogleTokenServer::start("ya29.gcr-token");
    let registry = Registry::start(Auth::Htpasswd(vec![(
        "oauth2accesstoken".into(),
        "ya29.gcr-token".into(),
    )]));
    let dir = temp_dir();
    let layout = oci_layout(dir.path(), "google");
    let repo = format!("{}/microservices-kube/api-gateway", registry.host());
    run(std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-creds",
            "oauth2accesstoken:ya29.gcr-token",
        ])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("docker://{repo}:1.0.dev")));
    let mut key: Value = serde_json::from_str(&service_account_json(&google.token_uri())).unwrap();
    key["private_key_id"] = json!(CANARY);
    let source = json!({"repository": repo, "tag": "1.0.dev", "insecure": true, "google_credentials": key.to_string()});
    let binary = Binary::at(env!("CARGO_BIN_EXE_gcr-image"));
    let run = binary.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(run.success().as_array().unwrap().len(), 1);
    run.assert_no_secret(CANARY)
        .assert_no_secret("ya29.gcr-token")
        .assert_no_secret("PRIVATE KEY");
    assert_eq!(google.grants(), 1);
}

#[test]
fn a_wrong_password_is_one_line_naming_what_to_check() {
    let registry = Registry::start(Auth::Htpasswd(vec![("_json_key".into(), "right".into())]));
    let source = json!({"repository": format!("{}/p/app", registry.host()), "insecure": true, "username": "_json_key", "password": CANARY});
    let binary = Binary::at(env!("CARGO_BIN_EXE_gcr-image"));
    let run = binary.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
    );
    let line = run.one_line_failure();
    assert!(
        line.ends_with("unauthorized (HTTP 401); check source.username and source.password"),
        "{line}"
    );
    run.assert_no_secret(CANARY);
}

#[test]
fn a_token_registry_over_tls_with_a_private_ca_works_like_gcr() {
    let registry =
        Registry::start_with(Auth::Token(vec![("_json_key".into(), CANARY.into())]), true);
    let repo = Repository::parse(&format!(
        "{}/microservices-kube/api-gateway",
        registry.host()
    ))
    .unwrap();
    let source = json!({
        "repository": repo.to_string(), "tag_regex": "\\.dev$",
        "username": "_json_key", "password": CANARY, "ca_certs": [registry.ca_pem().unwrap()],
    });
    let sources = temp_dir();
    oci_layout(sources.path(), "tls");
    let binary = Binary::at(env!("CARGO_BIN_EXE_gcr-image"));
    let request =
        json!({"source": source, "params": {"image": "layout", "tag": "2.0.0.dev"}}).to_string();
    let pushed = binary.run(
        "out",
        &[arg(sources.path())],
        request.as_bytes(),
        &build_env(),
    );
    let digest = pushed.success()["version"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    pushed.assert_no_secret(CANARY);
    let run = binary.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(
        run.success(),
        json!([{"tag": "2.0.0.dev", "digest": digest}])
    );
    run.assert_no_secret(CANARY);

    let mut untrusted = source.clone();
    untrusted.as_object_mut().unwrap().remove("ca_certs");
    let run = binary.run(
        "check",
        &[],
        json!({"source": untrusted}).to_string().as_bytes(),
        &BTreeMap::new(),
    );
    let line = run.one_line_failure();
    assert!(
        line.ends_with("if the registry uses a private CA, add its certificate to source.ca_certs"),
        "{line}"
    );
}

/// Concourse stops a step with SIGTERM. Stopped mid-upload, gcr-image moves no tag and says
/// so (uploaded blobs stay unreferenced until the registry's garbage collection).
#[test]
fn sigterm_mid_upload_moves_no_tag_and_says_so() {
    use fakes::fault::{Fault, FaultProxy, Rule};
    let registry = Registry::start(Auth::None);
    let proxy = FaultProxy::start(
        registry.host().parse().unwrap(),
        vec![Rule {
            method: "PUT",
            path_contains: "/blobs/uploads/",
            times: 100,
            fault: Fault::Throttle(200_000),
        }],
    );
    let dir = temp_dir();
    // About 4 MB that gzip cannot shrink much: some 20 s at 200 kB/s.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let content: String = (0..4_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 90) as u8)
        })
        .collect();
    let layout = oci_layout(dir.path(), &content);
    let repo = format!("{}/team/app", proxy.host());
    let request = json!({"source": {"repository": repo, "insecure": true},
                         "params": {"image": layout.file_name().unwrap().to_str().unwrap(), "tag": "1.0"}});
    let running = Binary::at(env!("CARGO_BIN_EXE_gcr-image")).start(
        "out",
        &[arg(dir.path())],
        request.to_string().as_bytes(),
        &build_env(),
    );
    running.wait_for("pushing sha256:", std::time::Duration::from_secs(20));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (run, _) = running.terminate();
    let line = run.failure();
    assert!(
        line.starts_with(&format!(
            "aborted by SIGTERM: stopped before any tag of {repo} moved"
        )),
        "{line}"
    );
    assert!(
        !registry
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.uri.contains("/manifests/")),
        "no manifest was written"
    );
}
