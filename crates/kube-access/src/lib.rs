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
                if !server.starts_with("https://") && !server.starts_with("http://") {
                    return Err(FieldError::new(
                        "source.server",
                        "must be the API server's URL, e.g. \"https://203.0.113.10\"",
                    ));
                }
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
                        token,
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
    pub client: kube::Client,
    pub server: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.server)
    }
}

fn kubeconfig_for(server: &str, token: &Secret, ca: Option<&str>) -> Secret {
    use base64::Engine as _;
    let ca = ca
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    Secret::new(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n{ca}users:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        token.expose()
    ))
}

impl Cluster {
    /// Connects; `user_agent` names the resource in the Google token request.
    pub async fn connect(access: &Access, user_agent: &str) -> anyhow::Result<Self> {
        httpc::install_crypto_provider();
        let (yaml, context, field) = match access {
            Access::Kubeconfig { yaml, context } => {
                (yaml.clone(), context.clone(), "source.kubeconfig")
            }
            Access::Token { server, token, ca } => (
                kubeconfig_for(server, token, ca.as_deref()),
                None,
                "source.certificate_authority",
            ),
            Access::Google { server, key, ca } => {
                let key = google_auth::ServiceAccountKey::parse(key)
                    .map_err(|e| FieldError::new("source.google_credentials", e.to_string()))?;
                let http = httpc::client(&httpc::Options::new(user_agent))?;
                let token = google_auth::TokenSource::new(key, http)
                    .token()
                    .await
                    .map_err(|e| anyhow::anyhow!("source.google_credentials: {e}"))?;
                (
                    kubeconfig_for(server, &token, ca.as_deref()),
                    None,
                    "source.certificate_authority",
                )
            }
        };
        let kubeconfig = Kubeconfig::from_yaml(yaml.expose()).map_err(|_| {
            FieldError::new(
                "source.kubeconfig",
                "is not a kubeconfig (YAML with clusters, users and contexts)",
            )
        })?;
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
        kc.read_timeout = None; // watches stay open; our own deadlines bound every wait
        kc.connect_timeout = Some(std::time::Duration::from_secs(10));
        let server = kc.cluster_url.to_string();
        let client = kube::Client::try_from(kc).context("set up the Kubernetes client")?;
        Ok(Self { client, server })
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

pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
