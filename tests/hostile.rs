//! The hostile-input corpus: bad and hostile requests and build directories for each of the
//! four resources, run as Concourse runs them (the built binary, JSON on stdin, the build
//! directory as argument), against our fakes. Every case must fail the protocol's way (exit
//! non-zero, nothing on stdout, one `error:` line last, no panic), say what it was asked to
//! say, print neither the secret canary nor a byte of the file outside the build directory,
//! and leave the outside system as it was. The tally per resource is printed.

#![allow(clippy::unwrap_used)]

use fakes::github::FakeGithub;
use fakes::kube::{FakeKube, Options};
use fakes::registry::{Auth, Registry};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use testkit::{Binary, CANARY, build_env};

/// What a file outside the build directory holds; no output may contain it.
const OUTSIDE: &str = "root:x:0:0:outside-canary-5d1e";

struct Case {
    label: &'static str,
    step: &'static str,
    request: Value,
    /// Builds the build directory (`build`, with `outside` beside it).
    setup: fn(build: &Path, outside: &Path),
    /// A piece of the one error line.
    expect: &'static str,
}

fn nothing(_: &Path, _: &Path) {}

fn run_cases(binary: &str, cases: Vec<Case>) -> usize {
    let bin = Binary::find(binary);
    let mut held = 0;
    for case in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&build).unwrap();
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("secret"), OUTSIDE).unwrap();
        std::fs::write(outside.join("dir/secret"), OUTSIDE).unwrap();
        (case.setup)(&build, &outside);
        let mut env: BTreeMap<String, String> = build_env();
        env.insert("TMPDIR".into(), tmp.path().display().to_string());
        let args: Vec<&str> = if case.step == "check" {
            vec![]
        } else {
            vec![build.to_str().unwrap()]
        };
        let run = bin.run(case.step, &args, case.request.to_string().as_bytes(), &env);
        let label = format!("{binary} {} / {}", case.step, case.label);
        let line = std::panic::catch_unwind(|| run.failure())
            .unwrap_or_else(|_| panic!("{label}: not a protocol failure:\n{}", run.log()));
        run.assert_no_secret(CANARY);
        assert!(
            !run.stderr.contains("outside-canary"),
            "{label}: printed the outside file:\n{}",
            run.log()
        );
        assert!(
            line.contains(case.expect),
            "{label}: expected {:?} in the error line, got: {line}",
            case.expect
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            OUTSIDE,
            "{label}: changed the outside file"
        );
        held += 1;
    }
    eprintln!("{binary}: {} hostile cases tried, {held} held", cases.len());
    held
}

fn link_out(build: &Path, outside: &Path, name: &str) {
    symlink(outside.join("secret"), build.join(name)).unwrap();
}

#[test]
fn gcr_image_refuses_hostile_requests_and_build_directories() {
    let registry = Registry::start(Auth::None);
    let repo = format!("{}/team/app", registry.host());
    let source = json!({"repository": repo, "insecure": true, "password": CANARY, "username": "u"});
    let put = |params: Value| json!({"source": source, "params": params});
    let cases = vec![
        Case {
            label: "tag_file is a symlink out",
            step: "out",
            request: put(json!({"image": "img", "tag_file": "tag"})),
            setup: |b, o| {
                std::fs::create_dir(b.join("img")).unwrap();
                link_out(b, o, "tag");
            },
            expect: "params.tag_file: tag leads outside the build's directory",
        },
        Case {
            label: "additional_tags_file is a symlink out",
            step: "out",
            request: put(json!({"image": "img", "tag": "1", "additional_tags_file": "more"})),
            setup: |b, o| {
                std::fs::create_dir(b.join("img")).unwrap();
                link_out(b, o, "more");
            },
            expect: "params.additional_tags_file: more leads outside",
        },
        Case {
            label: "promote directory's digest is a symlink out",
            step: "out",
            request: put(json!({"promote": "got", "tag": "1"})),
            setup: |b, o| {
                std::fs::create_dir(b.join("got")).unwrap();
                std::fs::write(b.join("got/repository"), "127.0.0.1:5000/team/app").unwrap();
                symlink(o.join("secret"), b.join("got/digest")).unwrap();
            },
            expect: "params.promote: got/digest leads outside",
        },
        Case {
            label: "image is a symlinked directory out",
            step: "out",
            request: put(json!({"image": "img", "tag": "1"})),
            setup: |b, o| symlink(o.join("dir"), b.join("img")).unwrap(),
            expect: "params.image: img leads outside",
        },
        Case {
            label: "tag_file climbs out",
            step: "out",
            request: put(json!({"image": "img", "tag_file": "../outside/secret"})),
            setup: nothing,
            expect: "params.tag_file: must be a relative path",
        },
        Case {
            label: "tag_file is absolute",
            step: "out",
            request: put(json!({"image": "img", "tag_file": "/etc/passwd"})),
            setup: nothing,
            expect: "params.tag_file: must be a relative path",
        },
        Case {
            label: "params given as a list",
            step: "out",
            request: json!({"source": source, "params": ["img", "1"]}),
            setup: nothing,
            expect: "params: expected a mapping",
        },
        Case {
            label: "a port that cannot be",
            step: "check",
            request: json!({"source": {"repository": "127.0.0.1:99999/team/app", "insecure": true}}),
            setup: nothing,
            expect: "source.repository: has an invalid port",
        },
        Case {
            label: "a version digest that is a path",
            step: "in",
            request: json!({"source": source, "version": {"tag": "1", "digest": "sha256:../../x"}}),
            setup: nothing,
            expect: "version.digest",
        },
    ];
    assert_eq!(run_cases("gcr-image", cases), 9);
    let writes: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .collect();
    assert!(writes.is_empty(), "nothing was pushed: {writes:?}");
}

#[test]
fn github_promote_pr_refuses_hostile_requests_and_build_directories() {
    let gh = FakeGithub::start();
    gh.add_token(CANARY);
    gh.add_repo("o/r");
    gh.push("o/r", "develop", 1);
    let source = json!({"repository": "o/r", "api_url": gh.url(), "access_token": CANARY});
    let put = |params: Value| json!({"source": source, "params": params});
    let check = |extra: Value| {
        let mut s = source.clone();
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"source": s})
    };
    let cases = vec![
        Case {
            label: "body_file is a symlink out",
            step: "out",
            request: put(json!({"body_file": "body"})),
            setup: |b, o| link_out(b, o, "body"),
            expect: "params.body_file: body leads outside",
        },
        Case {
            label: "title_file is a symlink out",
            step: "out",
            request: put(json!({"title_file": "title"})),
            setup: |b, o| link_out(b, o, "title"),
            expect: "params.title_file: title leads outside",
        },
        Case {
            label: "an image directory's digest is a symlink out",
            step: "out",
            request: put(json!({"images": ["img"]})),
            setup: |b, o| {
                std::fs::create_dir(b.join("img")).unwrap();
                std::fs::write(b.join("img/repository"), "us.gcr.io/p/a").unwrap();
                std::fs::write(b.join("img/tag"), "1").unwrap();
                symlink(o.join("secret"), b.join("img/digest")).unwrap();
            },
            expect: "params.images[0]: img/digest leads outside",
        },
        Case {
            label: "the acceptance summary is a symlink out",
            step: "out",
            request: put(json!({"acceptance": "acc"})),
            setup: |b, o| {
                std::fs::create_dir(b.join("acc")).unwrap();
                symlink(o.join("secret"), b.join("acc/summary.md")).unwrap();
            },
            expect: "params.acceptance: acc/summary.md leads outside",
        },
        Case {
            label: "a token with a line break",
            step: "check",
            request: json!({"source": {"repository": "o/r", "api_url": gh.url(), "access_token": format!("{CANARY}\r\nX-Evil: 1")}}),
            setup: nothing,
            expect: "source.access_token: contains a line break",
        },
        Case {
            label: "plain http to another host",
            step: "check",
            request: check(json!({"api_url": "http://203.0.113.9/api/v3"})),
            setup: nothing,
            expect: "source.api_url: is plain http",
        },
        Case {
            label: "a branch name with a query in it",
            step: "check",
            request: check(json!({"head": "develop?state=closed"})),
            setup: nothing,
            expect: "source.head: is not a valid branch name",
        },
        Case {
            label: "params given as a list",
            step: "out",
            request: json!({"source": source, "params": ["title"]}),
            setup: nothing,
            expect: "params: expected a mapping",
        },
        Case {
            label: "a timeout past Go's limit",
            step: "out",
            request: put(json!({"merge": true, "timeout": "307445734561825861m"})),
            setup: nothing,
            expect: "params.timeout: must be a duration",
        },
    ];
    assert_eq!(run_cases("github-promote-pr", cases), 9);
    assert!(
        gh.requests().iter().all(|r| !r.starts_with("POST")),
        "no pull request was opened: {:?}",
        gh.requests()
    );
}

#[test]
fn k8s_deploy_refuses_hostile_requests_and_build_directories() {
    let fake = FakeKube::start(Options {
        token: Some(CANARY.into()),
        ..Options::default()
    });
    let before = fake.list("", "v1", "namespaces", "").len();
    let source = json!({"server": fake.url(), "token": CANARY, "namespace": "default"});
    let put = |params: Value| json!({"source": source, "params": params});
    let check = |server: &str, token: &str| json!({"source": {"server": server, "token": token}});
    let kubeconfig_with_token = |token: &str| {
        json!({"source": {"kubeconfig": format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            fake.url(), serde_json::to_string(token).unwrap())}})
    };
    let cases = vec![
        Case {
            label: "namespace_file is a symlink out",
            step: "out",
            request: put(json!({"namespace_file": "ns"})),
            setup: |b, o| link_out(b, o, "ns"),
            expect: "params.namespace_file: ns leads outside",
        },
        Case {
            label: "a manifest is a symlink out",
            step: "out",
            request: put(json!({"manifests": ["m.yml"]})),
            setup: |b, o| link_out(b, o, "m.yml"),
            expect: "params.manifests[0]: m.yml leads outside",
        },
        Case {
            label: "a manifest in a directory is a symlink out",
            step: "out",
            request: put(json!({"manifests": ["k8s"]})),
            setup: |b, o| {
                std::fs::create_dir(b.join("k8s")).unwrap();
                symlink(o.join("secret"), b.join("k8s/a.yml")).unwrap();
            },
            expect: "k8s/a.yml leads outside",
        },
        Case {
            label: "an image directory's image-ref is a symlink out",
            step: "out",
            request: put(json!({"images": [{"deployment": "api", "image": "img"}]})),
            setup: |b, o| {
                std::fs::create_dir(b.join("img")).unwrap();
                symlink(o.join("secret"), b.join("img/image-ref")).unwrap();
            },
            expect: "img/image-ref leads outside",
        },
        Case {
            label: "a server with a kubeconfig field injected",
            step: "check",
            request: check(
                "https://10.0.0.1\n    insecure-skip-tls-verify: true",
                CANARY,
            ),
            setup: nothing,
            expect: "source.server: must be the API server's URL",
        },
        Case {
            label: "plain http to another host",
            step: "check",
            request: check("http://203.0.113.10:6443", CANARY),
            setup: nothing,
            expect: "source.server: is plain http",
        },
        Case {
            label: "a token with CR LF",
            step: "check",
            request: check("https://10.0.0.1", &format!("{CANARY}\r\nX: y")),
            setup: nothing,
            expect: "source.token: contains a line break",
        },
        Case {
            label: "a kubeconfig token with CR LF",
            step: "check",
            request: kubeconfig_with_token(&format!("{CANARY}\r\nX: y")),
            setup: nothing,
            expect: "source.kubeconfig: the token of user \"u\" contains a line break",
        },
        Case {
            label: "a timeout past Go's limit",
            step: "out",
            request: put(json!({"timeout": "307445734561825861m", "manifests": ["m.yml"]})),
            setup: |b, _| {
                std::fs::write(
                    b.join("m.yml"),
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
                )
                .unwrap()
            },
            expect: "params.timeout",
        },
        Case {
            label: "a Secret manifest with a YAML error",
            step: "out",
            request: put(json!({"manifests": ["s.yml"]})),
            setup: |b, _| {
                std::fs::write(
                    b.join("s.yml"),
                    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  password: {CANARY}\n  other: [unclosed\n  more: {CANARY}\n"),
                )
                .unwrap()
            },
            expect: "params.manifests: s.yml: invalid YAML",
        },
    ];
    assert_eq!(run_cases("k8s-deploy", cases), 10);
    assert_eq!(
        fake.list("", "v1", "namespaces", "").len(),
        before,
        "no namespace was made"
    );
    assert!(
        fake.list("", "v1", "configmaps", "default").is_empty()
            && fake.list("", "v1", "secrets", "default").is_empty(),
        "nothing was applied"
    );
}

#[test]
fn acceptance_run_refuses_hostile_requests_and_build_directories() {
    let source = json!({"reports_repository": "127.0.0.1:5999/p/reports", "insecure": true, "password": CANARY, "username": "u"});
    let put = |params: Value| json!({"source": source, "params": params});
    let with_cluster = json!({"reports_repository": "127.0.0.1:5999/p/reports", "insecure": true,
                              "server": "https://10.0.0.1", "token": CANARY});
    let cases = vec![
        Case {
            label: "gateway_url_file is a symlink out",
            step: "out",
            request: put(json!({"gateway_url_file": "gw"})),
            setup: |b, o| link_out(b, o, "gw"),
            expect: "params.gateway_url_file: gw leads outside",
        },
        Case {
            label: "namespace_file is a symlink out",
            step: "out",
            request: json!({"source": with_cluster, "params": {"runner": "kubernetes", "namespace_file": "ns",
                            "gateway_service": "api-gateway:8080", "image": "suite:1", "reporter_image": "r:1"}}),
            setup: |b, o| link_out(b, o, "ns"),
            expect: "params.namespace_file: ns leads outside",
        },
        Case {
            label: "dir is a symlinked directory out",
            step: "out",
            request: put(json!({"gateway_url": "http://127.0.0.1:1", "dir": "suite"})),
            setup: |b, o| symlink(o.join("dir"), b.join("suite")).unwrap(),
            expect: "params.dir: suite leads outside",
        },
        Case {
            label: "a smoke path that changes the host",
            step: "out",
            request: put(
                json!({"gateway_url": "http://127.0.0.1:1", "smoke": [{"name": "x", "path": "@evil.example/x"}]}),
            ),
            setup: nothing,
            expect: "params.smoke[0].path: must be a path on the gateway",
        },
        Case {
            label: "a network-path smoke path",
            step: "out",
            request: put(
                json!({"gateway_url": "http://127.0.0.1:1", "smoke": [{"name": "x", "path": "//evil.example/x"}]}),
            ),
            setup: nothing,
            expect: "params.smoke[0].path: must be a path on the gateway",
        },
        Case {
            label: "an empty env name",
            step: "out",
            request: put(json!({"gateway_url": "http://127.0.0.1:1", "env": {"": "x"}})),
            setup: nothing,
            expect: "params.env: has a name that cannot be an environment variable",
        },
        Case {
            label: "an env name with =",
            step: "out",
            request: put(json!({"gateway_url": "http://127.0.0.1:1", "env": {"A=B": "x"}})),
            setup: nothing,
            expect: "params.env: has a name that cannot be an environment variable",
        },
        Case {
            label: "an unbounded smoke_timeout",
            step: "out",
            request: put(json!({"gateway_url": "http://127.0.0.1:1", "smoke_timeout": "100h"})),
            setup: nothing,
            expect: "params.smoke_timeout: must be at most 1h0m0s",
        },
        Case {
            label: "check with plain http to another host",
            step: "check",
            request: json!({"source": {"reports_repository": "127.0.0.1:5999/p/reports", "insecure": true,
                                       "server": "http://203.0.113.1", "token": CANARY}}),
            setup: nothing,
            expect: "source.server: is plain http",
        },
        Case {
            label: "in with a digest that is a path",
            step: "in",
            request: json!({"source": source, "version": {"run": "1", "digest": "sha256:../../x"}}),
            setup: nothing,
            expect: "version.digest",
        },
    ];
    assert_eq!(run_cases("acceptance-run", cases), 10);
}
