//! One acceptance run: smoke through the gateway, then the suite (local runner), then its
//! reports read and summarized. Never fails for a failing suite: the caller stores the reports
//! first, then fails the step.

use crate::reports::{self, Summary};
use crate::smoke;
use anyhow::Context as _;
use protocol::{Context, FieldError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt as _, BufReader};

pub use crate::plan::{DEFAULT_COMMAND, Plan, Runner, expand};

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub verdict: Verdict,
    /// (file name, bytes) to store.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }
}

/// How a run ended; its `Display` is the one line the step prints (and `summary.json` keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Smoke checks that never passed (name, last problem); the suite did not run.
    SmokeFailed(Vec<(String, String)>),
    TimedOut(std::time::Duration),
    UnreadableReport(String),
    NoReport {
        exit: i32,
    },
    NoScenarios {
        exit: i32,
        source: String,
        dir: PathBuf,
    },
    /// Scenarios that did not pass, of all, and the first failure.
    ScenariosFailed {
        failed: u64,
        total: u64,
        first: Option<String>,
    },
    /// The reports pass, yet the suite's process failed.
    ExitedNonZero(i32),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Passed => f.write_str("passed"),
            Verdict::SmokeFailed(failures) => {
                let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
                let first = failures.first().map_or("", |(_, why)| why.as_str());
                write!(
                    f,
                    "smoke failed for {}: {first}; the suite did not run",
                    names.join(", ")
                )
            }
            Verdict::TimedOut(t) => write!(
                f,
                "the suite ran past its timeout of {} and was stopped",
                protocol::duration::format(*t)
            ),
            Verdict::UnreadableReport(why) => write!(f, "the suite's report cannot be read: {why}"),
            Verdict::NoReport { exit } => write!(
                f,
                "the suite wrote no cucumber.json or junit.xml in $REPORTS_DIR (exit {exit})"
            ),
            Verdict::NoScenarios { exit, source, dir } => write!(
                f,
                "the suite ran no scenario (exit {exit}): its {source} lists none; check where the command looks for feature files (godog: ./features under {})",
                dir.display()
            ),
            Verdict::ScenariosFailed {
                failed,
                total,
                first,
            } => {
                write!(f, "{failed} of {total} scenarios did not pass")?;
                if let Some(first) = first {
                    write!(f, "; first: {first}")?;
                }
                Ok(())
            }
            Verdict::ExitedNonZero(code) => {
                write!(f, "the suite exited with {code} although its reports pass")
            }
        }
    }
}

pub async fn run(plan: &Plan, ctx: &Context) -> anyhow::Result<Outcome> {
    let client = httpc::client(&httpc::Options::new(concat!(
        "acceptance-run/",
        env!("CARGO_PKG_VERSION")
    )))?;
    let cluster = match &plan.runner {
        Runner::Kubernetes { cluster, .. } => Some(
            kube_access::Cluster::connect(
                cluster,
                concat!("acceptance-run/", env!("CARGO_PKG_VERSION")),
            )
            .await?,
        ),
        _ => None,
    };
    let via = match (&cluster, &plan.runner) {
        (
            Some(cluster),
            Runner::Kubernetes {
                namespace,
                gateway_service: Some(service),
                ..
            },
        ) => smoke::Via::Proxy {
            cluster,
            namespace,
            service,
        },
        _ => smoke::Via::Http {
            client: &client,
            gateway: &plan.gateway,
        },
    };
    let smoke_failures = smoke::run(via, &plan.smoke, plan.smoke_timeout).await;
    if !smoke_failures.is_empty() {
        let summary = Summary {
            source: "smoke".into(),
            ..Summary::default()
        };
        let mut md =
            String::from("# Acceptance: FAILED\n\nSmoke failed; the suite did not run.\n\n");
        for (n, why) in &smoke_failures {
            md.push_str(&format!("- **{n}**: {why}\n"));
        }
        let json = serde_json::json!({"smoke": smoke_failures.iter().map(|(n, w)| serde_json::json!({"name": n, "problem": w})).collect::<Vec<_>>(), "suite": null});
        return Ok(Outcome {
            summary,
            verdict: Verdict::SmokeFailed(smoke_failures),
            files: vec![
                ("summary.md".into(), md.into_bytes()),
                ("summary.json".into(), serde_json::to_vec_pretty(&json)?),
            ],
        });
    }

    let reports_dir = tempfile::tempdir().context("a directory for the reports")?;
    let status = match &plan.runner {
        Runner::Local => run_local(plan, reports_dir.path(), ctx).await?,
        Runner::Docker {
            image,
            network,
            command_given,
            docker_host,
        } => {
            tracing::info!("running the suite in a container of {image}");
            let docker = crate::docker::connect(docker_host.as_deref()).await?;
            let mut env = vec![
                format!("API_GATEWAY_URL={}", plan.gateway),
                "REPORTS_DIR=/reports".to_owned(),
            ];
            let expand = |a: &str| expand(a, "/reports", &plan.gateway);
            env.extend(plan.env.iter().map(|(k, v)| format!("{k}={}", expand(v))));
            let cmd = command_given.then(|| plan.command.iter().map(|a| expand(a)).collect());
            crate::docker::run(
                &docker,
                crate::docker::Suite {
                    image: image.clone(),
                    cmd,
                    env,
                    network: network.clone(),
                    timeout: plan.timeout,
                },
                reports_dir.path(),
                &ctx.on_abort,
            )
            .await?
            .map(|c| c as i32)
        }
        Runner::Kubernetes {
            image,
            namespace,
            reporter_image,
            ..
        } => {
            let Some(cluster) = &cluster else {
                anyhow::bail!("runner: kubernetes without a cluster");
            };
            let mut env = vec![
                ("API_GATEWAY_URL".to_owned(), plan.gateway.clone()),
                ("REPORTS_DIR".to_owned(), "/reports".to_owned()),
            ];
            let expand = |a: &str| expand(a, "/reports", &plan.gateway);
            env.extend(plan.env.iter().map(|(k, v)| (k.clone(), expand(v))));
            let spec = crate::kubernetes::JobSpec {
                namespace,
                name: job_name(&plan.run_id),
                image,
                reporter_image,
                command: plan.command.iter().map(|a| expand(a)).collect(),
                env,
                timeout: plan.timeout,
                labels: vec![
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "acceptance-run".to_owned(),
                    ),
                    ("acceptance-run/run".to_owned(), label_value(&plan.run_id)),
                ],
            };
            // Stopped by Concourse: the Job goes (background propagation takes its pod).
            let _abort = ctx.on_abort.register({
                let (cluster, namespace, name) =
                    (cluster.clone(), namespace.clone(), spec.name.clone());
                move || async move {
                    let jobs = crate::kubernetes::KubeJobs::new(&cluster, &namespace);
                    match crate::kubernetes::Jobs::delete(&jobs, &name).await {
                        Ok(()) => format!("deleted the Job {namespace}/{name} and its pod"),
                        Err(crate::kubernetes::ClusterError::NotFound(_)) => {
                            format!("no Job {namespace}/{name} was left")
                        }
                        Err(e) => format!("could not delete the Job {namespace}/{name}: {e}"),
                    }
                }
            });
            let jobs = crate::kubernetes::KubeJobs::new(cluster, namespace);
            crate::kubernetes::run(&jobs, &spec, reports_dir.path()).await?
        }
    };
    let mut files = Vec::new();
    let json = std::fs::read(reports_dir.path().join("cucumber.json")).ok();
    let junit = read_junit(reports_dir.path());
    // A report that cannot be read is a failed run, stored like any other so it can be
    // looked at: JUnit is the fallback when cucumber.json is unreadable.
    let mut unreadable = None;
    let parsed = match (&json, &junit) {
        (Some(j), x) => reports::from_cucumber_json(&String::from_utf8_lossy(j)).or_else(|e| {
            unreadable = Some(format!("{e:#}"));
            match x {
                Some(x) => reports::from_junit(&String::from_utf8_lossy(x)),
                None => Err(e),
            }
        }),
        (None, Some(x)) => reports::from_junit(&String::from_utf8_lossy(x)),
        (None, None) => Ok(Summary {
            source: "no report".into(),
            ..Summary::default()
        }),
    };
    let summary = match parsed {
        Ok(s) => s,
        Err(e) => {
            unreadable = Some(format!("{e:#}"));
            Summary {
                source: "unreadable report".into(),
                ..Summary::default()
            }
        }
    };
    if let Some(why) = &unreadable {
        tracing::warn!("{why}");
    }
    if let Some(j) = json {
        files.push(("cucumber.json".to_owned(), j));
    }
    if let Some(x) = junit {
        files.push(("junit.xml".to_owned(), x));
    }
    let passed_reports = summary.passed(plan.strict);
    let verdict = match status {
        None => Verdict::TimedOut(plan.timeout),
        Some(_) if summary.source == "unreadable report" => {
            Verdict::UnreadableReport(unreadable.clone().unwrap_or_default())
        }
        Some(exit) if summary.source == "no report" => Verdict::NoReport { exit },
        Some(exit) if summary.scenarios.total() == 0 => Verdict::NoScenarios {
            exit,
            source: summary.source.clone(),
            dir: plan.dir.clone(),
        },
        Some(_) if !passed_reports => Verdict::ScenariosFailed {
            failed: summary.scenarios.total() - summary.scenarios.passed,
            total: summary.scenarios.total(),
            first: summary
                .failures
                .first()
                .map(|f| format!("{} / {}: {}", f.feature, f.scenario, f.message)),
        },
        Some(code) if code != 0 => Verdict::ExitedNonZero(code),
        Some(_) => Verdict::Passed,
    };
    let passed = verdict == Verdict::Passed;
    let md = reports::markdown(&summary, plan.strict, "Acceptance");
    files.push(("summary.md".into(), md.into_bytes()));
    files.push((
        "summary.json".into(),
        serde_json::to_vec_pretty(
            &serde_json::json!({"passed": passed, "verdict": verdict.to_string(), "summary": summary}),
        )?,
    ));
    tracing::info!(
        "scenarios: {} passed, {} failed, {} skipped, {} undefined, {} pending",
        summary.scenarios.passed,
        summary.scenarios.failed,
        summary.scenarios.skipped,
        summary.scenarios.undefined,
        summary.scenarios.pending
    );
    Ok(Outcome {
        summary,
        verdict,
        files,
    })
}

/// `junit.xml`, or the files of a `junit/` directory (Ruby cucumber writes one per feature).
fn read_junit(dir: &Path) -> Option<Vec<u8>> {
    if let Ok(x) = std::fs::read(dir.join("junit.xml")) {
        return Some(x);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir.join("junit"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    parts.sort();
    if parts.is_empty() {
        return None;
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for p in parts {
        let text = std::fs::read_to_string(p).ok()?;
        out.push_str(
            text.trim_start_matches(|c| c != '<')
                .split_once("?>")
                .map_or(text.as_str(), |(_, rest)| rest),
        );
        out.push('\n');
    }
    out.push_str("</testsuites>\n");
    Some(out.into_bytes())
}

/// The `local` runner: `command` in `dir`. Returns its exit code, `None` at the timeout.
async fn run_local(plan: &Plan, reports: &Path, ctx: &Context) -> anyhow::Result<Option<i32>> {
    let rdir = reports.to_string_lossy().into_owned();
    let expand = |s: &str| expand(s, &rdir, &plan.gateway);
    let args: Vec<String> = plan.command.iter().map(|a| expand(a)).collect();
    tracing::info!("running {} in {}", args.join(" "), plan.dir.display());
    let mut child = tokio::process::Command::new(&args[0])
        .args(&args[1..])
        .current_dir(&plan.dir)
        .env("API_GATEWAY_URL", &plan.gateway)
        .env("REPORTS_DIR", &rdir)
        .envs(plan.env.iter().map(|(k, v)| (k.clone(), expand(v))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FieldError::new("params.command", format!("cannot start {}: {e}", args[0])))?;
    // Stopped by Concourse: the step's future is dropped, which kills the suite (kill_on_drop).
    let pid = child.id().unwrap_or(0);
    let _abort = ctx
        .on_abort
        .register(move || async move { format!("stopped the suite's process {pid}") });
    // The suite's output is the build log: stdout and stderr both go to our stderr.
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(forward(BufReader::new(s))));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(forward(BufReader::new(s))));
    let status = match tokio::time::timeout(plan.timeout, child.wait()).await {
        Ok(status) => Some(status.context("wait for the suite")?.code().unwrap_or(-1)),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    Ok(status)
}

async fn forward<R: tokio::io::AsyncBufRead + Unpin>(reader: R) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!("| {line}");
    }
}

use kube_access::label_value;

/// `acceptance-RUN-XXXX`: a DNS label, unique per attempt.
fn job_name(run: &str) -> String {
    let run: String = run
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "acceptance-{}-{:04x}",
        run.trim_matches('-'),
        nanos & 0xffff
    )
}
