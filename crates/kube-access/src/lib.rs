//! Cluster access shared by the resources that talk to Kubernetes (k8s-deploy deploys,
//! acceptance-run's kubernetes runner runs the suite as a Job): the ways in a `source` offers
//! (a kubeconfig, a server with a token, GKE with a Google service-account key), validated in
//! one place and turned into one kubeconfig, so there is one connection path; and kube errors
//! on one line.

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use protocol::{FieldError, Secret};

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub enum Access {
    Kubeconfig {
        yaml: Secret,
        context: Option<String>,
    },
    Token {
        server: String,
        token: Secret,
        ca: Option<String>,
    },
    Google {
        server: String,
        key: Secret,
        ca: Option<String>,
    },
}

/// A DNS label, as namespace names must be: lowercase letters, digits and `-`, at most 63.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The access fields of a `source`, as written.
#[derive(Debug, Default)]
pub struct Fields {
    pub kubeconfig: Option<Secret>,
    pub context: Option<String>,
    pub server: Option<String>,
    pub token: Option<Secret>,
    pub certificate_authority: Option<String>,
    pub google_credentials: Option<Secret>,
}

impl Access {
    /// Validates the access fields: exactly one way in.
    pub fn from_fields(s: Fields) -> Result<Self, FieldError> {
        let access = match (s.kubeconfig, s.server, s.token, s.google_credentials) {
            (Some(_), Some(_), _, _) | (Some(_), _, Some(_), _) | (Some(_), _, _, Some(_)) => {
                return Err(FieldError::new(
                    "source.kubeconfig",
                    "cannot be set together with server/token/google_credentials; keep one way in",
                ));
            }
            (Some(yaml), None, None, None) => Access::Kubeconfig {
                yaml,
                context: s.context,
            },
            (None, Some(server), token, google) => {
                check_server(&server)?;
                if s.context.is_some() {
                    return Err(FieldError::new(
                        "source.context",
                        "goes with source.kubeconfig",
                    ));
                }
                match (token, google) {
                    (Some(_), Some(_)) => {
                        return Err(FieldError::conflict(
                            "source.token",
                            "source.google_credentials",
                        ));
                    }
                    (Some(token), None) => Access::Token {
                        server,
                        token: token.header_token("source.token")?,
                        ca: s.certificate_authority,
                    },
                    (None, Some(key)) => Access::Google {
                        server,
                        key,
                        ca: s.certificate_authority,
                    },
                    (None, None) => {
                        return Err(FieldError::missing(
                            "source.token",
                            "((k8s-token)) (or source.google_credentials for GKE)",
                        ));
                    }
                }
            }
            (None, None, _, _) => {
                return Err(FieldError::new(
                    "source.kubeconfig",
                    "missing; set it (e.g. ((TEST_KUBECONFIG))), or server with token or google_credentials",
                ));
            }
        };
        Ok(access)
    }
}

/// A connected client and the server it talks to.
#[derive(Clone)]
pub struct Cluster {
    /// For every call that answers promptly: a silent server fails it after [`READ_TIMEOUT`].
    pub client: kube::Client,
    /// For a followed log, which may rightly stay quiet for longer (a suite thinking): no read
    /// timeout; the caller bounds the whole stream with its own deadline.
    pub streaming: kube::Client,
    pub server: String,
}

/// How long the API server may keep one request waiting for its answer (or a watch without an
/// event: watches ask the server to end them sooner, [`WATCH_SECONDS`]).
/// Reasons a container waits with that do not clear by themselves: a rollout or a suite that
/// meets one has failed (its message quoted), rather than waiting out its deadline. One list for
/// k8s-deploy's wait and acceptance-run's suite pod.
pub const STUCK_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The `timeoutSeconds` of every watch: under [`READ_TIMEOUT`], so a quiet watch is ended by the
/// server (and reopened) before the client would take it for a dead one.
pub const WATCH_SECONDS: u32 = 50;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.server)
    }
}

/// A kubeconfig for `server` with `token`, built as data: no field can inject YAML.
fn kubeconfig_for(server: &str, token: &Secret, ca: Option<&str>) -> Kubeconfig {
    use base64::Engine as _;
    use kube::config::{
        AuthInfo, Cluster as KubeCluster, Context, NamedAuthInfo, NamedCluster, NamedContext,
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: "c".into(),
            cluster: Some(KubeCluster {
                server: Some(server.to_owned()),
                certificate_authority_data: ca
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
                ..KubeCluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "u".into(),
            auth_info: Some(AuthInfo {
                token: Some(token.expose().to_owned().into()),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "c".into(),
            context: Some(Context {
                cluster: "c".into(),
                user: Some("u".into()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("c".into()),
        ..Kubeconfig::default()
    }
}

/// `source.server`: an http(s) URL with a host and nothing that does not belong in one;
/// plain http only to this machine (the token would cross the network in cleartext).
fn check_server(server: &str) -> Result<(), FieldError> {
    let parsed = server.parse::<http::Uri>();
    let ok = server
        .chars()
        .all(|c| !c.is_control() && !c.is_whitespace())
        && parsed
            .as_ref()
            .is_ok_and(|u| u.host().is_some() && matches!(u.scheme_str(), Some("http" | "https")));
    if !ok {
        return Err(FieldError::new(
            "source.server",
            "must be the API server's URL, e.g. \"https://203.0.113.10\"",
        ));
    }
    if server.starts_with("http://") && !protocol::url::is_loopback_url(server) {
        return Err(FieldError::new(
            "source.server",
            "is plain http: the token would cross the network in cleartext; use https:// (plain http is allowed on loopback only)",
        ));
    }
    Ok(())
}

/// A kubeconfig's users' tokens go into a header: one line each.
fn check_kubeconfig_tokens(kubeconfig: &Kubeconfig) -> Result<(), FieldError> {
    use secrecy::ExposeSecret as _;
    for user in &kubeconfig.auth_infos {
        let Some(info) = &user.auth_info else {
            continue;
        };
        if let Some(token) = &info.token
            && token.expose_secret().trim().chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "source.kubeconfig",
                format!(
                    "the token of user \"{}\" contains a line break or another control character; a token is one line",
                    user.name
                ),
            ));
        }
    }
    Ok(())
}

impl Cluster {
    /// Connects; `user_agent` names the resource in the Google token request.
    pub async fn connect(access: &Access, user_agent: &str) -> anyhow::Result<Self> {
        Self::connect_with(access, user_agent, READ_TIMEOUT).await
    }

    /// [`Cluster::connect`] with another bound on a silent server (tests use a short one).
    pub async fn connect_with(
        access: &Access,
        user_agent: &str,
        read_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        httpc::install_crypto_provider();
        let (kubeconfig, context, field) = match access {
            Access::Kubeconfig { yaml, context } => {
                let kubeconfig = Kubeconfig::from_yaml(yaml.expose()).map_err(|_| {
                    FieldError::new(
                        "source.kubeconfig",
                        "is not a kubeconfig (YAML with clusters, users and contexts)",
                    )
                })?;
                check_kubeconfig_tokens(&kubeconfig)?;
                (kubeconfig, context.clone(), "source.kubeconfig")
            }
            Access::Token { server, token, ca } => {
                check_server(server)?;
                (
                    kubeconfig_for(server, token, ca.as_deref()),
                    None,
                    "source.certificate_authority",
                )
            }
            Access::Google { server, key, ca } => {
                check_server(server)?;
                let key = google_auth::ServiceAccountKey::parse(key)
                    .map_err(|e| FieldError::new("source.google_credentials", e.to_string()))?;
                let http = httpc::client(&httpc::Options::new(user_agent))?;
                let token = google_auth::TokenSource::new(key, http)
                    .token()
                    .await
                    .map_err(|e| anyhow::anyhow!("source.google_credentials: {e}"))?;
                let token = token.header_token("source.google_credentials")?;
                (
                    kubeconfig_for(server, &token, ca.as_deref()),
                    None,
                    "source.certificate_authority",
                )
            }
        };
        if let Some(name) = &context
            && !kubeconfig.contexts.iter().any(|c| &c.name == name)
        {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(FieldError::new(
                "source.context",
                format!(
                    "the kubeconfig has no context \"{name}\"; it has: {}",
                    known.join(", ")
                ),
            )
            .into());
        }
        let options = KubeConfigOptions {
            context,
            cluster: None,
            user: None,
        };
        let mut kc = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                FieldError::new(
                    field,
                    format!("cannot be used: {}", one_line(&e.to_string())),
                )
            })?;
        let url = kc.cluster_url.to_string();
        if kc.cluster_url.scheme_str() == Some("http") && !protocol::url::is_loopback_url(&url) {
            return Err(FieldError::new(
                "source.kubeconfig",
                "the cluster's server is plain http: credentials would cross the network in cleartext; use https:// (plain http is allowed on loopback only)",
            )
            .into());
        }
        kc.connect_timeout = Some(std::time::Duration::from_secs(10));
        kc.write_timeout = Some(read_timeout);
        // The read timeout counts from the request's last write, not from when a pooled
        // connection went idle.
        kc.reset_reader_on_write = true;
        let mut streaming = kc.clone();
        kc.read_timeout = Some(read_timeout);
        streaming.read_timeout = None;
        let server = kc.cluster_url.to_string();
        let build = |c: kube::Config| -> anyhow::Result<kube::Client> {
            Ok(kube::client::ClientBuilder::try_from(c)
                .context("set up the Kubernetes client")?
                .with_layer(&Patience)
                .build())
        };
        let client = build(kc)?;
        let streaming = build(streaming)?;
        Ok(Self {
            client,
            streaming,
            server,
        })
    }
}

/// A layer of the kube client that says what a request is waiting for when the API server
/// is slow to answer (`still waiting for the API server to answer GET /api/v1/...`), so a build
/// log never sits silent (see `protocol::log::patiently`).
#[derive(Debug, Clone, Copy)]
struct Patience;

impl<S> tower::Layer<S> for Patience {
    type Service = Patient<S>;
    fn layer(&self, inner: S) -> Patient<S> {
        Patient(inner)
    }
}

#[derive(Debug, Clone)]
struct Patient<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Patient<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let what = format!(
            "the API server to answer {} {}",
            request.method(),
            request.uri().path()
        );
        let answer = self.0.call(request);
        Box::pin(async move { protocol::log::patiently(&what, answer).await })
    }
}

/// A kube error on one line, with the API's own message when there is one.
pub fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 401 => format!(
            "the cluster refused the credentials (401 {}); check source.kubeconfig / source.token",
            one_line(&s.message)
        ),
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden (403): {}; grant the account access to this namespace",
            one_line(&s.message)
        ),
        kube::Error::Api(s) => format!("{} ({} {})", one_line(&s.message), s.code, s.reason),
        other => {
            let mut out = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let t = s.to_string();
                if !out.contains(&t) {
                    out.push_str(": ");
                    out.push_str(&t);
                }
                source = s.source();
            }
            one_line(&out)
        }
    }
}

pub use protocol::text::one_line;

/// A label value made from any text: at most 63 characters of `[A-Za-z0-9._-]` (others become
/// `-`), starting and ending with an alphanumeric, as Kubernetes requires.
pub fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect::<String>()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}
