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

    /// Namespaces k8s-deploy made with `prefix` (its labels say so) created before `cutoff`
    /// (RFC 3339), oldest first.
    pub async fn stale_namespaces(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
    ) -> anyhow::Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let selector =
            format!("app.kubernetes.io/managed-by=k8s-deploy,concourse.ci/prefix={prefix}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| anyhow::anyhow!("list namespaces: {}", kube_error(&e)))?;
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut stale: Vec<(k8s_openapi::jiff::Timestamp, String)> = list
            .items
            .into_iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| {
                let created = n.metadata.creation_timestamp?.0;
                let age = now.duration_since(created).unsigned_abs();
                (age >= older_than).then(|| (created, n.metadata.name.unwrap_or_default()))
            })
            .collect();
        stale.sort();
        Ok(stale.into_iter().map(|(_, n)| n).collect())
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

    /// What applying a Deployment's manifest would leave (`dryRun=All`: the API server
    /// defaults and merges, stores nothing), read as the typed Deployment every other read
    /// gives.
    pub async fn preview_deployment(
        &self,
        doc: &Value,
        ns: &str,
        force: bool,
    ) -> anyhow::Result<Deployment> {
        let name = doc["metadata"]["name"].as_str().unwrap_or("");
        let mut params = PatchParams::apply(MANAGER).dry_run();
        params.force = force;
        self.deployments(ns)
            .patch(name, &params, &Patch::Apply(doc))
            .await
            .map_err(|e| anyhow::anyhow!("preview Deployment/{name}: {}", kube_error(&e)))
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

    /// Sets one container's image with server-side apply, as manager `k8s-deploy` like every
    /// other write: what k8s-deploy applied before (its `Apply` entry, values as live) with the
    /// image changed, so no field it owned is dropped and no second owner appears.
    pub async fn set_image(
        &self,
        ns: &str,
        deployment: &str,
        container: &str,
        image: &str,
        force: bool,
    ) -> anyhow::Result<()> {
        let mut config = self.applied_config(ns, deployment).await?;
        let containers = &mut config["spec"]["template"]["spec"]["containers"];
        if !containers.is_array() {
            *containers = Value::Array(Vec::new());
        }
        if let Some(list) = containers.as_array_mut() {
            match list.iter_mut().find(|c| c["name"] == container) {
                Some(c) => c["image"] = Value::String(image.to_owned()),
                None => list.push(serde_json::json!({"name": container, "image": image})),
            }
        }
        self.apply(&config, ns, force)
            .await
            .map_err(|e| anyhow::anyhow!("set the image of {deployment}/{container}: {e:#}"))?;
        Ok(())
    }

    /// Puts a Deployment's previous pod template back (rollback), with server-side apply:
    /// k8s-deploy's applied configuration with `template` in place of its template.
    pub async fn restore_template(
        &self,
        ns: &str,
        deployment: &str,
        template: &Value,
        force: bool,
    ) -> anyhow::Result<()> {
        let mut config = self.applied_config(ns, deployment).await?;
        config["spec"]["template"] = template.clone();
        self.apply(&config, ns, force)
            .await
            .map_err(|e| anyhow::anyhow!("roll back {deployment}: {e:#}"))?;
        Ok(())
    }

    /// What k8s-deploy applied to a Deployment, with the live values (client-go's
    /// `ExtractDeployment`): the paths of its `Apply` entry in `managedFields` read out of
    /// the live object. Identity only when it applied nothing yet.
    async fn applied_config(&self, ns: &str, deployment: &str) -> anyhow::Result<Value> {
        let live = self
            .deployments(ns)
            .get(deployment)
            .await
            .map_err(|e| anyhow::anyhow!("read {deployment}: {}", kube_error(&e)))?;
        let live = serde_json::to_value(&live)?;
        Ok(extract(&live, MANAGER))
    }
}

/// The configuration `manager` applied to `live`, with live values (see
/// [`Cluster::applied_config`]). Hand-written: kube has no extract; the walk follows the
/// fieldsV1 format (`f:` fields, `k:` list items by key, `v:` set values).
pub fn extract(live: &Value, manager: &str) -> Value {
    let fields = live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["manager"] == manager
                && e["operation"] == "Apply"
                && e["subresource"].as_str().unwrap_or("").is_empty()
        })
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| serde_json::json!({}));
    let mut out = match fields.as_object() {
        Some(f) => extract_node(f, live),
        None => Value::Object(Default::default()),
    };
    out["apiVersion"] = live["apiVersion"].clone();
    out["kind"] = live["kind"].clone();
    out["metadata"]["name"] = live["metadata"]["name"].clone();
    if !live["metadata"]["namespace"].is_null() {
        out["metadata"]["namespace"] = live["metadata"]["namespace"].clone();
    }
    out
}

fn extract_node(fields: &serde_json::Map<String, Value>, live: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, sub) in fields {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let Some(child) = live.get(name) else {
            continue;
        };
        let sub = sub.as_object().cloned().unwrap_or_default();
        let value = if sub.keys().all(|k| k == ".") {
            child.clone()
        } else {
            match child {
                Value::Object(_) => extract_node(&sub, child),
                Value::Array(items) => Value::Array(extract_list(&sub, items)),
                other => other.clone(),
            }
        };
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

fn extract_list(fields: &serde_json::Map<String, Value>, items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, sub) in fields {
        if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            let found = items.iter().find(|i| {
                key.iter().all(|(f, v)| {
                    i.get(f) == Some(v) || (f == "protocol" && v == "TCP" && i.get(f).is_none())
                })
            });
            if let Some(item) = found {
                let mut value = match sub.as_object() {
                    Some(s) => extract_node(s, item),
                    None => Value::Object(Default::default()),
                };
                for (f, v) in &key {
                    if item.get(f).is_some() {
                        value[f] = v.clone();
                    }
                }
                out.push(value);
            }
        } else if let Some(v) = k.strip_prefix("v:")
            && let Ok(v) = serde_json::from_str::<Value>(v)
        {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes from a real API server's managedFields (kubectl apply --server-side of a
    /// Deployment, then kubectl set image as another manager).
    #[test]
    fn extract_reads_the_appliers_fields_with_live_values() {
        let live = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "ns", "labels": {"app": "api", "team": "x"},
                "managedFields": [
                    {"manager": "k8s-deploy", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}, "f:selector": {},
                        "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {
                            "k:{\"name\":\"api\"}": {".": {}, "f:image": {}, "f:name": {}, "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                                "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}},
                    {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}}
                ]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}, "revisionHistoryLimit": 10,
                "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                    {"name": "api", "image": "r/api:2", "imagePullPolicy": "IfNotPresent",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}
        });
        let got = extract(&live, "k8s-deploy");
        assert_eq!(
            got,
            serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "ns", "labels": {"app": "api"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                        {"name": "api", "image": "r/api:2", "env": [{"name": "A", "value": "1"}],
                         "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}
            })
        );
        let nothing = extract(&live, "someone-else");
        assert_eq!(
            nothing,
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "ns"}})
        );
    }
}
