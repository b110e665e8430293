//! The harness: argv, stdin, stdout, exit code. The only code that writes stdout.
//!
//! Concourse runs `/opt/resource/check`, `/opt/resource/in <dir>`, `/opt/resource/out <dir>`
//! (links to one binary), so the step is the basename of argv[0]; people run
//! `gcr-image check`, so the first argument works too. Exit codes: 0 with one JSON document
//! on stdout; 1 with one `error:` line on stderr (bad request, failed step, panic); 2 for a
//! command line that is not a step (usage line on stderr).

use crate::log::{RED, RESET, SharedWriter, subscriber};
use crate::order;
use crate::parse::{self, Parsed, StepKind, one_line};
use crate::resource::{Context, Resource};
use crate::wire::{self, CheckRequest, GetRequest, PutRequest};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The command line and environment of one run.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// argv, argv[0] included.
    pub args: Vec<OsString>,
    /// The environment (build metadata, `DOCKER_HOST`, ...).
    pub env: BTreeMap<String, String>,
    /// Stop the step on SIGTERM/SIGINT and run its abort hooks ([`crate::abort`]). Only a
    /// real process listens: an in-process test run must not take the test runner's signals.
    pub signals: bool,
}

impl Invocation {
    pub fn from_process() -> Self {
        Self {
            args: std::env::args_os().collect(),
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            signals: true,
        }
    }
}

/// Exit code and output of one in-process run (see [`run_captured`]).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Step(StepKind, Option<PathBuf>),
    Help,
    Version,
}

/// Runs a resource as a process: real argv, stdin, stdout, stderr; exits.
pub fn main<R: Resource>(resource: R) -> ! {
    let invocation = Invocation::from_process();
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // A person at a terminal: say what we are waiting for instead of hanging silently.
        eprintln!("reading the JSON request from stdin (end with Ctrl-D)");
    }
    #[allow(clippy::disallowed_methods)] // the one place stdout is opened
    let stdout = io::stdout();
    let code = run(
        &resource,
        invocation,
        &mut stdin.lock(),
        &mut stdout.lock(),
        SharedWriter::stderr(),
    );
    std::process::exit(code)
}

/// Runs a resource in-process on a request, capturing everything (for tests and tools).
pub fn run_captured<R: Resource>(resource: &R, invocation: Invocation, stdin: &[u8]) -> Outcome {
    let (stderr, buf) = SharedWriter::buffer();
    let mut stdout = Vec::new();
    let code = run(resource, invocation, &mut &stdin[..], &mut stdout, stderr);
    let stderr = buf.lock().map(|b| b.clone()).unwrap_or_default();
    Outcome {
        code,
        stdout,
        stderr,
    }
}

/// One run of one step. Returns the exit code.
pub fn run<R: Resource>(
    resource: &R,
    invocation: Invocation,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    mut stderr: SharedWriter,
) -> i32 {
    let usage = format!(
        "usage: {} check | in <dir> | out <dir>   (JSON request on stdin; Concourse runs /opt/resource/check, in, out)",
        R::NAME
    );
    let (step, dir) = match command(&invocation.args) {
        Ok(Command::Step(step, dir)) => (step, dir),
        Ok(Command::Help) => {
            let _ = writeln!(stderr, "{usage}");
            return 0;
        }
        Ok(Command::Version) => {
            return match writeln!(stdout, "{} {}", R::NAME, env!("CARGO_PKG_VERSION")) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
        Err(problem) => {
            let _ = writeln!(stderr, "{RED}error:{RESET} {problem}; {usage}");
            return 2;
        }
    };

    install_panic_hook();
    let result = IN_HARNESS.with(|flag| {
        flag.set(true);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            execute(resource, step, dir.as_deref(), &invocation, stdin, &stderr)
        }));
        flag.set(false);
        result
    });
    let answer = match result {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "internal error: {}; this is a bug in the {} resource, please report it",
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic".into()),
            R::NAME
        )),
    };
    let written = answer.and_then(|json| {
        let mut text = json.to_string();
        text.push('\n');
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("write the answer to stdout: {e}"))
    });
    match written {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(stderr, "{RED}error:{RESET} {}", one_line(&message));
            let _ = stderr.flush();
            1
        }
    }
}

fn command(args: &[OsString]) -> Result<Command, String> {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let (word, rest) = match step_of(name) {
        Some(_) => (name.to_owned(), args.get(1..).unwrap_or(&[])),
        None => match args.get(1).and_then(|a| a.to_str()) {
            Some(w) => (w.to_owned(), args.get(2..).unwrap_or(&[])),
            None if name.is_empty() => return Err("no step given".into()),
            None => return Err(format!("no step given (called as \"{}\")", one_line(name))),
        },
    };
    match word.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" | "version" => return Ok(Command::Version),
        _ => {}
    }
    let Some(step) = step_of(&word) else {
        return Err(format!("unknown step \"{}\"", one_line(&word)));
    };
    match (step, rest) {
        (StepKind::Check, []) => Ok(Command::Step(step, None)),
        (StepKind::Check, _) => Err("check takes no arguments".into()),
        (_, [dir]) => Ok(Command::Step(step, Some(PathBuf::from(dir)))),
        (_, []) => Err(format!("{word} needs the directory argument")),
        (_, _) => Err(format!("{word} takes exactly one directory argument")),
    }
}

fn step_of(word: &str) -> Option<StepKind> {
    match word {
        "check" => Some(StepKind::Check),
        "in" => Some(StepKind::Get),
        "out" => Some(StepKind::Put),
        _ => None,
    }
}

/// Reads, parses, runs the step, checks the answer. `Err` is the one-line message.
fn execute<R: Resource>(
    resource: &R,
    step: StepKind,
    dir: Option<&Path>,
    invocation: &Invocation,
    stdin: &mut dyn Read,
    stderr: &SharedWriter,
) -> Result<serde_json::Value, String> {
    let mut bytes = Vec::new();
    stdin
        .take(parse::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("request: cannot read stdin: {e}"))?;

    let fail = |e: anyhow::Error| format!("{e:#}");

    match step {
        StepKind::Check => {
            let Parsed { request, debug } = parse::parse_request::<
                CheckRequest<R::Source, R::Version>,
            >(&bytes, step, R::NAME, R::EXAMPLES)?;
            // Concourse gives check no build metadata (a check belongs to no build): drop any
            // stray BUILD_* so a resource cannot come to depend on them; keep the rest.
            let mut ctx = Context::new(invocation.env.clone(), debug);
            ctx.build = Default::default();
            let _log = tracing::subscriber::set_default(subscriber(stderr.clone(), debug));
            let given = request.version;
            let given_json = given.as_ref().map(wire::version_to_json);
            let versions = runtime()?
                .block_on(stoppable(
                    invocation.signals,
                    &ctx,
                    resource.check(request.source, given, &ctx),
                ))
                .map_err(fail)?;
            if let Some(problem) = order::violation(
                given_json.and_then(Result::ok).as_ref(),
                &versions
                    .iter()
                    .map(wire::version_to_json)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("internal error: {e}"))?,
            ) {
                return Err(format!(
                    "internal error: check broke the protocol's ordering rule ({problem}); this is a bug in the {} resource",
                    R::NAME
                ));
            }
            wire::versions_to_json(&versions).map_err(|e| format!("internal error: {e}"))
        }
        StepKind::Get => {
            let Parsed { request, debug } = parse::parse_request::<
                GetRequest<R::Source, R::Version, R::GetParams>,
            >(&bytes, step, R::NAME, R::EXAMPLES)?;
            let dest = dir.ok_or("in needs the directory argument")?;
            std::fs::create_dir_all(dest)
                .map_err(|e| format!("create the destination {}: {e}", dest.display()))?;
            let ctx = Context::new(invocation.env.clone(), debug);
            let _log = tracing::subscriber::set_default(subscriber(stderr.clone(), debug));
            let response = runtime()?
                .block_on(stoppable(
                    invocation.signals,
                    &ctx,
                    resource.get(request.source, request.version, request.params, dest, &ctx),
                ))
                .map_err(fail)?;
            wire::response_to_json(&response).map_err(|e| format!("internal error: {e}"))
        }
        StepKind::Put => {
            let Parsed { request, debug } = parse::parse_request::<
                PutRequest<R::Source, R::PutParams>,
            >(&bytes, step, R::NAME, R::EXAMPLES)?;
            let sources = dir.ok_or("out needs the directory argument")?;
            if !sources.is_dir() {
                return Err(format!(
                    "out: the sources directory {} does not exist; pass the build's working directory",
                    sources.display()
                ));
            }
            let ctx = Context::new(invocation.env.clone(), debug);
            let _log = tracing::subscriber::set_default(subscriber(stderr.clone(), debug));
            let response = runtime()?
                .block_on(stoppable(
                    invocation.signals,
                    &ctx,
                    resource.put(request.source, request.params, sources, &ctx),
                ))
                .map_err(fail)?;
            wire::response_to_json(&response).map_err(|e| format!("internal error: {e}"))
        }
    }
}

/// Runs `step`; with `signals`, a SIGTERM or SIGINT stops it, its abort hooks run within
/// [`crate::abort::GRACE`], and the step fails saying so.
async fn stoppable<T>(
    signals: bool,
    ctx: &Context,
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if !signals {
        return step.await;
    }
    let mut step = Box::pin(step);
    let signal = tokio::select! {
        biased;
        signal = crate::abort::signalled() => signal,
        result = &mut step => return result,
    };
    // From here a dropped registration keeps its hook: the step is stopped where it is.
    ctx.on_abort.begin();
    drop(step);
    tracing::warn!(
        "{signal}: Concourse stopped the step (build aborted or step timeout); cleaning up"
    );
    let lines = ctx.on_abort.run(crate::abort::GRACE).await;
    if lines.is_empty() {
        anyhow::bail!("aborted by {signal}; nothing was left to undo")
    }
    anyhow::bail!("aborted by {signal}: {}", lines.join("; "))
}

/// The one runtime of a run, built only once the request is known to be good.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking-pool threads panic quietly too (their panics surface as task errors).
        .on_thread_start(|| IN_HARNESS.with(|f| f.set(true)))
        .build()
        .map_err(|e| format!("start the async runtime: {e}"))
}

thread_local! {
    static IN_HARNESS: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a step are recorded quietly (the harness prints one line for them); panics
/// elsewhere in the process keep the previous hook's behaviour.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_HARNESS.with(Cell::get) {
                return previous(info);
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let mut message: String = one_line(&payload).chars().take(200).collect();
            if let Some(loc) = info.location() {
                message.push_str(&format!(" at {}:{}", loc.file(), loc.line()));
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn dispatches_on_argv0_basename_or_first_argument() {
        assert_eq!(
            command(&args(&["/opt/resource/check"])),
            Ok(Command::Step(StepKind::Check, None))
        );
        assert_eq!(
            command(&args(&["/opt/resource/in", "/tmp/x"])),
            Ok(Command::Step(StepKind::Get, Some("/tmp/x".into())))
        );
        assert_eq!(
            command(&args(&["gcr-image", "out", "/src"])),
            Ok(Command::Step(StepKind::Put, Some("/src".into())))
        );
        assert_eq!(command(&args(&["gcr-image", "--help"])), Ok(Command::Help));
        assert_eq!(
            command(&args(&["gcr-image", "--version"])),
            Ok(Command::Version)
        );
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        assert_eq!(
            command(&args(&["gcr-image"])),
            Err("no step given (called as \"gcr-image\")".into())
        );
        assert_eq!(
            command(&args(&["/opt/resource/deploy"])),
            Err("no step given (called as \"deploy\")".into())
        );
        assert_eq!(
            command(&args(&["gcr-image", "chek"])),
            Err("unknown step \"chek\"".into())
        );
        assert_eq!(
            command(&args(&["/opt/resource/in"])),
            Err("in needs the directory argument".into())
        );
        assert_eq!(
            command(&args(&["gcr-image", "out", "a", "b"])),
            Err("out takes exactly one directory argument".into())
        );
        assert_eq!(
            command(&args(&["check", "x"])),
            Err("check takes no arguments".into())
        );
        assert_eq!(command(&[]), Err("no step given".into()));
    }
}
