//! The four PATCH flavours kubectl and clients send: JSON merge patch (RFC 7386), strategic
//! merge patch (Kubernetes' list-merging rules for the fields we serve), JSON patch (RFC
//! 6902), and server-side apply (field ownership per manager, conflicts, force).

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

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
}
