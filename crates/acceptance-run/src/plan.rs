//! The run's plan: every param read and validated before anything starts (the gateway, smoke
//! checks, the runner and its fields, the suite's command and env), and the one `expand()` of
//! `$REPORTS_DIR`/`$API_GATEWAY_URL` the three runners share.

use crate::smoke;
use crate::{PutParams, inside};
use anyhow::Context as _;
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Where the suite runs, with what only that runner needs.
    pub runner: Runner,
    /// Names the Job and the container: the build id, or the time.
    pub run_id: String,
}

/// Where the suite runs. Each runner carries its own fields, so a field of one runner cannot
/// be read (or forgotten) by another.
#[derive(Debug)]
pub enum Runner {
    /// `command` in `dir`, in this resource's container.
    Local,
    /// A container of `image` on the worker's Docker; `command` replaces the image's own only
    /// when it was given.
    Docker {
        image: String,
        network: Option<String>,
        command_given: bool,
        docker_host: Option<String>,
    },
    /// A Job in the test environment's namespace; smoke may go through the API server's proxy
    /// to `gateway_service`.
    Kubernetes {
        image: String,
        cluster: kube_access::Access,
        namespace: String,
        gateway_service: Option<String>,
        reporter_image: String,
    },
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
            (None, Some(f)) => Some(protocol::paths::param_text(
                sources,
                f,
                "params.namespace_file",
            )?),
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
            (None, Some(f)) => protocol::paths::param_text(sources, f, "params.gateway_url_file")?,
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
        let runner = match p.runner {
            crate::Runner::Local => Runner::Local,
            crate::Runner::Docker => Runner::Docker {
                image: image.unwrap_or_default(),
                network: p.network,
                command_given: !p.command.is_empty(),
                docker_host: ctx.env("DOCKER_HOST").map(str::to_owned),
            },
            // All checked above: a cluster, a valid namespace, the reporter's image.
            crate::Runner::Kubernetes => Runner::Kubernetes {
                image: image.unwrap_or_default(),
                cluster: cluster.context("runner: kubernetes without a cluster")?,
                namespace: namespace.unwrap_or_default(),
                gateway_service: p.gateway_service,
                reporter_image: p.reporter_image.unwrap_or_default(),
            },
        };
        let run_id = ctx.build.id.clone().unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_default()
        });
        Ok(Self {
            run_id,
            runner,
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
