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
            std::fs::write(
                root.join("ci/pipeline.yml"),
                render::pipeline_with(&repos, &keys),
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
            let file = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("ci/pipeline.yml"));
            let findings = run_check(&file, &root)?;
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
        _ => {
            eprintln!(
                "usage: pipeline render | pipeline check [FILE] | pipeline publish --registry HOST/PATH --tag TAG"
            );
            std::process::exit(2)
        }
    }
}

fn run_check(file: &Path, root: &Path) -> anyhow::Result<Vec<check::Finding>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let vars_text = std::fs::read_to_string(root.join("ci/vars.example.yml"))
        .context("read ci/vars.example.yml")?;
    let vars =
        check::var_names(&vars_text).map_err(|e| anyhow::anyhow!("ci/vars.example.yml:{e}"))?;
    Ok(check::check(
        &text,
        &check::Context {
            self_resource: Some("ci".into()),
            root: Some(root.to_path_buf()),
            vars: Some(vars),
        },
    ))
}
