//! The kubelet's rules for a pod's conditions, shared by the Docker runtime and the simulated
//! pods: which conditions it owns, and `Ready` with readiness gates.
//!
//! From the kubelet (`pkg/kubelet/status/generate.go`, `GeneratePodReadyCondition`): a pod is
//! Ready when its containers are ready *and* every `spec.readinessGates[].conditionType` has a
//! condition with status `True`; otherwise Ready is False with reason `ReadinessGatesNotReady`
//! and a message per gate. Conditions of other types (what a controller sets through the
//! `pods/status` subresource) are kept as they are: the kubelet's status manager only replaces
//! the ones it owns.

use serde_json::{Value, json};

/// The condition types the kubelet (and, for PodScheduled, the scheduler) writes.
const OWNED: [&str; 5] = [
    "PodScheduled",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodReadyToStartContainers",
];

/// Whether the pod's Ready condition is True (what endpoints and availability count).
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `status` (as the kubelet computed it from the containers) with the conditions others set
/// on `current` (the stored pod) kept, and `Ready` judged with the pod's readiness gates.
pub fn merge(current: &Value, mut status: Value) -> Value {
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    for c in current["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let kind = c["type"].as_str().unwrap_or("");
        if !OWNED.contains(&kind) && !conditions.iter().any(|x| x["type"] == kind) {
            conditions.push(c.clone());
        }
    }
    let containers_ready = conditions
        .iter()
        .any(|c| c["type"] == "ContainersReady" && c["status"] == "True")
        || (!conditions.iter().any(|c| c["type"] == "ContainersReady")
            && conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"));
    if containers_ready {
        let mut unready = Vec::new();
        for gate in current["spec"]["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let kind = gate["conditionType"].as_str().unwrap_or("");
            match conditions.iter().find(|c| c["type"] == kind) {
                None => unready.push(format!(
                    "corresponding condition of pod readiness gate \"{kind}\" does not exist."
                )),
                Some(c) if c["status"] != "True" => unready.push(format!(
                    "the status of pod readiness gate \"{kind}\" is not \"True\", but {}",
                    c["status"].as_str().unwrap_or("Unknown")
                )),
                Some(_) => {}
            }
        }
        let ready = if unready.is_empty() {
            json!({"type": "Ready", "status": "True"})
        } else {
            json!({"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady", "message": unready.join(", ")})
        };
        match conditions.iter_mut().find(|c| c["type"] == "Ready") {
            Some(c) => *c = ready,
            None => conditions.push(ready),
        }
    }
    status["conditions"] = Value::Array(conditions);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(gates: &[&str], extra: Value) -> Value {
        let gates: Vec<Value> = gates.iter().map(|g| json!({"conditionType": g})).collect();
        json!({"spec": {"readinessGates": gates}, "status": {"conditions": extra}})
    }

    fn ready_of(status: &Value) -> Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_readiness_gate_holds_ready_until_its_condition_is_true_and_the_condition_is_kept() {
        let kubelet = json!({"conditions": [{"type": "ContainersReady", "status": "True"}, {"type": "Ready", "status": "True"}]});
        let missing = merge(&pod(&["example.com/checked"], json!([])), kubelet.clone());
        assert_eq!(
            ready_of(&missing),
            json!({"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                   "message": "corresponding condition of pod readiness gate \"example.com/checked\" does not exist."})
        );
        let falsy = merge(
            &pod(
                &["example.com/checked"],
                json!([{"type": "example.com/checked", "status": "False"}]),
            ),
            kubelet.clone(),
        );
        assert_eq!(
            ready_of(&falsy)["message"],
            "the status of pod readiness gate \"example.com/checked\" is not \"True\", but False"
        );
        let set = merge(
            &pod(
                &["example.com/checked"],
                json!([{"type": "example.com/checked", "status": "True"}, {"type": "Ready", "status": "False"}]),
            ),
            kubelet.clone(),
        );
        assert_eq!(ready_of(&set), json!({"type": "Ready", "status": "True"}));
        assert!(
            set["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "example.com/checked")
        );
        // Containers not ready: Ready stays what the kubelet said, whatever the gate.
        let not_ready = json!({"conditions": [{"type": "ContainersReady", "status": "False"}, {"type": "Ready", "status": "False"}]});
        let gated = merge(
            &pod(
                &["example.com/checked"],
                json!([{"type": "example.com/checked", "status": "True"}]),
            ),
            not_ready,
        );
        assert_eq!(
            ready_of(&gated),
            json!({"type": "Ready", "status": "False"})
        );
    }
}
