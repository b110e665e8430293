//! One acceptance run: smoke through the gateway, then the suite (local runner), then its
//! reports read and summarized. Never fails for a failing suite: the caller stores the reports
//! first, then fails the step.

use crate::reports::{self, Summary};
use crate::smoke;
use crate::{PutParams, inside};
use anyhow::Context as _;
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// godog's `--format` takes one value (the last flag wins); several formatters go in it
/// comma-separated, each `NAME:PATH`.
pub const DEFAULT_COMMAND: &[&str] = &[
    "godog",
    "--format=cucumber:$REPORTS_DIR/cucumber.json,junit:$REPORTS_DIR/junit.xml",
    "--strict",
];

/// `params.image`: a gcr-image get directory's `image-ref`, or an image reference as given.
fn image_ref(sources: &Path, image: &str) -> Result<String, FieldError> {
    Ok(protocol::image_ref::read(sources, image, "params.image")?
        .unwrap_or_else(|| image.to_owned()))
}

/// `$REPORTS_DIR`, `${REPORTS_DIR}`, `$API_GATEWAY_URL` and `${API_GATEWAY_URL}` in a command
/// argument or an env value, as the runner sees them (`reports` is `/reports` in a container):
/// one rule for the three runners.
pub fn expand(s: &str, reports: &str, gateway: &str) -> String {
    s.replace("${REPORTS_DIR}", reports)
        .replace("$REPORTS_DIR", reports)
        .replace("${API_GATEWAY_URL}", gateway)
        .replace("$API_GATEWAY_URL", gateway)
}

/// Everything the run needs, read and validated before anything starts.
#[derive(Debug)]
pub struct Plan {
    pub gateway: String,
    pub smoke: Vec<smoke::Check>,
    pub smoke_timeout: Duration,
    pub command: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub strict: bool,
    pub runner: crate::Runner,
    /// `docker`: the image reference.
    pub image: Option<String>,
    pub network: Option<String>,
    /// Whether `command` was given (docker: otherwise the image's own command runs).
    pub command_given: bool,
    pub docker_host: Option<String>,
    /// `kubernetes`: the cluster, the namespace, the gateway's Service and the reporter's image.
    pub cluster: Option<kube_access::Access>,
    pub namespace: Option<String>,
    pub gateway_service: Option<String>,
    pub reporter_image: Option<String>,
    /// Names the Job: the build id, or the time.
    pub run_id: String,
}

impl Plan {
    pub fn new(
        p: PutParams,
        sources: &Path,
        cluster: Option<kube_access::Access>,
        ctx: &Context,
    ) -> anyhow::Result<Self> {
        let kubernetes = p.runner == crate::Runner::Kubernetes;
        for (field, set) in [
            ("params.namespace", p.namespace.is_some()),
            ("params.namespace_file", p.namespace_file.is_some()),
            ("params.gateway_service", p.gateway_service.is_some()),
            ("params.reporter_image", p.reporter_image.is_some()),
        ] {
            if set && !kubernetes {
                return Err(FieldError::new(field, "goes with runner: kubernetes").into());
            }
        }
        let namespace = match (&p.namespace, &p.namespace_file) {
            (Some(_), Some(_)) => {
                return Err(
                    FieldError::conflict("params.namespace", "params.namespace_file").into(),
                );
            }
            (Some(n), None) => Some(n.clone()),
            (None, Some(f)) => Some(
                protocol::paths::read_text(
                    sources,
                    &inside(sources, f, "params.namespace_file")?,
                    "params.namespace_file",
                )?
                .trim()
                .to_owned(),
            ),
            (None, None) => None,
        };
        if kubernetes {
            if cluster.is_none() {
                return Err(FieldError::missing(
                    "source.kubeconfig",
                    "((TEST_KUBECONFIG)) (runner: kubernetes runs the suite in the cluster; or source.server with token or google_credentials)",
                )
                .into());
            }
            match &namespace {
                None => {
                    return Err(FieldError::missing(
                        "params.namespace_file",
                        "test-cluster/namespace (or params.namespace)",
                    )
                    .into());
                }
                Some(n) if !kube_access::valid_name(n) => {
                    return Err(FieldError::new(
                        "params.namespace",
                        format!(
                            "\"{n}\" is not a namespace name (lowercase letters, digits and -)"
                        ),
                    )
                    .into());
                }
                Some(_) => {}
            }
            if p.reporter_image.is_none() {
                return Err(FieldError::missing(
                    "params.reporter_image",
                    "\"us.gcr.io/microservices-kube/acceptance-run:1.0\" (this resource type's own image, as in resource_types)",
                )
                .into());
            }
        }
        if let Some(s) = &p.gateway_service {
            let ok = s.split_once(':').is_some_and(|(name, port)| {
                kube_access::valid_name(name)
                    && !port.is_empty()
                    && port.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !ok {
                return Err(FieldError::new(
                    "params.gateway_service",
                    "must be the gateway's Service as NAME:PORT, e.g. \"api-gateway:8080\"",
                )
                .into());
            }
        }
        let image = match (p.runner, &p.image) {
            (crate::Runner::Docker | crate::Runner::Kubernetes, None) => {
                return Err(FieldError::missing(
                    "params.image",
                    "acceptance-tests-dev (a gcr-image get directory) or an image reference",
                )
                .into());
            }
            (crate::Runner::Local, Some(_)) => {
                return Err(FieldError::new("params.image", "goes with runner: docker").into());
            }
            (_, Some(i)) => Some(image_ref(sources, i)?),
            (_, None) => None,
        };
        if p.network.is_some() && p.runner != crate::Runner::Docker {
            return Err(FieldError::new("params.network", "goes with runner: docker").into());
        }
        let gateway = match (&p.gateway_url, &p.gateway_url_file) {
            (Some(_), Some(_)) => {
                return Err(
                    FieldError::conflict("params.gateway_url", "params.gateway_url_file").into(),
                );
            }
            (Some(_), None) | (None, Some(_)) if p.gateway_service.is_some() => {
                return Err(FieldError::conflict(
                    "params.gateway_service",
                    if p.gateway_url.is_some() {
                        "params.gateway_url"
                    } else {
                        "params.gateway_url_file"
                    },
                )
                .into());
            }
            (None, None) if p.gateway_service.is_some() => {
                format!("http://{}", p.gateway_service.as_deref().unwrap_or(""))
            }
            (Some(u), None) => u.clone(),
            (None, Some(f)) => protocol::paths::read_text(
                sources,
                &inside(sources, f, "params.gateway_url_file")?,
                "params.gateway_url_file",
            )?
            .trim()
            .to_owned(),
            (None, None) => {
                return Err(FieldError::missing(
                    "params.gateway_url",
                    "\"http://api-gateway:8080\" (or, with runner: kubernetes, params.gateway_service: api-gateway:8080)",
                )
                .into());
            }
        };
        if !(gateway.starts_with("http://") || gateway.starts_with("https://")) {
            return Err(FieldError::new(
                "params.gateway_url",
                "must be an http(s) URL, e.g. \"http://api-gateway:8080\"",
            )
            .into());
        }
        // Bounded: a smoke check that has not answered in an hour will not, and a suite of
        // more than a day is a mistake in the pipeline, not a plan.
        let duration = |v: &Option<String>,
                        field: &str,
                        default: u64,
                        max: Duration|
         -> Result<Duration, FieldError> {
            match v {
                Some(t) => match parse_duration(t) {
                    Some(d) if d <= max => Ok(d),
                    Some(_) => Err(FieldError::new(
                        field,
                        format!("must be at most {}", protocol::duration::format(max)),
                    )),
                    None => Err(FieldError::new(
                        field,
                        "must be a duration like \"2m\", \"90s\", \"1h30m\"",
                    )),
                },
                None => Ok(Duration::from_secs(default)),
            }
        };
        let dir = match &p.dir {
            Some(d) => {
                let path = inside(sources, d, "params.dir")?;
                if !path.is_dir() {
                    return Err(FieldError::new(
                        "params.dir",
                        format!("{d} is not a directory of the build"),
                    )
                    .into());
                }
                path
            }
            None => sources.to_path_buf(),
        };
        for (i, c) in p.smoke.iter().enumerate() {
            if c.name.is_empty() {
                return Err(FieldError::new(format!("params.smoke[{i}].name"), "is empty").into());
            }
            smoke::check_path(&c.path)
                .map_err(|why| FieldError::new(format!("params.smoke[{i}].path"), why))?;
        }
        for key in p.env.keys() {
            if key.is_empty()
                || key.contains('=')
                || key.contains('\0')
                || key.chars().next().is_some_and(|c| c.is_ascii_digit())
            {
                return Err(FieldError::new(
                    "params.env",
                    "has a name that cannot be an environment variable (empty, with = or NUL, or starting with a digit); use names like API_TOKEN",
                )
                .into());
            }
        }
        let command_given = !p.command.is_empty();
        let run_id = ctx.build.id.clone().unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_default()
        });
        Ok(Self {
            cluster,
            namespace,
            gateway_service: p.gateway_service,
            reporter_image: p.reporter_image,
            run_id,
            runner: p.runner,
            image,
            network: p.network,
            command_given,
            docker_host: ctx.env("DOCKER_HOST").map(str::to_owned),
            gateway,
            smoke: p.smoke,
            smoke_timeout: duration(
                &p.smoke_timeout,
                "params.smoke_timeout",
                120,
                Duration::from_secs(3600),
            )?,
            command: if p.command.is_empty() {
                DEFAULT_COMMAND.iter().map(|s| (*s).to_owned()).collect()
            } else {
                p.command
            },
            dir,
            env: p.env.into_iter().collect(),
            timeout: duration(
                &p.timeout,
                "params.timeout",
                900,
                Duration::from_secs(24 * 3600),
            )?,
            strict: p.strict.unwrap_or(true),
        })
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub passed: bool,
    /// One line: why it failed, or that it passed.
    pub verdict: String,
    /// (file name, bytes) to store.
    pub files: Vec<(String, Vec<u8>)>,
}

pub async fn run(plan: &Plan, ctx: &Context) -> anyhow::Result<Outcome> {
    let client = httpc::client(&httpc::Options::new(concat!(
        "acceptance-run/",
        env!("CARGO_PKG_VERSION")
    )))?;
    let cluster = match &plan.cluster {
        Some(access) if plan.runner == crate::Runner::Kubernetes => Some(
            kube_access::Cluster::connect(
                access,
                concat!("acceptance-run/", env!("CARGO_PKG_VERSION")),
            )
            .await?,
        ),
        _ => None,
    };
    let namespace = plan.namespace.clone().unwrap_or_default();
    let via = match (&cluster, &plan.gateway_service) {
        (Some(cluster), Some(service)) => smoke::Via::Proxy {
            cluster,
            namespace: &namespace,
            service,
        },
        _ => smoke::Via::Http {
            client: &client,
            gateway: &plan.gateway,
        },
    };
    let smoke_failures = smoke::run(via, &plan.smoke, plan.smoke_timeout).await;
    if !smoke_failures.is_empty() {
        let names: Vec<&str> = smoke_failures.iter().map(|(n, _)| n.as_str()).collect();
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
            passed: false,
            verdict: format!(
                "smoke failed for {}: {}; the suite did not run",
                names.join(", "),
                smoke_failures[0].1
            ),
            files: vec![
                ("summary.md".into(), md.into_bytes()),
                ("summary.json".into(), serde_json::to_vec_pretty(&json)?),
            ],
        });
    }

    let reports_dir = tempfile::tempdir().context("a directory for the reports")?;
    let status = match plan.runner {
        crate::Runner::Local => run_local(plan, reports_dir.path(), ctx).await?,
        crate::Runner::Docker => {
            let image = plan.image.clone().unwrap_or_default();
            tracing::info!("running the suite in a container of {image}");
            let docker = crate::docker::connect(plan.docker_host.as_deref()).await?;
            let mut env = vec![
                format!("API_GATEWAY_URL={}", plan.gateway),
                "REPORTS_DIR=/reports".to_owned(),
            ];
            let expand = |a: &str| expand(a, "/reports", &plan.gateway);
            env.extend(plan.env.iter().map(|(k, v)| format!("{k}={}", expand(v))));
            let cmd = plan
                .command_given
                .then(|| plan.command.iter().map(|a| expand(a)).collect());
            crate::docker::run(
                &docker,
                crate::docker::Suite {
                    image: image.clone(),
                    cmd,
                    env,
                    network: plan.network.clone(),
                    timeout: plan.timeout,
                },
                reports_dir.path(),
                &ctx.on_abort,
            )
            .await?
            .map(|c| c as i32)
        }
        crate::Runner::Kubernetes => {
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
                namespace: &namespace,
                name: job_name(&plan.run_id),
                image: plan.image.as_deref().unwrap_or(""),
                reporter_image: plan.reporter_image.as_deref().unwrap_or(""),
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
            let jobs = crate::kubernetes::KubeJobs::new(cluster, &namespace);
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
        None => format!(
            "the suite ran past its timeout of {} and was stopped",
            protocol::duration::format(plan.timeout)
        ),
        Some(_) if summary.source == "unreadable report" => {
            format!(
                "the suite's report cannot be read: {}",
                unreadable.clone().unwrap_or_default()
            )
        }
        Some(code) if summary.source == "no report" => {
            format!("the suite wrote no cucumber.json or junit.xml in $REPORTS_DIR (exit {code})")
        }
        Some(code) if summary.scenarios.total() == 0 => format!(
            "the suite ran no scenario (exit {code}): its {} lists none; check where the command looks for feature files (godog: ./features under {})",
            summary.source,
            plan.dir.display()
        ),
        Some(_) if !passed_reports => {
            let first = summary
                .failures
                .first()
                .map(|f| format!("; first: {} / {}: {}", f.feature, f.scenario, f.message))
                .unwrap_or_default();
            format!(
                "{} of {} scenarios did not pass{first}",
                summary.scenarios.total() - summary.scenarios.passed,
                summary.scenarios.total()
            )
        }
        Some(code) if code != 0 => {
            format!("the suite exited with {code} although its reports pass")
        }
        Some(_) => "passed".to_owned(),
    };
    let passed = verdict == "passed";
    let md = reports::markdown(&summary, plan.strict, "Acceptance");
    files.push(("summary.md".into(), md.into_bytes()));
    files.push((
        "summary.json".into(),
        serde_json::to_vec_pretty(
            &serde_json::json!({"passed": passed, "verdict": verdict, "summary": summary}),
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
        passed,
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

#[cfg(test)]
mod tests {
    use super::{DEFAULT_COMMAND, expand};

    #[test]
    fn both_forms_of_the_two_vars_expand_alike_for_every_runner() {
        assert_eq!(
            expand(
                "--out=$REPORTS_DIR/a ${REPORTS_DIR}/b $API_GATEWAY_URL/x ${API_GATEWAY_URL}/y $OTHER",
                "/reports",
                "http://gw:8080"
            ),
            "--out=/reports/a /reports/b http://gw:8080/x http://gw:8080/y $OTHER"
        );
    }

    /// The default command read the way godog reads it (Go's `flag` package: `-f`, `--format`
    /// and `-format` set one string, the last one wins; then the value is split on `,` into
    /// `NAME[:PATH]` formatters; internal/flags and run.go in cucumber/godog). Before, two
    /// `--format` flags meant only JUnit was written.
    #[test]
    fn the_default_command_asks_godog_for_both_reports() {
        assert_eq!(DEFAULT_COMMAND[0], "godog");
        let mut format = "pretty".to_owned();
        let mut args = DEFAULT_COMMAND[1..].iter();
        while let Some(arg) = args.next() {
            let flag = arg.trim_start_matches('-');
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (flag, None),
            };
            if name == "format" || name == "f" {
                format = value
                    .unwrap_or_else(|| args.next().map(|s| (*s).to_owned()).unwrap_or_default());
            }
        }
        let formatters: Vec<(&str, Option<&str>)> = format
            .split(',')
            .map(|f| match f.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (f, None),
            })
            .collect();
        assert_eq!(
            formatters,
            vec![
                ("cucumber", Some("$REPORTS_DIR/cucumber.json")),
                ("junit", Some("$REPORTS_DIR/junit.xml")),
            ]
        );
        assert!(DEFAULT_COMMAND.contains(&"--strict"));
    }
}
