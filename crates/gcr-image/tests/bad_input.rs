//! Bad input to gcr-image: one line naming the field and the fix, exit 1, nothing pushed.

#![allow(clippy::unwrap_used)]

use gcr_image::GcrImage;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use testkit::{CANARY, arg, in_process, temp_dir};

fn line(step: &str, request: Value, dir: &std::path::Path) -> String {
    let args: Vec<&str> = if step == "check" {
        vec!["check"]
    } else {
        vec![step, arg(dir)]
    };
    let run = in_process(
        &GcrImage,
        &args,
        request.to_string().as_bytes(),
        &BTreeMap::new(),
    );
    run.assert_no_secret(CANARY);
    run.one_line_failure()
}

#[test]
fn bad_sources_are_named_with_the_fix() {
    let dir = temp_dir();
    let repo = "127.0.0.1:1/p/app";
    let cases = [
        (
            json!({}),
            "source.repository: missing; set it to e.g. \"us.gcr.io/microservices-kube/api-gateway\"",
        ),
        (
            json!({"repository": "api-gateway"}),
            "source.repository: must be HOST/PATH; e.g. \"us.gcr.io/microservices-kube/api-gateway\"",
        ),
        (
            json!({"repository": "us.gcr.io/Micro/api"}),
            "source.repository: path component \"Micro\" is invalid: use lowercase letters, digits and . _ - between them; e.g. \"us.gcr.io/microservices-kube/api-gateway\"",
        ),
        (
            json!({"repository": repo, "tag": "1", "tag_regex": "x"}),
            "source.tag: cannot be set together with source.tag_regex; keep one",
        ),
        (
            json!({"repository": repo, "tag_regex": "(\\.dev$"}),
            "source.tag_regex: not a valid regular expression (unclosed group); e.g. \"\\\\.dev$\"",
        ),
        (
            json!({"repository": repo, "tag": "-bad"}),
            "source.tag: must be 1 to 128 letters, digits, _ . - and not start with . or -",
        ),
        (
            json!({"repository": repo, "google_credentials": json!({"type": "authorized_user", "refresh_token": CANARY}).to_string()}),
            "source.google_credentials: is a \"authorized_user\" credential, not a service-account key; create one under IAM > Service accounts > Keys > Add key > JSON",
        ),
        (
            json!({"repository": repo, "google_credentials": CANARY}),
            "source.google_credentials: not a JSON service-account key (JSON error at line 1 column 1); paste the whole key file",
        ),
        (
            json!({"repository": repo, "username": "u"}),
            "source.password: missing; set it to e.g. ((registry-password))",
        ),
        (
            json!({"repository": repo, "password": CANARY}),
            "source.username: missing; set it to e.g. \"_json_key\"",
        ),
        (
            json!({"repository": repo, "username": "u", "password": CANARY, "google_credentials": "{}"}),
            "source.google_credentials: cannot be set together with source.username/source.password; keep one",
        ),
        (
            json!({"repository": "us.gcr.io/p/app", "insecure": true}),
            "source.insecure: plain HTTP is allowed only for a loopback registry (127.0.0.1, localhost); use ca_certs for a private CA",
        ),
        (
            json!({"repository": repo, "platform": "linux"}),
            "source.platform: must be OS/ARCH, e.g. \"linux/amd64\"",
        ),
        (
            json!({"repository": repo, "ca_certs": ["not a cert"]}),
            "source.ca_certs: ca_certs[0]: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)",
        ),
        (
            json!({"repository": repo, "tga": "1"}),
            "source.tga: unknown key; did you mean \"tag\"? (known keys: repository, tag, tag_regex, google_credentials, username, password, ca_certs, insecure, platform, debug)",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(
            line("check", json!({"source": source}), dir.path()),
            expected
        );
    }
}

#[test]
fn bad_put_params_are_named_and_push_nothing() {
    let sources = temp_dir();
    std::fs::create_dir(sources.path().join("not-an-image")).unwrap();
    std::fs::write(sources.path().join("image.tar.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
    std::fs::create_dir(sources.path().join("empty-get")).unwrap();
    let got = sources.path().join("got");
    std::fs::create_dir(&got).unwrap();
    std::fs::write(got.join("repository"), "other.registry.io/p/app").unwrap();
    std::fs::write(got.join("digest"), format!("sha256:{}", "a".repeat(64))).unwrap();
    std::fs::write(got.join("tag"), "1.0.0").unwrap();
    let same = sources.path().join("got-same");
    std::fs::create_dir(&same).unwrap();
    std::fs::write(same.join("repository"), "127.0.0.1:1/p/app").unwrap();
    std::fs::write(same.join("digest"), format!("sha256:{}", "a".repeat(64))).unwrap();
    std::fs::write(same.join("tag"), "1.0.0").unwrap();
    // A loopback port nothing listens on: any request would fail differently.
    let source = json!({"repository": "127.0.0.1:1/p/app", "insecure": true});
    let cases = [
        (json!({}), "params: set params.image (a path to push), params.build (a context to build) or params.promote (a gcr-image get directory)".to_owned()),
        (json!({"image": "x", "promote": "y", "tag": "1"}), "params: set only one of image, build and promote".to_owned()),
        (json!({"image": "not-an-image", "tag": "1"}), format!("params.image: {}/not-an-image is neither an OCI layout (oci-layout + index.json) nor a docker save tarball (manifest.json)", sources.path().display())),
        (json!({"image": "image.tar.gz", "tag": "1"}), format!("params.image: {}/image.tar.gz is gzip-compressed; give the uncompressed .tar (what oci-build-task and docker save write)", sources.path().display())),
        (json!({"image": "missing", "tag": "1"}), format!("params.image: {}/missing does not exist", sources.path().display())),
        (json!({"image": "../outside", "tag": "1"}), "params.image: must be a relative path inside the build's directory (no leading /, no ..), e.g. \"image/tag\"".to_owned()),
        (json!({"image": "not-an-image"}), "params.tag: missing; set it to e.g. \"1.4.0.dev\" (or params.tag_file)".to_owned()),
        (json!({"image": "not-an-image", "tag": "1", "tag_file": "t"}), "params.tag: cannot be set together with params.tag_file; keep one".to_owned()),
        (json!({"image": "not-an-image", "tag_file": "nope"}), "params.tag_file: nope does not exist".to_owned()),
        (json!({"image": "not-an-image", "tag": "a b"}), "params.tag: \"a b\" must be 1 to 128 letters, digits, _ . - and not start with . or -".to_owned()),
        (json!({"promote": "empty-get"}), format!("params.promote: {}/empty-get has no repository file; give the directory of a gcr-image get step", sources.path().display())),
        (json!({"promote": "got"}), "params.promote: other.registry.io/p/app is in another registry than 127.0.0.1:1/p/app; promote copies within one registry".to_owned()),
        (json!({"promote": "got-same", "strip_suffix": ".dev"}), "params.strip_suffix: the tag \"1.0.0\" does not end with \".dev\"".to_owned()),
        (json!({"image": "not-an-image", "tag": "1", "mount_from": "other.io/p/base"}), "params.mount_from: other.io/p/base is in another registry than 127.0.0.1:1/p/app; mounts work within one registry".to_owned()),
        (json!({"promote": "sha256:abc", "tag": "1"}), "params.promote: must be sha256: followed by 64 lowercase hex digits".to_owned()),
        (json!({"image": "x", "tags": ["1"]}), "params.tags: unknown key; did you mean \"tag\"? (known keys: image, build, dockerfile, build_args, target, promote, tag, tag_file, strip_suffix, tag_suffix, additional_tags, additional_tags_file, mount_from)".to_owned()),
    ];
    for (params, expected) in cases {
        assert_eq!(
            line(
                "out",
                json!({"source": source, "params": params}),
                sources.path()
            ),
            expected
        );
    }
}
