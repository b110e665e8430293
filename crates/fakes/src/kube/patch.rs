//! The four PATCH flavours kubectl and clients send: JSON merge patch (RFC 7386), strategic
//! merge patch (Kubernetes' list-merging rules for the fields we serve), JSON patch (RFC
//! 6902), and server-side apply (field ownership per manager, conflicts, force).

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge key of a list field, per the Kubernetes API's `patchMergeKey` for the fields the
/// fake serves; lists without one are replaced whole.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Strategic merge patch: like a merge patch, but lists with a merge key merge item by item
/// (`$patch: delete` removes one), `$setElementOrder/<field>` orders them, `$patch: replace`
/// on a map replaces it, `$retainKeys` keeps only the listed keys.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: BTreeSet<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(k.as_str()) || p.contains_key(k));
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v) {
            (Some(mk), Value::Array(items)) => {
                let current = t.entry(k.clone()).or_insert_with(|| json!([]));
                if !current.is_array() {
                    *current = json!([]);
                }
                let list = current.as_array_mut().expect("an array");
                for item in items {
                    let id = &item[mk];
                    let position = list.iter().position(|x| &x[mk] == id);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (position, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge(&mut list[i], item),
                        (None, false) => {
                            let mut fresh = Value::Object(Map::new());
                            strategic_merge(&mut fresh, item);
                            list.push(fresh);
                        }
                    }
                }
                if let Some(order) = p
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array)
                {
                    let ids: Vec<&Value> = order.iter().map(|o| &o[mk]).collect();
                    list.sort_by_key(|x| {
                        ids.iter()
                            .position(|id| **id == x[mk])
                            .unwrap_or(usize::MAX)
                    });
                }
            }
            (_, Value::Object(_)) => strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// RFC 6902: add, remove, replace, move, copy, test.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?
    {
        let path = op["path"].as_str().ok_or("an operation without path")?;
        match op["op"].as_str() {
            Some("add") => set(target, path, op["value"].clone(), true)?,
            Some("replace") => set(target, path, op["value"].clone(), false)?,
            Some("remove") => {
                remove(target, path)?;
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let v = remove(target, from)?;
                set(target, path, v, true)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let v = target
                    .pointer(from)
                    .cloned()
                    .ok_or(format!("copy: {from} does not exist"))?;
                set(target, path, v, true)?;
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown JSON patch op {other:?}")),
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or(format!("bad path {path}"))?;
    Ok((parent.to_owned(), unescape(last)))
}

fn set(target: &mut Value, path: &str, value: Value, insert: bool) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let p = target
        .pointer_mut(&parent)
        .ok_or(format!("{parent} does not exist"))?;
    match p {
        Value::Object(m) => {
            if !insert && !m.contains_key(&last) {
                return Err(format!("replace: {path} does not exist"));
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                if insert && i <= a.len() {
                    a.insert(i, value);
                } else if !insert && i < a.len() {
                    a[i] = value;
                } else {
                    return Err(format!("index out of range in {path}"));
                }
            }
        }
        _ => return Err(format!("{parent} is not a container")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or(format!("remove: {path} does not exist")),
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(format!("index out of range in {path}"))
            }
        }
        _ => Err(format!("remove: {parent} does not exist")),
    }
}

/// Leaf paths of an applied configuration: `.spec.replicas`,
/// `.spec.template.spec.containers[name=api].image`. Metadata the server owns is skipped.
pub fn leaf_paths(value: &Value, prefix: &str, field: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if prefix == ".metadata" && !matches!(k.as_str(), "labels" | "annotations") {
                    continue;
                }
                leaf_paths(v, &format!("{prefix}.{k}"), k, out);
            }
        }
        Value::Array(items) if merge_key(field).is_some() => {
            let mk = merge_key(field).unwrap_or("name");
            for item in items {
                let id = item[mk].to_string().trim_matches('"').to_owned();
                leaf_paths(item, &format!("{prefix}[{mk}={id}]"), "", out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// The value at a leaf path of [`leaf_paths`]'s form, in `object`.
pub fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = object;
    for part in path.trim_start_matches('.').split('.') {
        let (name, selector) = match part.split_once('[') {
            Some((n, sel)) => (n, Some(sel.trim_end_matches(']'))),
            None => (part, None),
        };
        node = node.get(name)?;
        if let Some(sel) = selector {
            let (k, v) = sel.split_once('=')?;
            node = node
                .as_array()?
                .iter()
                .find(|x| x[k].to_string().trim_matches('"') == v)?;
        }
    }
    Some(node)
}

/// Field owners kept on the object (our compact form of managedFields): manager -> paths.
pub type Owners = BTreeMap<String, BTreeSet<String>>;

/// Server-side apply of `applied` by `manager` onto `current` (`Value::Null` when creating).
/// Returns the new object and owners, or the conflicting (path, other manager) pairs.
pub fn apply(
    current: &Value,
    owners: &Owners,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<(Value, Owners), Vec<(String, String)>> {
    let mut leaves = BTreeMap::new();
    leaf_paths(applied, "", "", &mut leaves);
    let mut conflicts = Vec::new();
    for (path, value) in &leaves {
        for (other, paths) in owners {
            if other != manager && paths.contains(path) && value_at(current, path) != Some(value) {
                conflicts.push((path.clone(), other.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut next = current.clone();
    if next.is_null() {
        next = json!({});
    }
    // Fields this manager applied before and no longer applies are removed (if nobody else
    // owns them).
    let previous = owners.get(manager).cloned().unwrap_or_default();
    for gone in previous.iter().filter(|p| !leaves.contains_key(*p)) {
        let owned_elsewhere = owners
            .iter()
            .any(|(m, ps)| m != manager && ps.contains(gone));
        if !owned_elsewhere {
            remove_leaf(&mut next, gone);
        }
    }
    strategic_merge(&mut next, applied);
    let mut owners = owners.clone();
    for paths in owners.values_mut() {
        if force {
            paths.retain(|p| !leaves.contains_key(p));
        }
    }
    owners.insert(manager.to_owned(), leaves.keys().cloned().collect());
    owners.retain(|_, p| !p.is_empty());
    Ok((next, owners))
}

fn remove_leaf(object: &mut Value, path: &str) {
    let Some((parent, last)) = path.rsplit_once('.') else {
        return;
    };
    let target = if parent.is_empty() {
        Some(object)
    } else {
        value_at_mut(object, parent)
    };
    if let Some(Value::Object(m)) = target {
        let name = last.split('[').next().unwrap_or(last);
        if !last.contains('[') {
            m.remove(name);
        }
    }
}

fn value_at_mut<'a>(object: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut node = object;
    for part in path.trim_start_matches('.').split('.') {
        let (name, selector) = match part.split_once('[') {
            Some((n, sel)) => (n, Some(sel.trim_end_matches(']').to_owned())),
            None => (part, None),
        };
        node = node.get_mut(name)?;
        if let Some(sel) = selector {
            let (k, v) = sel.split_once('=')?;
            node = node
                .as_array_mut()?
                .iter_mut()
                .find(|x| x[k].to_string().trim_matches('"') == v)?;
        }
    }
    Some(node)
}

/// `metadata.managedFields` as the API shows it (one entry per manager).
pub fn managed_fields(owners: &Owners, api_version: &str) -> Value {
    Value::Array(
        owners
            .iter()
            .map(|(m, paths)| {
                let mut fields = Map::new();
                for p in paths {
                    fields.insert(format!("f:{p}"), json!({}));
                }
                json!({"manager": m, "operation": "Apply", "apiVersion": api_version, "time": super::store::now(), "fieldsType": "FieldsV1", "fieldsV1": fields})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name_like_kubectl_set_image() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}], "containers": [{"image": "b:2", "name": "b"}]}}}});
        strategic_merge(&mut d, &patch);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
        strategic_merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}}),
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn json_patch_and_merge_patch_follow_their_rfcs() {
        let mut v = json!({"a": {"b": 1}, "l": [1, 2]});
        json_patch(&mut v, &json!([{"op": "replace", "path": "/a/b", "value": 2}, {"op": "add", "path": "/l/-", "value": 3}, {"op": "remove", "path": "/l/0"}])).unwrap();
        assert_eq!(v, json!({"a": {"b": 2}, "l": [2, 3]}));
        assert!(
            json_patch(
                &mut v,
                &json!([{"op": "replace", "path": "/x", "value": 1}])
            )
            .is_err()
        );
        merge_patch(&mut v, &json!({"a": null, "c": {"d": 1}}));
        assert_eq!(v, json!({"l": [2, 3], "c": {"d": 1}}));
    }

    #[test]
    fn apply_tracks_owners_and_reports_conflicts_unless_forced() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 2}});
        let (obj, owners) = apply(&Value::Null, &Owners::new(), &cfg, "k8s-deploy", false).unwrap();
        assert_eq!(obj["spec"]["replicas"], 2);
        let other = json!({"metadata": {"name": "x"}, "spec": {"replicas": 5}});
        let conflicts = apply(&obj, &owners, &other, "kubectl", false).unwrap_err();
        assert_eq!(
            conflicts,
            [(".spec.replicas".to_owned(), "k8s-deploy".to_owned())]
        );
        let (obj, owners) = apply(&obj, &owners, &other, "kubectl", true).unwrap();
        assert_eq!(obj["spec"]["replicas"], 5);
        assert!(owners["kubectl"].contains(".spec.replicas"));
        assert!(
            !owners
                .get("k8s-deploy")
                .is_some_and(|p| p.contains(".spec.replicas"))
        );
    }
}
