//! The example resource's three steps against a real HTTP feed, in-process and as the built
//! binary called the way Concourse calls it: the kit's proof that a resource written with
//! nothing but types and three step functions behaves.

use example_resource::Example;
use fakes::feed::FeedServer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use testkit::{Binary, CANARY, Run, arg, build_env, in_process, temp_dir};

fn binary() -> Binary {
    Binary::at(env!("CARGO_BIN_EXE_example-resource"))
}

/// Runs one step both ways and checks they agree; returns the binary's run.
fn both(args: &[&str], request: &Value, env: &BTreeMap<String, String>) -> Run {
    let body = request.to_string();
    let inproc = in_process(&Example, args, body.as_bytes(), env);
    let bin = binary().run(args[0], &args[1..], body.as_bytes(), env);
    assert_eq!(
        inproc.code,
        bin.code,
        "in-process and binary disagree:\n{}\n---\n{}",
        inproc.log(),
        bin.log()
    );
    assert_eq!(inproc.stdout, bin.stdout);
    bin
}

fn source(feed: &FeedServer) -> Value {
    json!({"url": feed.url(), "token": CANARY})
}

#[test]
fn first_check_returns_only_the_latest_version() {
    let feed = FeedServer::start(&["v1", "v2", "v3"], Some(CANARY));
    let run = both(
        &["check"],
        &json!({"source": source(&feed)}),
        &BTreeMap::new(),
    );
    assert_eq!(run.success(), json!([{"ref": "v3"}]));
    run.assert_no_secret(CANARY);
}

#[test]
fn check_with_a_version_returns_it_and_everything_newer() {
    let feed = FeedServer::start(&["v1", "v2", "v3"], Some(CANARY));
    let run = both(
        &["check"],
        &json!({"source": source(&feed), "version": {"ref": "v2"}}),
        &BTreeMap::new(),
    );
    assert_eq!(run.success(), json!([{"ref": "v2"}, {"ref": "v3"}]));
    let run = both(
        &["check"],
        &json!({"source": source(&feed), "version": {"ref": "v3"}}),
        &BTreeMap::new(),
    );
    assert_eq!(run.success(), json!([{"ref": "v3"}]));
    // The given version vanished: the latest, as the protocol asks.
    let run = both(
        &["check"],
        &json!({"source": source(&feed), "version": {"ref": "gone"}}),
        &BTreeMap::new(),
    );
    assert_eq!(run.success(), json!([{"ref": "v3"}]));
}

#[test]
fn in_writes_the_version_and_reports_the_build_link() {
    let feed = FeedServer::start(&["v1", "v2"], Some(CANARY));
    let dir = temp_dir();
    let request = json!({"source": source(&feed), "version": {"ref": "v1"}, "params": {}});
    let run = binary().run(
        "in",
        &[arg(dir.path())],
        request.to_string().as_bytes(),
        &build_env(),
    );
    let answer = run.success();
    assert_eq!(answer["version"], json!({"ref": "v1"}));
    assert_eq!(
        answer["metadata"],
        json!([
            {"name": "feed", "value": feed.url()},
            {"name": "build", "value": "https://ci.example.com/teams/main/pipelines/microservices/jobs/deploy-test/builds/17"}
        ])
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ref")).unwrap(),
        "v1"
    );
    run.assert_no_secret(CANARY);
}

#[test]
fn in_fails_when_the_version_is_gone() {
    let feed = FeedServer::start(&["v1", "v2"], Some(CANARY));
    feed.set_versions(&["v2"]);
    let dir = temp_dir();
    let request = json!({"source": source(&feed), "version": {"ref": "v1"}});
    let run = both(&["in", arg(dir.path())], &request, &build_env());
    let line = run.failure();
    assert_eq!(
        line,
        format!(
            "version \"v1\" is no longer in the feed at {}; run check again",
            feed.url()
        )
    );
    assert!(!dir.path().join("ref").exists());
}

#[test]
fn out_publishes_the_file_and_is_the_only_writer() {
    let feed = FeedServer::start(&["v1"], Some(CANARY));
    let sources = temp_dir();
    std::fs::create_dir(sources.path().join("build")).unwrap();
    std::fs::write(sources.path().join("build/version"), "v9\n").unwrap();
    let request = json!({"source": source(&feed), "params": {"file": "build/version"}});
    let run = binary().run(
        "out",
        &[arg(sources.path())],
        request.to_string().as_bytes(),
        &build_env(),
    );
    assert_eq!(run.success()["version"], json!({"ref": "v9"}));
    assert_eq!(feed.versions(), ["v1", "v9"]);
    run.assert_no_secret(CANARY);

    // check and in never write: the feed is unchanged after them.
    let before = feed.versions();
    both(
        &["check"],
        &json!({"source": source(&feed)}),
        &BTreeMap::new(),
    )
    .success();
    let dir = temp_dir();
    both(
        &["in", arg(dir.path())],
        &json!({"source": source(&feed), "version": {"ref": "v9"}}),
        &build_env(),
    )
    .success();
    assert_eq!(feed.versions(), before);
}

#[test]
fn out_refuses_paths_outside_the_build_directory() {
    let feed = FeedServer::start(&["v1"], None);
    let sources = temp_dir();
    for file in ["/etc/passwd", "../x", "a/../../x"] {
        let request = json!({"source": {"url": feed.url()}, "params": {"file": file}});
        let line = both(&["out", arg(sources.path())], &request, &build_env()).one_line_failure();
        assert_eq!(
            line,
            "params.file: must be a path inside the build's directory"
        );
    }
    let line = both(
        &["out", arg(sources.path())],
        &json!({"source": {"url": feed.url()}}),
        &build_env(),
    )
    .one_line_failure();
    assert_eq!(
        line,
        "params.file: missing; set it to e.g. \"build-output/version\""
    );
    assert_eq!(feed.versions(), ["v1"]);
}

#[test]
fn a_wrong_token_fails_without_printing_it_even_in_debug_mode() {
    let feed = FeedServer::start(&["v1"], Some("the-right-token"));
    let request = json!({"source": {"url": feed.url(), "token": CANARY, "debug": true}});
    let run = both(&["check"], &request, &BTreeMap::new());
    let line = run.failure();
    assert_eq!(
        line,
        format!(
            "read the feed at {}: HTTP 401 Unauthorized; check source.token",
            feed.url()
        )
    );
    assert!(
        run.log().contains("debug: GET "),
        "debug mode logs requests:\n{}",
        run.log()
    );
    run.assert_no_secret(CANARY);
}

#[test]
fn an_unreachable_feed_is_one_clear_line() {
    let feed = FeedServer::start(&[], None);
    let url = feed.url();
    drop(feed);
    let run = both(
        &["check"],
        &json!({"source": {"url": url}}),
        &BTreeMap::new(),
    );
    let line = run.one_line_failure();
    assert!(
        line.starts_with(&format!("read the feed at {url}: ")),
        "{line}"
    );
}

#[test]
fn people_can_call_the_binary_by_its_name() {
    let feed = FeedServer::start(&["v1"], None);
    let request = json!({"source": {"url": feed.url()}}).to_string();
    let run = binary().run(
        "example-resource",
        &["check"],
        request.as_bytes(),
        &BTreeMap::new(),
    );
    assert_eq!(run.success(), json!([{"ref": "v1"}]));
    let run = binary().run(
        "/usr/local/bin/example-resource",
        &["--version"],
        b"",
        &BTreeMap::new(),
    );
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        format!("example-resource {}\n", env!("CARGO_PKG_VERSION"))
    );
}
