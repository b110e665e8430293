//! github-promote-pr through the protocol (in-process and as the built binary) against the
//! GitHub fake, whose behaviour is held to recorded GitHub exchanges.

#![allow(clippy::unwrap_used)]

use fakes::github::{FakeGithub, TEST_APP_KEY_PEM};
use github_promote_pr::PromotePr;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::{Binary, CANARY, Run, arg, build_env, in_process, temp_dir};

const REPO: &str = "microservices/micro-api-gateway";

fn fake() -> FakeGithub {
    let gh = FakeGithub::start();
    gh.add_token(CANARY);
    gh.add_repo(REPO);
    gh
}

fn source(gh: &FakeGithub) -> Value {
    json!({"repository": REPO, "api_url": gh.url(), "access_token": CANARY})
}

fn env(tmp: &std::path::Path) -> BTreeMap<String, String> {
    let mut e = build_env();
    e.insert("TMPDIR".into(), tmp.display().to_string());
    e
}

fn put(gh: &FakeGithub, params: Value, sources: &std::path::Path) -> Run {
    let request = json!({"source": source(gh), "params": params});
    let run = in_process(
        &PromotePr,
        &["out", arg(sources)],
        request.to_string().as_bytes(),
        &env(sources),
    );
    run.assert_no_secret(CANARY);
    run
}

fn new_requests(gh: &FakeGithub, mark: usize) -> Vec<String> {
    gh.requests()[mark..].to_vec()
}

#[test]
fn opens_the_pull_request_once_and_reuses_it_in_at_most_3_requests() {
    let gh = fake();
    gh.push(REPO, "develop", 2);
    let sources = temp_dir();
    let img = sources.path().join("api-image");
    std::fs::create_dir(&img).unwrap();
    std::fs::write(
        img.join("repository"),
        "us.gcr.io/microservices-kube/api-gateway",
    )
    .unwrap();
    std::fs::write(img.join("tag"), "1.4.0").unwrap();
    std::fs::write(img.join("digest"), format!("sha256:{}", "a".repeat(64))).unwrap();

    let mark = gh.requests().len();
    let first = put(
        &gh,
        json!({"images": ["api-image"], "labels": ["promotion"]}),
        sources.path(),
    );
    let answer = first.success();
    assert_eq!(answer["version"]["number"], "1");
    let create = new_requests(&gh, mark);
    assert_eq!(create.len(), 4, "compare, list, create, label: {create:?}");
    let (body, labels, _) = gh.pull_detail(REPO, 1).unwrap();
    assert!(
        body.contains(
            "https://ci.example.com/teams/main/pipelines/microservices/jobs/deploy-test/builds/17"
        ),
        "{body}"
    );
    assert!(
        body.contains("| `us.gcr.io/microservices-kube/api-gateway` | `1.4.0` | `sha256:aaaa"),
        "{body}"
    );
    assert_eq!(labels, ["promotion"]);
    assert!(first.log().contains("opened #1 "), "{}", first.log());

    // The same put again: the same pull request, nothing changed, 2 requests.
    let mark = gh.requests().len();
    let again = put(
        &gh,
        json!({"images": ["api-image"], "labels": ["promotion"]}),
        sources.path(),
    )
    .success();
    assert_eq!(again["version"]["number"], "1");
    assert_eq!(
        new_requests(&gh, mark).len(),
        2,
        "{:?}",
        new_requests(&gh, mark)
    );
    assert_eq!(
        gh.pulls(REPO).len(),
        1,
        "one pull request however often the put runs"
    );

    // A new title: updated in place (3 requests).
    let mark = gh.requests().len();
    put(
        &gh,
        json!({"title": "Release 1.4.0", "images": ["api-image"], "labels": ["promotion"]}),
        sources.path(),
    )
    .success();
    assert_eq!(new_requests(&gh, mark).len(), 3);
    assert_eq!(gh.pulls(REPO)[0].3, "Release 1.4.0");
}

#[test]
fn nothing_to_promote_opens_nothing_and_says_so() {
    let gh = fake();
    let sources = temp_dir();
    let run = put(&gh, json!({}), sources.path());
    let answer = run.success();
    assert_eq!(answer["version"]["number"], "0");
    assert!(
        run.log()
            .contains("develop has no commits that master lacks: nothing to promote"),
        "{}",
        run.log()
    );
    assert!(gh.pulls(REPO).is_empty());
    // The implicit get of that version works too.
    let dest = temp_dir();
    let request = json!({"source": source(&gh), "version": answer["version"]});
    in_process(
        &PromotePr,
        &["in", arg(dest.path())],
        request.to_string().as_bytes(),
        &build_env(),
    )
    .success();
    assert_eq!(
        std::fs::read_to_string(dest.path().join("number")).unwrap(),
        "0"
    );
}

#[test]
fn merges_when_the_required_checks_are_green() {
    let gh = fake();
    let head = gh.push(REPO, "develop", 1);
    gh.protect(REPO, "master", &["ci/unit", "acceptance"]);
    gh.set_status(REPO, &head, "ci/unit", "success");
    gh.set_check_run(REPO, &head, "acceptance", "completed", Some("success"));
    let sources = temp_dir();
    let answer = put(
        &gh,
        json!({"merge": true, "merge_method": "squash"}),
        sources.path(),
    )
    .success();
    let merged = answer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "merged")
        .unwrap();
    assert_eq!(merged["value"], "true");
    assert!(gh.pulls(REPO)[0].2, "merged");
    assert!(
        answer["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "merge_commit_sha")
    );
}

#[test]
fn waits_for_checks_to_turn_green_then_merges() {
    let gh = fake();
    let head = gh.push(REPO, "develop", 1);
    gh.protect(REPO, "master", &["ci/unit"]);
    gh.set_status_after_reads(REPO, &head, "ci/unit", "success", 2);
    let sources = temp_dir();
    let run = put(&gh, json!({"merge": true, "timeout": "1m"}), sources.path());
    run.success();
    assert!(run.log().contains("waiting for checks on"), "{}", run.log());
    assert!(gh.pulls(REPO)[0].2, "merged");
}

#[test]
fn the_merge_wait_lasts_its_whole_timeout() {
    // Before: the backoff step that would cross the deadline ended the wait early (a 3 s
    // timeout gave up at about 1 s).
    let gh = fake();
    let head = gh.push(REPO, "develop", 1);
    gh.protect(REPO, "master", &["ci/unit"]);
    gh.set_status(REPO, &head, "ci/unit", "pending");
    let sources = temp_dir();
    let started = std::time::Instant::now();
    let line = put(&gh, json!({"merge": true, "timeout": "3s"}), sources.path()).failure();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        line,
        format!(
            "#1 not merged: timed out after 3s waiting for checks on {}: ci/unit",
            &head[..12]
        )
    );
}

#[test]
fn branch_names_with_url_characters_stay_in_their_segment() {
    // `#` is legal in a git branch name; pasted into a URL it would cut the path short.
    let gh = fake();
    gh.push(REPO, "feature#12", 1);
    let source = json!({"repository": REPO, "api_url": gh.url(), "access_token": CANARY, "head": "feature#12"});
    let sources = temp_dir();
    let request = json!({"source": source, "params": {}});
    let run = in_process(
        &PromotePr,
        &["out", arg(sources.path())],
        request.to_string().as_bytes(),
        &env(sources.path()),
    );
    let answer = run.success();
    assert_eq!(answer["version"]["number"], "1");
    assert_eq!(gh.pulls(REPO)[0].3, "Promote feature#12 to master");
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.contains("/compare/master...feature%2312")),
        "{:?}",
        gh.requests()
    );
}

#[test]
fn refuses_to_merge_when_a_check_fails_or_conflicts() {
    let gh = fake();
    let head = gh.push(REPO, "develop", 1);
    gh.set_status(REPO, &head, "ci/unit", "failure");
    let sources = temp_dir();
    let line = put(&gh, json!({"merge": true}), sources.path()).failure();
    assert_eq!(
        line,
        format!(
            "#1 cannot be merged: check \"ci/unit\" failed on {}",
            &head[..12]
        )
    );
    assert!(!gh.pulls(REPO)[0].2);

    gh.set_status(REPO, &head, "ci/unit", "success");
    gh.set_conflict(REPO, 1, true);
    let line = put(&gh, json!({"merge": true}), sources.path()).failure();
    assert_eq!(
        line,
        "#1 is not mergeable: it conflicts with master (mergeable_state: dirty); resolve the conflicts on develop"
    );
}

#[test]
fn a_405_and_a_409_from_github_are_reported_clearly() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    let sources = temp_dir();
    put(&gh, json!({}), sources.path()).success();
    gh.set_draft(REPO, 1, true);
    let line = put(&gh, json!({"merge": true}), sources.path()).failure();
    assert_eq!(line, "#1 is not mergeable: Pull Request is still a draft");

    gh.set_draft(REPO, 1, false);
    gh.push_before_next_merge(REPO);
    let line = put(&gh, json!({"merge": true}), sources.path()).failure();
    assert!(
        line.starts_with("#1 was not merged: its head moved after the checks passed on "),
        "{line}"
    );
    assert!(line.ends_with("(Head branch was modified. Review and try the merge again.); the next run will check the new head"), "{line}");
    assert!(!gh.pulls(REPO)[0].2);
}

#[test]
fn a_rate_limit_is_waited_out_until_reset() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    gh.exhaust_rate_limit(CANARY, Duration::from_secs(1));
    let sources = temp_dir();
    let run = put(&gh, json!({}), sources.path());
    run.success();
    assert!(
        run.log().contains("rate limited (API rate limit exceeded"),
        "{}",
        run.log()
    );
    gh.secondary_rate_limit(1, 1);
    let run = put(&gh, json!({}), sources.path());
    run.success();
    assert!(
        run.log()
            .contains("You have exceeded a secondary rate limit"),
        "{}",
        run.log()
    );
}

#[test]
fn a_bad_token_is_one_clear_line_without_the_token() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    let request = json!({"source": {"repository": REPO, "api_url": gh.url(), "access_token": "ghp_canary-wrong-token"}, "params": {}});
    let binary = Binary::at(env!("CARGO_BIN_EXE_github-promote-pr"));
    let sources = temp_dir();
    let run = binary.run(
        "out",
        &[arg(sources.path())],
        request.to_string().as_bytes(),
        &build_env(),
    );
    let line = run.one_line_failure();
    assert_eq!(
        line,
        "compare master...develop of microservices/micro-api-gateway: GitHub said 401 (Bad credentials); check source.access_token (or the App's key and installation)"
    );
    run.assert_no_secret("ghp_canary-wrong-token");
}

#[test]
fn a_github_app_mints_its_installation_token() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    gh.add_app(4242, 777, TEST_APP_KEY_PEM);
    let request = json!({
        "source": {"repository": REPO, "api_url": gh.url(), "app_id": 4242, "installation_id": "777", "private_key": TEST_APP_KEY_PEM},
        "params": {},
    });
    let binary = Binary::at(env!("CARGO_BIN_EXE_github-promote-pr"));
    let sources = temp_dir();
    let run = binary.run(
        "out",
        &[arg(sources.path())],
        request.to_string().as_bytes(),
        &build_env(),
    );
    assert_eq!(run.success()["version"]["number"], "1");
    assert!(
        run.log()
            .contains("minted an installation token for GitHub App 4242"),
        "{}",
        run.log()
    );
    run.assert_no_secret("ghs_fakeinstallation")
        .assert_no_secret("PRIVATE KEY");
}

#[test]
fn check_lists_promotions_and_an_unchanged_poll_is_one_free_304() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    let tmp = temp_dir();
    put(&gh, json!({}), tmp.path()).success();
    let check = |version: Option<Value>| {
        let mut request = json!({"source": source(&gh)});
        if let Some(v) = version {
            request["version"] = v;
        }
        in_process(
            &PromotePr,
            &["check"],
            request.to_string().as_bytes(),
            &env(tmp.path()),
        )
        .success()
    };
    let first = check(None);
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["number"], "1");

    let mark = gh.requests().len();
    let quota = gh.remaining(CANARY).unwrap();
    let again = check(Some(first[0].clone()));
    assert_eq!(again, first);
    let requests = new_requests(&gh, mark);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].ends_with("-> 304"), "{requests:?}");
    assert_eq!(gh.remaining(CANARY).unwrap(), quota, "a 304 costs no quota");

    // A new commit moves the pull request's head: a new version, found with one full request.
    gh.push(REPO, "develop", 1);
    let moved = check(Some(first[0].clone()));
    assert_eq!(moved.as_array().unwrap().len(), 1);
    assert_ne!(moved[0]["head_sha"], first[0]["head_sha"]);
}

#[test]
fn in_writes_the_pull_request_files() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    let tmp = temp_dir();
    let version = put(&gh, json!({}), tmp.path()).success()["version"].clone();
    let dest = temp_dir();
    let request = json!({"source": source(&gh), "version": version});
    let answer = in_process(
        &PromotePr,
        &["in", arg(dest.path())],
        request.to_string().as_bytes(),
        &build_env(),
    )
    .success();
    let read = |f: &str| std::fs::read_to_string(dest.path().join(f)).unwrap();
    assert_eq!(read("number"), "1");
    assert_eq!(
        read("url"),
        "https://github.com/microservices/micro-api-gateway/pull/1"
    );
    assert_eq!(read("merged"), "false");
    let pr: Value = serde_json::from_str(&read("pull_request.json")).unwrap();
    assert_eq!(pr["head"]["ref"], "develop");
    assert_eq!(
        answer["metadata"][0]["value"],
        "https://github.com/microservices/micro-api-gateway/pull/1"
    );
}

#[test]
fn bad_input_names_the_field() {
    let gh = fake();
    let sources = temp_dir();
    let cases = [
        (
            json!({"repository": "micro-api-gateway", "access_token": CANARY}),
            json!({}),
            "source.repository: must be OWNER/NAME, e.g. \"microservices/micro-api-gateway\"",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY, "app_id": 1, "installation_id": 2, "private_key": CANARY}),
            json!({}),
            "source.access_token: cannot be set together with source.app_id/private_key/installation_id; keep one",
        ),
        (
            json!({"repository": REPO}),
            json!({}),
            "source.access_token: missing; set it (e.g. ((github-token))) or app_id, private_key and installation_id",
        ),
        (
            json!({"repository": REPO, "app_id": 1, "installation_id": 2, "private_key": CANARY}),
            json!({}),
            "source.private_key: not a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY, "base": "develop"}),
            json!({}),
            "source.head: is the same branch as source.base (\"develop\"); nothing would be promoted",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY}),
            json!({"merge": true, "merge_method": "fast-forward"}),
            "params.merge_method: unknown value; one of: merge, squash, rebase",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY}),
            json!({"merge": true, "timeout": "ten minutes"}),
            "params.timeout: must be a duration like \"10m\", \"90s\", \"1h\"",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY}),
            json!({"merge_method": "squash"}),
            "params.merge_method: merge_method and timeout go with merge: true",
        ),
        (
            json!({"repository": REPO, "access_token": CANARY}),
            json!({"images": ["nope"]}),
            "params.images[0]: nope has no repository file; give the directory of a gcr-image get step",
        ),
    ];
    for (source, params, expected) in cases {
        let mut source = source;
        source["api_url"] = json!(gh.url());
        let request = json!({"source": source, "params": params});
        let run = in_process(
            &PromotePr,
            &["out", arg(sources.path())],
            request.to_string().as_bytes(),
            &build_env(),
        );
        run.assert_no_secret(CANARY);
        assert_eq!(run.one_line_failure(), expected);
    }
    assert!(
        gh.requests().is_empty(),
        "bad input sends nothing: {:?}",
        gh.requests()
    );
}

#[test]
fn reviewers_and_teams_are_requested_once() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    let sources = temp_dir();
    let params = json!({"reviewers": ["alice"], "team_reviewers": ["platform"], "draft": true});
    put(&gh, params.clone(), sources.path()).success();
    let (_, _, reviewers) = gh.pull_detail(REPO, 1).unwrap();
    assert_eq!(reviewers, ["alice"]);
    let mark = gh.requests().len();
    put(
        &gh,
        json!({"reviewers": ["alice"], "draft": true}),
        sources.path(),
    )
    .success();
    assert_eq!(
        new_requests(&gh, mark).len(),
        2,
        "alice is already asked: {:?}",
        new_requests(&gh, mark)
    );
}

#[test]
fn a_token_out_of_quota_past_the_deadline_says_until_when() {
    let gh = fake();
    gh.push(REPO, "develop", 1);
    gh.exhaust_rate_limit(CANARY, Duration::from_secs(3600));
    let sources = temp_dir();
    let line = put(&gh, json!({}), sources.path()).one_line_failure();
    assert!(line.starts_with("compare master...develop of microservices/micro-api-gateway: the token is out of API quota until epoch "), "{line}");
    assert!(
        line.ends_with("(x-ratelimit-reset), past the deadline"),
        "{line}"
    );
}

#[test]
fn check_follows_pagination_across_many_promotions() {
    let gh = fake();
    gh.add_merged_pulls(REPO, "develop", "master", 130);
    let tmp = temp_dir();
    let request = json!({"source": source(&gh)});
    let latest = in_process(
        &PromotePr,
        &["check"],
        request.to_string().as_bytes(),
        &env(tmp.path()),
    )
    .success();
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["number"], "130");
    let pages = gh
        .requests()
        .iter()
        .filter(|r| r.contains("/pulls?"))
        .count();
    assert_eq!(
        pages,
        2,
        "130 pull requests at 100 a page: {:?}",
        gh.requests()
    );
}

/// Concourse stops a step with SIGTERM: a merge wait stops at once, the pull request stays
/// open and unmerged, and the step says so.
#[test]
fn sigterm_during_the_merge_wait_leaves_the_pull_request_open() {
    let gh = fake();
    let head = gh.push(REPO, "develop", 1);
    gh.protect(REPO, "master", &["ci/unit"]);
    gh.set_status(REPO, &head, "ci/unit", "pending");
    let sources = temp_dir();
    let request = json!({"source": source(&gh), "params": {"merge": true, "timeout": "10m"}});
    let running = Binary::at(env!("CARGO_BIN_EXE_github-promote-pr")).start(
        "out",
        &[arg(sources.path())],
        request.to_string().as_bytes(),
        &env(sources.path()),
    );
    running.wait_for("waiting for checks", Duration::from_secs(20));
    let (run, took) = running.terminate();
    run.assert_no_secret(CANARY);
    assert_eq!(
        run.failure(),
        "aborted by SIGTERM: #1 stays open and unmerged; the next run merges it once it is green"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].1, "open");
    assert!(!pulls[0].2, "not merged");
}
