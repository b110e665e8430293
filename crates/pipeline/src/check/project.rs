//! This project's rules, on top of Concourse's (each finding says `project rule:`):
//! - every resource type is declared or core (Concourse itself accepts an unknown type and
//!   fails at the first check); `--allow-type` names types that come from elsewhere;
//! - a production job (it puts to a `k8s-deploy` resource whose name says prod) is started by a
//!   person (no `trigger: true`, read as YAML 1.1 booleans: `yes`, `True`, `on` are true) unless
//!   every service it deploys is canaried, and gets every input through `passed:`;
//! - task files come from an artifact the job has at that point (a get, a put's implicit get,
//!   an earlier task's outputs), and exist in this repository when it is that artifact;
//! - every `((var))` is listed in the vars example.

use super::config::Pipeline;
use super::{Context, Findings, job_steps, vars};
use crate::yaml::{self, Node, Scalar};
use std::collections::BTreeMap;
use std::path::Path;

/// Resource types every Concourse worker has.
const CORE_TYPES: &[&str] = &[
    "git",
    "registry-image",
    "time",
    "s3",
    "semver",
    "docker-image",
    "pool",
    "github-release",
    "mock",
    "hg",
    "cf",
    "bosh-io-release",
    "bosh-io-stemcell",
    "tracker",
];

pub fn rules(doc: &Node, p: &Pipeline, ctx: &Context, out: &mut Findings) {
    for (name, r) in &p.resources {
        if let Some(t) = r.get("type").and_then(Node::as_str)
            && !p.types.contains_key(t)
            && !CORE_TYPES.contains(&t)
            && !ctx.allowed_types.contains(t)
        {
            out.project(
                r.get("type").map_or(r.line, |n| n.line),
                format!("resource \"{name}\" has unknown type \"{t}\"; declare it under resource_types (Concourse itself accepts it and fails at the first check), or pass --allow-type {t} if the workers provide it"),
            );
        }
    }
    for (name, job) in &p.jobs {
        production(name, job, p, out);
        task_files(name, job, ctx, out);
    }
    if let Some(known) = &ctx.vars {
        let mut all = Vec::new();
        doc.walk(&mut all);
        for node in all {
            let Some(s) = node.as_str() else { continue };
            for var in vars::vars_in(s) {
                if !known.contains(&var) {
                    out.project(
                        node.line,
                        format!(
                            "(({var})) is not listed in the vars example; add it with what it is"
                        ),
                    );
                }
            }
        }
    }
}

/// True for a YAML value Concourse reads as `true`.
fn is_true(node: Option<&Node>) -> bool {
    matches!(node.and_then(Node::scalar), Some(Scalar::Bool(true)))
}

fn production(name: &str, job: &Node, p: &Pipeline, out: &mut Findings) {
    let steps = job_steps(job);
    let prod_puts: Vec<&Node> = steps
        .iter()
        .copied()
        .filter(|s| {
            s.get("put").is_some()
                && super::step_resource(s).is_some_and(|(_, r)| {
                    r.contains("prod")
                        && p.resources
                            .get(r)
                            .and_then(|n| n.get("type"))
                            .and_then(Node::as_str)
                            == Some("k8s-deploy")
                })
        })
        .collect();
    if prod_puts.is_empty() {
        return;
    }
    // A production deploy may start by itself only when every put to production is canaried:
    // a bad release is then caught on a share of the traffic and rolled back without a person.
    let canaried = prod_puts.iter().all(|s| canaries_everything(s));
    for step in steps {
        let Some(get) = step.get("get").and_then(Node::as_str) else {
            continue;
        };
        if step.get("passed").is_none_or(|p| p.items().is_empty()) {
            out.project(
                step.line,
                format!("job \"{name}\" deploys to production: get \"{get}\" has no passed:, so it could deploy what no test saw; add passed: [the job that tested it]"),
            );
        }
        if is_true(step.get("trigger")) && !canaried {
            out.project(
                step.get("trigger").map_or(step.line, |n| n.line),
                format!("job \"{name}\" deploys to production without a canary: it must be started by a person, remove trigger: true (or canary every service it deploys)"),
            );
        }
    }
}

/// Whether a production put releases every Deployment it changes through a canary:
/// `params.canary` is set and, when it names its `deployments`, they include every
/// `params.images[].deployment` (k8s-deploy changes the others without a canary).
fn canaries_everything(put: &Node) -> bool {
    let Some(params) = put.get("params") else {
        return false;
    };
    let Some(canary) = params.get("canary") else {
        return false;
    };
    let Some(named) = canary.get("deployments") else {
        return true;
    };
    let named: Vec<&str> = named.items().iter().filter_map(Node::as_str).collect();
    params.get("images").is_none_or(|images| {
        images.items().iter().all(|i| {
            i.get("deployment")
                .and_then(Node::as_str)
                .is_some_and(|d| named.contains(&d))
        })
    })
}

fn task_files(name: &str, job: &Node, ctx: &Context, out: &mut Findings) {
    // Artifacts in plan order: name -> the resource it came from ("" for task outputs).
    let mut artifacts: BTreeMap<String, String> = BTreeMap::new();
    // Once a task from another repository ran, its outputs are unknown: stop judging.
    let mut unknown_outputs = false;
    for step in job_steps(job) {
        if let Some((verb, resource)) = super::step_resource(step) {
            let name = step.get(verb).and_then(Node::as_str).unwrap_or(resource);
            let implicit_get = verb == "get" || !is_true(step.get("no_get"));
            if implicit_get {
                artifacts.insert(name.to_owned(), resource.to_owned());
            }
        }
        if step.get("task").is_none() {
            continue;
        }
        if let Some(file) = step.get("file")
            && let Some(path) = file.as_str()
            && !path.contains("((")
        {
            let (artifact, rest) = path.split_once('/').unwrap_or((path, ""));
            let mapped = step
                .get("input_mapping")
                .and_then(|m| m.get(artifact))
                .and_then(Node::as_str)
                .unwrap_or(artifact);
            match artifacts.get(mapped) {
                None if !unknown_outputs => out.project(
                    file.line,
                    format!("job \"{name}\": task file {path} comes from \"{artifact}\", which no earlier step of the job provides; get it first"),
                ),
                Some(resource) if Some(resource.as_str()) == ctx.self_resource.as_deref() => {
                    if let Some(root) = &ctx.root {
                        if !root.join(rest).is_file() {
                            out.project(
                                file.line,
                                format!("job \"{name}\": task file {rest} does not exist in this repository"),
                            );
                        }
                        for o in task_outputs(&root.join(rest)) {
                            artifacts.insert(o, String::new());
                        }
                    }
                }
                _ => unknown_outputs = true,
            }
        }
        for o in step
            .get("config")
            .and_then(|c| c.get("outputs"))
            .map(Node::items)
            .unwrap_or_default()
        {
            if let Some(n) = o.get("name").and_then(Node::as_str) {
                artifacts.insert(n.to_owned(), String::new());
            }
        }
        if let Some(mapping) = step.get("output_mapping") {
            for (_, v) in mapping.entries() {
                if let Some(n) = v.as_str() {
                    artifacts.insert(n.to_owned(), String::new());
                }
            }
        }
    }
}

/// Output names declared by a task file.
fn task_outputs(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| yaml::parse(&t).ok())
        .map(|doc| {
            doc.get("outputs")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|o| o.get("name").and_then(Node::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
