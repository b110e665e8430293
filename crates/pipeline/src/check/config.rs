//! The pipeline's top level as Concourse reads it (`atc/config.go`: the known top-level keys,
//! read strictly; others are dropped) and validates it (`atc/configvalidate/validate.go`):
//! names present and unique, resources used, groups that name real jobs and cover every job,
//! var sources of a supported type in an order their `((source:var))`s allow, job retention
//! settings, at least one job, and no `passed:` cycle.

use super::glob::Glob;
use super::shape::{self, Kind};
use super::steps::Validator;
use super::{Findings, job_steps, step_resource, vars};
use crate::yaml::{Node, Scalar, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What the steps and the project rules look up.
#[derive(Default)]
pub struct Pipeline<'a> {
    pub resources: BTreeMap<String, &'a Node>,
    pub types: BTreeMap<String, &'a Node>,
    pub prototypes: BTreeSet<String>,
    /// Jobs in file order.
    pub jobs: Vec<(String, &'a Node)>,
    /// Resources each job gets or puts (hooks and nested steps included).
    pub job_resources: BTreeMap<String, BTreeSet<String>>,
}

impl Pipeline<'_> {
    /// Jobs whose name the glob matches.
    pub fn jobs_matching(&self, glob: &Glob) -> Vec<&str> {
        self.jobs
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| glob.matches(n))
            .collect()
    }
}

const RESOURCE: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("old_name", Kind::Str),
    ("public", Kind::Bool),
    ("webhook_token", Kind::Str),
    ("type", Kind::Str),
    ("source", Kind::Map),
    ("check_every", Kind::Any),
    ("check_timeout", Kind::Str),
    ("tags", Kind::StrList),
    ("version", Kind::Map),
    ("icon", Kind::Str),
    ("expose_build_created_by", Kind::Bool),
];
const RESOURCE_TYPE: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("type", Kind::Str),
    ("source", Kind::Map),
    ("defaults", Kind::Map),
    ("privileged", Kind::Bool),
    ("check_every", Kind::Any),
    ("tags", Kind::StrList),
    ("params", Kind::Map),
    // Resource types only, not prototypes:
    ("check_setup_error", Kind::Str),
    ("check_error", Kind::Str),
    ("unique_version_history", Kind::Bool),
];
/// A prototype has a resource type's keys but the last three.
const PROTOTYPE: &[(&str, Kind)] = RESOURCE_TYPE.split_at(RESOURCE_TYPE.len() - 3).0;
const GROUP: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("jobs", Kind::StrList),
    ("resources", Kind::StrList),
];
const VAR_SOURCE: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("type", Kind::Str),
    ("config", Kind::Any),
];
const JOB: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("old_name", Kind::Str),
    ("public", Kind::Bool),
    ("disable_manual_trigger", Kind::Bool),
    ("serial", Kind::Bool),
    ("interruptible", Kind::Bool),
    ("serial_groups", Kind::StrList),
    ("max_in_flight", Kind::Int),
    ("build_logs_to_retain", Kind::Int),
    ("build_log_retention", Kind::Map),
    ("plan", Kind::List),
    ("on_abort", Kind::Any),
    ("on_error", Kind::Any),
    ("on_failure", Kind::Any),
    ("ensure", Kind::Any),
    ("on_success", Kind::Any),
];
const RETENTION: &[(&str, Kind)] = &[
    ("builds", Kind::Int),
    ("days", Kind::Int),
    ("minimum_succeeded_builds", Kind::Int),
];
const DISPLAY: &[(&str, Kind)] = &[
    ("background_image", Kind::Str),
    ("background_filter", Kind::Str),
];

/// Credential managers a pipeline's `var_sources` may use; the others exist only cluster-wide.
const PIPELINE_VAR_SOURCES: &[&str] = &["vault", "dummy", "ssm", "idtoken"];
const CLUSTER_VAR_SOURCES: &[&str] = &["credhub", "kubernetes", "secretsmanager", "conjur"];

/// The items of a top-level list, each checked against its shape; `what` names it in messages.
fn list<'a>(
    doc: &'a Node,
    key: &str,
    fields: &[(&str, Kind)],
    out: &mut Findings,
) -> Vec<(String, &'a Node)> {
    let Some(node) = doc.get(key) else {
        return Vec::new();
    };
    if matches!(node.scalar(), Some(Scalar::Null)) {
        return Vec::new();
    }
    if !matches!(node.value, Value::Seq(_)) {
        out.concourse(
            node.line,
            format!("{key}: must be a list, not {}", node.kind()),
        );
        return Vec::new();
    }
    let mut named = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in node.items().iter().enumerate() {
        let name = item.get("name").and_then(Node::as_str).unwrap_or("");
        let path = if name.is_empty() {
            format!("{key}[{i}]")
        } else {
            format!("{key}.{name}")
        };
        if !shape::object(item, &path, fields, out) {
            continue;
        }
        if name.is_empty() {
            out.concourse(item.line, format!("{path}: has no name; add name:"));
        } else if let Some(first) = seen.get(name) {
            out.concourse(
                item.line,
                format!("{key}[{first}] and {key}[{i}] have the same name ('{name}'); rename one"),
            );
        } else {
            seen.insert(name.to_owned(), i);
        }
        named.push((name.to_owned(), item));
    }
    named
}

fn needs_type(items: &[(String, &Node)], key: &str, out: &mut Findings) {
    for (i, (name, item)) in items.iter().enumerate() {
        if item
            .get("type")
            .and_then(Node::as_str)
            .is_none_or(str::is_empty)
        {
            let path = if name.is_empty() {
                format!("{key}[{i}]")
            } else {
                format!("{key}.{name}")
            };
            out.concourse(item.line, format!("{path}: has no type; add type:"));
        }
    }
}

fn check_every(items: &[(String, &Node)], key: &str, out: &mut Findings) {
    for (name, item) in items {
        if let Some(every) = item.get("check_every")
            && every.as_str() != Some("never")
            && let Some(e) = shape::kind_error(every, Kind::Duration)
        {
            out.concourse(
                every.line,
                format!("{key}.{name}.check_every: {e}, or never"),
            );
        }
    }
}

/// Checks the whole configuration (steps included) and returns what the project rules use.
pub fn validate<'a>(doc: &'a Node, out: &mut Findings) -> Pipeline<'a> {
    let resources = list(doc, "resources", RESOURCE, out);
    needs_type(&resources, "resources", out);
    check_every(&resources, "resources", out);
    let types = list(doc, "resource_types", RESOURCE_TYPE, out);
    needs_type(&types, "resource_types", out);
    check_every(&types, "resource_types", out);
    let prototypes = list(doc, "prototypes", PROTOTYPE, out);
    needs_type(&prototypes, "prototypes", out);
    let jobs = list(doc, "jobs", JOB, out);
    let groups = list(doc, "groups", GROUP, out);
    let var_sources = list(doc, "var_sources", VAR_SOURCE, out);

    let mut p = Pipeline {
        resources: resources.iter().map(|(n, r)| (n.clone(), *r)).collect(),
        types: types.iter().map(|(n, r)| (n.clone(), *r)).collect(),
        prototypes: prototypes.iter().map(|(n, _)| n.clone()).collect(),
        jobs: jobs.clone(),
        job_resources: BTreeMap::new(),
    };
    for (name, job) in &jobs {
        let used = job_steps(job)
            .into_iter()
            .filter_map(step_resource)
            .map(|(_, r)| r.to_owned())
            .collect();
        p.job_resources.insert(name.clone(), used);
    }

    if doc.get("jobs").is_none_or(|j| j.items().is_empty()) {
        out.concourse(
            doc.get("jobs").map_or(doc.line, |j| j.line),
            "jobs: a pipeline needs at least one job".into(),
        );
    }

    // Resources no job uses.
    let used: BTreeSet<&String> = p.job_resources.values().flatten().collect();
    for (name, r) in &resources {
        if !name.is_empty() && !used.contains(name) {
            out.concourse(
                r.line,
                format!(
                    "resources.{name}: is not used by any job; use it in a get or put, or remove it"
                ),
            );
        }
    }

    // Jobs: retention, then every step.
    for (i, (name, job)) in jobs.iter().enumerate() {
        let path = if name.is_empty() {
            format!("jobs[{i}]")
        } else {
            format!("jobs.{name}")
        };
        let int = |k: &str, n: &Node| match n.get(k).and_then(Node::scalar) {
            Some(Scalar::Int(v)) => v,
            _ => 0,
        };
        if let Some(r) = job.get("build_log_retention") {
            shape::object(r, &format!("{path}.build_log_retention"), RETENTION, out);
            if job.get("build_logs_to_retain").is_some() {
                out.concourse(
                    r.line,
                    format!("{path}: can't use both build_log_retention and build_logs_to_retain; keep one"),
                );
            }
            for k in ["builds", "days", "minimum_succeeded_builds"] {
                if int(k, r) < 0 {
                    out.concourse(
                        r.line,
                        format!("{path}.build_log_retention.{k}: must not be negative"),
                    );
                }
            }
            let (builds, min) = (int("builds", r), int("minimum_succeeded_builds", r));
            if builds > 0 && min > builds {
                out.concourse(
                    r.line,
                    format!("{path}.build_log_retention: minimum_succeeded_builds ({min}) is greater than builds ({builds})"),
                );
            }
        } else if int("build_logs_to_retain", job) < 0 {
            out.concourse(
                job.line,
                format!("{path}.build_logs_to_retain: must not be negative"),
            );
        }
        Validator::new(&p, &path, out).job(job);
    }

    groups_rules(&groups, &p, out);
    var_sources_rules(&var_sources, out);
    passed_cycles(&p, out);

    if let Some(display) = doc.get("display")
        && shape::object(display, "display", DISPLAY, out)
        && let Some(url) = display.get("background_image").and_then(Node::as_str)
    {
        let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if let Some(s) = scheme
            && !matches!(s.to_ascii_lowercase().as_str(), "http" | "https")
        {
            out.concourse(
                display.get("background_image").map_or(display.line, |n| n.line),
                format!("display.background_image: scheme must be http, https or none (relative), not {s}"),
            );
        }
    }

    // Var syntax, everywhere (keys included): fly fails on a var it cannot parse.
    let mut all = Vec::new();
    doc.walk(&mut all);
    for node in all {
        if let Some(s) = node.as_str() {
            for raw in vars::raw_vars(s) {
                if let Err(e) = vars::parse(raw) {
                    out.concourse(
                        node.line,
                        format!("{e}; write ((name)), ((name.field)) or ((source:name))"),
                    );
                }
            }
        }
    }
    p
}

fn groups_rules(groups: &[(String, &Node)], p: &Pipeline, out: &mut Findings) {
    if groups.is_empty() {
        return;
    }
    let mut grouped = BTreeSet::new();
    for (name, group) in groups {
        for j in group.get("jobs").map(Node::items).unwrap_or_default() {
            let Some(pattern) = j.as_str() else { continue };
            match Glob::new(pattern) {
                Err(e) => out.concourse(
                    j.line,
                    format!("groups.{name}: '{pattern}' is not a valid glob ({e})"),
                ),
                Ok(glob) => {
                    let matched = p.jobs_matching(&glob);
                    if matched.is_empty() {
                        out.concourse(
                            j.line,
                            format!(
                                "groups.{name}: has unknown job '{pattern}'; no job matches it"
                            ),
                        );
                    }
                    grouped.extend(matched);
                }
            }
        }
        for r in group.get("resources").map(Node::items).unwrap_or_default() {
            if let Some(res) = r.as_str()
                && !p.resources.contains_key(res)
            {
                out.concourse(
                    r.line,
                    format!("groups.{name}: has unknown resource '{res}'"),
                );
            }
        }
    }
    for (name, job) in &p.jobs {
        if !name.is_empty() && !grouped.contains(name.as_str()) {
            out.concourse(
                job.line,
                format!(
                    "jobs.{name}: belongs to no group; when groups exist, every job must be in one"
                ),
            );
        }
    }
}

fn var_sources_rules(sources: &[(String, &Node)], out: &mut Findings) {
    let names: BTreeSet<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    let mut deps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, vs) in sources {
        let t = vs.get("type").and_then(Node::as_str).unwrap_or("");
        let line = vs.get("type").map_or(vs.line, |n| n.line);
        if CLUSTER_VAR_SOURCES.contains(&t) {
            out.concourse(
                line,
                format!("var_sources.{name}: credential manager type {t} is not supported in pipeline yet (use {})", PIPELINE_VAR_SOURCES.join(", ")),
            );
        } else if !PIPELINE_VAR_SOURCES.contains(&t) {
            out.concourse(
                line,
                format!(
                    "var_sources.{name}: unknown credential manager type '{t}'; use one of {}",
                    PIPELINE_VAR_SOURCES.join(", ")
                ),
            );
        }
        let mut all = Vec::new();
        if let Some(c) = vs.get("config") {
            c.walk(&mut all);
        }
        let d = all
            .iter()
            .filter_map(|n| n.as_str())
            .flat_map(vars::raw_vars)
            .filter_map(|raw| vars::parse(raw).ok()?.source)
            .collect();
        deps.insert(name.as_str(), d);
    }
    // Concourse orders var sources so each comes after those its config reads from; one that
    // can never be placed (a missing source or a cycle) fails the pipeline.
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    loop {
        let ready: Vec<&str> = deps
            .iter()
            .filter(|(n, d)| !placed.contains(*n) && d.iter().all(|x| placed.contains(x.as_str())))
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        placed.extend(ready);
    }
    for (name, vs) in sources {
        if !placed.contains(name.as_str()) {
            let missing: Vec<&String> = deps[name.as_str()]
                .iter()
                .filter(|d| !names.contains(d.as_str()))
                .collect();
            out.concourse(
                vs.line,
                if missing.is_empty() {
                    format!("var_sources.{name}: could not resolve inter-dependent var sources (its config reads from a source that reads from it)")
                } else {
                    format!("var_sources.{name}: its config reads from var source {missing:?}, which is not declared")
                },
            );
        }
    }
}

/// A `passed:` chain that comes back to where it started can never be satisfied.
fn passed_cycles(p: &Pipeline, out: &mut Findings) {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, job) in &p.jobs {
        let e = edges.entry(name.as_str()).or_default();
        for step in job_steps(job) {
            for pj in step.get("passed").map(Node::items).unwrap_or_default() {
                if let Some(glob) = pj.as_str().and_then(|g| Glob::new(g).ok()) {
                    e.extend(p.jobs_matching(&glob));
                }
            }
        }
    }
    let mut reported = BTreeSet::new();
    for (start, job) in &p.jobs {
        // Depth-first from each job, looking for a way back to it.
        let mut stack = vec![(start.as_str(), vec![start.as_str()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if *next == start {
                    let mut members: Vec<&str> = path.clone();
                    members.sort();
                    if reported.insert(members) {
                        let mut chain = path.clone();
                        chain.push(start);
                        out.concourse(
                            job.line,
                            format!("jobs.{start}: passed: constraints form a cycle ({}); a job cannot wait on itself", chain.join(" -> ")),
                        );
                    }
                } else if seen.insert(*next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
}
