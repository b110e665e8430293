//! The test kit: run a resource step the three ways Concourse-facing code must be proven.
//!
//! - [`in_process`]: the harness on in-memory stdin/stdout/stderr (fast, debuggable);
//! - [`Binary`]: the built binary, called as `check`/`in`/`out` through argv[0] exactly as
//!   Concourse calls `/opt/resource/*`, with a clean environment plus the `BUILD_*` variables;
//! - [`Image`]: the built image under `docker run -i IMAGE /opt/resource/check`.
//!
//! Every way returns a [`Run`] with assertions for the protocol's promises: one JSON document
//! on success, one error line and a non-zero exit on failure, a canary secret nowhere.
//! Missing prerequisites (an unbuilt binary, no image, no docker) fail the test with a message
//! saying what to run; nothing is skipped silently.

use protocol::Resource;
pub mod fields;

use protocol::harness::{Invocation, Outcome, run_captured};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A value that must never appear in any output. Put it in every secret field of a test.
pub const CANARY: &str = "canary-7f3a9c-never-print-me";

/// Exit code and output of one step.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    /// stderr as written (with ANSI colours).
    pub stderr: String,
}

impl From<Outcome> for Run {
    fn from(o: Outcome) -> Self {
        Self {
            code: o.code,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// stderr without ANSI escapes, as a person reads it.
    pub fn log(&self) -> String {
        strip_ansi(&self.stderr)
    }

    /// Exit 0 and stdout is one JSON document; returns it.
    #[track_caller]
    pub fn success(&self) -> Value {
        assert_eq!(
            self.code,
            0,
            "expected success, got exit {}; stderr:\n{}",
            self.code,
            self.log()
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// A failure reported the protocol's way: exit != 0, nothing on stdout, and stderr's last
    /// line is the `error: ...` line, with no panic or backtrace anywhere. Returns the error
    /// line without its `error: ` prefix.
    #[track_caller]
    pub fn failure(&self) -> String {
        let log = self.log();
        assert_ne!(
            self.code, 0,
            "expected a failure; stdout:\n{}\nstderr:\n{log}",
            self.stdout
        );
        assert!(
            self.stdout.is_empty(),
            "stdout must be empty on failure, got:\n{}",
            self.stdout
        );
        assert!(
            !log.contains("panicked at")
                && !log.contains("RUST_BACKTRACE")
                && !log.contains("stack backtrace"),
            "stderr shows a panic:\n{log}"
        );
        let last = log.lines().last().unwrap_or("");
        let line = last
            .strip_prefix("error: ")
            .unwrap_or_else(|| panic!("the last stderr line is not an `error: ` line:\n{log}"));
        assert!(!line.trim().is_empty(), "empty error line");
        line.to_owned()
    }

    /// A failure whose whole stderr is the one error line (bad input: nothing else to say).
    #[track_caller]
    pub fn one_line_failure(&self) -> String {
        let line = self.failure();
        let log = self.log();
        assert_eq!(
            log.lines().count(),
            1,
            "expected exactly one stderr line, got:\n{log}"
        );
        line
    }

    /// `secret` appears in neither stdout nor stderr.
    #[track_caller]
    pub fn assert_no_secret(&self, secret: &str) -> &Self {
        assert!(!secret.is_empty());
        assert!(
            !self.stdout.contains(secret),
            "secret printed on stdout:\n{}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(secret),
            "secret printed on stderr:\n{}",
            self.stderr
        );
        self
    }
}

/// Removes ANSI CSI sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `BUILD_*` environment of a job build on Concourse 7 (no `BUILD_URL`).
pub fn build_env() -> BTreeMap<String, String> {
    [
        ("BUILD_ID", "4242"),
        ("BUILD_NAME", "17"),
        ("BUILD_JOB_NAME", "deploy-test"),
        ("BUILD_PIPELINE_NAME", "microservices"),
        ("BUILD_TEAM_NAME", "main"),
        ("ATC_EXTERNAL_URL", "https://ci.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs a step in-process. `args` is argv after argv[0], e.g. `["check"]`, `["in", dir]`.
pub fn in_process<R: Resource>(
    resource: &R,
    args: &[&str],
    stdin: &[u8],
    env: &BTreeMap<String, String>,
) -> Run {
    let mut argv: Vec<OsString> = vec![R::NAME.into()];
    argv.extend(args.iter().map(OsString::from));
    run_captured(
        resource,
        Invocation {
            args: argv,
            env: env.clone(),
            signals: false,
        },
        stdin,
    )
    .into()
}

/// Target directory of the current build (`target/debug`), from the test executable's path
/// (`target/debug/deps/name-hash`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let deps = exe.parent().expect("test executable has a directory");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps).to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// A built resource binary.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
}

impl Binary {
    /// A binary at a known path (`env!("CARGO_BIN_EXE_<name>")` in the crate's own tests).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The workspace binary `name` from the same target directory as the running test.
    #[track_caller]
    pub fn find(name: &str) -> Self {
        let path = target_dir().join(name);
        assert!(
            path.is_file(),
            "binary {} is not built; run `cargo build --workspace --bins` (make test does)",
            path.display()
        );
        Self { path }
    }

    /// Runs `argv0 args...` (argv0 `check`/`in`/`out` as Concourse does, or the resource name
    /// with the step as first argument) with only `env` in the environment.
    pub fn run(
        &self,
        argv0: &str,
        args: &[&str],
        stdin: &[u8],
        env: &BTreeMap<String, String>,
    ) -> Run {
        let mut cmd = Command::new(&self.path);
        cmd.arg0(argv0).args(args).env_clear().envs(env);
        spawn(cmd, stdin)
    }
}

impl Binary {
    /// Starts `argv0 args...` in the background with the request written to its stdin, to be
    /// stopped mid-step the way Concourse stops one ([`Running::terminate`]).
    pub fn start(
        &self,
        argv0: &str,
        args: &[&str],
        stdin: &[u8],
        env: &BTreeMap<String, String>,
    ) -> Running {
        let mut cmd = Command::new(&self.path);
        cmd.arg0(argv0).args(args).env_clear().envs(env);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.path.display()));
        let mut input = child.stdin.take().expect("piped stdin");
        let _ = input.write_all(stdin);
        drop(input);
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }
}

/// A step running in the background (see [`Binary::start`]).
#[derive(Debug)]
pub struct Running {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The log so far, without ANSI escapes.
    pub fn log(&self) -> String {
        strip_ansi(
            &self
                .stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Waits until the log contains `text` (bounded by `within`); panics with the log if not.
    #[track_caller]
    pub fn wait_for(&self, text: &str, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "the step never logged {text:?}; log so far:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM, as Concourse does on abort or step timeout (`kill -TERM`: no unsafe code
    /// here), and waits for the process (bounded: Concourse sends SIGKILL 10 s later, so a
    /// step still running after 10 s fails the test).
    pub fn terminate(mut self) -> (Run, std::time::Duration) {
        let sent = std::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let code = self.exit_code(sent + std::time::Duration::from_secs(10), || {
            "the step was still running 10 s after SIGTERM (Concourse would SIGKILL it)".into()
        });
        let took = sent.elapsed();
        (self.collect(code), took)
    }

    /// Waits for the step to end by itself (bounded by `within`; past it the test fails with
    /// the log) and returns what it wrote.
    #[track_caller]
    pub fn finish(mut self, within: std::time::Duration) -> Run {
        let code = self.exit_code(std::time::Instant::now() + within, || {
            format!("the step did not end within {within:?}")
        });
        self.collect(code)
    }

    /// The exit code, once the process ends before `deadline`; past it, the process is
    /// killed and the test fails with `why` and the log.
    fn exit_code(&mut self, deadline: std::time::Instant, why: impl Fn() -> String) -> i32 {
        loop {
            if let Some(s) = self.child.try_wait().expect("wait for the step") {
                return s.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{}; log:\n{}", why(), self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn collect(&mut self, code: i32) -> Run {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Run {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A built resource image, run under the local Docker daemon as Concourse runs it.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: String,
}

impl Image {
    /// `name:dev`, built by `make images`. Fails the test, saying so, when docker or the
    /// image is missing.
    #[track_caller]
    pub fn find(name: &str) -> Self {
        let reference = format!("{name}:dev");
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &reference])
            .output();
        match out {
            Err(e) => {
                panic!("cannot run docker ({e}); the image tests need the Docker CLI and daemon")
            }
            Ok(o) if !o.status.success() => panic!(
                "image {reference} not found ({}); build it with `make images` (make test does)",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Ok(_) => Self { reference },
        }
    }

    /// `docker run -i --rm [docker_args] IMAGE /opt/resource/<step> args...` with `env` as `-e`.
    pub fn run(
        &self,
        step: &str,
        args: &[&str],
        stdin: &[u8],
        env: &BTreeMap<String, String>,
        docker_args: &[&str],
    ) -> Run {
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-i", "--rm"]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.args(docker_args)
            .arg(&self.reference)
            .arg(format!("/opt/resource/{step}"))
            .args(args);
        spawn(cmd, stdin)
    }

    /// `in <dir>` / `out <dir>`: `host_dir` is mounted at `/tmp/build/<step>`, as a Concourse
    /// worker mounts a build's volume, and that path is the step's argument.
    pub fn run_with_dir(
        &self,
        step: &str,
        host_dir: &Path,
        stdin: &[u8],
        env: &BTreeMap<String, String>,
        docker_args: &[&str],
    ) -> Run {
        let inside = format!("/tmp/build/{step}");
        let mount = format!("{}:{inside}", host_dir.display());
        let mut args = docker_args.to_vec();
        args.extend(["-v", &mount]);
        self.run(step, &[&inside], stdin, env, &args)
    }

    /// Size in bytes as the daemon reports it.
    pub fn size(&self) -> u64 {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Size}}", &self.reference])
            .output()
            .expect("docker image inspect");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

fn spawn(mut cmd: Command, stdin: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    // The resource may stop reading early (oversized requests): a broken pipe is expected.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait for the step");
    let _ = writer.join();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A temporary directory for `in`/`out`, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// `path` as `&str` for argv (test paths are UTF-8).
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_ansi_removes_colour_codes_only() {
        assert_eq!(
            strip_ansi("\x1b[31merror:\x1b[0m bad [x]"),
            "error: bad [x]"
        );
    }
}
