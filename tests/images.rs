//! The built images, run exactly as Concourse runs a resource: `docker run -i IMAGE
//! /opt/resource/<step> [dir]` with the request on stdin and the `BUILD_*` environment.
//! Needs the Docker daemon and `make images` (make test runs it first); a missing image
//! fails with a message saying so.

mod dns;

use fakes::feed::FeedServer;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use testkit::{CANARY, Image, build_env, temp_dir};

/// Host networking so the container reaches test servers on the host's 127.0.0.1.
const HOST_NET: &[&str] = &["--network", "host"];

fn example() -> Image {
    Image::find("example-resource")
}

/// `(mode-and-type, path, link target)` of every entry of the image's filesystem.
fn image_files(image: &Image) -> Vec<(String, String, String)> {
    let created = Command::new("docker")
        .args(["create", &image.reference, "/opt/resource/check"])
        .output()
        .expect("docker create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -tvf -"))
        .output()
        .expect("docker export | tar");
    let _ = Command::new("docker").args(["rm", &id]).output();
    assert!(listing.status.success());
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f
                .get(5)
                .copied()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_owned();
            let target = if f.get(6) == Some(&"->") {
                f.get(7).copied().unwrap_or("")
            } else {
                ""
            };
            (f[0].to_owned(), path, target.to_owned())
        })
        .collect()
}

#[test]
fn the_image_holds_the_binary_its_three_links_and_a_ca_bundle_only() {
    let image = example();
    let files = image_files(&image);
    let find = |p: &str| files.iter().find(|(_, path, _)| path == p).cloned();
    for step in ["check", "in", "out"] {
        let (mode, _, target) = find(&format!("opt/resource/{step}"))
            .unwrap_or_else(|| panic!("no /opt/resource/{step}"));
        assert!(mode.starts_with('l'), "{step} should be a symlink: {mode}");
        assert_eq!(target, "example-resource");
    }
    let (mode, ..) = find("opt/resource/example-resource").expect("the binary");
    assert!(mode.starts_with("-rwx"), "{mode}");
    let (mode, ..) = find("tmp").expect("/tmp");
    assert!(mode.starts_with("drwxrwxrwt"), "/tmp must be 1777: {mode}");
    find("etc/ssl/certs/ca-certificates.crt").expect("CA bundle");

    // Nothing else than what images/build.sh puts there and what Docker adds at create time.
    let expected_prefixes = [
        "opt",
        "etc/ssl",
        "etc/nsswitch.conf",
        "tmp",
        ".dockerenv",
        "dev",
        "proc",
        "sys",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
        "etc",
    ];
    for (_, path, _) in &files {
        assert!(
            expected_prefixes
                .iter()
                .any(|p| path == p || path.starts_with(&format!("{p}/"))),
            "unexpected file in the image: {path}"
        );
    }

    // The bundle holds real certificates.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/opt/resource/example-resource",
            &image.reference,
            "--version",
        ])
        .output()
        .expect("docker run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "id=$(docker create {} /opt/resource/check) && docker cp $id:/etc/ssl/certs/ca-certificates.crt - | tar -xOf - ; docker rm $id >/dev/null",
            image.reference
        ))
        .output()
        .expect("copy the bundle out");
    let pem = String::from_utf8_lossy(&bundle.stdout);
    let certs = pem.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs > 50, "the CA bundle holds only {certs} certificates");
    eprintln!(
        "{}: {} bytes, {certs} CA certificates",
        image.reference,
        image.size()
    );
}

#[test]
fn check_in_and_out_run_in_the_image_as_concourse_runs_them() {
    let image = example();
    let feed = FeedServer::start(&["v1", "v2"], Some(CANARY));
    let source = json!({"url": feed.url(), "token": CANARY});

    let run = image.run(
        "check",
        &[],
        json!({"source": source}).to_string().as_bytes(),
        &BTreeMap::new(),
        HOST_NET,
    );
    assert_eq!(run.success(), json!([{"ref": "v2"}]));
    run.assert_no_secret(CANARY);

    let dir = temp_dir();
    let request = json!({"source": source, "version": {"ref": "v1"}}).to_string();
    let run = image.run_with_dir("in", dir.path(), request.as_bytes(), &build_env(), HOST_NET);
    let answer = run.success();
    assert_eq!(answer["version"], json!({"ref": "v1"}));
    assert_eq!(
        answer["metadata"][1]["value"],
        "https://ci.example.com/teams/main/pipelines/microservices/jobs/deploy-test/builds/17"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ref")).unwrap(),
        "v1"
    );
    run.assert_no_secret(CANARY);

    let sources = temp_dir();
    std::fs::write(sources.path().join("version"), "v3").unwrap();
    let request = json!({"source": source, "params": {"file": "version"}}).to_string();
    let run = image.run_with_dir(
        "out",
        sources.path(),
        request.as_bytes(),
        &build_env(),
        HOST_NET,
    );
    assert_eq!(run.success()["version"], json!({"ref": "v3"}));
    assert_eq!(feed.versions(), ["v1", "v2", "v3"]);
    run.assert_no_secret(CANARY);
}

#[test]
fn bad_input_in_the_image_is_one_line_and_a_nonzero_exit() {
    let image = example();
    let run = image.run("check", &[], b"", &BTreeMap::new(), &[]);
    assert!(
        run.one_line_failure()
            .starts_with("request: stdin is empty;")
    );
    let run = image.run(
        "check",
        &[],
        json!({"source": {"url": "http://x", "tokn": CANARY}})
            .to_string()
            .as_bytes(),
        &BTreeMap::new(),
        &[],
    );
    assert_eq!(
        run.one_line_failure(),
        "source.tokn: unknown key; did you mean \"token\"? (known keys: url, token, prefix, debug)"
    );
    run.assert_no_secret(CANARY);
    let run = image.run("in", &[], b"{}", &BTreeMap::new(), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.one_line_failure()
            .starts_with("in needs the directory argument; usage: ")
    );
}

/// `check` of a feed at `url`, from inside the container.
fn check_url(image: &Image, url: &str, docker_args: &[&str]) -> testkit::Run {
    let request = json!({"source": {"url": url}}).to_string();
    image.run(
        "check",
        &[],
        request.as_bytes(),
        &BTreeMap::new(),
        docker_args,
    )
}

#[test]
fn names_resolve_inside_the_container_through_etc_hosts() {
    let image = example();
    let feed = FeedServer::start(&["v1"], None);
    let url = format!("http://feed.internal.test:{}/versions", feed.port());
    let mut args = HOST_NET.to_vec();
    args.extend(["--add-host", "feed.internal.test:127.0.0.1"]);
    assert_eq!(
        check_url(&image, &url, &args).success(),
        json!([{"ref": "v1"}])
    );
}

#[test]
fn names_resolve_inside_the_container_through_dns() {
    let image = example();
    let feed = FeedServer::start(&["v7"], None);
    let server = dns::DnsServer::start("registry.dns.test", [127, 0, 0, 1]);
    let conf = temp_dir();
    let resolv = conf.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", server.ip())).unwrap();
    let mount = format!("{}:/etc/resolv.conf:ro", resolv.display());
    let mut args = HOST_NET.to_vec();
    args.extend(["-v", &mount]);
    let url = format!("http://registry.dns.test:{}/versions", feed.port());
    assert_eq!(
        check_url(&image, &url, &args).success(),
        json!([{"ref": "v7"}])
    );
    assert!(server.answered() >= 1, "the DNS server was not asked");
}
