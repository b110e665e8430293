//! A small Concourse for the demo: walks a job's plan (`get`, `put`, `task`, `in_parallel`,
//! `do`, the `ensure` and `on_failure` hooks), runs our resource images for our resource
//! types, keeps each resource's versions, and gets what passed through upstream jobs.

use crate::{DemoRepo, REGISTRY, env::docker};
use pipeline::yaml::Node;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Our resource types: their images are `<type>:dev`.
const OURS: &[&str] = &[
    "gcr-image",
    "k8s-deploy",
    "github-promote-pr",
    "acceptance-run",
];

/// The walker's state: `env.json`'s facts, and the versions each resource has.
#[derive(Debug)]
pub struct Walker {
    pipeline: Node,
    info: Value,
    repos: Vec<DemoRepo>,
    /// The directory holding the rendered `ci/` (the `ci` resource's checkout).
    ci_dir: PathBuf,
    builds: PathBuf,
    /// resource -> its versions, oldest first.
    pub versions: BTreeMap<String, Vec<Value>>,
    /// job -> for each resource it used, the version (what passed).
    pub passed: BTreeMap<String, BTreeMap<String, Value>>,
    build_id: u64,
    /// Every step run: (job, step line), for the summary and the tests.
    pub steps: Vec<(String, String)>,
}

fn say(line: &str) {
    eprintln!("{line}");
}

/// `((name))` replaced by the vars, in every string of `v`; the registry host moved to the
/// local registry.
fn resolve(v: &Value, vars: &Value, registry: &str) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            while let Some(start) = out.find("((") {
                let Some(len) = out[start..].find("))") else {
                    break;
                };
                let name = out[start + 2..start + len].to_owned();
                let value = vars[&name].as_str().unwrap_or_default().to_owned();
                out.replace_range(start..start + len + 2, &value);
            }
            Value::String(out.replace(REGISTRY, &format!("{registry}/microservices-kube")))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, vars, registry)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), resolve(x, vars, registry)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Walker {
    pub fn new(
        pipeline_text: &str,
        info: Value,
        repos: Vec<DemoRepo>,
        ci_dir: PathBuf,
        builds: PathBuf,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pipeline: pipeline::yaml::parse(pipeline_text).map_err(anyhow::Error::msg)?,
            info,
            repos,
            ci_dir,
            builds,
            versions: BTreeMap::new(),
            passed: BTreeMap::new(),
            build_id: 0,
            steps: Vec::new(),
        })
    }

    /// What `demo prod` needs to carry on: versions, what passed, the build counter.
    pub fn state(&self) -> Value {
        json!({"versions": self.versions, "passed": self.passed, "build_id": self.build_id})
    }

    pub fn restore(&mut self, state: &Value) {
        if let Ok(v) = serde_json::from_value(state["versions"].clone()) {
            self.versions = v;
        }
        if let Ok(p) = serde_json::from_value(state["passed"].clone()) {
            self.passed = p;
        }
        self.build_id = state["build_id"].as_u64().unwrap_or(0);
    }

    /// Makes the build task of `repo` stand for `image` (`demo bad-release`'s broken build).
    pub fn set_image(&mut self, repo: &str, image: &str) {
        for r in self.repos.iter_mut().filter(|r| r.name == repo) {
            r.image = image.to_owned();
        }
    }

    /// The demo's directory (where the builds are).
    pub fn dir(&self) -> &Path {
        self.builds.parent().unwrap_or(&self.builds)
    }

    /// Job names in pipeline order.
    pub fn jobs(&self) -> Vec<String> {
        self.pipeline
            .get("jobs")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|j| j.get("name").and_then(Node::as_str).map(str::to_owned))
            .collect()
    }

    /// Whether a `time` resource starts `job` (the janitor): Concourse runs it on its clock;
    /// the demo does not walk it.
    pub fn clocked(&self, job: &str) -> bool {
        let Ok(node) = self.job_node(job) else {
            return false;
        };
        let mut all = Vec::new();
        node.walk(&mut all);
        all.iter()
            .filter_map(|n| n.get("get").and_then(Node::as_str))
            .any(|name| self.resource(name).is_ok_and(|(kind, _)| kind == "time"))
    }

    fn job_node(&self, name: &str) -> anyhow::Result<Node> {
        self.pipeline
            .get("jobs")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .find(|j| j.get("name").and_then(Node::as_str) == Some(name))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the pipeline has no job {name}"))
    }

    fn resource(&self, name: &str) -> anyhow::Result<(String, Value)> {
        let r = self
            .pipeline
            .get("resources")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .find(|r| r.get("name").and_then(Node::as_str) == Some(name))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the pipeline has no resource {name}"))?;
        let kind = r
            .get("type")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut source = resolve(
            &r.get("source").map(Node::to_json).unwrap_or(json!({})),
            &self.info["vars"],
            self.info["registry"].as_str().unwrap_or_default(),
        );
        // The demo's only additions to a source: plain HTTP for the loopback registry, and the
        // GitHub fake's address.
        match kind.as_str() {
            "gcr-image" | "acceptance-run" => source["insecure"] = json!(true),
            "github-promote-pr" => source["api_url"] = self.info["github"].clone(),
            _ => {}
        }
        Ok((kind, source))
    }

    /// Runs one job, its hooks included. `Err` when it failed.
    pub fn job(&mut self, name: &str) -> anyhow::Result<()> {
        let job = self.job_node(name)?;
        self.build_id += 1;
        let dir = self.builds.join(format!("{name}-{}", self.build_id));
        std::fs::create_dir_all(&dir)?;
        say(&format!("\n━━ job {name} #{} ━━", self.build_id));
        let mut used = BTreeMap::new();
        let mut result = Ok(());
        for step in job.get("plan").map(Node::items).unwrap_or_default() {
            if let Err(e) = self.step(name, step, &dir, &mut used) {
                result = Err(e);
                break;
            }
        }
        if result.is_err()
            && let Some(hook) = job.get("on_failure")
        {
            let _ = self.step(name, hook, &dir, &mut used);
        }
        if let Some(hook) = job.get("ensure")
            && let Err(e) = self.step(name, hook, &dir, &mut used)
            && result.is_ok()
        {
            result = Err(e);
        }
        match &result {
            Ok(()) => {
                say(&format!("✔ {name} succeeded"));
                self.passed.insert(name.to_owned(), used);
            }
            Err(e) => say(&format!("✘ {name} failed: {e:#}")),
        }
        result
    }

    fn step(
        &mut self,
        job: &str,
        step: &Node,
        dir: &Path,
        used: &mut BTreeMap<String, Value>,
    ) -> anyhow::Result<()> {
        if let Some(steps) = step.get("in_parallel") {
            // In order here; Concourse runs them side by side.
            let list = steps.get("steps").unwrap_or(steps);
            for s in list.items() {
                self.step(job, s, dir, used)?;
            }
            return Ok(());
        }
        if let Some(steps) = step.get("do") {
            for s in steps.items() {
                self.step(job, s, dir, used)?;
            }
            return Ok(());
        }
        if let Some(name) = step.get("get").and_then(Node::as_str) {
            let passed: Vec<String> = step
                .get("passed")
                .map(|p| {
                    p.items()
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let version = self.get(job, name, &passed, dir)?;
            used.insert(name.to_owned(), version);
            return Ok(());
        }
        if let Some(name) = step.get("put").and_then(Node::as_str) {
            let params = resolve(
                &step.get("params").map(Node::to_json).unwrap_or(json!({})),
                &self.info["vars"],
                self.info["registry"].as_str().unwrap_or_default(),
            );
            let no_get = step.get("no_get").and_then(Node::as_str) == Some("true");
            let version = self.put(job, name, &params, dir, no_get)?;
            used.insert(name.to_owned(), version);
            return Ok(());
        }
        if let Some(task) = step.get("task").and_then(Node::as_str) {
            return self.task(job, task, step, dir);
        }
        Ok(())
    }

    /// A `get`: what passed the upstream jobs, or the newest version `check` finds.
    fn get(
        &mut self,
        job: &str,
        name: &str,
        passed: &[String],
        dir: &Path,
    ) -> anyhow::Result<Value> {
        let (kind, source) = self.resource(name)?;
        let dest = dir.join(name);
        std::fs::create_dir_all(&dest)?;
        if kind == "git" {
            return self.checkout(job, name, &dest);
        }
        // As Concourse: `check` finds the versions (from the last one known); `passed` then
        // picks the one that went through the upstream job, else the newest is taken.
        let last = self.versions.get(name).and_then(|v| v.last()).cloned();
        let found = self.run(
            &kind,
            "check",
            None,
            &json!({"source": source, "version": last}),
        );
        let found: Vec<Value> = match (found, passed.first()) {
            (Ok(list), _) => list.as_array().cloned().unwrap_or_default(),
            // A put's version stands without check (k8s-deploy's ephemeral namespace is not
            // the source's namespace): say so and go on.
            (Err(e), Some(_)) => {
                say(&format!(
                    "  check {name}: {e:#}; the version a put made stands"
                ));
                Vec::new()
            }
            (Err(e), None) => return Err(e),
        };
        say(&format!(
            "  check {name} ({kind}): {} version(s){}",
            found.len(),
            found
                .last()
                .map(|v| format!(", newest {v}"))
                .unwrap_or_default()
        ));
        for v in &found {
            self.record(name, v);
        }
        let version = match passed.first() {
            Some(upstream) => self
                .passed
                .get(upstream)
                .and_then(|u| u.get(name))
                .cloned()
                .ok_or_else(|| {
                    anyhow::anyhow!("get {name}: no version of it passed {upstream} yet")
                })?,
            None => found
                .last()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("check {name} found no version"))?,
        };
        say(&format!("  get {name} {version}"));
        self.steps.push((job.to_owned(), format!("get {name}")));
        self.fetch(&kind, &source, &version, &dest)?;
        Ok(version)
    }

    /// A `put`, then its implicit `get` of the version it made (unless `no_get`).
    fn put(
        &mut self,
        job: &str,
        name: &str,
        params: &Value,
        dir: &Path,
        no_get: bool,
    ) -> anyhow::Result<Value> {
        let (kind, source) = self.resource(name)?;
        say(&format!("  put {name} ({kind})"));
        self.steps.push((job.to_owned(), format!("put {name}")));
        let answer = self.run(
            &kind,
            "out",
            Some(dir),
            &json!({"source": source, "params": params}),
        )?;
        let version = answer["version"].clone();
        say(&format!("    version {version}"));
        for m in answer["metadata"].as_array().into_iter().flatten() {
            let value = m["value"].as_str().unwrap_or("");
            // The GitHub fake answers with github.com links, as GitHub does; the demo's
            // pull requests live in the fake: show where (its API, there is no web page).
            let value = match (kind.as_str(), self.info["github"].as_str()) {
                ("github-promote-pr", Some(api)) => fake_pull_url(value, api),
                _ => value.to_owned(),
            };
            say(&format!(
                "    {}: {value}",
                m["name"].as_str().unwrap_or("")
            ));
        }
        self.record(name, &version);
        if !no_get {
            let dest = dir.join(name);
            std::fs::create_dir_all(&dest)?;
            self.fetch(&kind, &source, &version, &dest)?;
        }
        Ok(version)
    }

    /// `in` of `version` into `dest` (a get step, or the get after a put).
    fn fetch(
        &self,
        kind: &str,
        source: &Value,
        version: &Value,
        dest: &Path,
    ) -> anyhow::Result<()> {
        self.run(
            kind,
            "in",
            Some(dest),
            &json!({"source": source, "version": version, "params": {}}),
        )?;
        Ok(())
    }

    fn record(&mut self, name: &str, version: &Value) {
        let list = self.versions.entry(name.to_owned()).or_default();
        if list.last() != Some(version) {
            list.retain(|v| v != version);
            list.push(version.clone());
        }
    }

    /// Stands in for a git checkout: the `ci` repository is the rendered pipeline's `ci/`, a
    /// service repository is its `.git/short_ref` (its develop head in the GitHub fake).
    fn checkout(&mut self, job: &str, name: &str, dest: &Path) -> anyhow::Result<Value> {
        if name == "ci" {
            copy_dir(&self.ci_dir, &dest.join("ci"))?;
            say("  get ci (git: stood in for by the rendered ci/ directory)");
            return Ok(json!({"ref": "demo"}));
        }
        let head = self.info["heads"][name]
            .as_str()
            .unwrap_or("0000000")
            .to_owned();
        std::fs::create_dir_all(dest.join(".git"))?;
        std::fs::write(dest.join(".git/short_ref"), &head[..7.min(head.len())])?;
        std::fs::write(dest.join(".git/ref"), &head)?;
        say(&format!(
            "  get {name} (git: stood in for; develop at {})",
            &head[..7.min(head.len())]
        ));
        self.steps.push((job.to_owned(), format!("get {name}")));
        Ok(json!({"ref": head}))
    }

    /// Tasks are not ours: `build-image` is stood in for by `docker save` of the image `make
    /// images` built; `unit-tests` and the failure hint are described, not run.
    fn task(&mut self, job: &str, task: &str, step: &Node, dir: &Path) -> anyhow::Result<()> {
        match task {
            "build-image" => {
                let context = step
                    .get("input_mapping")
                    .and_then(|m| m.get("context"))
                    .and_then(Node::as_str)
                    .unwrap_or_default();
                let repo = self
                    .repos
                    .iter()
                    .find(|r| r.name == context)
                    .ok_or_else(|| anyhow::anyhow!("task build-image: no image for {context}"))?;
                std::fs::create_dir_all(dir.join("image"))?;
                let tar = dir.join("image/image.tar");
                docker(&["save", "-o", &tar.to_string_lossy(), &repo.image])?;
                say(&format!(
                    "  task build-image: docker save {} ({} MB; stands in for oci-build-task)",
                    repo.image,
                    std::fs::metadata(&tar)
                        .map(|m| m.len() / 1_048_576)
                        .unwrap_or(0)
                ));
            }
            "unit-tests" => {
                let vars = step.get("vars");
                let var = |k: &str| {
                    vars.and_then(|v| v.get(k))
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                say(&format!(
                    "  task unit-tests: not run by the demo (in CI: `{}` in {}:{})",
                    var("test_command"),
                    var("base_image"),
                    var("base_tag")
                ));
            }
            other => {
                // A hook like `say-where-to-look`: an inline task that prints a hint.
                let args: Vec<String> = step
                    .get("config")
                    .and_then(|c| c.get("run"))
                    .and_then(|r| r.get("args"))
                    .map(|a| {
                        a.items()
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                say(&format!("  task {other}: {}", args.join(" ")));
            }
        }
        self.steps.push((job.to_owned(), format!("task {task}")));
        Ok(())
    }

    /// Runs `/opt/resource/<step>` of `<kind>:dev` as a worker would: the request on stdin,
    /// the directory mounted, the build's environment, the host's network (the fakes listen on
    /// loopback). The resource's log goes to our stderr; its stdout is the answer.
    fn run(
        &self,
        kind: &str,
        step: &str,
        dir: Option<&Path>,
        request: &Value,
    ) -> anyhow::Result<Value> {
        if !OURS.contains(&kind) {
            anyhow::bail!("resource type {kind} is not ours; the demo cannot run it");
        }
        let mut cmd = Command::new("docker");
        cmd.args(["run", "-i", "--rm", "--network", "host"]);
        for (k, v) in [
            ("BUILD_ID", self.build_id.to_string()),
            ("BUILD_NAME", self.build_id.to_string()),
            ("BUILD_TEAM_NAME", "main".to_owned()),
            ("BUILD_PIPELINE_NAME", "microservices".to_owned()),
            ("BUILD_JOB_NAME", "demo".to_owned()),
            ("ATC_EXTERNAL_URL", "http://localhost:8080".to_owned()),
        ] {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        let inside = format!("/tmp/build/{step}");
        if let Some(d) = dir {
            cmd.arg("-v").arg(format!("{}:{inside}", d.display()));
        }
        cmd.arg(format!("{kind}:dev"))
            .arg(format!("/opt/resource/{step}"));
        if dir.is_some() {
            cmd.arg(&inside);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run docker ({e})"))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(request.to_string().as_bytes())?;
        }
        // The step's log, as Concourse shows it; github.com links of the GitHub fake's pull
        // requests shown as the fake's own URLs.
        let api = self.info["github"].as_str().unwrap_or_default().to_owned();
        let relay = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    let line: Vec<String> =
                        line.split(' ').map(|w| fake_pull_url(w, &api)).collect();
                    eprintln!("{}", line.join(" "));
                }
            })
        });
        let out = child.wait_with_output()?;
        if let Some(r) = relay {
            let _ = r.join();
        }
        if !out.status.success() {
            anyhow::bail!("{kind} {step} exited {}", out.status.code().unwrap_or(-1));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| anyhow::anyhow!("{kind} {step} answered no JSON: {e}"))
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// `https://github.com/OWNER/REPO/pull/N` as the GitHub fake's API URL of that pull request;
/// anything else as it is.
fn fake_pull_url(value: &str, api: &str) -> String {
    let Some(path) = value
        .strip_prefix("https://github.com/")
        .filter(|_| !api.is_empty())
    else {
        return value.to_owned();
    };
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [owner, repo, "pull", n] => format!(
            "{}/repos/{owner}/{repo}/pulls/{n}",
            api.trim_end_matches('/')
        ),
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pull_request_links_point_at_the_fake() {
        assert_eq!(
            super::fake_pull_url("https://github.com/o/r/pull/3", "http://127.0.0.1:9/"),
            "http://127.0.0.1:9/repos/o/r/pulls/3"
        );
        assert_eq!(super::fake_pull_url("open", "http://x"), "open");
    }
}
