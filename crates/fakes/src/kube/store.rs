//! The fake's object store: JSON objects with resourceVersions, generations, a change log that
//! watches read, and Kubernetes' selector rules.

use super::resources::Resource;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub type Key = (String, String, String); // (group/plural, namespace, name)

pub fn key(r: &Resource, namespace: &str, name: &str) -> Key {
    (
        format!("{}/{}", r.group, r.plural),
        if r.namespaced {
            namespace.to_owned()
        } else {
            String::new()
        },
        name.to_owned(),
    )
}

#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub resource: String,
    pub kind: &'static str,
    pub object: Value,
}

#[derive(Debug, Default)]
pub struct Store {
    pub objects: BTreeMap<Key, Value>,
    pub log: Vec<Change>,
    rv: u64,
    uid: u64,
}

pub fn now() -> String {
    protocol::time::now_rfc3339()
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, resource: &str, kind: &'static str, object: Value) {
        let rv = self.rv;
        self.log.push(Change {
            rv,
            resource: resource.to_owned(),
            kind,
            object,
        });
        // Bounded: watches older than the log get 410 Gone, as from a real apiserver.
        if self.log.len() > 20_000 {
            self.log.drain(..10_000);
        }
    }

    pub fn oldest_rv(&self) -> u64 {
        self.log.first().map_or(0, |c| c.rv.saturating_sub(1))
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Inserts a new object, filling server-set metadata.
    pub fn create(
        &mut self,
        r: &Resource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, (u16, String, &'static str)> {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            return Err((
                422,
                format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    r.kind
                ),
                "Invalid",
            ));
        }
        let k = key(r, namespace, &name);
        if self.objects.contains_key(&k) {
            return Err((
                409,
                format!("{} \"{name}\" already exists", group_plural(r)),
                "AlreadyExists",
            ));
        }
        let rv = self.bump();
        self.uid += 1;
        let meta = &mut object["metadata"];
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid));
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(now());
        if r.namespaced {
            meta["namespace"] = json!(namespace);
        }
        if matches!(r.plural, "deployments" | "replicasets" | "jobs") {
            meta["generation"] = json!(1);
        }
        if r.plural == "jobs" {
            job_defaults(&mut object);
        }
        object["apiVersion"] = json!(r.api_version());
        object["kind"] = json!(r.kind);
        self.objects.insert(k, object.clone());
        self.record(
            &format!("{}/{}", r.group, r.plural),
            "ADDED",
            object.clone(),
        );
        Ok(object)
    }

    /// Replaces an object; bumps generation when the spec changed (workloads).
    pub fn update(
        &mut self,
        r: &Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
        check_rv: bool,
    ) -> Result<Value, (u16, String, &'static str)> {
        let k = key(r, namespace, name);
        let Some(current) = self.objects.get(&k).cloned() else {
            return Err((404, not_found(r, name), "NotFound"));
        };
        if check_rv
            && let Some(given) = object["metadata"]["resourceVersion"].as_str()
            && Some(given) != current["metadata"]["resourceVersion"].as_str()
        {
            return Err((
                409,
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    group_plural(r)
                ),
                "Conflict",
            ));
        }
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            object["metadata"][field] = current["metadata"][field].clone();
        }
        let mut generation = current["metadata"]["generation"].as_i64();
        if generation.is_some() && object["spec"] != current["spec"] {
            generation = generation.map(|g| g + 1);
        }
        if let Some(g) = generation {
            object["metadata"]["generation"] = json!(g);
        }
        object["apiVersion"] = json!(r.api_version());
        object["kind"] = json!(r.kind);
        if object == current {
            return Ok(current);
        }
        let rv = self.bump();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.insert(k, object.clone());
        self.record(
            &format!("{}/{}", r.group, r.plural),
            "MODIFIED",
            object.clone(),
        );
        Ok(object)
    }

    pub fn delete(
        &mut self,
        r: &Resource,
        namespace: &str,
        name: &str,
    ) -> Result<Value, (u16, String, &'static str)> {
        let k = key(r, namespace, name);
        let Some(mut object) = self.objects.remove(&k) else {
            return Err((404, not_found(r, name), "NotFound"));
        };
        let rv = self.bump();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(
            &format!("{}/{}", r.group, r.plural),
            "DELETED",
            object.clone(),
        );
        // Deleting a namespace deletes what is in it.
        if r.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.1 == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(mut o) = self.objects.remove(&k) {
                    let rv = self.bump();
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    self.record(&k.0, "DELETED", o);
                }
            }
        }
        Ok(object)
    }

    /// Objects of `r` in `namespace` (all namespaces when empty) matching the selectors.
    pub fn list(&self, r: &Resource, namespace: &str, labels: &str, fields: &str) -> Vec<Value> {
        let res = format!("{}/{}", r.group, r.plural);
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.0 == res && (namespace.is_empty() || !r.namespaced || k.1 == namespace)
            })
            .map(|(_, v)| v)
            .filter(|v| matches_labels(v, labels) && matches_fields(v, fields))
            .cloned()
            .collect()
    }
}

pub fn group_plural(r: &Resource) -> String {
    if r.group.is_empty() {
        r.plural.to_owned()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

pub fn not_found(r: &Resource, name: &str) -> String {
    format!("{} \"{name}\" not found", group_plural(r))
}

/// `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`, comma-separated.
/// A `matchLabels`-style map as a label selector string (`k=v,k2=v2`).
pub fn selector_string(labels: &Value) -> String {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn matches_labels(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    let get = |k: &str| labels[k].as_str();
    split_selector(selector).iter().all(|term| {
        let term = term.trim();
        if term.is_empty() {
            return true;
        }
        if let Some((k, v)) = term.split_once("!=") {
            return get(k.trim()) != Some(v.trim());
        }
        if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            return get(k.trim()) == Some(v.trim());
        }
        for (op, negate) in [(" notin ", true), (" in ", false)] {
            if let Some((k, set)) = term.split_once(op) {
                let values: Vec<&str> = set
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(str::trim)
                    .collect();
                let found = get(k.trim()).is_some_and(|v| values.contains(&v));
                return found != negate;
            }
        }
        match term.strip_prefix('!') {
            Some(k) => get(k.trim()).is_none(),
            None => get(term).is_some(),
        }
    })
}

fn split_selector(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

/// `metadata.name=x`, `metadata.namespace=y` (the fields kubectl uses).
pub fn matches_fields(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .all(|term| {
            let (path, negate, value) = match term.split_once("!=") {
                Some((p, v)) => (p, true, v),
                None => match term.split_once("==").or_else(|| term.split_once('=')) {
                    Some((p, v)) => (p, false, v),
                    None => return true,
                },
            };
            let mut node = object;
            for part in path.trim().split('.') {
                node = &node[part];
            }
            (node.as_str() == Some(value.trim())) != negate
        })
}

/// What the apiserver fills in on a new Job: the selector on its controller uid, the labels on
/// its pod template, and the spec defaults.
fn job_defaults(job: &mut Value) {
    let uid = job["metadata"]["uid"].clone();
    let name = job["metadata"]["name"].clone();
    let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid, "job-name": name});
    if job["spec"]["selector"].is_null() {
        job["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
    if let Some(m) = labels.as_object() {
        for (k, v) in m {
            job["spec"]["template"]["metadata"]["labels"][k] = v.clone();
        }
    }
    for (field, default) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
        if job["spec"][field].is_null() {
            job["spec"][field] = json!(default);
        }
    }
    if job["spec"]["completionMode"].is_null() {
        job["spec"]["completionMode"] = json!("NonIndexed");
    }
    if job["spec"]["suspend"].is_null() {
        job["spec"]["suspend"] = json!(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_follow_kubernetes() {
        let o = json!({"metadata": {"labels": {"app": "api", "tier": "web"}}});
        for (sel, want) in [
            ("app=api", true),
            ("app==api,tier=web", true),
            ("app!=api", false),
            ("tier in (web,db)", true),
            ("tier notin (web)", false),
            ("app", true),
            ("!app", false),
            ("missing", false),
            ("", true),
        ] {
            assert_eq!(matches_labels(&o, sel), want, "{sel}");
        }
        assert!(matches_fields(
            &json!({"metadata": {"name": "x"}}),
            "metadata.name=x"
        ));
        assert!(!matches_fields(
            &json!({"metadata": {"name": "x"}}),
            "metadata.name!=x"
        ));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
