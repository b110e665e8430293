//! The demo's outside world, on loopback, and what the walker needs to know about it
//! (`env.json`: addresses, the `((vars))`, the repositories' develop heads).

use crate::DemoRepo;
use fakes::github::FakeGithub;
use fakes::google::{GoogleTokenServer, service_account_json};
use fakes::kube::{FakeKube, Options};
use fakes::registry::{Auth, Registry};
use serde_json::{Value, json};
use std::process::Command;

/// The access token Google grants the demo's service account; the production cluster takes it.
pub const GKE_TOKEN: &str = "demo-gke-access-token";
/// The GitHub token of the pipeline (a canary: the demo's tests check it is never printed).
pub const GITHUB_TOKEN: &str = "demo-github-token-0b5e7c";
pub const GITHUB_ORG: &str = "sample-org";

/// Everything running for the demo; stopped (containers included) when dropped.
#[derive(Debug)]
pub struct Env {
    pub registry: Registry,
    pub google: GoogleTokenServer,
    pub test: FakeKube,
    pub prod: FakeKube,
    pub github: FakeGithub,
    /// `name` -> develop head sha.
    pub heads: Vec<(String, String)>,
}

fn say(line: &str) {
    eprintln!("demo: {line}");
}

impl Env {
    /// Starts the registry, the Google token endpoint, the test and production clusters (pods
    /// as Docker containers), the GitHub fake with `repos` (develop two commits ahead of
    /// master), and publishes our resource images to the registry as the platform team would.
    pub fn start(repos: &[DemoRepo]) -> anyhow::Result<Self> {
        let registry = Registry::start(Auth::None);
        say(&format!(
            "registry (Debian docker-registry) at {}",
            registry.host()
        ));
        let google = GoogleTokenServer::start(GKE_TOKEN);
        let test = FakeKube::try_start_on(
            std::net::TcpListener::bind("127.0.0.1:0")?,
            Options {
                docker: true,
                ..Options::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        say(&format!(
            "test cluster (Kubernetes fake, pods in Docker) at {}",
            test.url()
        ));
        let prod = FakeKube::try_start_on(
            std::net::TcpListener::bind("127.0.0.1:0")?,
            Options {
                docker: true,
                tls: true,
                token: Some(GKE_TOKEN.into()),
                ..Options::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        prod.ensure_namespace("microservices");
        say(&format!(
            "production cluster (TLS, GKE-style token) at {}",
            prod.url()
        ));
        let github = FakeGithub::start();
        github.add_token(GITHUB_TOKEN);
        let mut heads = Vec::new();
        for r in repos {
            let full = format!("{GITHUB_ORG}/{}", r.name);
            github.add_repo(&full);
            let head = github.push(&full, "develop", 2);
            heads.push((r.name.clone(), head));
        }
        say(&format!(
            "GitHub fake at {} with {} repositories",
            github.url(),
            repos.len()
        ));
        let env = Self {
            registry,
            google,
            test,
            prod,
            github,
            heads,
        };
        env.publish_resource_types()?;
        Ok(env)
    }

    /// Our four resource images, pushed to the registry as `resource_types` expects them (the
    /// kubernetes runner's reporter image is pulled from there by the cluster).
    fn publish_resource_types(&self) -> anyhow::Result<()> {
        for t in [
            "gcr-image",
            "k8s-deploy",
            "github-promote-pr",
            "acceptance-run",
        ] {
            let target = format!("{}/microservices-kube/{t}:dev", self.registry.host());
            docker(&["tag", &format!("{t}:dev"), &target])?;
            docker(&["push", "--quiet", &target])?;
        }
        say("resource type images pushed to the registry");
        Ok(())
    }

    /// A new commit on `name`'s develop branch (a new release to build): its sha.
    pub fn push(&mut self, name: &str) -> Option<String> {
        let (_, head) = self.heads.iter_mut().find(|(n, _)| n == name)?;
        *head = self
            .github
            .push(&format!("{GITHUB_ORG}/{name}"), "develop", 1);
        Some(head.clone())
    }

    /// What the walker needs: addresses and the `((vars))` (secrets included: this file is the
    /// demo's vars file, kept in the demo's directory, never printed).
    pub fn info(&self) -> Value {
        let vars = json!({
            "GOOGLE_CLOUD_AUTH_KEY": service_account_json(&self.google.token_uri()),
            "TEST_KUBECONFIG": self.test.kubeconfig(),
            "PROD_CLUSTER_SERVER": self.prod.url(),
            "PROD_CLUSTER_CA": self.prod.ca_pem().unwrap_or_default(),
            "GITHUB_TOKEN": GITHUB_TOKEN,
            "github-org": GITHUB_ORG,
            "resource-types-tag": "dev",
            "ci-repository-uri": "git@github.com:sample-org/ci.git",
        });
        json!({
            "registry": self.registry.host(),
            "github": self.github.url(),
            "vars": vars,
            "heads": self.heads.iter().map(|(n, h)| (n.clone(), json!(h))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

impl Drop for Env {
    /// Untags the resource type images pushed to this registry (the `:dev` images stay).
    fn drop(&mut self) {
        for t in [
            "gcr-image",
            "k8s-deploy",
            "github-promote-pr",
            "acceptance-run",
        ] {
            let _ = docker(&[
                "rmi",
                &format!("{}/microservices-kube/{t}:dev", self.registry.host()),
            ]);
        }
    }
}

pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output().map_err(|e| {
        anyhow::anyhow!("cannot run docker ({e}); the demo needs the Docker CLI and daemon")
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
