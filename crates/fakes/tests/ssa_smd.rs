//! The fake's field ownership held to the server-side apply engine's own test cases:
//! kubernetes-sigs/structured-merge-diff `merge/multiple_appliers_test.go`
//! (`TestMultipleAppliersSet`, `TestMultipleAppliersNestedType`,
//! `TestMultipleAppliersFieldUnsetting` at one API version), ported as data. Their schema's
//! names are mapped onto fields the fake knows as the Kubernetes API has them: the keyed
//! list `list`/`listOfLists` (key `name`) is `containers`, the set `value` is `finalizers`,
//! the struct `struct` is `spec` with scalar `a` (`scalarField`) and map `c` (`complexField`).
//! Each case: the operations in order, the expected conflicts, the object and who owns what.

#![allow(clippy::unwrap_used)]

use fakes::kube::ssa::{self, Managed, Set};
use serde_json::{Value, json};
use std::collections::BTreeMap;

enum Op {
    Apply(&'static str, Value, &'static [(&'static str, &'static str)]),
    Update(&'static str, Value),
}

/// `containers[a].name` style paths, to fieldsV1 elements.
fn path(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in p.split('.') {
        if let Some((field, rest)) = part.split_once('[') {
            out.push(format!("f:{field}"));
            let inner = rest.trim_end_matches(']');
            if let Some(v) = inner.strip_prefix('=') {
                out.push(format!("v:{}", json!(v)));
            } else {
                out.push(format!("k:{}", json!({"name": inner})));
            }
        } else {
            out.push(format!("f:{part}"));
        }
    }
    out
}

fn set(paths: &[&str]) -> Set {
    paths.iter().map(|p| path(p)).collect()
}

fn run(name: &str, ops: Vec<Op>, object: Value, owners: &[(&str, &[&str])]) {
    let mut live = Value::Null;
    let mut managed: Managed = Vec::new();
    for op in ops {
        match op {
            Op::Apply(manager, config, conflicts) => {
                match ssa::apply(&live, &managed, &config, manager, "v1", false, "t") {
                    Ok((next, m)) => {
                        assert!(
                            conflicts.is_empty(),
                            "{name}: expected conflicts {conflicts:?}"
                        );
                        live = next;
                        managed = m;
                    }
                    Err(got) => {
                        let got: Vec<(Vec<String>, String)> = got;
                        let want: Vec<(Vec<String>, String)> = conflicts
                            .iter()
                            .map(|(p, m)| (path(p), (*m).to_owned()))
                            .collect();
                        assert_eq!(got, want, "{name}: conflicts");
                    }
                }
            }
            Op::Update(manager, object) => {
                managed = ssa::update(&live, &object, &managed, manager, "v1", "", "t");
                live = object;
            }
        }
    }
    assert_eq!(live, object, "{name}: object");
    let got: BTreeMap<String, Set> = managed
        .iter()
        .map(|e| (e.manager.clone(), e.fields.clone()))
        .collect();
    let want: BTreeMap<String, Set> = owners
        .iter()
        .map(|(m, ps)| ((*m).to_owned(), set(ps)))
        .collect();
    assert_eq!(got, want, "{name}: managed fields");
}

fn list(names: &[&str]) -> Value {
    json!({"containers": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
}

#[test]
fn multiple_appliers_on_a_keyed_list() {
    run(
        "remove_one",
        vec![
            Op::Apply("apply-one", list(&["a", "b"]), &[]),
            Op::Apply("apply-two", list(&["c"]), &[]),
            Op::Apply("apply-one", list(&["a"]), &[]),
        ],
        list(&["a", "c"]),
        &[
            ("apply-one", &["containers[a]", "containers[a].name"]),
            ("apply-two", &["containers[c]", "containers[c].name"]),
        ],
    );
    let a0 = json!({"containers": [{"name": "a", "value": 0}]});
    run(
        "same_value_no_conflict",
        vec![
            Op::Apply("apply-one", a0.clone(), &[]),
            Op::Apply("apply-two", a0.clone(), &[]),
        ],
        a0.clone(),
        &[
            (
                "apply-one",
                &["containers[a]", "containers[a].name", "containers[a].value"],
            ),
            (
                "apply-two",
                &["containers[a]", "containers[a].name", "containers[a].value"],
            ),
        ],
    );
    run(
        "change_value_yes_conflict",
        vec![
            Op::Apply("apply-one", a0.clone(), &[]),
            Op::Apply(
                "apply-two",
                json!({"containers": [{"name": "a", "value": 1}]}),
                &[("containers[a].value", "apply-one")],
            ),
        ],
        a0,
        &[(
            "apply-one",
            &["containers[a]", "containers[a].name", "containers[a].value"],
        )],
    );
    run(
        "remove_one_keep_one",
        vec![
            Op::Apply("apply-one", list(&["a", "b", "c"]), &[]),
            Op::Apply("apply-two", list(&["c", "d"]), &[]),
            Op::Apply("apply-one", list(&["a"]), &[]),
        ],
        list(&["a", "c", "d"]),
        &[
            ("apply-one", &["containers[a]", "containers[a].name"]),
            (
                "apply-two",
                &[
                    "containers[c]",
                    "containers[c].name",
                    "containers[d]",
                    "containers[d].name",
                ],
            ),
        ],
    );
}

#[test]
fn multiple_appliers_on_nested_sets() {
    let b = |values: &[&str]| json!({"name": "b", "finalizers": values});
    run(
        "remove_one_keep_one_with_two_sub_items",
        vec![
            Op::Apply(
                "apply-one",
                json!({"containers": [{"name": "a"}, b(&["c"])]}),
                &[],
            ),
            Op::Apply("apply-two", json!({"containers": [b(&["d"])]}), &[]),
            Op::Apply("apply-one", list(&["a"]), &[]),
        ],
        json!({"containers": [{"name": "a"}, b(&["d"])]}),
        &[
            ("apply-one", &["containers[a]", "containers[a].name"]),
            (
                "apply-two",
                &[
                    "containers[b]",
                    "containers[b].name",
                    "containers[b].finalizers[=d]",
                ],
            ),
        ],
    );
    run(
        "remove_one_keep_one_with_dangling_subitem",
        vec![
            Op::Apply(
                "apply-one",
                json!({"containers": [{"name": "a"}, b(&["c"])]}),
                &[],
            ),
            Op::Apply("apply-two", json!({"containers": [b(&["d"])]}), &[]),
            Op::Update(
                "controller",
                json!({"containers": [{"name": "a"}, b(&["c", "d", "e"])]}),
            ),
            Op::Apply("apply-one", list(&["a"]), &[]),
        ],
        json!({"containers": [{"name": "a"}, b(&["d", "e"])]}),
        &[
            ("apply-one", &["containers[a]", "containers[a].name"]),
            (
                "apply-two",
                &[
                    "containers[b]",
                    "containers[b].name",
                    "containers[b].finalizers[=d]",
                ],
            ),
            ("controller", &["containers[b].finalizers[=e]"]),
        ],
    );
    run(
        "remove_one_with_dangling_subitem_keep_one",
        vec![
            Op::Apply(
                "apply-one",
                json!({"containers": [{"name": "a"}, b(&["c"])]}),
                &[],
            ),
            Op::Apply(
                "apply-two",
                json!({"containers": [{"name": "a", "finalizers": ["b"]}]}),
                &[],
            ),
            Op::Update(
                "controller",
                json!({"containers": [{"name": "a", "finalizers": ["b"]}, b(&["c", "d"])]}),
            ),
            Op::Apply("apply-one", list(&["a"]), &[]),
        ],
        json!({"containers": [{"name": "a", "finalizers": ["b"]}]}),
        &[
            ("apply-one", &["containers[a]", "containers[a].name"]),
            (
                "apply-two",
                &[
                    "containers[a]",
                    "containers[a].name",
                    "containers[a].finalizers[=b]",
                ],
            ),
        ],
    );
}

#[test]
fn unsetting_fields_with_one_or_more_owners() {
    run(
        "unset_scalar_sole_owner",
        vec![
            Op::Apply("apply-one", json!({"spec": {"name": "a", "a": "a"}}), &[]),
            Op::Apply("apply-one", json!({"spec": {"name": "a"}}), &[]),
        ],
        json!({"spec": {"name": "a"}}),
        &[("apply-one", &["spec.name"])],
    );
    run(
        "unset_scalar_shared_with_applier",
        vec![
            Op::Apply("apply-one", json!({"spec": {"name": "a", "a": "a"}}), &[]),
            Op::Apply("apply-two", json!({"spec": {"a": "a"}}), &[]),
            Op::Apply("apply-one", json!({"spec": {"name": "a"}}), &[]),
        ],
        json!({"spec": {"name": "a", "a": "a"}}),
        &[("apply-one", &["spec.name"]), ("apply-two", &["spec.a"])],
    );
    run(
        "unset_scalar_shared_with_updater",
        vec![
            Op::Update("updater", json!({"spec": {"name": "a", "a": "a"}})),
            Op::Apply("applier", json!({"spec": {"name": "a", "a": "a"}}), &[]),
            Op::Apply("applier", json!({"spec": {"name": "a"}}), &[]),
        ],
        json!({"spec": {"name": "a", "a": "a"}}),
        &[
            ("updater", &["spec", "spec.name", "spec.a"]),
            ("applier", &["spec.name"]),
        ],
    );
    run(
        "updater_claims_field",
        vec![
            Op::Apply("applier", json!({"spec": {"name": "a", "a": "a"}}), &[]),
            Op::Update("updater", json!({"spec": {"name": "a", "a": "b"}})),
        ],
        json!({"spec": {"name": "a", "a": "b"}}),
        &[("updater", &["spec.a"]), ("applier", &["spec.name"])],
    );
    run(
        "unset_complex_sole_owner",
        vec![
            Op::Apply(
                "apply-one",
                json!({"spec": {"name": "a", "c": {"name": "b"}}}),
                &[],
            ),
            Op::Apply("apply-one", json!({"spec": {"name": "a"}}), &[]),
        ],
        json!({"spec": {"name": "a"}}),
        &[("apply-one", &["spec.name"])],
    );
    run(
        "unset_complex_shared_with_applier",
        vec![
            Op::Apply(
                "apply-one",
                json!({"spec": {"name": "a", "c": {"name": "b"}}}),
                &[],
            ),
            Op::Apply("apply-two", json!({"spec": {"c": {"name": "b"}}}), &[]),
            Op::Apply("apply-one", json!({"spec": {"name": "a"}}), &[]),
        ],
        json!({"spec": {"name": "a", "c": {"name": "b"}}}),
        &[
            ("apply-one", &["spec.name"]),
            ("apply-two", &["spec.c.name"]),
        ],
    );
}

/// An applier and an updater (the trap of the issue: `k8s-deploy`/Apply and
/// `k8s-deploy`/Update are two owners): once an Update changed a field, re-applying the
/// applier's old value is a conflict with the updater, even under the same manager name.
#[test]
fn an_update_takes_a_field_from_an_applier_and_the_next_apply_conflicts() {
    let mut managed: Managed = Vec::new();
    let (live, m) = ssa::apply(
        &Value::Null,
        &managed,
        &json!({"spec": {"name": "a", "a": "a"}}),
        "k8s-deploy",
        "v1",
        false,
        "t",
    )
    .unwrap();
    managed = m;
    let changed = json!({"spec": {"name": "a", "a": "b"}});
    managed = ssa::update(&live, &changed, &managed, "k8s-deploy", "v1", "", "t");
    let ops: Vec<(String, String)> = managed
        .iter()
        .map(|e| (e.manager.clone(), e.operation.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("k8s-deploy".to_owned(), "Apply".to_owned()),
            ("k8s-deploy".to_owned(), "Update".to_owned())
        ]
    );
    let conflicts = ssa::apply(
        &changed,
        &managed,
        &json!({"spec": {"name": "a", "a": "a"}}),
        "k8s-deploy",
        "v1",
        false,
        "t",
    )
    .unwrap_err();
    assert_eq!(conflicts, [(path("spec.a"), "k8s-deploy".to_owned())]);
    // Forced, the field changes hands.
    let (live, managed) = ssa::apply(
        &changed,
        &managed,
        &json!({"spec": {"name": "a", "a": "a"}}),
        "k8s-deploy",
        "v1",
        true,
        "t",
    )
    .unwrap();
    assert_eq!(live, json!({"spec": {"name": "a", "a": "a"}}));
    assert_eq!(managed.len(), 1, "{managed:?}");
}
