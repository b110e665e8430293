//! The pipeline checker. Two verdicts, kept apart:
//! - Concourse's: what `fly validate-pipeline` and `fly set-pipeline` reject, rule for rule from
//!   Concourse's source (`atc/config.go` strict reading, `atc/steps.go` step parsing,
//!   `atc/step_validator.go`, `atc/configvalidate/validate.go`, `atc/task.go`,
//!   `vars/reference.go`), each finding with the line and the fix;
//! - this project's rules, printed with the `project rule: ` prefix (`--concourse-only` leaves
//!   them out): declared resource types, production gating, `((vars))` listed in the vars
//!   example, task files that exist and come from an artifact the job has.
//!
//! Rooms: `shape` (keys and value types), `config` (resources, types, groups, var sources,
//! jobs, display, `passed:` cycles), `steps` (every step of every plan), `vars` (the `((var))`
//! grammar), `glob` (job globs), `project` (our rules).

mod config;
mod glob;
mod project;
mod shape;
mod steps;
mod vars;

pub use vars::{var_names, vars_in};

use crate::yaml::{self, Node, Value};
use std::collections::BTreeSet;

/// The prefix of a finding that is this project's rule, not Concourse's (`--concourse-only`
/// leaves them out).
pub const PROJECT: &str = "project rule: ";

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
    /// Resource types that come from elsewhere (a worker's own types): not reported as
    /// undeclared.
    pub allowed_types: BTreeSet<String>,
}

/// Findings as they are collected.
#[derive(Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    /// A rule Concourse itself enforces.
    pub fn concourse(&mut self, line: usize, message: String) {
        self.0.push(Finding { line, message });
    }

    /// One of this project's rules.
    pub fn project(&mut self, line: usize, message: String) {
        self.0.push(Finding {
            line,
            message: format!("{PROJECT}{message}"),
        });
    }
}

/// Checks `text`; findings sorted by line.
pub fn check(text: &str, ctx: &Context) -> Vec<Finding> {
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
    let mut out = Findings::default();
    if !matches!(doc.value, Value::Map(_)) {
        out.concourse(
            doc.line,
            "a pipeline is a mapping with resources and jobs".into(),
        );
        return out.0;
    }
    let pipeline = config::validate(&doc, &mut out);
    project::rules(&doc, &pipeline, ctx, &mut out);
    let mut findings = out.0;
    findings.sort();
    findings.dedup();
    findings
}

/// Every step of a job (plan, nested steps, hooks), outermost first, in plan order.
pub fn job_steps(job: &Node) -> Vec<&Node> {
    let mut out = Vec::new();
    for step in job.get("plan").map(Node::items).unwrap_or_default() {
        nested_steps(step, &mut out);
    }
    for hook in steps::HOOKS {
        if let Some(h) = job.get(hook) {
            nested_steps(h, &mut out);
        }
    }
    out
}

fn nested_steps<'a>(step: &'a Node, out: &mut Vec<&'a Node>) {
    if !matches!(step.value, Value::Map(_)) {
        return;
    }
    out.push(step);
    for s in step.get("do").map(Node::items).unwrap_or_default() {
        nested_steps(s, out);
    }
    if let Some(p) = step.get("in_parallel") {
        let list = p.get("steps").map(Node::items).unwrap_or_else(|| p.items());
        for s in list {
            nested_steps(s, out);
        }
    }
    if let Some(t) = step.get("try") {
        nested_steps(t, out);
    }
    for hook in steps::HOOKS {
        if let Some(h) = step.get(hook) {
            nested_steps(h, out);
        }
    }
}

/// The resource a get or put step uses (`resource:`, else its name), and the verb.
pub fn step_resource(step: &Node) -> Option<(&'static str, &str)> {
    for verb in ["put", "get"] {
        if let Some(name) = step.get(verb).and_then(Node::as_str) {
            let resource = step.get("resource").and_then(Node::as_str).unwrap_or(name);
            return Some((verb, resource));
        }
    }
    None
}
