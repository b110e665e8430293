//! github-promote-pr's API cost, counted by the GitHub fake: requests per `out` (create, and
//! reuse of the open pull request) and per `check` (first, and unchanged: a 304). Goals from the
//! issue: at most 3 for create-or-reuse without merge; 1 request answered 304 for an unchanged
//! check. Prints the counts; asserts nothing about time.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use fakes::github::FakeGithub;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn run(binary: &PathBuf, step: &str, dir: &std::path::Path, request: &str, tmp: &std::path::Path) {
    let mut cmd = Command::new(binary);
    cmd.arg(step);
    if step != "check" {
        cmd.arg(dir);
    }
    let mut child = cmd
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/x86_64-unknown-linux-gnu/image/github-promote-pr");
    assert!(
        binary.is_file(),
        "{} not built; run `make image-bins` (make bench does)",
        binary.display()
    );
    let repo = "microservices/micro-api-gateway";
    let gh = FakeGithub::start();
    gh.add_token("ghp_bench");
    gh.add_repo(repo);
    gh.push(repo, "develop", 3);
    let work = tempfile::tempdir().unwrap();
    let source = json!({"repository": repo, "api_url": gh.url(), "access_token": "ghp_bench"});
    let put = json!({"source": source, "params": {}}).to_string();
    let check = json!({"source": source}).to_string();
    let mut rows = Vec::new();
    let mut measure = |name: &str, step: &str, request: &str| {
        let before = gh.requests().len();
        run(&binary, step, work.path(), request, work.path());
        let new = gh.requests()[before..].to_vec();
        let not_modified = new.iter().filter(|r| r.ends_with("-> 304")).count();
        rows.push(format!("| {name} | {} | {not_modified} |", new.len()));
    };
    measure("out: open the pull request", "out", &put);
    measure("out: reuse it (unchanged)", "out", &put);
    measure("check: first", "check", &check);
    measure("check: nothing changed", "check", &check);
    println!("github-promote-pr API requests, counted by the GitHub fake");
    println!();
    println!("| operation | requests | of which 304 (free) |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
