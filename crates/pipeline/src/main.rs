//! `pipeline render` (writes ci/pipeline.yml and ci/k8s/services.yml from ci/repos.yml) and
//! `pipeline check [FILE]` (prints `FILE:LINE: problem` lines, exits 1 if any).

// A command-line tool: its findings are its stdout.
#![allow(clippy::print_stdout)]

use anyhow::Context as _;
use pipeline::{check, render};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    match args.first().map(String::as_str) {
        Some("render") => {
            let table =
                std::fs::read_to_string(root.join("ci/repos.yml")).context("read ci/repos.yml")?;
            let repos = render::repos(&table).map_err(anyhow::Error::msg)?;
            let keys = render::google_keys(&table).map_err(anyhow::Error::msg)?;
            let production = render::production(&table, &repos).map_err(anyhow::Error::msg)?;
            std::fs::write(
                root.join("ci/pipeline.yml"),
                render::pipeline_for(&repos, &keys, &production),
            )
            .context("write ci/pipeline.yml")?;
            std::fs::create_dir_all(root.join("ci/k8s"))?;
            std::fs::write(root.join("ci/k8s/services.yml"), render::services(&repos))
                .context("write ci/k8s/services.yml")?;
            println!(
                "rendered ci/pipeline.yml and ci/k8s/services.yml from {} repositories",
                repos.len()
            );
            Ok(())
        }
        Some("check") => {
            // pipeline check [--concourse-only] [--vars FILE] [--allow-type TYPE]... [FILE]
            let mut concourse_only = false;
            let mut allowed_types = std::collections::BTreeSet::new();
            let mut vars_file: Option<PathBuf> = None;
            let mut file: Option<PathBuf> = None;
            let mut rest = args[1..].iter();
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--concourse-only" => concourse_only = true,
                    "--vars" => match rest.next() {
                        Some(v) => vars_file = Some(PathBuf::from(v)),
                        None => usage(),
                    },
                    "--allow-type" => match rest.next() {
                        Some(t) => {
                            allowed_types.insert(t.clone());
                        }
                        None => usage(),
                    },
                    flag if flag.starts_with('-') => usage(),
                    path => file = Some(PathBuf::from(path)),
                }
            }
            let file = file.unwrap_or_else(|| root.join("ci/pipeline.yml"));
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("pipeline check: cannot read {}: {e}", file.display());
                    std::process::exit(2)
                }
            };
            // The vars example beside the checked file (ci/pipeline.yml -> ci/vars.example.yml),
            // or --vars; without one, the vars rule is skipped.
            let vars_file = vars_file.or_else(|| {
                let beside = file.with_file_name("vars.example.yml");
                beside.is_file().then_some(beside)
            });
            let vars = match &vars_file {
                None => None,
                Some(v) => {
                    let text = match std::fs::read_to_string(v) {
                        Ok(t) => t,
                        Err(e) => {
                            eprintln!("pipeline check: cannot read {}: {e}", v.display());
                            std::process::exit(2)
                        }
                    };
                    match check::var_names(&text) {
                        Ok(names) => Some(names),
                        Err(e) => {
                            eprintln!("pipeline check: {}:{e}", v.display());
                            std::process::exit(2)
                        }
                    }
                }
            };
            // This repository: the directory above ci/ (task files are looked up there).
            let repo_root = file
                .canonicalize()
                .ok()
                .and_then(|f| f.parent()?.parent().map(Path::to_path_buf));
            let findings: Vec<check::Finding> = check::check(
                &text,
                &check::Context {
                    self_resource: Some("ci".into()),
                    root: repo_root,
                    vars,
                    allowed_types,
                },
            )
            .into_iter()
            .filter(|f| !concourse_only || !f.message.starts_with(check::PROJECT))
            .collect();
            for f in &findings {
                println!("{}:{}: {}", file.display(), f.line, f.message);
            }
            if findings.is_empty() {
                println!("{}: ok", file.display());
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Some("publish") => {
            let flag = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            let (Some(registry), Some(tag)) = (flag("--registry"), flag("--tag")) else {
                eprintln!(
                    "usage: pipeline publish --registry HOST/PATH --tag TAG [--gcr-image BINARY]"
                );
                std::process::exit(2)
            };
            let gcr_image = flag("--gcr-image")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/x86_64-unknown-linux-gnu/image/gcr-image"));
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            for (reference, digest) in
                pipeline::publish::publish(&registry, &tag, &gcr_image, &env)?
            {
                println!("{reference}@{digest}");
            }
            Ok(())
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: pipeline render | pipeline check [--concourse-only] [--vars FILE] [--allow-type TYPE]... [FILE] | pipeline publish --registry HOST/PATH --tag TAG"
    );
    std::process::exit(2)
}
