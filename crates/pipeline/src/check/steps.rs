//! Every step of a job's plan, read as Concourse reads it (`atc/steps.go`) and validated as its
//! `StepValidator` does (`atc/step_validator.go`).
//!
//! A step is a mapping whose keys say what it is. Modifiers (`ensure`, `on_error`, `on_abort`,
//! `on_failure`, `on_success`, `across`, `attempts`, `timeout`) wrap exactly one core step
//! (`task`, `put`, `get`, `run`, `set_pipeline`, `load_var`, `try`, `do`, `in_parallel`), taken in
//! that order of precedence: the first core key found is the step, and any key neither it nor
//! its modifiers know is an unknown field (so `get` and `put` in one step is an error, as is a
//! typo like `triger`). `aggregate` is gone from Concourse (use `in_parallel`).

use super::config::Pipeline;
use super::glob::Glob;
use super::shape::{self, Kind};
use super::{Findings, step_resource};
use crate::yaml::{Node, Scalar, Value};
use std::collections::BTreeSet;

/// Hooks: a step run after another, by outcome.
pub const HOOKS: &[&str] = &["ensure", "on_error", "on_abort", "on_failure", "on_success"];

/// Modifiers after the hooks, in Concourse's order of precedence.
const MODIFIERS: &[(&str, &[(&str, Kind)])] = &[
    (
        "across",
        &[("across", Kind::List), ("fail_fast", Kind::Bool)],
    ),
    ("attempts", &[("attempts", Kind::Int)]),
    ("timeout", &[("timeout", Kind::Duration)]),
];

const CORE: &[(&str, &[(&str, Kind)])] = &[
    (
        "task",
        &[
            ("task", Kind::Str),
            ("privileged", Kind::Bool),
            ("hermetic", Kind::Bool),
            ("file", Kind::Str),
            ("config", Kind::Any),
            ("params", Kind::Map),
            ("vars", Kind::Map),
            ("tags", Kind::StrList),
            ("input_mapping", Kind::Map),
            ("output_mapping", Kind::Map),
            ("image", Kind::Str),
            ("container_limits", Kind::Map),
        ],
    ),
    (
        "put",
        &[
            ("put", Kind::Str),
            ("resource", Kind::Str),
            ("params", Kind::Map),
            ("inputs", Kind::Any),
            ("tags", Kind::StrList),
            ("get_params", Kind::Map),
            ("no_get", Kind::Bool),
        ],
    ),
    (
        "get",
        &[
            ("get", Kind::Str),
            ("resource", Kind::Str),
            ("version", Kind::Any),
            ("params", Kind::Map),
            ("passed", Kind::StrList),
            ("trigger", Kind::Bool),
            ("tags", Kind::StrList),
        ],
    ),
    (
        "run",
        &[
            ("run", Kind::Str),
            ("type", Kind::Str),
            ("params", Kind::Map),
            ("privileged", Kind::Bool),
            ("tags", Kind::StrList),
            ("limits", Kind::Map),
        ],
    ),
    (
        "set_pipeline",
        &[
            ("set_pipeline", Kind::Str),
            ("file", Kind::Str),
            ("team", Kind::Str),
            ("vars", Kind::Map),
            ("var_files", Kind::StrList),
            ("instance_vars", Kind::Map),
        ],
    ),
    (
        "load_var",
        &[
            ("load_var", Kind::Str),
            ("file", Kind::Str),
            ("format", Kind::Str),
            ("reveal", Kind::Bool),
        ],
    ),
    ("try", &[("try", Kind::Any)]),
    ("do", &[("do", Kind::List)]),
    ("in_parallel", &[("in_parallel", Kind::Any)]),
];

const ACROSS_VAR: &[(&str, Kind)] = &[
    ("var", Kind::Str),
    ("values", Kind::Any),
    ("max_in_flight", Kind::Any),
];
const TASK_CONFIG: &[(&str, Kind)] = &[
    ("platform", Kind::Str),
    ("rootfs_uri", Kind::Str),
    ("image_resource", Kind::Map),
    ("container_limits", Kind::Map),
    ("params", Kind::Map),
    ("run", Kind::Map),
    ("inputs", Kind::List),
    ("outputs", Kind::List),
    ("caches", Kind::List),
];
const TASK_RUN: &[(&str, Kind)] = &[
    ("path", Kind::Str),
    ("args", Kind::StrList),
    ("dir", Kind::Str),
    ("user", Kind::Str),
];

/// Validates the steps of one job; messages carry the job's path (`jobs.build.plan[2].get(x)`).
pub struct Validator<'p, 'o> {
    pipeline: &'p Pipeline<'p>,
    path: Vec<String>,
    out: &'o mut Findings,
    seen_gets: BTreeSet<String>,
    scopes: Vec<BTreeSet<String>>,
}

impl<'p, 'o> Validator<'p, 'o> {
    pub fn new(pipeline: &'p Pipeline<'p>, job_path: &str, out: &'o mut Findings) -> Self {
        Validator {
            pipeline,
            path: vec![job_path.to_owned()],
            out,
            seen_gets: BTreeSet::new(),
            scopes: vec![BTreeSet::new()],
        }
    }

    fn error(&mut self, line: usize, message: impl std::fmt::Display) {
        let path = self.path.concat();
        self.out.concourse(line, format!("{path}: {message}"));
    }

    fn within(&mut self, segment: String, f: impl FnOnce(&mut Self)) {
        self.path.push(segment);
        f(self);
        self.path.pop();
    }

    /// The job's plan and its hooks.
    pub fn job(&mut self, job: &Node) {
        if let Some(plan) = job.get("plan") {
            for (i, step) in plan.items().iter().enumerate() {
                self.within(format!(".plan[{i}]"), |v| v.step(step));
            }
        }
        for hook in HOOKS {
            if let Some(h) = job.get(hook) {
                self.within(format!(".{hook}"), |v| v.step(h));
            }
        }
    }

    fn step(&mut self, step: &Node) {
        if !matches!(step.value, Value::Map(_)) {
            self.error(
                step.line,
                format!(
                    "a step is a mapping such as {{get: NAME}}, not {}",
                    step.kind()
                ),
            );
            return;
        }
        let keys: Vec<(&str, &Node)> = step
            .entries()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect();
        let has = |k: &str| keys.iter().any(|(n, _)| *n == k);
        let mut known: Vec<(&str, Kind)> = Vec::new();
        let hooks: Vec<&str> = HOOKS.iter().copied().filter(|h| has(h)).collect();
        known.extend(hooks.iter().map(|h| (*h, Kind::Any)));
        let modifiers: Vec<&(&str, &[(&str, Kind)])> =
            MODIFIERS.iter().filter(|(k, _)| has(k)).collect();
        for (_, fields) in &modifiers {
            known.extend_from_slice(fields);
        }
        let core = CORE.iter().find(|(k, _)| has(k));
        if let Some((_, fields)) = core {
            known.extend_from_slice(fields);
        }
        if core.is_none() {
            let msg = if has("aggregate") {
                "aggregate: was removed from Concourse; use in_parallel: with the same steps"
                    .to_owned()
            } else if hooks.is_empty() && modifiers.is_empty() {
                "no step configured; a step needs one of get, put, task, run, set_pipeline, load_var, try, do, in_parallel".to_owned()
            } else {
                "no core step type declared (e.g. get, put, task); modifiers like timeout: need a step to modify".to_owned()
            };
            self.error(step.line, msg);
            return;
        }
        // Keys no part of the step knows; a second core key gets its own message.
        for (name, _) in &keys {
            if known.iter().any(|(k, _)| k == name) {
                continue;
            }
            let line = step
                .entries()
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map_or(step.line, |(k, _)| k.line);
            if CORE.iter().any(|(k, _)| k == name) || *name == "aggregate" {
                let first = core.map_or("", |(k, _)| k);
                self.error(line, format!("a step has one type: '{first}' and '{name}' here; split them into two steps"));
            } else {
                let path = self.path.concat();
                self.out.concourse(
                    line,
                    shape::unknown_key(&path, name, known.iter().map(|(k, _)| *k)),
                );
            }
        }
        for (name, value) in &keys {
            if let Some((_, kind)) = known.iter().find(|(k, _)| k == name)
                && let Some(e) = shape::kind_error(value, *kind)
            {
                self.error(value.line, format!("{name}: {e}"));
            }
        }
        // Hooks wrap everything after them; across opens a scope for its vars.
        for hook in &hooks {
            if let Some(h) = step.get(hook) {
                self.within(format!(".{hook}"), |v| v.step(h));
            }
        }
        if let Some(n) = step.get("attempts")
            && let Some(Scalar::Int(a)) = n.scalar()
            && a <= 0
        {
            self.error(n.line, "attempts: must be greater than 0");
        }
        let across = step.get("across");
        if let Some(a) = across {
            self.scopes.push(BTreeSet::new());
            self.within(".across".into(), |v| v.across(a));
        }
        if let Some((kind, _)) = core {
            self.core(kind, step);
        }
        if across.is_some() {
            self.scopes.pop();
        }
    }

    fn declare_local_var(&mut self, line: usize, name: &str) {
        // The job's scope is never popped, so there is always a current one.
        let repeated = self
            .scopes
            .last_mut()
            .is_some_and(|scope| !scope.insert(name.to_owned()));
        if repeated {
            self.error(
                line,
                format!("repeated var name '{name}'; give each var its own name"),
            );
        }
    }

    fn across(&mut self, node: &Node) {
        if node.items().is_empty() {
            self.error(
                node.line,
                "no vars specified; list at least one {var: NAME, values: [...]}",
            );
        }
        for (i, var) in node.items().iter().enumerate() {
            let path = format!("{}[{i}]", self.path.concat());
            if !shape::object(var, &path, ACROSS_VAR, self.out) {
                continue;
            }
            match var.get("var").and_then(Node::as_str) {
                Some(name) if !name.is_empty() => self.declare_local_var(var.line, name),
                _ => self
                    .out
                    .concourse(var.line, format!("{path}: has no var; add var: NAME")),
            }
            if let Some(values) = var.get("values")
                && !matches!(values.value, Value::Seq(_))
                && !values.as_str().is_some_and(|s| s.contains("(("))
            {
                self.out.concourse(
                    values.line,
                    format!("{path}.values: must be a list, not {}", values.kind()),
                );
            }
            if let Some(m) = var.get("max_in_flight") {
                let ok = match m.scalar() {
                    Some(Scalar::Int(n)) => n > 0,
                    Some(Scalar::Str("all")) => true,
                    _ => false,
                };
                if !ok {
                    self.out.concourse(
                        m.line,
                        format!("{path}.max_in_flight: must be greater than 0, or all"),
                    );
                }
            }
        }
    }

    fn core(&mut self, kind: &str, step: &Node) {
        let name = step
            .get(kind)
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_owned();
        match kind {
            "get" => self.within(format!(".get({name})"), |v| v.get(step, &name)),
            "put" => self.within(format!(".put({name})"), |v| v.put(step)),
            "task" => self.within(format!(".task({name})"), |v| v.task(step)),
            "run" => self.within(format!(".run({name})"), |v| {
                let t = step.get("type").and_then(Node::as_str).unwrap_or("");
                if !v.pipeline.prototypes.contains(t) {
                    v.error(
                        step.line,
                        format!("unknown prototype '{t}'; declare it under prototypes:"),
                    );
                }
            }),
            "set_pipeline" | "load_var" => self.within(format!(".{kind}({name})"), |v| {
                if kind == "load_var" {
                    v.declare_local_var(step.line, &name);
                }
                if step
                    .get("file")
                    .and_then(Node::as_str)
                    .is_none_or(str::is_empty)
                {
                    v.error(step.line, "no file specified; add file: ARTIFACT/PATH");
                }
            }),
            "try" => {
                if let Some(t) = step.get("try") {
                    self.within(".try".into(), |v| v.step(t));
                }
            }
            "do" => {
                for (i, s) in step
                    .get("do")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    self.within(format!(".do[{i}]"), |v| v.step(s));
                }
            }
            "in_parallel" => {
                let Some(p) = step.get("in_parallel") else {
                    return;
                };
                let steps = match &p.value {
                    Value::Seq(items) => items.as_slice(),
                    Value::Map(_) => {
                        for (k, kind) in [
                            ("steps", Kind::List),
                            ("limit", Kind::Int),
                            ("fail_fast", Kind::Bool),
                        ] {
                            if let Some(n) = p.get(k)
                                && let Some(e) = shape::kind_error(n, kind)
                            {
                                self.error(n.line, format!("in_parallel.{k}: {e}"));
                            }
                        }
                        p.get("steps").map(Node::items).unwrap_or_default()
                    }
                    Value::Scalar(_) => {
                        self.error(p.line, format!("in_parallel: must be a list of steps or {{steps: [...], limit: N}}, not {}", p.kind()));
                        &[]
                    }
                };
                for (i, s) in steps.iter().enumerate() {
                    self.within(format!(".in_parallel.steps[{i}]"), |v| v.step(s));
                }
            }
            _ => {}
        }
    }

    fn get(&mut self, step: &Node, name: &str) {
        if !self.seen_gets.insert(name.to_owned()) {
            self.error(
                step.line,
                "repeated name; a job can get one name once (use resource: with another get name)",
            );
        }
        let Some((_, resource)) = step_resource(step) else {
            return;
        };
        if !self.pipeline.resources.contains_key(resource) {
            self.error(
                step.line,
                format!(
                    "unknown resource '{resource}'; declare it under resources: or fix the name"
                ),
            );
        }
        if let Some(version) = step.get("version") {
            let ok = match &version.value {
                Value::Scalar(_) => matches!(version.scalar(), Some(Scalar::Str(_) | Scalar::Null)),
                Value::Map(entries) => entries
                    .iter()
                    .all(|(_, v)| matches!(v.scalar(), Some(Scalar::Str(_)))),
                Value::Seq(_) => false,
            };
            if !ok {
                self.error(version.line, "version: must be latest, every, or a mapping of strings (quote numbers: {build: \"42\"})");
            }
        }
        for p in step.get("passed").map(Node::items).unwrap_or_default() {
            let Some(pattern) = p.as_str() else { continue };
            let glob = match Glob::new(pattern) {
                Ok(g) => g,
                Err(e) => {
                    self.error(
                        p.line,
                        format!("passed: invalid glob expression '{pattern}' ({e})"),
                    );
                    continue;
                }
            };
            let matched = self.pipeline.jobs_matching(&glob);
            if matched.is_empty() {
                self.error(p.line, format!("passed: unknown job '{pattern}'"));
            }
            for job in matched {
                let interacts = self
                    .pipeline
                    .job_resources
                    .get(job)
                    .is_some_and(|r| r.contains(resource));
                if !interacts {
                    self.error(p.line, format!("passed: job '{job}' does not interact with resource '{resource}'; it must get or put it"));
                }
            }
        }
    }

    fn put(&mut self, step: &Node) {
        let Some((_, resource)) = step_resource(step) else {
            return;
        };
        if !self.pipeline.resources.contains_key(resource) {
            self.error(
                step.line,
                format!(
                    "unknown resource '{resource}'; declare it under resources: or fix the name"
                ),
            );
        }
        if let Some(inputs) = step.get("inputs") {
            let ok = match &inputs.value {
                Value::Seq(items) => items.iter().all(|i| i.scalar().is_some()),
                _ => matches!(inputs.scalar(), Some(Scalar::Str(_))),
            };
            if !ok {
                self.error(
                    inputs.line,
                    "inputs: must be all, detect, or a list of artifact names",
                );
            }
        }
    }

    fn task(&mut self, step: &Node) {
        match (step.get("file"), step.get("config")) {
            (None, None) => self.error(step.line, "must specify either `file:` or `config:`"),
            (Some(_), Some(_)) => self.error(
                step.line,
                "must specify one of `file:` or `config:`, not both",
            ),
            _ => {}
        }
        let Some(config) = step.get("config") else {
            return;
        };
        if config.as_str().is_some_and(|s| s.contains("((")) {
            return;
        }
        let path = format!("{}.config", self.path.concat());
        if !shape::object(config, &path, TASK_CONFIG, self.out) {
            return;
        }
        if config
            .get("platform")
            .and_then(Node::as_str)
            .is_none_or(str::is_empty)
        {
            self.out.concourse(
                config.line,
                format!("{path}: missing 'platform'; add platform: linux"),
            );
        }
        match config.get("run") {
            Some(run) if matches!(run.value, Value::Map(_)) => {
                shape::object(run, &format!("{path}.run"), TASK_RUN, self.out);
                if run
                    .get("path")
                    .and_then(Node::as_str)
                    .is_none_or(str::is_empty)
                {
                    self.out.concourse(
                        run.line,
                        format!("{path}.run: missing path to executable to run; add path:"),
                    );
                }
            }
            _ => self.out.concourse(
                config.line,
                format!("{path}: missing path to executable to run; add run: {{path: ...}}"),
            ),
        }
        for list in ["inputs", "outputs"] {
            for (i, item) in config
                .get(list)
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if item
                    .get("name")
                    .and_then(Node::as_str)
                    .is_none_or(str::is_empty)
                {
                    self.out
                        .concourse(item.line, format!("{path}.{list}[{i}]: is missing a name"));
                }
            }
        }
    }
}
