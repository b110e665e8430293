//! Field ownership as the API server keeps it (kubernetes-sigs/structured-merge-diff, read
//! and written in our own words): `metadata.managedFields` entries keyed by manager,
//! operation (`Apply` for server-side apply, `Update` for POST/PUT/PATCH), the API version of
//! an Update, and the subresource; each entry a set of field paths.
//!
//! Paths: a map's field (`f:name`), an associative list's item by its key (`k:{"name":"a"}`,
//! the item itself owned as `.`), a set's value (`v:"x"`). Other lists are atomic (owned
//! whole). An applier owns the leaves of what it applied and the list items it named; an
//! updater owns what it changed, maps and items it added included.
//!
//! Apply: a field the applier sets to another value than the live one, owned by anyone else,
//! is a conflict (unless forced: then it changes hands). A field the applier owned before and
//! no longer applies is removed when nobody else owns it; a list item so removed goes whole.
//! Update: the updater takes the fields it changed from everyone; fields it removed leave
//! every entry.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One element of a field path, in fieldsV1's spelling.
pub type Element = String;
/// A field path.
pub type Path = Vec<Element>;
/// A set of field paths.
pub type Set = BTreeSet<Path>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    /// `""`, `status` or `scale`.
    pub subresource: String,
    pub fields: Set,
    pub time: String,
}

/// The entries of one object.
pub type Managed = Vec<Entry>;

/// The key fields of an associative list, by the list's field name (the Kubernetes API's
/// `x-kubernetes-list-map-keys` for the kinds we serve).
fn list_keys(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "conditions" => &["name"][..],
        "volumeMounts" => &["mountPath"],
        "ports" => &["containerPort", "protocol"],
        _ => return None,
    })
}

/// Lists of scalars with set semantics.
fn is_set(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn key_element(item: &Value, keys: &[&str]) -> Element {
    let mut m = Map::new();
    for k in keys {
        let v = match (&item[*k], *k) {
            // The API server defaults a port's protocol to TCP.
            (Value::Null, "protocol") => json!("TCP"),
            (v, _) => v.clone(),
        };
        if !v.is_null() {
            m.insert((*k).to_owned(), v);
        }
    }
    format!("k:{}", Value::Object(m))
}

/// What an applied configuration (or an object, for an Update) sets: identity and
/// server-owned fields excluded.
fn strip(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                )
            });
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    o
}

/// The leaves (and list items) of `value`, for an applier: maps are not owned themselves.
pub fn applied_set(applied: &Value) -> Set {
    let mut out = Set::new();
    walk(&strip(applied), &mut Vec::new(), "", &mut out, &mut |_| {
        false
    });
    out
}

fn walk(
    value: &Value,
    at: &mut Path,
    field: &str,
    out: &mut Set,
    own_map: &mut dyn FnMut(&Path) -> bool,
) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            if !at.is_empty() && own_map(at) {
                out.insert(at.clone());
            }
            for (k, v) in m {
                at.push(format!("f:{k}"));
                walk(v, at, k, out, own_map);
                at.pop();
            }
        }
        Value::Array(items) if list_keys(field).is_some() => {
            let keys = list_keys(field).unwrap_or(&[]);
            if items.is_empty() {
                out.insert(at.clone());
            }
            for item in items {
                at.push(key_element(item, keys));
                out.insert(at.clone());
                walk(item, at, "", out, own_map);
                at.pop();
            }
        }
        Value::Array(items) if is_set(field) => {
            for item in items {
                at.push(format!("v:{item}"));
                out.insert(at.clone());
                at.pop();
            }
        }
        _ => {
            if !at.is_empty() {
                out.insert(at.clone());
            }
        }
    }
}

/// The value at `path` in `object`, if it is there.
pub fn get<'a>(object: &'a Value, path: &[Element]) -> Option<&'a Value> {
    let mut node = object;
    let mut field = "";
    for e in path {
        if let Some(name) = e.strip_prefix("f:") {
            node = node.get(name)?;
            field = name;
        } else if let Some(key) = e.strip_prefix("k:") {
            let keys = list_keys(field)?;
            node = node
                .as_array()?
                .iter()
                .find(|i| format!("k:{key}") == key_element(i, keys))?;
            field = "";
        } else if let Some(v) = e.strip_prefix("v:") {
            let v: Value = serde_json::from_str(v).ok()?;
            node = node.as_array()?.iter().find(|i| **i == v)?;
        } else {
            return None;
        }
    }
    Some(node)
}

/// Removes what `path` names from `object` (a field, a list item, a set value). Maps left
/// empty by the removal go too, unless someone owns them (`keep`).
fn remove(object: &mut Value, path: &[Element], keep: &Set) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let parent_field = parent
        .last()
        .and_then(|e| e.strip_prefix("f:"))
        .unwrap_or("")
        .to_owned();
    if let Some(node) = get_mut(object, parent) {
        if let Some(name) = last.strip_prefix("f:") {
            if let Some(m) = node.as_object_mut() {
                m.remove(name);
            }
        } else if let Some(key) = last.strip_prefix("k:") {
            if let (Some(list), Some(keys)) = (node.as_array_mut(), list_keys(&parent_field)) {
                list.retain(|i| format!("k:{key}") != key_element(i, keys));
            }
        } else if let Some(v) = last.strip_prefix("v:")
            && let Some(list) = node.as_array_mut()
        {
            let v: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            list.retain(|i| *i != v);
        }
        let now_empty = node.as_object().is_some_and(Map::is_empty);
        if now_empty && !parent.is_empty() && !keep.contains(parent) {
            remove(object, parent, keep);
        }
    }
}

fn get_mut<'a>(object: &'a mut Value, path: &[Element]) -> Option<&'a mut Value> {
    let mut node = object;
    let mut field = String::new();
    for e in path {
        if let Some(name) = e.strip_prefix("f:") {
            node = node.get_mut(name)?;
            field = name.to_owned();
        } else if let Some(key) = e.strip_prefix("k:") {
            let keys = list_keys(&field)?;
            node = node
                .as_array_mut()?
                .iter_mut()
                .find(|i| format!("k:{key}") == key_element(i, keys))?;
            field.clear();
        } else {
            return None;
        }
    }
    Some(node)
}

/// `applied` merged into `live`: maps field by field, associative lists item by item (new
/// items appended), everything else replaced.
pub fn merge(live: &Value, applied: &Value, field: &str) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, v) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, v, k),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) if list_keys(field).is_some() => {
            let keys = list_keys(field).unwrap_or(&[]);
            let mut out = l.clone();
            for item in a {
                let id = key_element(item, keys);
                match out.iter_mut().find(|i| key_element(i, keys) == id) {
                    Some(existing) => *existing = merge(existing, item, ""),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (Value::Array(l), Value::Array(a)) if is_set(field) => {
            let mut out = l.clone();
            for v in a {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        (_, a) => a.clone(),
    }
}

/// A conflict: the path and the manager that owns it.
pub type Conflict = (Path, String);

/// Server-side apply of `applied` by `manager` onto `live` (`Value::Null` when creating).
pub fn apply(
    live: &Value,
    managed: &Managed,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    time: &str,
) -> Result<(Value, Managed), Vec<Conflict>> {
    let set = applied_set(applied);
    let stripped = strip(applied);
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource.is_empty();
    let mut conflicts = Vec::new();
    for path in &set {
        let new = get(&stripped, path);
        let old = get(live, path);
        // An item node conflicts only through its fields; a leaf when its value changes.
        let is_item = path
            .last()
            .is_some_and(|e| e.starts_with("k:") || e.starts_with("v:"));
        if is_item || old.is_none() || old == new {
            continue;
        }
        for e in managed.iter().filter(|e| !is_mine(e)) {
            if e.fields.contains(path) {
                conflicts.push((path.clone(), e.manager.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut managed: Managed = managed.clone();
    if force {
        for e in managed.iter_mut().filter(|e| !is_mine(e)) {
            e.fields.retain(|p| !conflicts.iter().any(|(c, _)| c == p));
        }
    }
    let base = if live.is_null() {
        json!({})
    } else {
        live.clone()
    };
    let mut next = merge(&base, &stripped, "");
    // What this applier owned before and no longer applies goes, unless someone else owns it.
    let before: Set = managed
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Set = managed
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Deepest first, so an item's fields go before the item.
    // A path that is now the parent of applied fields (an empty map that got content) stays;
    // a map field another manager owns content of stays; a list item goes whole.
    let mut dropped: Vec<&Path> = before
        .iter()
        .filter(|p| !set.contains(*p) && !others.contains(*p))
        .filter(|p| !set.iter().any(|q| q.starts_with(p)))
        .filter(|p| {
            p.last().is_some_and(|e| e.starts_with("k:"))
                || !others.iter().any(|q| q.starts_with(p))
        })
        .collect();
    // Shallowest first: a list item goes whole, and what was inside it is not looked for again
    // (its key field removed first would leave a nameless item behind).
    dropped.sort_by_key(|p| p.len());
    let mut gone: Vec<&Path> = Vec::new();
    for path in dropped {
        if gone.iter().any(|g| path.starts_with(g)) {
            continue;
        }
        remove(&mut next, path, &others);
        gone.push(path);
    }
    match managed.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            e.fields = set;
            e.api_version = api_version.to_owned();
            e.time = time.to_owned();
        }
        None => managed.push(Entry {
            manager: manager.to_owned(),
            operation: "Apply".into(),
            api_version: api_version.to_owned(),
            subresource: String::new(),
            fields: set,
            time: time.to_owned(),
        }),
    }
    prune(&mut managed, &next);
    Ok((next, managed))
}

/// An Update (create, PUT, PATCH) by `manager`: it owns what it changed; what it removed
/// leaves every entry.
pub fn update(
    before: &Value,
    after: &Value,
    managed: &Managed,
    manager: &str,
    api_version: &str,
    subresource: &str,
    time: &str,
) -> Managed {
    let old = strip(before);
    let new = strip(after);
    let mut changed = Set::new();
    walk(&new, &mut Vec::new(), "", &mut changed, &mut |p| {
        get(&old, p).is_none()
    });
    // A map or a list item is the updater's when it added it; a leaf when it changed it.
    changed.retain(|p| {
        let node = p.last().is_some_and(|e| e.starts_with("k:"))
            || get(&new, p).is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()));
        match get(&old, p) {
            None => true,
            Some(_) if node => false,
            Some(o) => Some(o) != get(&new, p),
        }
    });
    let mut managed = managed.clone();
    for e in managed.iter_mut() {
        e.fields.retain(|p| !changed.contains(p));
    }
    if !changed.is_empty() {
        let mine = |e: &Entry| {
            e.manager == manager
                && e.operation == "Update"
                && e.api_version == api_version
                && e.subresource == subresource
        };
        match managed.iter_mut().find(|e| mine(e)) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = time.to_owned();
            }
            None => managed.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version: api_version.to_owned(),
                subresource: subresource.to_owned(),
                fields: changed,
                time: time.to_owned(),
            }),
        }
    }
    prune(&mut managed, after);
    managed
}

/// Drops paths the object no longer has, and entries left with none.
fn prune(managed: &mut Managed, object: &Value) {
    let o = strip(object);
    for e in managed.iter_mut() {
        e.fields.retain(|p| get(&o, p).is_some());
    }
    managed.retain(|e| !e.fields.is_empty());
}

/// `metadata.managedFields` as the API serves it.
pub fn render(managed: &Managed) -> Value {
    Value::Array(
        managed
            .iter()
            .map(|e| {
                let mut entry = json!({"manager": e.manager, "operation": e.operation,
                    "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(&e.fields)});
                if !e.subresource.is_empty() {
                    entry["subresource"] = json!(e.subresource);
                }
                entry
            })
            .collect(),
    )
}

/// A set as nested fieldsV1 JSON: `{"f:spec": {"f:replicas": {}}}`, a node owned itself
/// marked with `".": {}`.
pub fn fields_v1(set: &Set) -> Value {
    let mut root = json!({});
    for path in set {
        let mut node = &mut root;
        for e in path {
            node = node
                .as_object_mut()
                .map(|m| m.entry(e.clone()).or_insert_with(|| json!({})))
                .unwrap_or_else(|| unreachable!("fieldsV1 nodes are objects"));
        }
        if set
            .iter()
            .any(|p| p.len() > path.len() && p.starts_with(path))
            && let Some(m) = node.as_object_mut()
        {
            m.insert(".".into(), json!({}));
        }
    }
    root
}

/// The paths a fieldsV1 value names.
pub fn parse_fields_v1(v: &Value) -> Set {
    fn go(v: &Value, at: &mut Path, out: &mut Set) {
        let Some(m) = v.as_object() else { return };
        if (m.is_empty() || m.contains_key(".")) && !at.is_empty() {
            out.insert(at.clone());
        }
        for (k, sub) in m {
            if k == "." {
                continue;
            }
            at.push(k.clone());
            go(sub, at, out);
            at.pop();
        }
    }
    let mut out = Set::new();
    go(v, &mut Vec::new(), &mut out);
    out
}
