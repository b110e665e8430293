//! acceptance-run with the local runner and a real cucumber runner (Debian's Ruby cucumber)
//! against a real HTTP service, reports stored in the real registry and read back by `in`.

#![allow(clippy::unwrap_used)]

use acceptance_run::AcceptanceRun;
use fakes::feed::FeedServer;
use fakes::registry::{Auth, Registry};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use testkit::{arg, build_env, in_process, temp_dir};

fn sources() -> tempfile::TempDir {
    let dir = temp_dir();
    let copy = |rel: &str| {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/suite")
            .join(rel);
        let to = dir.path().join("suite").join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    copy("features/gateway.feature");
    copy("features/step_definitions/steps.rb");
    dir
}

fn cucumber(features: &str) -> Value {
    json!([
        "cucumber",
        "--format",
        "json",
        "--out",
        "$REPORTS_DIR/cucumber.json",
        "--format",
        "junit",
        "--out",
        "$REPORTS_DIR/junit",
        "--format",
        "progress",
        features
    ])
}

/// `out` in `dir` with this source and params, as Concourse sends them.
fn out(
    dir: &std::path::Path,
    source: &Value,
    params: &Value,
    env: &BTreeMap<String, String>,
) -> testkit::Run {
    in_process(
        &AcceptanceRun,
        &["out", arg(dir)],
        json!({"source": source, "params": params})
            .to_string()
            .as_bytes(),
        env,
    )
}

/// `in` of `version` into a fresh directory.
fn fetch(source: &Value, version: &Value) -> tempfile::TempDir {
    let dest = temp_dir();
    in_process(
        &AcceptanceRun,
        &["in", arg(dest.path())],
        json!({"source": source, "version": version})
            .to_string()
            .as_bytes(),
        &build_env(),
    )
    .success();
    dest
}

#[test]
fn a_passing_suite_is_stored_and_read_back_and_a_failing_one_fails_after_storing() {
    let gateway = FeedServer::start(&["v1", "v2"], None);
    let registry = Registry::start(Auth::None);
    let source = json!({"reports_repository": format!("{}/microservices-kube/acceptance-reports", registry.host()), "insecure": true});
    let dir = sources();
    let gateway_url = gateway.url().trim_end_matches("/versions").to_owned();

    let params = json!({"gateway_url": gateway_url, "smoke": [{"name": "feed", "path": "/versions", "contains": "v1"}],
                        "command": cucumber("features/gateway.feature:2"), "dir": "suite"});
    let run = out(dir.path(), &source, &params, &build_env());
    let answer = run.success();
    assert_eq!(answer["version"]["run"], "4242");
    assert!(run.log().contains("smoke feed: ok (200"), "{}", run.log());
    assert!(
        run.log().contains("| "),
        "the suite's output is streamed: {}",
        run.log()
    );
    let meta = |k: &str| {
        answer["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == k)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(meta("result"), "passed");
    assert_eq!(
        meta("scenarios"),
        "1 passed, 0 failed, 0 skipped, 0 undefined, 0 pending"
    );

    let got = fetch(&source, &answer["version"]);
    for f in ["cucumber.json", "junit.xml", "summary.md", "summary.json"] {
        assert!(got.path().join(f).is_file(), "{f} stored and fetched");
    }
    assert!(
        std::fs::read_to_string(got.path().join("summary.md"))
            .unwrap()
            .starts_with("# Acceptance: PASSED")
    );

    // The whole feature: one scenario fails; the put fails after storing the reports.
    let mut env = build_env();
    env.insert("BUILD_ID".into(), "4243".into());
    let params = json!({"gateway_url": gateway_url, "command": cucumber("features/gateway.feature"), "dir": "suite"});
    let run = out(dir.path(), &source, &params, &env);
    let line = run.failure();
    assert!(line.starts_with("1 of 2 scenarios did not pass; first: API gateway / a missing version: body does not contain v9"), "{line}");
    assert!(
        line.contains(&format!(
            "; reports: {}/microservices-kube/acceptance-reports@sha256:",
            registry.host()
        )),
        "{line}"
    );

    // check lists both runs, oldest first.
    let versions = in_process(
        &AcceptanceRun,
        &["check"],
        json!({"source": source, "version": answer["version"]})
            .to_string()
            .as_bytes(),
        &BTreeMap::new(),
    )
    .success();
    let runs: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["run"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["4242", "4243"]);
}

#[test]
fn failed_smoke_skips_the_suite_and_says_which_service() {
    let registry = Registry::start(Auth::None);
    let source =
        json!({"reports_repository": format!("{}/p/reports", registry.host()), "insecure": true});
    let dir = sources();
    let gateway = FeedServer::start(&["v1"], None);
    let url = gateway.url().trim_end_matches("/versions").to_owned();
    let params = json!({"gateway_url": url, "smoke": [{"name": "user-management", "path": "/user-management/health"}], "smoke_timeout": "1s",
                        "command": ["definitely-not-run"]});
    let run = out(dir.path(), &source, &params, &build_env());
    let line = run.failure();
    assert!(line.starts_with(&format!("smoke failed for user-management: {url}/user-management/health answered 404, expected 200")), "{line}");
    assert!(
        line.contains("; the suite did not run; reports: "),
        "{line}"
    );
    assert!(!run.log().contains("running definitely-not-run"));
}

#[test]
fn bad_params_are_named() {
    let dir = sources();
    let source = json!({"reports_repository": "127.0.0.1:1/p/reports", "insecure": true});
    for (params, expected) in [
        (
            json!({}),
            "params.gateway_url: missing; set it to e.g. \"http://api-gateway:8080\" (or, with runner: kubernetes, params.gateway_service: api-gateway:8080)",
        ),
        (
            json!({"gateway_url": "api-gateway:8080"}),
            "params.gateway_url: must be an http(s) URL, e.g. \"http://api-gateway:8080\"",
        ),
        (
            json!({"gateway_url": "http://g", "runner": "jenkins"}),
            "params.runner: unknown value; one of: local, docker, kubernetes",
        ),
        (
            json!({"gateway_service": "api-gateway:8080"}),
            "params.gateway_service: goes with runner: kubernetes",
        ),
        (
            json!({"gateway_service": "api-gateway:8080", "runner": "kubernetes", "namespace": "t", "image": "suite:1", "reporter_image": "ar:1"}),
            "source.kubeconfig: missing; set it to e.g. ((TEST_KUBECONFIG)) (runner: kubernetes runs the suite in the cluster; or source.server with token or google_credentials)",
        ),
        (
            json!({"gateway_url": "http://g", "namespace": "t"}),
            "params.namespace: goes with runner: kubernetes",
        ),
        (
            json!({"gateway_url": "http://g", "dir": "nope"}),
            "params.dir: nope is not a directory of the build",
        ),
        (
            json!({"gateway_url": "http://g", "timeout": "forever"}),
            "params.timeout: must be a duration like \"2m\", \"90s\", \"1h30m\"",
        ),
    ] {
        let run = out(dir.path(), &source, &params, &build_env());
        assert_eq!(run.one_line_failure(), expected);
    }
    // With a cluster in the source, the kubernetes runner's own params.
    let source = json!({"reports_repository": "127.0.0.1:1/p/reports", "insecure": true,
                        "kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"});
    let k8s = |extra: Value| {
        let mut p = json!({"gateway_service": "api-gateway:8080", "runner": "kubernetes", "namespace": "test-1",
                           "image": "suite:1", "reporter_image": "acceptance-run:1"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    };
    for (params, expected) in [
        (
            k8s(json!({"namespace": null})),
            "params.namespace_file: missing; set it to e.g. test-cluster/namespace (or params.namespace)",
        ),
        (
            k8s(json!({"namespace": "Test_1"})),
            "params.namespace: \"Test_1\" is not a namespace name (lowercase letters, digits and -)",
        ),
        (
            k8s(json!({"namespace_file": "nope/namespace", "namespace": null})),
            "params.namespace_file: nope/namespace does not exist",
        ),
        (
            k8s(json!({"reporter_image": null})),
            "params.reporter_image: missing; set it to e.g. \"us.gcr.io/microservices-kube/acceptance-run:1.0\" (this resource type's own image, as in resource_types)",
        ),
        (
            k8s(json!({"image": null})),
            "params.image: missing; set it to e.g. acceptance-tests-dev (a gcr-image get directory) or an image reference",
        ),
        (
            k8s(json!({"gateway_service": "http://api-gateway:8080"})),
            "params.gateway_service: must be the gateway's Service as NAME:PORT, e.g. \"api-gateway:8080\"",
        ),
        (
            k8s(json!({"gateway_url": "http://api-gateway:8080"})),
            "params.gateway_service: cannot be set together with params.gateway_url; keep one",
        ),
    ] {
        let run = out(dir.path(), &source, &params, &build_env());
        assert_eq!(run.one_line_failure(), expected);
    }
}

#[test]
fn an_unreadable_report_fails_the_run_after_storing_it_and_says_which_file_and_where() {
    let gateway = FeedServer::start(&["v1"], None);
    let registry = Registry::start(Auth::None);
    let source =
        json!({"reports_repository": format!("{}/p/reports", registry.host()), "insecure": true});
    let dir = sources();
    let url = gateway.url().trim_end_matches("/versions").to_owned();
    let params = json!({"gateway_url": url,
                        "command": ["sh", "-c", "printf '[{\"name\": \"gateway' > $REPORTS_DIR/cucumber.json"]});
    let run = out(dir.path(), &source, &params, &build_env());
    let line = run.failure();
    assert!(
        line.starts_with("the suite's report cannot be read: cucumber.json is not JSON: EOF while parsing a string at line 1 column 18; reports: "),
        "{line}"
    );
    // Stored: `in` gives the broken file back as it was, with a summary saying why.
    let digest = line.rsplit('@').next().unwrap();
    let dest = fetch(&source, &json!({"run": "4242", "digest": digest}));
    assert_eq!(
        std::fs::read_to_string(dest.path().join("cucumber.json")).unwrap(),
        "[{\"name\": \"gateway"
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], false);
    assert!(
        summary["verdict"]
            .as_str()
            .unwrap()
            .contains("cucumber.json is not JSON")
    );
}

/// The local runner stopped by Concourse (SIGTERM): the suite's process is killed with the
/// step, and the step says so.
#[test]
fn sigterm_stops_a_local_suite() {
    let dir = temp_dir();
    let marker = dir.path().join("pid");
    let source = json!({"reports_repository": "127.0.0.1:5999/p/reports", "insecure": true});
    let params = json!({"gateway_url": "http://127.0.0.1:1", "command": ["sh", "-c", format!("echo $$ > {} && echo started && exec sleep 300", marker.display())]});
    let running = testkit::Binary::at(env!("CARGO_BIN_EXE_acceptance-run")).start(
        "out",
        &[arg(dir.path())],
        json!({"source": source, "params": params})
            .to_string()
            .as_bytes(),
        &build_env(),
    );
    running.wait_for("| started", std::time::Duration::from_secs(20));
    let pid = std::fs::read_to_string(&marker).unwrap().trim().to_owned();
    let (run, _) = running.terminate();
    let line = run.failure();
    assert!(
        line.starts_with("aborted by SIGTERM: stopped the suite's process"),
        "{line}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the suite's process {pid} survived"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
