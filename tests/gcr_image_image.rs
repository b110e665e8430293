//! The gcr-image image under Docker, as Concourse runs it, against the real registry on the
//! host: check, in and a promote put, with a canary password that must never show.

#![allow(clippy::unwrap_used)]

use fakes::registry::{Auth, Registry};
use registry::push::Blob;
use registry::{Client, Credentials, Options, Repository, sha256_digest};
use serde_json::json;
use std::collections::BTreeMap;
use testkit::{CANARY, Image, build_env, temp_dir};

const HOST_NET: &[&str] = &["--network", "host"];

/// Pushes a one-layer image under `tag` with our client; returns its digest.
fn seed(repo: &Repository, tag: &str) -> String {
    let dir = temp_dir();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = b"not really a tarball, the registry does not mind".to_vec();
    let mut blobs = Vec::new();
    for data in [&layer, &config] {
        let path = dir.path().join(blobs.len().to_string());
        std::fs::write(&path, data).unwrap();
        blobs.push(Blob {
            digest: sha256_digest(data),
            size: data.len() as u64,
            path,
            offset: 0,
        });
    }
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[1].digest, "size": blobs[1].size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[0].digest, "size": blobs[0].size}]
    });
    let credentials = Credentials::Basic {
        username: "ci".into(),
        password: protocol::Secret::new(CANARY),
    };
    let client = Client::new(
        &repo.host,
        credentials,
        Options {
            insecure: true,
            ..Options::default()
        },
    )
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            for b in &blobs {
                client.push_blob(repo, b, None, "seed").await.unwrap();
            }
            client
                .put_manifest(
                    repo,
                    tag,
                    serde_json::to_vec(&manifest).unwrap().into(),
                    "application/vnd.oci.image.manifest.v1+json",
                )
                .await
                .unwrap()
        })
}

#[test]
fn gcr_image_checks_gets_and_promotes_from_inside_its_container() {
    let image = Image::find("gcr-image");
    let registry = Registry::start(Auth::Htpasswd(vec![("ci".into(), CANARY.into())]));
    let repo = Repository::parse(&format!(
        "{}/microservices-kube/api-gateway",
        registry.host()
    ))
    .unwrap();
    let digest = seed(&repo, "1.4.0.dev");
    let source = json!({"repository": repo.to_string(), "tag_regex": "\\.dev$", "insecure": true, "username": "ci", "password": CANARY});

    let run = image.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
        HOST_NET,
    );
    assert_eq!(
        run.success(),
        json!([{"tag": "1.4.0.dev", "digest": digest}])
    );
    run.assert_no_secret(CANARY);

    let build = temp_dir();
    let got = build.path().join("api-dev");
    std::fs::create_dir(&got).unwrap();
    let request = json!({"source": source, "version": {"tag": "1.4.0.dev", "digest": digest}});
    let run = image.run_with_dir(
        "in",
        &got,
        request.to_string().as_bytes(),
        &build_env(),
        HOST_NET,
    );
    assert_eq!(run.success()["version"]["digest"], digest);
    assert_eq!(
        std::fs::read_to_string(got.join("image-ref")).unwrap(),
        repo.pinned(&digest)
    );
    run.assert_no_secret(CANARY);

    let request =
        json!({"source": source, "params": {"promote": "api-dev", "strip_suffix": ".dev"}});
    let run = image.run_with_dir(
        "out",
        build.path(),
        request.to_string().as_bytes(),
        &build_env(),
        HOST_NET,
    );
    assert_eq!(
        run.success()["version"],
        json!({"tag": "1.4.0", "digest": digest})
    );
    run.assert_no_secret(CANARY);
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.uri.ends_with("/manifests/1.4.0") && r.status == 201)
    );
}
