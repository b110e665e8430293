//! The harness through its public entry point, on resources built to misbehave: the promises
//! (stdout only on success, one error line, no panic output, the ordering rule enforced, the
//! directories handled) hold whatever the resource does.

use protocol::harness::{Invocation, Outcome, run_captured};
use protocol::resource::NoParams;
use protocol::{Context, Metadata, Resource, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    behaviour: String,
    #[serde(default)]
    #[allow(dead_code)] // present so the canary has a secret field to travel in
    password: Option<protocol::Secret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Version {
    n: String,
}

fn v(n: &str) -> Version {
    Version { n: n.into() }
}

struct Misbehaving;

impl Resource for Misbehaving {
    const NAME: &'static str = "misbehaving";
    type Source = Source;
    type Version = Version;
    type GetParams = NoParams;
    type PutParams = NoParams;

    async fn check(
        &self,
        source: Source,
        version: Option<Version>,
        ctx: &Context,
    ) -> anyhow::Result<Vec<Version>> {
        tracing::debug!("debug detail");
        tracing::info!("checking");
        match source.behaviour.as_str() {
            "panic" => panic!("index out of range\nsecond line"),
            "spawned-panic" => {
                let r = tokio::task::spawn_blocking(|| panic!("in a blocking thread")).await;
                r.map_err(|e| anyhow::anyhow!("background task failed: {e}"))
            }
            "alias-last" => Ok(vec![v("1"), v("2"), v("1")]),
            "given-last" => Ok(vec![v("2"), version.unwrap_or_else(|| v("0"))]),
            "many-on-first" => Ok(vec![v("1"), v("2")]),
            "nested-error" => {
                Err(anyhow::anyhow!("HTTP 401\nUnauthorized").context("list tags of r"))
            }
            "env" => Ok(vec![v(ctx.env("SOME_VAR").unwrap_or("unset"))]),
            "build-url" => Ok(vec![v(&ctx
                .build
                .build_url()
                .unwrap_or_else(|| "none".into()))]),
            _ => Ok(protocol::versions_since(
                version.as_ref(),
                vec![v("1"), v("2"), v("3")],
            )),
        }
    }

    async fn get(
        &self,
        _s: Source,
        version: Version,
        _p: NoParams,
        dest: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        std::fs::write(dest.join("n"), &version.n)?;
        Ok(Response::new(version).with_metadata(
            Metadata::new().with("build", ctx.build.build_url().unwrap_or_default()),
        ))
    }

    async fn put(
        &self,
        _s: Source,
        _p: NoParams,
        _dir: &Path,
        _ctx: &Context,
    ) -> anyhow::Result<Response<Version>> {
        Ok(Response::new(v("new")))
    }
}

fn run(args: &[&str], request: &str, env: &[(&str, &str)]) -> Outcome {
    let mut argv = vec!["misbehaving".into()];
    argv.extend(args.iter().map(Into::into));
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_captured(
        &Misbehaving,
        Invocation {
            args: argv,
            env,
            signals: false,
        },
        request.as_bytes(),
    )
}

fn stderr(o: &Outcome) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn error_line(o: &Outcome) -> String {
    assert_eq!(o.code, 1, "stderr: {}", stderr(o));
    assert!(
        o.stdout.is_empty(),
        "stdout on failure: {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o);
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("\x1b[31merror:\x1b[0m "), "{err}");
    last.trim_start_matches("\x1b[31merror:\x1b[0m ").to_owned()
}

#[test]
fn a_panic_becomes_one_error_line_and_exit_1() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "panic", "password": "canary-xyz"}}"#,
        &[],
    );
    let line = error_line(&o);
    assert!(
        line.starts_with("internal error: index out of range second line at "),
        "{line}"
    );
    assert!(
        line.ends_with("this is a bug in the misbehaving resource, please report it"),
        "{line}"
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("canary-xyz"));
}

#[test]
fn a_panic_in_a_blocking_thread_is_a_failed_step_not_a_dump() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "spawned-panic"}}"#,
        &[],
    );
    let line = error_line(&o);
    assert!(line.starts_with("background task failed"), "{line}");
    assert_eq!(stderr(&o).lines().count(), 2, "{}", stderr(&o));
}

#[test]
fn error_chains_are_printed_on_one_line() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "nested-error"}}"#,
        &[],
    );
    assert_eq!(error_line(&o), "list tags of r: HTTP 401 Unauthorized");
}

#[test]
fn check_answers_that_break_the_ordering_rule_are_refused() {
    for (behaviour, version, problem) in [
        ("alias-last", "null", "the same version appears twice"),
        (
            "given-last",
            r#"{"n": "1"}"#,
            "the given version must come first",
        ),
        (
            "many-on-first",
            "null",
            "the first check must return only the latest version",
        ),
    ] {
        let o = run(
            &["check"],
            &format!(r#"{{"source": {{"behaviour": "{behaviour}"}}, "version": {version}}}"#),
            &[],
        );
        let line = error_line(&o);
        assert!(line.contains(problem), "{behaviour}: {line}");
    }
}

#[test]
fn check_prints_one_json_array_and_logs_to_stderr_only() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "ok"}, "version": {"n": "2"}}"#,
        &[],
    );
    assert_eq!(o.code, 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[{\"n\":\"2\"},{\"n\":\"3\"}]\n"
    );
    assert_eq!(stderr(&o), "checking\n");
}

#[test]
fn source_debug_raises_the_log_level_and_is_not_a_resource_key() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "ok", "debug": true}}"#,
        &[],
    );
    assert_eq!(o.code, 0);
    assert!(stderr(&o).contains("debug: debug detail"), "{}", stderr(&o));
}

#[test]
fn steps_read_the_environment_through_the_context() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "env"}}"#,
        &[("SOME_VAR", "from-env")],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[{\"n\":\"from-env\"}]\n"
    );
}

#[test]
fn check_gets_no_build_metadata_even_if_the_environment_has_some() {
    let o = run(
        &["check"],
        r#"{"source": {"behaviour": "build-url"}}"#,
        &[
            ("BUILD_URL", "https://ci/builds/1"),
            ("ATC_EXTERNAL_URL", "https://ci"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[{\"n\":\"none\"}]\n");
}

#[test]
fn in_creates_its_directory_and_sees_build_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("fresh/dest");
    let o = run(
        &["in", dest.to_str().unwrap()],
        r#"{"source": {"behaviour": "ok"}, "version": {"n": "2"}, "params": null}"#,
        &[("BUILD_URL", "https://ci/builds/1")],
    );
    assert_eq!(o.code, 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dest.join("n")).unwrap(), "2");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["metadata"][0]["value"], "https://ci/builds/1");
}

#[test]
fn in_refuses_a_null_version_and_out_a_missing_directory() {
    let o = run(
        &["in", "/tmp"],
        r#"{"source": {"behaviour": "ok"}, "version": null}"#,
        &[],
    );
    assert!(error_line(&o).starts_with("version: null;"));
    let o = run(
        &["out", "/nonexistent/sources"],
        r#"{"source": {"behaviour": "ok"}}"#,
        &[],
    );
    assert!(
        error_line(&o)
            .starts_with("out: the sources directory /nonexistent/sources does not exist")
    );
    let o = run(
        &["out", "/tmp"],
        r#"{"source": {"behaviour": "ok"}, "params": {"x": 1}}"#,
        &[],
    );
    assert_eq!(
        error_line(&o),
        "params.x: unknown key; none are allowed here"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let o = run(&["deploy"], "{}", &[]);
    assert_eq!(o.code, 2);
    assert!(
        stderr(&o)
            .contains("unknown step \"deploy\"; usage: misbehaving check | in <dir> | out <dir>")
    );
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = run(&["--help"], "", &[]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.is_empty());
}
