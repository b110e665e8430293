//! Cold start of a resource binary on a bad request, next to `/bin/true` in the same run.
//!
//! Concourse starts a fresh process for every check of every resource, every minute, so the
//! start-up cost is paid constantly. Measures each shipped binary (the `image` profile, static)
//! answering an empty stdin with its one error line, interleaved run by run with `/bin/true`
//! so both see the same machine load. Prints medians and the ratio; asserts nothing about time.

// A benchmark's report is its stdout; it is not a resource, so the stdout rule does not apply.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 400;

fn time_once(program: &str, argv0: &str, stdin: &[u8]) -> Duration {
    let start = Instant::now();
    let mut child = {
        let mut cmd = Command::new(program);
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
    };
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait().expect("wait");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let truth = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("/bin/true");
    println!("cold start, {RUNS} runs each, interleaved with {truth}");
    println!("| program | median | p90 | {truth} median | ratio (median) |");
    println!("|---|---|---|---|---|");
    // Every shipped resource, and the template.
    for name in [
        "gcr-image",
        "k8s-deploy",
        "github-promote-pr",
        "acceptance-run",
        "example-resource",
    ] {
        let binary = root
            .join("target/x86_64-unknown-linux-gnu/image")
            .join(name);
        assert!(
            binary.is_file(),
            "{} not built; run `make image-bins` (make bench does)",
            binary.display()
        );
        let binary = binary.to_str().expect("UTF-8 path").to_owned();
        // Warm the page cache for both.
        for _ in 0..20 {
            time_once(&binary, "check", b"");
            time_once(truth, "true", b"");
        }
        let (mut ours, mut baseline) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ours.push(time_once(&binary, "check", b""));
            baseline.push(time_once(truth, "true", b""));
        }
        let (m_ours, m_true) = (median(ours.clone()), median(baseline));
        println!(
            "| {name} check (empty stdin -> one error line, exit 1) | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} |",
            m_ours.as_secs_f64() * 1e3,
            p90(ours).as_secs_f64() * 1e3,
            m_true.as_secs_f64() * 1e3,
            m_ours.as_secs_f64() / m_true.as_secs_f64()
        );
    }
}
