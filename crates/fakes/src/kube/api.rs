//! The HTTP surface of the fake apiserver: discovery, CRUD, list and watch with selectors,
//! the four patch types (server-side apply also as `dryRun=All`), the `scale` and `status` subresources, `Status` errors, bearer-token
//! authentication. Paths are parsed here rather than routed, because the API's shape is
//! regular: `/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]` and the same under
//! `/apis/GROUP/VERSION`.

use super::Shared;
use super::patch;
use super::resources::{self, Resource};
use super::ssa;
use super::store::{self, key, not_found};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn status(
    code: u16,
    message: &str,
    reason: &str,
    details: Option<(&str, &Resource)>,
) -> Response {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    if let Some((name, r)) = details {
        body["details"] = json!({"name": name, "group": r.group, "kind": r.plural});
    }
    respond(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    )
}

fn respond(code: StatusCode, body: &Value) -> Response {
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn ok(body: &Value) -> Response {
    respond(StatusCode::OK, body)
}

struct Target {
    resource: &'static Resource,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (ns.to_string(), [&[*plural][..], rest].concat()),
        other => (String::new(), other.to_vec()),
    };
    // `/api/v1/namespaces/NAME` is the namespace object itself.
    let (namespace, rest) = if rest.is_empty() && !namespace.is_empty() {
        (
            String::new(),
            vec!["namespaces", namespace.as_str()]
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    } else {
        (
            namespace.clone(),
            rest.iter().map(|s| s.to_string()).collect(),
        )
    };
    let resource = resources::find(group, version, rest.first()?)?;
    Some(Target {
        resource,
        namespace,
        name: rest.get(1).cloned(),
        sub: rest.get(2).cloned(),
    })
}

fn query(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field path as the API server prints it in a conflict: `.spec.template.spec.containers[name="api"].image`.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let keys: serde_json::Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        }
    }
    out
}

/// Adds the view of field owners to an object on its way out.
fn present(store: &super::World, r: &Resource, object: &Value) -> Value {
    let mut o = object.clone();
    let k = key(
        r,
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or(""),
    );
    if let Some(managed) = store.owners.get(&k).filter(|m| !m.is_empty()) {
        o["metadata"]["managedFields"] = ssa::render(managed);
    }
    o
}

pub async fn handle(State(world): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 32 * 1024 * 1024)
        .await
        .unwrap_or_default();
    {
        let w = super::lock(&world);
        if let Some(token) = &w.token {
            let given = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given != Some(token.as_str()) {
                return status(401, "Unauthorized", "Unauthorized", None);
            }
        }
    }
    let path = parts.uri.path().to_owned();
    match path.as_str() {
        "/version" | "/version/" => return ok(&resources::version()),
        "/api" => return ok(&resources::api_versions()),
        "/apis" => return ok(&resources::api_groups()),
        "/api/v1" => return ok(&resources::resource_list("", "v1")),
        "/apis/apps/v1" => return ok(&resources::resource_list("apps", "v1")),
        "/apis/batch/v1" => return ok(&resources::resource_list("batch", "v1")),
        "/healthz" | "/readyz" | "/livez" => return (StatusCode::OK, "ok").into_response(),
        _ => {}
    }
    let Some(target) = parse_path(&path) else {
        return status(
            404,
            "the server could not find the requested resource",
            "NotFound",
            None,
        );
    };
    let q = query(&parts.uri);
    match (&parts.method, &target.name) {
        (&Method::GET, Some(name))
            if target.sub.as_deref() == Some("log") && target.resource.plural == "pods" =>
        {
            pod_log(&world, &target, name, &q)
        }
        (method, Some(name))
            if target.sub.as_deref() == Some("proxy")
                && matches!(target.resource.plural, "services" | "pods") =>
        {
            proxy(&world, &target, name, method, &parts.uri, &path, body).await
        }
        (&Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(world, target, q).await
        }
        (&Method::GET, None) => list(&world, &target, &q, as_table(&parts.headers)),
        (&Method::GET, Some(name)) => get(&world, &target, name, as_table(&parts.headers)),
        (&Method::POST, None) => create(&world, &target, &parts.headers, &body, &q),
        (&Method::PUT, Some(name)) => replace(&world, &target, name, &body, &q),
        (&Method::PATCH, Some(name)) => {
            patch_object(&world, &target, name, &parts.headers, &body, &q)
        }
        (&Method::DELETE, Some(name)) => delete(&world, &target, name, &q, &body),
        _ => status(405, "method not allowed", "MethodNotAllowed", None),
    }
}

/// kubectl asks for server-side printing (`application/json;as=Table;...`).
fn as_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(super::table::wanted)
}

fn list(world: &Shared, t: &Target, q: &HashMap<String, String>, table: bool) -> Response {
    let w = super::lock(world);
    if table {
        let items = w.store.list(
            t.resource,
            &t.namespace,
            q.get("labelSelector").map_or("", String::as_str),
            q.get("fieldSelector").map_or("", String::as_str),
        );
        return ok(&super::table::table(
            t.resource,
            &items,
            &w.store.resource_version().to_string(),
        ));
    }
    let items: Vec<Value> = w
        .store
        .list(
            t.resource,
            &t.namespace,
            q.get("labelSelector").map_or("", String::as_str),
            q.get("fieldSelector").map_or("", String::as_str),
        )
        .iter()
        .map(|o| present(&w, t.resource, o))
        .collect();
    ok(
        &json!({"kind": format!("{}List", t.resource.kind), "apiVersion": t.resource.api_version(),
               "metadata": {"resourceVersion": w.store.resource_version().to_string()}, "items": items}),
    )
}

fn get(world: &Shared, t: &Target, name: &str, table: bool) -> Response {
    let w = super::lock(world);
    let Some(o) = w.store.get(&key(t.resource, &t.namespace, name)) else {
        return status(
            404,
            &not_found(t.resource, name),
            "NotFound",
            Some((name, t.resource)),
        );
    };
    match t.sub.as_deref() {
        Some("scale") => ok(&scale_of(t.resource, o)),
        None if table => ok(&super::table::table(
            t.resource,
            std::slice::from_ref(o),
            o["metadata"]["resourceVersion"].as_str().unwrap_or(""),
        )),
        _ => ok(&present(&w, t.resource, o)),
    }
}

fn scale_of(r: &Resource, o: &Value) -> Value {
    let selector = store::selector_string(&o["spec"]["selector"]["matchLabels"]);
    let _ = r;
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
           "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "uid": o["metadata"]["uid"],
                        "resourceVersion": o["metadata"]["resourceVersion"], "creationTimestamp": o["metadata"]["creationTimestamp"]},
           "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(1)},
           "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector}})
}

fn namespace_missing(w: &super::World, t: &Target) -> Option<Response> {
    if t.resource.namespaced
        && !w.store.objects.contains_key(&(
            String::from("/namespaces"),
            String::new(),
            t.namespace.clone(),
        ))
    {
        let ns = resources::find("", "v1", "namespaces").expect("namespaces are served");
        return Some(status(
            404,
            &format!("namespaces \"{}\" not found", t.namespace),
            "NotFound",
            Some((&t.namespace, ns)),
        ));
    }
    None
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("yaml") {
        return super::yamljson::documents(&String::from_utf8_lossy(body))
            .and_then(|d| d.into_iter().next().ok_or("an empty document".into()));
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
}

fn create(
    world: &Shared,
    t: &Target,
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
) -> Response {
    let mut w = super::lock(world);
    if let Some(r) = namespace_missing(&w, t) {
        return r;
    }
    let object = match parse_body(headers, body) {
        Ok(o) => o,
        Err(e) => return status(400, &e, "BadRequest", None),
    };
    if t.resource.plural == "jobs"
        && !matches!(
            object["spec"]["template"]["spec"]["restartPolicy"].as_str(),
            Some("Never" | "OnFailure")
        )
    {
        return status(
            422,
            &format!(
                "Job.batch \"{}\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
                object["metadata"]["name"].as_str().unwrap_or("")
            ),
            "Invalid",
            None,
        );
    }
    match w.store.create(t.resource, &t.namespace, object) {
        Ok(o) => {
            // A create is an Update by its manager: it owns everything it set.
            let manager = manager_of(q, headers);
            let managed = ssa::update(
                &Value::Null,
                &o,
                &Vec::new(),
                &manager,
                &t.resource.api_version(),
                "",
                &super::store::now(),
            );
            let k = key(
                t.resource,
                &t.namespace,
                o["metadata"]["name"].as_str().unwrap_or(""),
            );
            w.owners.insert(k, managed);
            let out = present(&w, t.resource, &o);
            w.notify.notify_waiters();
            respond(StatusCode::CREATED, &out)
        }
        Err((code, message, reason)) => status(code, &message, reason, None),
    }
}

/// The field manager of a write: `fieldManager`, else the client's name from its User-Agent
/// (what the API server does: `kubectl/v1.33 ...` -> `kubectl`).
fn manager_of(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    q.get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_owned()
        })
}

fn replace(
    world: &Shared,
    t: &Target,
    name: &str,
    body: &Bytes,
    q: &HashMap<String, String>,
) -> Response {
    let mut w = super::lock(world);
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(400, "the body is not JSON", "BadRequest", None);
    };
    let k = key(t.resource, &t.namespace, name);
    let Some(current) = w.store.get(&k).cloned() else {
        return status(
            404,
            &not_found(t.resource, name),
            "NotFound",
            Some((name, t.resource)),
        );
    };
    match t.sub.as_deref() {
        Some("scale") => {
            let mut next = current.clone();
            next["spec"]["replicas"] = object["spec"]["replicas"].clone();
            object = next;
        }
        Some("status") => {
            let mut next = current.clone();
            next["status"] = object["status"].clone();
            object = next;
        }
        _ => object["status"] = current["status"].clone(),
    }
    let manager = Some(
        q.get("fieldManager")
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
    );
    write(&mut w, t, name, &current, object, true, manager)
}

#[allow(clippy::too_many_arguments)]
fn write(
    w: &mut std::sync::MutexGuard<'_, super::World>,
    t: &Target,
    name: &str,
    current: &Value,
    next: Value,
    check_rv: bool,
    manager: Option<String>,
) -> Response {
    let k = key(t.resource, &t.namespace, name);
    if let Some(m) = manager {
        // An Update: its manager owns what it changed (per subresource).
        let managed = w.owners.get(&k).cloned().unwrap_or_default();
        let managed = ssa::update(
            current,
            &next,
            &managed,
            &m,
            &t.resource.api_version(),
            t.sub.as_deref().unwrap_or(""),
            &super::store::now(),
        );
        w.owners.insert(k.clone(), managed);
    }
    match w
        .store
        .update(t.resource, &t.namespace, name, next, check_rv)
    {
        Ok(o) => {
            let out = match t.sub.as_deref() {
                Some("scale") => scale_of(t.resource, &o),
                _ => present(w, t.resource, &o),
            };
            w.notify.notify_waiters();
            ok(&out)
        }
        Err((code, message, reason)) => status(code, &message, reason, Some((name, t.resource))),
    }
}

fn patch_object(
    world: &Shared,
    t: &Target,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut w = super::lock(world);
    let k = key(t.resource, &t.namespace, name);
    let current = w.store.get(&k).cloned();
    if ct.starts_with("application/apply-patch") {
        let applied = match parse_body(headers, body) {
            Ok(a) => a,
            Err(e) => return status(400, &e, "BadRequest", None),
        };
        let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
            return status(
                422,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                "Invalid",
                None,
            );
        };
        let force = q.get("force").is_some_and(|f| f == "true");
        let managed = w.owners.get(&k).cloned().unwrap_or_default();
        let base = current.clone().unwrap_or(Value::Null);
        let applied_version = applied["apiVersion"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| t.resource.api_version());
        let outcome = ssa::apply(
            &base,
            &managed,
            &applied,
            manager,
            &applied_version,
            force,
            &super::store::now(),
        );
        let (mut next, owners) = match outcome {
            Ok((mut next, managed)) => {
                for k in ["apiVersion", "kind"] {
                    if next.get(k).is_none() {
                        next[k] = applied[k].clone();
                    }
                }
                if let Some(meta) = applied["metadata"].as_object() {
                    for (k, v) in meta {
                        if matches!(k.as_str(), "name" | "namespace" | "generateName") {
                            next["metadata"][k] = v.clone();
                        }
                    }
                }
                (next, managed)
            }
            Err(conflicts) => {
                // The API server's words: `.spec.replicas` as a path, the manager quoted.
                let conflicts: Vec<(String, String)> = conflicts
                    .iter()
                    .map(|(p, m)| (dotted(p), m.clone()))
                    .collect();
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|(p, m)| json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{m}\": {p}"), "field": p}))
                    .collect();
                let list = conflicts
                    .iter()
                    .map(|(p, m)| format!("- {m}: {p}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let message = format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    list.replace('\n', " ")
                );
                let mut r = status(409, &message, "Conflict", Some((name, t.resource)));
                let _ = &mut r;
                let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "Conflict",
                                  "details": {"name": name, "group": t.resource.group, "kind": t.resource.plural, "causes": causes}, "code": 409});
                return respond(StatusCode::CONFLICT, &body);
            }
        };
        next["metadata"]["name"] = json!(name);
        if q.get("dryRun").is_some_and(|d| d == "All") {
            // dryRun=All: the object as the apply would leave it; nothing is stored.
            let mut out = next;
            if let Some(c) = &current {
                for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
                    if out["metadata"][field].is_null() {
                        out["metadata"][field] = c["metadata"][field].clone();
                    }
                }
                out["status"] = c["status"].clone();
            }
            let code = if current.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            return respond(code, &out);
        }
        w.owners.insert(k.clone(), owners);
        if current.is_none() {
            if let Some(r) = namespace_missing(&w, t) {
                return r;
            }
            return match w.store.create(t.resource, &t.namespace, next) {
                Ok(o) => {
                    let out = present(&w, t.resource, &o);
                    w.notify.notify_waiters();
                    respond(StatusCode::CREATED, &out)
                }
                Err((code, message, reason)) => status(code, &message, reason, None),
            };
        }
        let current = current.unwrap_or_default();
        next["status"] = current["status"].clone();
        return write(&mut w, t, name, &current, next, false, None);
    }
    let Some(current) = current else {
        return status(
            404,
            &not_found(t.resource, name),
            "NotFound",
            Some((name, t.resource)),
        );
    };
    let patch_body: Value = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            return status(
                400,
                &format!("the patch is not JSON: {e}"),
                "BadRequest",
                None,
            );
        }
    };
    let mut target = match t.sub.as_deref() {
        Some("scale") => scale_of(t.resource, &current),
        _ => current.clone(),
    };
    if ct.starts_with("application/json-patch") {
        if let Err(e) = patch::json_patch(&mut target, &patch_body) {
            return status(422, &e, "Invalid", Some((name, t.resource)));
        }
    } else if ct.starts_with("application/merge-patch") {
        patch::merge_patch(&mut target, &patch_body);
    } else if ct.starts_with("application/strategic-merge-patch") {
        patch::strategic_merge(&mut target, &patch_body);
    } else {
        return status(
            415,
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"
            ),
            "UnsupportedMediaType",
            None,
        );
    }
    let next = match t.sub.as_deref() {
        Some("scale") => {
            let mut n = current.clone();
            n["spec"]["replicas"] = target["spec"]["replicas"].clone();
            n
        }
        Some("status") => {
            let mut n = current.clone();
            n["status"] = target["status"].clone();
            n
        }
        _ => {
            let mut n = target;
            n["status"] = current["status"].clone();
            n
        }
    };
    let manager = q
        .get("fieldManager")
        .cloned()
        .or_else(|| Some("kubectl-patch".to_owned()));
    write(&mut w, t, name, &current, next, false, manager)
}

/// Deletes an object. Its dependents are garbage-collected by the controller, unless the
/// propagation policy is `Orphan` — the default for Jobs, as in batch/v1 — which strips their
/// owner reference.
fn delete(
    world: &Shared,
    t: &Target,
    name: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let mut w = super::lock(world);
    let policy = q.get("propagationPolicy").cloned().or_else(|| {
        serde_json::from_slice::<Value>(body)
            .ok()?
            .get("propagationPolicy")?
            .as_str()
            .map(str::to_owned)
    });
    let orphan = match policy.as_deref() {
        Some("Orphan") => true,
        Some(_) => false,
        None => t.resource.plural == "jobs",
    };
    let uid = w
        .store
        .get(&key(t.resource, &t.namespace, name))
        .map(|o| o["metadata"]["uid"].clone());
    if orphan && let Some(uid) = uid {
        for plural in ["pods", "replicasets"] {
            let group = if plural == "pods" { "" } else { "apps" };
            let r = resources::find(group, "v1", plural).expect("served");
            for mut o in w.store.list(r, &t.namespace, "", "") {
                if o["metadata"]["ownerReferences"][0]["uid"] == uid {
                    let n = o["metadata"]["name"].as_str().unwrap_or("").to_owned();
                    if let Some(m) = o["metadata"].as_object_mut() {
                        m.remove("ownerReferences");
                    }
                    let _ = w.store.update(r, &t.namespace, &n, o, false);
                }
            }
        }
    }
    match w.store.delete(t.resource, &t.namespace, name) {
        Ok(o) => {
            w.owners.remove(&key(t.resource, &t.namespace, name));
            w.notify.notify_waiters();
            ok(&o)
        }
        Err((code, message, reason)) => status(code, &message, reason, Some((name, t.resource))),
    }
}

/// Streams `{"type", "object"}` lines: the current objects first when no resourceVersion is
/// given (or `0`), then every change after it, until `timeoutSeconds` (default 30 min).
async fn watch(world: Shared, t: Target, q: HashMap<String, String>) -> Response {
    let labels = q.get("labelSelector").cloned().unwrap_or_default();
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800)
            .min(3600),
    );
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let resource = t.resource;
    let namespace = t.namespace.clone();
    let res_key = format!("{}/{}", resource.group, resource.plural);
    let (mut cursor, initial) = {
        let w = super::lock(&world);
        match q
            .get("resourceVersion")
            .and_then(|rv| rv.parse::<u64>().ok())
            .filter(|rv| *rv > 0)
        {
            Some(rv) if rv < w.store.oldest_rv() => {
                let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {rv}"), "reason": "Expired", "code": 410}});
                drop(w);
                return chunked(vec![gone.to_string() + "\n"], None);
            }
            Some(rv) => (rv, Vec::new()),
            None => {
                let items: Vec<String> = w
                    .store
                    .list(resource, &namespace, &labels, &fields)
                    .iter()
                    .map(|o| {
                        json!({"type": "ADDED", "object": present(&w, resource, o)}).to_string()
                            + "\n"
                    })
                    .collect();
                (w.store.resource_version(), items)
            }
        }
    };
    let deadline = Instant::now() + timeout;
    let state = (world.clone(), cursor, deadline, false);
    let _ = &mut cursor;
    let stream = futures_util::stream::unfold(
        state,
        move |(world, cursor, deadline, bookmarked)| {
            let (labels, fields, namespace, res_key) = (
                labels.clone(),
                fields.clone(),
                namespace.clone(),
                res_key.clone(),
            );
            async move {
                loop {
                    let notify = {
                        let w = super::lock(&world);
                        let mut out = String::new();
                        let mut last = cursor;
                        for c in w
                            .store
                            .log
                            .iter()
                            .filter(|c| c.rv > cursor && c.resource == res_key)
                        {
                            last = c.rv;
                            let o = &c.object;
                            let ns_ok = namespace.is_empty()
                                || !resource.namespaced
                                || o["metadata"]["namespace"].as_str() == Some(namespace.as_str());
                            if ns_ok
                                && store::matches_labels(o, &labels)
                                && store::matches_fields(o, &fields)
                            {
                                out.push_str(
                                    &(json!({"type": c.kind, "object": present(&w, resource, o)})
                                        .to_string()
                                        + "\n"),
                                );
                            }
                        }
                        if !out.is_empty() {
                            return Some((
                                Ok::<_, std::io::Error>(Bytes::from(out)),
                                (world.clone(), last, deadline, bookmarked),
                            ));
                        }
                        w.notify.clone()
                    };
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    if bookmarks && !bookmarked {
                        let rv = super::lock(&world).store.resource_version();
                        let mark = json!({"type": "BOOKMARK", "object": {"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": {"resourceVersion": rv.to_string()}}});
                        return Some((
                            Ok(Bytes::from(mark.to_string() + "\n")),
                            (world.clone(), cursor, deadline, true),
                        ));
                    }
                    let _ = tokio::time::timeout(deadline - now, notify.notified()).await;
                }
            }
        },
    );
    chunked(initial, Some(Box::pin(stream)))
}

type Chunks =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

fn chunked(initial: Vec<String>, rest: Option<Chunks>) -> Response {
    use futures_util::StreamExt as _;
    let head = futures_util::stream::iter(
        initial
            .into_iter()
            .map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
    );
    let stream: Chunks = match rest {
        Some(r) => Box::pin(head.chain(r)),
        None => Box::pin(head),
    };
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// `pods/NAME/log`: the container's output from the runtime (`container`, `follow`,
/// `tailLines`). Without a runtime a finished pod has an empty log.
fn pod_log(world: &Shared, t: &Target, name: &str, q: &HashMap<String, String>) -> Response {
    let (pod, runtime) = {
        let w = super::lock(world);
        let Some(pod) = w.store.get(&key(t.resource, &t.namespace, name)).cloned() else {
            return status(
                404,
                &not_found(t.resource, name),
                "NotFound",
                Some((name, t.resource)),
            );
        };
        (pod, w.runtime.clone())
    };
    let Some(runtime) = runtime else {
        return if pod["status"]["phase"] == "Pending" {
            let c = q
                .get("container")
                .cloned()
                .or_else(|| {
                    pod["spec"]["containers"][0]["name"]
                        .as_str()
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            status(
                400,
                &format!(
                    "container \"{c}\" in pod \"{name}\" is waiting to start: ContainerCreating"
                ),
                "BadRequest",
                None,
            )
        } else {
            (StatusCode::OK, "").into_response()
        };
    };
    match runtime.container_id(&pod, q.get("container").map(String::as_str)) {
        Ok(id) => {
            let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
            let stream = runtime.logs(&id, follow, q.get("tailLines").cloned());
            let mut r = Body::from_stream(stream).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain"),
            );
            r
        }
        Err((code, message)) => status(code, &message, "BadRequest", None),
    }
}

/// `services/NAME[:PORT]/proxy/PATH` (to a ready pod behind the Service) and
/// `pods/NAME[:PORT]/proxy/PATH` (to the pod itself, on PORT or, as the API server does, the
/// first port a container declares): the request forwarded (container runtime only), the
/// answer passed back as it came.
async fn proxy(
    world: &Shared,
    t: &Target,
    name: &str,
    method: &Method,
    uri: &axum::http::Uri,
    path: &str,
    body: Bytes,
) -> Response {
    let (object, port) = match name.split_once(':') {
        Some((o, p)) => (o, Some(p)),
        None => (name, None),
    };
    let services = t.resource.plural == "services";
    let runtime = super::lock(world).runtime.clone();
    let Some(runtime) = runtime else {
        let what = if services {
            format!("no endpoints available for service \"{object}\"")
        } else {
            format!("pod \"{object}\" is not reachable")
        };
        return status(
            503,
            &format!("{what} (the fake runs pods as containers only when started with Docker)"),
            "ServiceUnavailable",
            None,
        );
    };
    let endpoint = if services {
        super::runtime::Runtime::endpoint(world, &t.namespace, object, port)
    } else {
        super::runtime::Runtime::pod_endpoint(world, &t.namespace, object, port)
    };
    let endpoint = match endpoint {
        Ok(e) => e,
        Err((404, m)) => return status(404, &m, "NotFound", Some((object, t.resource))),
        Err((code, m)) => return status(code, &m, "ServiceUnavailable", None),
    };
    let marker = format!("/{}/{name}/proxy", t.resource.plural);
    forward(&runtime, &endpoint, &marker, method, uri, path, body).await
}

/// Sends the request on to `endpoint` (`IP:PORT`), the path being what follows `marker`, and
/// passes the answer back as it came.
async fn forward(
    runtime: &super::runtime::Runtime,
    endpoint: &str,
    marker: &str,
    method: &Method,
    uri: &axum::http::Uri,
    path: &str,
    body: Bytes,
) -> Response {
    let rest = path
        .split_once(marker)
        .map(|(_, r)| r)
        .filter(|r| !r.is_empty())
        .unwrap_or("/");
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("http://{endpoint}{rest}{query}");
    let Ok(m) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return status(405, "method not allowed", "MethodNotAllowed", None);
    };
    match runtime
        .http()
        .request(m, &url)
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(r) => {
            let code = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = r.bytes().await.unwrap_or_default();
            let mut out = (code, bytes.to_vec()).into_response();
            if let Some(ct) = ct
                && let Ok(v) = header::HeaderValue::from_str(&ct)
            {
                out.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            out
        }
        Err(e) => status(
            503,
            &format!("error trying to reach service: {}", e.without_url()),
            "ServiceUnavailable",
            None,
        ),
    }
}
