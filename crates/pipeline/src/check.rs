//! The pipeline checker: what `fly validate-pipeline` would reject, and more, each finding with
//! the file and line.
//!
//! Checks: YAML syntax (duplicate keys included); unique names; resource types declared (or core);
//! every get/put names a declared resource; every resource is used; `passed:` names a job that
//! has that resource; task `file:`s come from an artifact the plan fetched and exist in this
//! repository when that artifact is this repository; `((vars))` are listed in the vars example;
//! production jobs (those putting to a `k8s-deploy` resource whose name says prod) have no
//! `trigger: true` and get every input through `passed:`; groups name real jobs.

use crate::yaml::{self, Node, Value};
use std::collections::{BTreeMap, BTreeSet};
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
/// The prefix of a finding that is this project's rule, not Concourse's (`--concourse-only`
/// leaves them out).
pub const PROJECT: &str = "project rule: ";

const STEP_HOOKS: &[&str] = &["on_success", "on_failure", "on_abort", "on_error", "ensure"];

/// One problem, at a line of the checked file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub line: usize,
    pub message: String,
}

/// What the checker needs besides the pipeline text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The resource that is this repository (task files are read from it), e.g. `ci`.
    pub self_resource: Option<String>,
    /// This repository's root on disk.
    pub root: Option<std::path::PathBuf>,
    /// Names defined in the vars example file.
    pub vars: Option<BTreeSet<String>>,
}

struct Job<'a> {
    name: String,
    node: &'a Node,
    /// Resources this job gets or puts.
    resources: BTreeSet<String>,
}

/// Named items of a list (`resources`, `jobs`, ...), reporting missing and duplicate names.
fn names<'a>(
    list: Option<&'a Node>,
    what: &str,
    add: &mut dyn FnMut(usize, String),
) -> BTreeMap<String, &'a Node> {
    let mut seen = BTreeMap::new();
    for item in list.map(Node::items).unwrap_or_default() {
        match item.get("name").and_then(Node::as_str) {
            None => add(item.line, format!("a {what} without a name")),
            Some(n) if seen.contains_key(n) => {
                add(item.line, format!("{what} \"{n}\" is declared twice"))
            }
            Some(n) => {
                seen.insert(n.to_owned(), item);
            }
        }
    }
    seen
}

/// Checks `text`; findings sorted by line.
pub fn check(text: &str, ctx: &Context) -> Vec<Finding> {
    let mut findings = Vec::new();
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e
                .split(':')
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or(1);
            return vec![Finding {
                line,
                message: e.split_once(": ").map_or(e.clone(), |(_, m)| m.to_owned()),
            }];
        }
    };
    let mut add = |line: usize, message: String| findings.push(Finding { line, message });
    if !matches!(doc.value, Value::Map(_)) {
        add(
            doc.line,
            "a pipeline is a mapping with resources and jobs".into(),
        );
        return findings;
    }
    // Unknown top-level keys are not checked: Concourse drops them (teams park YAML anchors
    // there).

    // Names.
    let types = names(doc.get("resource_types"), "resource type", &mut add);
    let resources = names(doc.get("resources"), "resource", &mut add);
    let jobs_by_name = names(doc.get("jobs"), "job", &mut add);

    for (name, r) in &resources {
        match r.get("type").and_then(Node::as_str) {
            None => add(r.line, format!("resource \"{name}\" has no type")),
            Some(t) if !types.contains_key(t) && !CORE_TYPES.contains(&t) => add(
                r.get("type").map_or(r.line, |n| n.line),
                format!(
                    "{PROJECT}resource \"{name}\" has unknown type \"{t}\"; declare it under resource_types (Concourse itself accepts it and fails at the first check)"
                ),
            ),
            Some(_) => {}
        }
    }

    // Jobs and their steps.
    let mut jobs: Vec<Job> = jobs_by_name
        .iter()
        .map(|(name, node)| Job {
            name: name.clone(),
            node,
            resources: BTreeSet::new(),
        })
        .collect();
    for job in &mut jobs {
        let mut steps = Vec::new();
        collect_steps(job.node, &mut steps);
        for step in steps {
            for verb in ["get", "put"] {
                if let Some(n) = step.get(verb).and_then(Node::as_str) {
                    let resource = step.get("resource").and_then(Node::as_str).unwrap_or(n);
                    job.resources.insert(resource.to_owned());
                }
            }
        }
    }
    let job_resources: BTreeMap<String, BTreeSet<String>> = jobs
        .iter()
        .map(|j| (j.name.clone(), j.resources.clone()))
        .collect();
    let mut used = BTreeSet::new();
    for job in &jobs {
        let mut steps = Vec::new();
        collect_steps(job.node, &mut steps);
        let production = job.resources.iter().any(|r| {
            r.contains("prod")
                && resources
                    .get(r)
                    .and_then(|n| n.get("type"))
                    .and_then(Node::as_str)
                    == Some("k8s-deploy")
        });
        // Artifacts available to tasks: get names and task outputs, in plan order.
        let mut artifacts: BTreeMap<String, String> = BTreeMap::new();
        for step in steps {
            for verb in ["get", "put"] {
                let Some(name_node) = step.get(verb) else {
                    continue;
                };
                let Some(name) = name_node.as_str() else {
                    continue;
                };
                let resource = step.get("resource").and_then(Node::as_str).unwrap_or(name);
                used.insert(resource.to_owned());
                if !resources.contains_key(resource) {
                    add(
                        name_node.line,
                        format!(
                            "job \"{}\": {verb} of undeclared resource \"{resource}\"",
                            job.name
                        ),
                    );
                }
                if verb == "get" {
                    artifacts.insert(name.to_owned(), resource.to_owned());
                    if let Some(passed) = step.get("passed") {
                        for p in passed.items() {
                            let Some(pj) = p.as_str() else { continue };
                            match job_resources.get(pj) {
                                None => add(
                                    p.line,
                                    format!(
                                        "job \"{}\": passed names job \"{pj}\", which does not exist",
                                        job.name
                                    ),
                                ),
                                Some(set) if !set.contains(resource) => add(
                                    p.line,
                                    format!(
                                        "job \"{}\": passed job \"{pj}\" does not get or put \"{resource}\"",
                                        job.name
                                    ),
                                ),
                                Some(_) => {}
                            }
                        }
                    }
                    // What production deploys must be what was tested: every input of a
                    // production job comes through `passed:` (manifests included).
                    if production && step.get("passed").is_none_or(|p| p.items().is_empty()) {
                        add(
                            name_node.line,
                            format!(
                                "{PROJECT}job \"{}\" deploys to production: get \"{name}\" has no passed:, so it could deploy what no test saw; add passed: [the job that tested it]",
                                job.name
                            ),
                        );
                    }
                    if production && step.get("trigger").and_then(Node::as_str) == Some("true") {
                        add(
                            step.get("trigger").map_or(step.line, |n| n.line),
                            format!(
                                "{PROJECT}job \"{}\" deploys to production: it must be started by a person, remove trigger: true",
                                job.name
                            ),
                        );
                    }
                }
            }
            if let Some(task) = step.get("task").and_then(Node::as_str) {
                match (step.get("file"), step.get("config")) {
                    (None, None) => add(
                        step.line,
                        format!(
                            "job \"{}\": task \"{task}\" has neither file nor config",
                            job.name
                        ),
                    ),
                    (Some(file), _) => {
                        if let Some(path) = file.as_str() {
                            let (artifact, rest) = path.split_once('/').unwrap_or((path, ""));
                            match artifacts.get(artifact) {
                                None => add(
                                    file.line,
                                    format!(
                                        "job \"{}\": task file {path} comes from \"{artifact}\", which no earlier step of the job provides",
                                        job.name
                                    ),
                                ),
                                Some(resource)
                                    if Some(resource.as_str()) == ctx.self_resource.as_deref() =>
                                {
                                    if let Some(root) = &ctx.root
                                        && !root.join(rest).is_file()
                                    {
                                        add(
                                            file.line,
                                            format!(
                                                "job \"{}\": task file {rest} does not exist in this repository",
                                                job.name
                                            ),
                                        );
                                    }
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    (None, Some(_)) => {}
                }
                for out in step
                    .get("config")
                    .and_then(|c| c.get("outputs"))
                    .map(Node::items)
                    .unwrap_or_default()
                {
                    if let Some(n) = out.get("name").and_then(Node::as_str) {
                        artifacts.insert(n.to_owned(), String::new());
                    }
                }
                if let Some(file) = step.get("file").and_then(Node::as_str)
                    && let (Some(root), Some(selfr)) = (&ctx.root, &ctx.self_resource)
                    && let Some((artifact, rest)) = file.split_once('/')
                    && artifacts.get(artifact) == Some(selfr)
                {
                    for name in task_outputs(&root.join(rest)) {
                        artifacts.insert(name, String::new());
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
    }
    for (name, r) in &resources {
        if !used.contains(name) {
            add(
                r.line,
                format!("resource \"{name}\" is never used by a job"),
            );
        }
    }
    for group in doc.get("groups").map(Node::items).unwrap_or_default() {
        for j in group.get("jobs").map(Node::items).unwrap_or_default() {
            if let Some(name) = j
                .as_str()
                .filter(|n| !jobs_by_name.contains_key(*n) && !n.contains('*'))
            {
                add(
                    j.line,
                    format!("group lists job \"{name}\", which does not exist"),
                );
            }
        }
    }

    // ((vars)) against the example file.
    if let Some(known) = &ctx.vars {
        let mut all = Vec::new();
        doc.walk(&mut all);
        for node in all {
            let Some(s) = node.as_str() else { continue };
            for var in vars_in(s) {
                if !known.contains(&var) {
                    add(
                        node.line,
                        format!(
                            "{PROJECT}(({var})) is not listed in the vars example; add it with what it is"
                        ),
                    );
                }
            }
        }
    }
    findings.sort();
    findings.dedup();
    findings
}

/// Steps of a job's plan, with nested ones (do, in_parallel, try, hooks) flattened in order.
fn collect_steps<'a>(job: &'a Node, out: &mut Vec<&'a Node>) {
    for step in job.get("plan").map(Node::items).unwrap_or_default() {
        collect_step(step, out);
    }
    for hook in STEP_HOOKS {
        if let Some(h) = job.get(hook) {
            collect_step(h, out);
        }
    }
}

fn collect_step<'a>(step: &'a Node, out: &mut Vec<&'a Node>) {
    out.push(step);
    for key in ["do", "aggregate"] {
        for s in step.get(key).map(Node::items).unwrap_or_default() {
            collect_step(s, out);
        }
    }
    if let Some(p) = step.get("in_parallel") {
        let list = p.get("steps").map(Node::items).unwrap_or_else(|| p.items());
        for s in list {
            collect_step(s, out);
        }
    }
    if let Some(t) = step.get("try") {
        collect_step(t, out);
    }
    for hook in STEP_HOOKS {
        if let Some(h) = step.get(hook) {
            collect_step(h, out);
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

/// `((name))` and `((name.field))` in a string; `((.:local))` and `((source:name))` are not
/// pipeline vars.
pub fn vars_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("((") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("))") else { break };
        let inner = after[..end].trim();
        if !inner.starts_with('.') && !inner.contains(':') && !inner.is_empty() {
            out.push(
                inner
                    .split('.')
                    .next()
                    .unwrap_or(inner)
                    .trim_matches('"')
                    .to_owned(),
            );
        }
        rest = &after[end + 2..];
    }
    out
}

/// Top-level keys of a vars file.
pub fn var_names(text: &str) -> Result<BTreeSet<String>, String> {
    let doc = yaml::parse(text)?;
    Ok(doc
        .entries()
        .iter()
        .filter_map(|(k, _)| k.as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_are_found_but_local_and_sourced_ones_are_not_pipeline_vars() {
        assert_eq!(
            vars_in("a ((X)) b ((creds.password)) ((.:local)) ((vault:x))"),
            ["X", "creds"]
        );
    }
}
