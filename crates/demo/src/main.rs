//! `demo`: the pipeline walked for the sample system (`make demo`), stopping before the manual
//! production job; `demo prod` runs that job (`make demo-prod`); `demo bad-release` walks a
//! broken release of the user service that production's canary stops
//! (`make demo-bad-release`, see `demo::bad_release`); `demo down` stops the
//! environment (`make demo-down`; it also stops by itself after an hour). `demo serve` is the
//! background process holding the environment; `demo` starts it.
//!
//! Run from the repository root after `make images`. Works in `target/demo/`.

use demo::env::Env;
use demo::walk::Walker;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: demo [run] | demo prod | demo bad-release | demo down | demo serve [--exit-after SECONDS]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Absolute: the build directories are mounted into the resource containers.
    let dir = std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join("target/demo");
    let result = match args.first().map(String::as_str) {
        None | Some("run") => run(&dir),
        Some("prod") => prod(&dir),
        Some("bad-release") => bad_release(&dir),
        Some("down") => down(&dir),
        Some("serve") => {
            let exit_after = args
                .iter()
                .position(|a| a == "--exit-after")
                .and_then(|i| args.get(i + 1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(3600);
            serve(&dir, Duration::from_secs(exit_after))
        }
        Some(_) => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("demo: {e:#}");
        std::process::exit(1);
    }
}

fn table() -> anyhow::Result<(Vec<pipeline::render::Repo>, Vec<demo::DemoRepo>)> {
    let text = std::fs::read_to_string("examples/sample-system/repos.yml").map_err(|e| {
        anyhow::anyhow!(
            "read examples/sample-system/repos.yml ({e}); run the demo from the repository root"
        )
    })?;
    demo::table(&text)
}

/// The environment, held until `down` or `exit_after`.
fn serve(dir: &Path, exit_after: Duration) -> anyhow::Result<()> {
    let (_, repos) = table()?;
    let mut env = Env::start(&repos)?;
    let mut info = env.info();
    info["pid"] = serde_json::json!(std::process::id());
    let path = dir.join("env.json");
    // For a look around: KUBECONFIG=target/demo/test.kubeconfig kubectl get pods -A
    write_private(
        &dir.join("test.kubeconfig"),
        env.test.kubeconfig().as_bytes(),
    )?;
    write_private(
        &dir.join("prod.kubeconfig"),
        env.prod.kubeconfig().as_bytes(),
    )?;
    write_private(&path, &serde_json::to_vec_pretty(&info)?)?;
    eprintln!(
        "demo: environment up; `demo down` stops it (it stops by itself in {}s)",
        exit_after.as_secs()
    );
    let stop = dir.join("stop");
    let started = Instant::now();
    let push = dir.join("push");
    while !stop.exists() && started.elapsed() < exit_after {
        // `demo bad-release` asks for a new develop commit of one repository.
        if let Ok(name) = std::fs::read_to_string(&push) {
            let _ = std::fs::remove_file(&push);
            let name = name.trim();
            if let Some(head) = env.push(name) {
                eprintln!("demo: pushed {} to {name}'s develop", &head[..7]);
                info["heads"][name] = serde_json::json!(head);
                write_private(&path, &serde_json::to_vec_pretty(&info)?)?;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(&stop);
    drop(env);
    let _ = std::fs::remove_file(dir.join("test.kubeconfig"));
    let _ = std::fs::remove_file(dir.join("prod.kubeconfig"));
    let _ = std::fs::remove_file(&path);
    eprintln!("demo: environment stopped");
    Ok(())
}

/// `env.json` holds the demo's credentials: readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let env = dir.join("env.json");
    let Ok(bytes) = std::fs::read(&env) else {
        eprintln!("demo: no environment running");
        return Ok(());
    };
    // A serve process that died (killed, machine restarted) left its files: nothing to stop.
    let pid = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|i| i["pid"].as_u64());
    if pid.is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists()) {
        for f in ["env.json", "test.kubeconfig", "prod.kubeconfig", "stop"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        eprintln!(
            "demo: the environment had already stopped; its files are removed (its containers go when the next one starts)"
        );
        return Ok(());
    }
    std::fs::write(dir.join("stop"), "")?;
    let started = Instant::now();
    while env.exists() {
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!(
                "the environment did not stop within 2 minutes; see {}",
                dir.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("demo: environment stopped (containers and networks removed)");
    Ok(())
}

fn walker(dir: &Path, info: serde_json::Value) -> anyhow::Result<Walker> {
    let (repos, demo_repos) = table()?;
    // The pipeline and the `ci` repository, rendered for the sample system by the renderer of
    // ci/pipeline.yml.
    let ci = dir.join("ci");
    std::fs::create_dir_all(ci.join("k8s"))?;
    std::fs::create_dir_all(ci.join("tasks"))?;
    let text = pipeline::render::pipeline(&repos);
    std::fs::write(dir.join("pipeline.yml"), &text)?;
    std::fs::write(ci.join("pipeline.yml"), &text)?;
    std::fs::write(
        ci.join("k8s/services.yml"),
        pipeline::render::services(&repos),
    )?;
    for task in ["unit-tests.yml", "build-image.yml"] {
        std::fs::copy(
            Path::new("ci/tasks").join(task),
            ci.join("tasks").join(task),
        )?;
    }
    Walker::new(&text, info, demo_repos, ci, dir.join("builds"))
}

/// What the demo needs from this machine, said before anything starts.
fn preflight() -> anyhow::Result<()> {
    let on_path = |bin: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    };
    if !on_path("docker-registry") {
        anyhow::bail!(
            "docker-registry is missing: apt-get install docker-registry (the demo's registry; .ci/run installs it)"
        );
    }
    demo::env::docker(&["info", "--format", "{{.ServerVersion}}"])
        .map_err(|e| anyhow::anyhow!("the Docker daemon is not reachable: {e:#}"))?;
    let (_, repos) = table()?;
    let mut images: Vec<String> = [
        "gcr-image",
        "k8s-deploy",
        "github-promote-pr",
        "acceptance-run",
    ]
    .iter()
    .map(|t| format!("{t}:dev"))
    .collect();
    images.extend(repos.into_iter().map(|r| r.image));
    for image in images {
        if demo::env::docker(&["image", "inspect", "--format", "{{.Id}}", &image]).is_err() {
            anyhow::bail!("the image {image} is missing: run `make images` (`make demo` does)");
        }
    }
    Ok(())
}

fn read_info(dir: &Path, wait: Duration) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("env.json");
    let started = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        if started.elapsed() > wait {
            anyhow::bail!(
                "the demo environment is not up ({} missing); see {}",
                path.display(),
                dir.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts the environment, walks every job with a trigger, stops before the manual one.
fn run(dir: &Path) -> anyhow::Result<()> {
    preflight()?;
    std::fs::create_dir_all(dir)?;
    down(dir)?;
    let _ = std::fs::remove_dir_all(dir.join("builds"));
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let me = std::env::current_exe()?;
    let mut serve = std::process::Command::new(me)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // Until the environment is up; a serve that dies says why in its log.
    let started = Instant::now();
    let info = loop {
        if let Ok(info) = read_info(dir, Duration::ZERO) {
            break info;
        }
        if let Ok(Some(status)) = serve.try_wait() {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            anyhow::bail!(
                "the demo environment did not start ({status}): {}",
                last.trim()
            );
        }
        if started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!(
                "the demo environment did not start within 2 minutes; see {}",
                dir.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "demo: environment up (log: {})",
        dir.join("serve.log").display()
    );
    let mut w = walker(dir, info)?;
    let started = Instant::now();
    let (clocked, jobs): (Vec<String>, Vec<String>) =
        w.jobs().into_iter().partition(|j| w.clocked(j));
    for job in &clocked {
        eprintln!("demo: {job} runs on a clock (a time resource) in Concourse; not walked here");
    }
    // Publishing our own resource types is what `demo serve` did already (it pushed the
    // images `make images` built to its registry).
    let (_, jobs): (Vec<String>, Vec<String>) =
        jobs.into_iter().partition(|j| j == "resource-types");
    eprintln!(
        "demo: resource-types is served by the demo's registry already (make images); not walked"
    );
    let manual: Vec<String> = jobs.iter().filter(|j| is_manual(&w, j)).cloned().collect();
    for job in jobs.iter().filter(|j| !manual.contains(j)) {
        if let Err(e) = w.job(job) {
            eprintln!(
                "demo: the environment stays up for a look (KUBECONFIG={} kubectl get pods -A); `make demo-down` stops it",
                dir.join("test.kubeconfig").display()
            );
            return Err(e);
        }
        std::fs::write(
            dir.join("state.json"),
            serde_json::to_vec_pretty(&w.state())?,
        )?;
    }
    eprintln!(
        "\ndemo: {} jobs succeeded in {:.0}s, {} steps. Stopped before {}: it has no trigger, a person starts it.",
        jobs.len() - manual.len(),
        started.elapsed().as_secs_f64(),
        w.steps.len(),
        manual.join(", ")
    );
    eprintln!(
        "demo: `make demo-prod` deploys the tested digests to production; `make demo-down` stops everything."
    );
    Ok(())
}

/// A job none of whose gets triggers it.
fn is_manual(w: &Walker, job: &str) -> bool {
    let text = std::fs::read_to_string(w.dir().join("pipeline.yml")).unwrap_or_default();
    let Ok(doc) = pipeline::yaml::parse(&text) else {
        return false;
    };
    let Some(j) = doc
        .get("jobs")
        .map(pipeline::yaml::Node::items)
        .unwrap_or_default()
        .iter()
        .find(|j| j.get("name").and_then(|n| n.as_str()) == Some(job))
        .cloned()
    else {
        return false;
    };
    let mut all = Vec::new();
    j.walk(&mut all);
    !all.iter()
        .any(|n| n.get("trigger").and_then(|t| t.as_str()) == Some("true"))
}

/// What the last walk left (`state.json`): versions, what passed, the build counter.
fn read_state(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(dir.join("state.json"))
        .map_err(|e| anyhow::anyhow!("no demo state ({e}); run `make demo` first"))?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn prod(dir: &Path) -> anyhow::Result<()> {
    let info = read_info(dir, Duration::from_secs(1))
        .map_err(|e| anyhow::anyhow!("{e:#}; run `make demo` first"))?;
    let state = read_state(dir)?;
    let mut w = walker(dir, info)?;
    w.restore(&state);
    let manual: Vec<String> = w
        .jobs()
        .into_iter()
        .filter(|j| !w.clocked(j) && j != "resource-types" && is_manual(&w, j))
        .collect();
    for job in &manual {
        w.job(job)?;
    }
    std::fs::write(
        dir.join("state.json"),
        serde_json::to_vec_pretty(&w.state())?,
    )?;
    eprintln!(
        "\ndemo: production runs the digests that passed acceptance (KUBECONFIG={} kubectl get pods -n microservices). `make demo-down` stops everything.",
        dir.join("prod.kubeconfig").display()
    );
    Ok(())
}

/// A broken release of the user service through the whole pipeline, after a good one reached
/// production: the test environment passes it, production's canary stops it (see
/// `demo::bad_release`). Succeeds when production still serves the previous digest.
fn bad_release(dir: &Path) -> anyhow::Result<()> {
    use demo::bad_release::{BAD_IMAGE, BROKEN_PATH, Client, DEPLOYMENT, Production, REPO};
    let info = read_info(dir, Duration::from_secs(1))
        .map_err(|e| anyhow::anyhow!("{e:#}; run `make demo` and `make demo-prod` first"))?;
    let state = read_state(dir)?;
    if state["passed"]["deploy-prod"].is_null() {
        anyhow::bail!("production runs nothing yet: run `make demo-prod` first");
    }
    let production = Production::new(&info)?;
    let (before, _) = production.running()?;
    eprintln!("demo: production runs {DEPLOYMENT} {before}");
    let (_, repos) = table()?;
    let good = repos
        .iter()
        .find(|r| r.name == REPO)
        .map(|r| r.image.clone())
        .ok_or_else(|| anyhow::anyhow!("{REPO} is not in examples/sample-system/repos.yml"))?;
    demo::bad_release::build_bad_image(&good)?;
    eprintln!(
        "demo: built a bad release of {REPO} ({BAD_IMAGE}: {BROKEN_PATH} answers 500; the acceptance suite does not look there)"
    );
    // A new develop commit for it, made by the environment's GitHub fake.
    let old_head = info["heads"][REPO].as_str().unwrap_or_default().to_owned();
    std::fs::write(dir.join("push"), REPO)?;
    let started = Instant::now();
    let info = loop {
        let info = read_info(dir, Duration::from_secs(1))?;
        if info["heads"][REPO].as_str().is_some_and(|h| h != old_head) {
            break info;
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "the demo environment did not push a new commit; see {}",
                dir.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut w = walker(dir, info)?;
    w.restore(&state);
    w.set_image(REPO, BAD_IMAGE);
    let jobs: Vec<String> = w
        .jobs()
        .into_iter()
        .filter(|j| !w.clocked(j) && j != "resource-types")
        .collect();
    let (manual, automatic): (Vec<String>, Vec<String>) =
        jobs.into_iter().partition(|j| is_manual(&w, j));
    for job in &automatic {
        w.job(job)?;
    }
    eprintln!(
        "\ndemo: the bad release passed the test environment: the acceptance suite does not cover {BROKEN_PATH}. Production next, with a client polling {DEPLOYMENT}{BROKEN_PATH} there."
    );
    let client = Client::start(production.clone());
    let mut outcome = Ok(());
    for job in &manual {
        outcome = w.job(job);
        if outcome.is_err() {
            break;
        }
    }
    let (requests, failures) = client.stop();
    std::fs::write(
        dir.join("state.json"),
        serde_json::to_vec_pretty(&w.state())?,
    )?;
    let (after, canary_left) = production.running()?;
    eprintln!(
        "demo: a client polled production's {DEPLOYMENT}{BROKEN_PATH} during {}: {requests} requests, {} failed{}",
        manual.join(", "),
        failures.len(),
        failures
            .first()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    if outcome.is_ok() {
        anyhow::bail!("the bad release reached production: {DEPLOYMENT} runs {after}");
    }
    anyhow::ensure!(
        !canary_left,
        "the canary Deployment {DEPLOYMENT}-canary is still there"
    );
    anyhow::ensure!(
        after == before,
        "production's {DEPLOYMENT} changed: {before} -> {after}"
    );
    eprintln!(
        "demo: production's canary stopped the bad release (its line is above); production still serves {DEPLOYMENT} {after}, the previous release."
    );
    Ok(())
}
