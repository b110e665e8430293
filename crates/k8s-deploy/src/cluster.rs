//! The Kubernetes API through the kube crate: the one external system of this resource.
//! Every way in (kubeconfig, server + token + CA, GKE with a Google key) becomes one
//! kubeconfig, so there is one connection path.

use crate::source::{Access, Config};
use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use protocol::Secret;
use serde_json::Value;

pub const MANAGER: &str = "k8s-deploy";

/// A connected client and the namespace it works in.
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
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        httpc::install_crypto_provider();
        let (yaml, context, field) = match &config.access {
            Access::Kubeconfig { yaml, context } => {
                (yaml.clone(), context.clone(), "source.kubeconfig")
            }
            Access::Token { server, token, ca } => (
                kubeconfig_for(server, token, ca.as_deref()),
                None,
                "source.certificate_authority",
            ),
            Access::Google { server, key, ca } => {
                let key = google_auth::ServiceAccountKey::parse(key).map_err(|e| {
                    protocol::FieldError::new("source.google_credentials", e.to_string())
                })?;
                let http = httpc::client(&httpc::Options::new(concat!(
                    "k8s-deploy/",
                    env!("CARGO_PKG_VERSION")
                )))?;
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
            protocol::FieldError::new(
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
            return Err(protocol::FieldError::new(
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
                protocol::FieldError::new(
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

    pub fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates or updates the namespace with these labels (server-side apply).
    pub async fn ensure_namespace(
        &self,
        name: &str,
        labels: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        api.patch(name, &PatchParams::apply(MANAGER), &Patch::Apply(&ns))
            .await
            .map_err(|e| anyhow::anyhow!("create namespace {name}: {}", kube_error(&e)))?;
        Ok(())
    }

    pub async fn delete_namespace(&self, name: &str) -> anyhow::Result<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(anyhow::anyhow!(
                "delete namespace {name}: {}",
                kube_error(&e)
            )),
        }
    }

    /// Server-side applies one object; the kind is found through discovery.
    pub async fn apply(&self, object: &Value, ns: &str, force: bool) -> anyhow::Result<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{kind}/{name}: the cluster does not serve {api_version} {kind} ({})",
                    kube_error(&e)
                )
            })?;
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(self.client.clone(), ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        let mut object = object.clone();
        if caps.scope == kube::discovery::Scope::Namespaced {
            object["metadata"]["namespace"] = Value::String(ns.to_owned());
        }
        let mut params = PatchParams::apply(MANAGER);
        params.force = force;
        api.patch(name, &params, &Patch::Apply(&object)).await.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 => anyhow::anyhow!(
                "apply {kind}/{name}: {}; set params.force_conflicts: true to take these fields over",
                one_line(&s.message)
            ),
            _ => anyhow::anyhow!("apply {kind}/{name}: {}", kube_error(&e)),
        })?;
        Ok(format!("{kind}/{name}"))
    }

    /// Patches one container's image (strategic merge: the other containers stay).
    pub async fn set_image(
        &self,
        ns: &str,
        deployment: &str,
        container: &str,
        image: &str,
    ) -> anyhow::Result<()> {
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}});
        self.deployments(ns)
            .patch(
                deployment,
                &PatchParams {
                    field_manager: Some(MANAGER.to_owned()),
                    ..Default::default()
                },
                &Patch::Strategic(&patch),
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "set the image of {deployment}/{container}: {}",
                    kube_error(&e)
                )
            })?;
        Ok(())
    }

    /// Replaces a Deployment's pod template (rollback).
    pub async fn restore_template(
        &self,
        ns: &str,
        deployment: &str,
        template: &Value,
    ) -> anyhow::Result<()> {
        let mut t = template.clone();
        t["$patch"] = Value::String("replace".into());
        let patch = serde_json::json!({"spec": {"template": t}});
        self.deployments(ns)
            .patch(
                deployment,
                &PatchParams {
                    field_manager: Some(MANAGER.to_owned()),
                    ..Default::default()
                },
                &Patch::Strategic(&patch),
            )
            .await
            .map_err(|e| anyhow::anyhow!("roll back {deployment}: {}", kube_error(&e)))?;
        Ok(())
    }

    /// Pods selected by `selector` (`k=v,...`).
    pub async fn pods_of(&self, ns: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
        Ok(self
            .pods(ns)
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| anyhow::anyhow!("list pods: {}", kube_error(&e)))?
            .items)
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
