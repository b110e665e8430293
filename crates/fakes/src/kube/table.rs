//! Server-side printing: the `Table` (meta.k8s.io/v1) an apiserver answers when kubectl asks
//! for `application/json;as=Table`, so `kubectl get` shows the columns it shows against a real
//! cluster (READY, STATUS, RESTARTS for pods; UP-TO-DATE, AVAILABLE for Deployments; STATUS,
//! COMPLETIONS for Jobs; ...) instead of only NAME and AGE. Each row carries the object's
//! metadata, from which kubectl takes the NAMESPACE column of `-A`.

use super::resources::Resource;
use serde_json::{Value, json};

/// Whether the request's Accept header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn column(name: &str, kind: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": 0})
}

/// How long ago an RFC 3339 UTC timestamp was, the way `kubectl` prints ages (`45s`, `3m12s`,
/// `17m`, `5h10m`, `3d`).
pub fn age(timestamp: &str) -> String {
    human(super::controller::seconds_since(timestamp).max(0))
}

fn human(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 2 * 86_400 => format!("{h}h"),
        _ => format!("{d}d"),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The columns and cells for one kind.
fn row(r: &Resource, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let age = json!(age(o["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("")));
    let status = &o["status"];
    match r.plural {
        "pods" => {
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            // As kubectl: a waiting or terminated reason wins over the phase.
            let reason = statuses
                .iter()
                .find_map(|c| {
                    c["state"]["waiting"]["reason"]
                        .as_str()
                        .or(c["state"]["terminated"]["reason"].as_str())
                })
                .or(status["reason"].as_str())
                .or(status["phase"].as_str())
                .unwrap_or("Pending");
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(reason),
                json!(restarts),
                age,
            ]
        }
        "deployments" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(&status["readyReplicas"]),
                int(&o["spec"]["replicas"])
            )),
            json!(int(&status["updatedReplicas"])),
            json!(int(&status["availableReplicas"])),
            age,
        ],
        "replicasets" => vec![
            name,
            json!(int(&o["spec"]["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ],
        "jobs" => {
            let condition = |t: &str| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let state = if condition("Complete") {
                "Complete"
            } else if condition("Failed") {
                "Failed"
            } else {
                "Running"
            };
            vec![
                name,
                json!(state),
                json!(format!(
                    "{}/{}",
                    int(&status["succeeded"]),
                    int(&o["spec"]["completions"]).max(1)
                )),
                age,
            ]
        }
        "services" => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            vec![
                name,
                json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                json!(o["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                json!(ports.join(",")),
                age,
            ]
        }
        "endpoints" => {
            // kubectl's printer: ready IP:PORT pairs, the first three, then "+ N more...".
            let mut pairs = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    for p in subset["ports"].as_array().into_iter().flatten() {
                        pairs.push(format!(
                            "{}:{}",
                            a["ip"].as_str().unwrap_or(""),
                            int(&p["port"])
                        ));
                    }
                }
            }
            let shown = if pairs.is_empty() {
                "<none>".to_owned()
            } else if pairs.len() > 3 {
                format!("{} + {} more...", pairs[..3].join(","), pairs.len() - 3)
            } else {
                pairs.join(",")
            };
            vec![name, json!(shown), age]
        }
        "namespaces" => vec![
            name,
            json!(status["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        _ => vec![name, age],
    }
}

fn columns(r: &Resource) -> Vec<Value> {
    let named = |cols: &[(&str, &str)]| cols.iter().map(|(n, t)| column(n, t)).collect();
    match r.plural {
        "pods" => named(&[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "integer"),
            ("Age", "string"),
        ]),
        "deployments" => named(&[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ]),
        "replicasets" => named(&[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Age", "string"),
        ]),
        "jobs" => named(&[
            ("Name", "string"),
            ("Status", "string"),
            ("Completions", "string"),
            ("Age", "string"),
        ]),
        "services" => named(&[
            ("Name", "string"),
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("Port(s)", "string"),
            ("Age", "string"),
        ]),
        "namespaces" => named(&[("Name", "string"), ("Status", "string"), ("Age", "string")]),
        "endpoints" => named(&[
            ("Name", "string"),
            ("Endpoints", "string"),
            ("Age", "string"),
        ]),
        _ => named(&[("Name", "string"), ("Age", "string")]),
    }
}

/// A Table of `items` of kind `r`.
pub fn table(r: &Resource, items: &[Value], resource_version: &str) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": row(r, o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                   "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": columns(r), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        for (secs, shown) in [
            (45, "45s"),
            (192, "3m12s"),
            (1020, "17m"),
            (18_600, "5h10m"),
            (36_000, "10h"),
            (3 * 86_400, "3d"),
        ] {
            assert_eq!(human(secs), shown);
        }
        assert_eq!(age(&super::super::store::now()), "0s");
    }

    #[test]
    fn a_waiting_reason_is_a_pods_status() {
        let r = super::super::resources::find("", "v1", "pods").unwrap_or_else(|| unreachable!());
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": super::super::store::now()},
                         "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                         "status": {"phase": "Pending", "containerStatuses": [
                             {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                             {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let t = table(r, &[pod], "7");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "1/2", "CrashLoopBackOff", 3, "0s"])
        );
        assert_eq!(t["columnDefinitions"][2]["name"], "Status");
    }
}
