//! The Kubernetes API through the kube crate: the one external system of this resource.
//! The connection itself (every way in becomes one kubeconfig) is `kube_access`, shared with
//! acceptance-run.

use crate::source::Config;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

pub const MANAGER: &str = "k8s-deploy";

/// The shared connection (`kube_access::Cluster`: `client`, `server`) with what k8s-deploy
/// does on it.
#[derive(Clone, Debug)]
pub struct Cluster(kube_access::Cluster);

impl std::ops::Deref for Cluster {
    type Target = kube_access::Cluster;

    fn deref(&self) -> &kube_access::Cluster {
        &self.0
    }
}

pub use kube_access::{kube_error, one_line};

impl Cluster {
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        kube_access::Cluster::connect(
            &config.access,
            concat!("k8s-deploy/", env!("CARGO_PKG_VERSION")),
        )
        .await
        .map(Self)
    }

    pub fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn replica_sets(&self, ns: &str) -> Api<ReplicaSet> {
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
