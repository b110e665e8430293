//! A stateful fake of the GitHub REST API, for the endpoints github-promote-pr uses.
//!
//! Real behaviour, not happy paths: `422 Validation Failed` with "A pull request already
//! exists for OWNER:BRANCH." and "No commits between BASE and HEAD"; `405 Pull Request is not
//! mergeable` (conflicts, required checks not green); `409 Head branch was modified` when the
//! merge `sha` does not match; `401 Bad credentials`; `304 Not Modified` on a matching
//! `If-None-Match` (not counted against the rate limit); `x-ratelimit-*` headers on every
//! answer, a switch that exhausts them (`403` until `x-ratelimit-reset`) and a secondary limit
//! (`403` with `retry-after`); `Link` pagination; `mergeable: null` until GitHub has computed
//! it; GitHub App installation tokens minted from an RS256 JWT. `tests/github_conformance.rs`
//! holds it to the recorded real exchanges: same status, header names, body fields and types.

mod json;
mod routes;
pub mod state;

use crate::Server;
use state::{CheckRun, Limit, Status, World};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

pub(crate) type Shared = Arc<Mutex<World>>;

/// A GitHub App private key (PKCS#1, as GitHub issues them) made for these tests only.
pub const TEST_APP_KEY_PEM: &str = include_str!("../../fixtures/test-github-app.pem");

pub(crate) fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake GitHub API.
#[derive(Debug)]
pub struct FakeGithub {
    server: Server,
    world: Shared,
}

impl FakeGithub {
    /// Starts an empty fake on a free loopback port.
    pub fn start() -> Self {
        let world: Shared = Arc::new(Mutex::new(World::default()));
        let server = Server::start(routes::router(world.clone()));
        lock(&world).base_url = server.url();
        Self { server, world }
    }

    /// Starts on a given listener address (the `fake-github-api` binary).
    pub fn start_on(listener: std::net::TcpListener) -> Self {
        let world: Shared = Arc::new(Mutex::new(World::default()));
        let server = Server::start_on(listener, routes::router(world.clone()));
        lock(&world).base_url = server.url();
        Self { server, world }
    }

    /// The `api_url` clients use.
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// Accepts `token` (a personal access token) from now on.
    pub fn add_token(&self, token: &str) {
        self.world().tokens.insert(token.to_owned(), Limit::fresh());
    }

    /// A repository with `master` and `develop` at the same commit.
    pub fn add_repo(&self, full: &str) {
        self.world().add_repo(full);
    }

    /// Adds `n` commits to `branch`; returns its new head sha.
    pub fn push(&self, full: &str, branch: &str, n: usize) -> String {
        self.world().push(full, branch, n)
    }

    /// Head sha of `branch`.
    pub fn head(&self, full: &str, branch: &str) -> Option<String> {
        self.world()
            .repos
            .get(full)?
            .branches
            .get(branch)?
            .last()
            .cloned()
    }

    /// Sets a commit status (`success`, `pending`, `failure`, `error`).
    pub fn set_status(&self, full: &str, sha: &str, context: &str, state: &str) {
        let mut w = self.world();
        if let Some(repo) = w.repos.get_mut(full) {
            let list = repo.statuses.entry(sha.to_owned()).or_default();
            list.retain(|s| s.context != context);
            list.push(Status {
                context: context.into(),
                state: state.into(),
            });
        }
    }

    /// A status that reads `pending` and turns `state` after `reads` reads of the combined
    /// status (a CI job finishing while the resource waits).
    pub fn set_status_after_reads(
        &self,
        full: &str,
        sha: &str,
        context: &str,
        state: &str,
        reads: u32,
    ) {
        self.set_status(full, sha, context, "pending");
        self.world().settling.push((
            full.to_owned(),
            sha.to_owned(),
            context.to_owned(),
            state.to_owned(),
            reads,
        ));
    }

    /// Someone pushes to the head branch right before the next merge request is handled.
    pub fn push_before_next_merge(&self, full: &str) {
        self.world().race_before_merge.push(full.to_owned());
    }

    /// Sets a check run (`queued`/`in_progress`/`completed`, conclusion when completed).
    pub fn set_check_run(
        &self,
        full: &str,
        sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        let mut w = self.world();
        if let Some(repo) = w.repos.get_mut(full) {
            let list = repo.check_runs.entry(sha.to_owned()).or_default();
            list.retain(|c| c.name != name);
            list.push(CheckRun {
                name: name.into(),
                status: status.into(),
                conclusion: conclusion.map(str::to_owned),
            });
        }
    }

    /// Requires these status contexts (or check-run names) on `branch`.
    pub fn protect(&self, full: &str, branch: &str, contexts: &[&str]) {
        if let Some(repo) = self.world().repos.get_mut(full) {
            repo.protection.insert(
                branch.to_owned(),
                contexts.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
    }

    /// Marks pull request `number` as conflicting with its base.
    pub fn set_conflict(&self, full: &str, number: u64, conflict: bool) {
        if let Some(p) = self
            .world()
            .repos
            .get_mut(full)
            .and_then(|r| r.pulls.iter_mut().find(|p| p.number == number))
        {
            p.conflict = conflict;
        }
    }

    /// Uses up `token`'s quota until `reset_in` from now.
    pub fn exhaust_rate_limit(&self, token: &str, reset_in: Duration) {
        if let Some(limit) = self.world().tokens.get_mut(token) {
            limit.remaining = 0;
            limit.reset = SystemTime::now() + reset_in;
        }
    }

    /// The next `n` requests get a secondary rate limit with `retry-after: secs`.
    pub fn secondary_rate_limit(&self, n: u32, secs: u64) {
        self.world().secondary = (n, secs);
    }

    /// Registers GitHub App `app_id` whose JWTs verify with this RSA private key's public
    /// half (PEM, PKCS#1 or PKCS#8), and its installation.
    pub fn add_app(&self, app_id: u64, installation_id: u64, private_key_pem: &str) {
        use ring::signature::KeyPair as _;
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject as _;
        let der =
            PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes()).expect("a PEM private key");
        let pair = match &der {
            PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => {
                ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
            }
            _ => panic!("an RSA key"),
        }
        .expect("an RSA key");
        let mut w = self.world();
        w.apps.insert(app_id, pair.public_key().as_ref().to_vec());
        w.installations.insert(installation_id, app_id);
    }

    /// Seeds `n` merged pull requests `head` -> `base` (history for check and pagination).
    pub fn add_merged_pulls(&self, full: &str, head: &str, base: &str, n: usize) {
        let mut w = self.world();
        w.add_repo(full);
        for _ in 0..n {
            let sha = w.new_sha();
            let merge = w.new_sha();
            let repo = w.repos.get_mut(full).expect("added");
            let number = repo.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
            repo.pulls.push(state::Pull {
                number,
                title: format!("Promote {head} to {base}"),
                body: String::new(),
                head: head.to_owned(),
                base: base.to_owned(),
                head_sha: sha,
                state: "closed".into(),
                merged: true,
                merge_commit_sha: Some(merge),
                labels: Vec::new(),
                reviewers: Vec::new(),
                teams: Vec::new(),
                draft: false,
                commits: 1,
                mergeability_known: true,
                conflict: false,
            });
        }
    }

    /// Marks pull request `number` a draft.
    pub fn set_draft(&self, full: &str, number: u64, draft: bool) {
        if let Some(p) = self
            .world()
            .repos
            .get_mut(full)
            .and_then(|r| r.pulls.iter_mut().find(|p| p.number == number))
        {
            p.draft = draft;
        }
    }

    /// Pull requests of `full`: (number, state, merged, title).
    pub fn pulls(&self, full: &str) -> Vec<(u64, String, bool, String)> {
        self.world()
            .repos
            .get(full)
            .map(|r| {
                r.pulls
                    .iter()
                    .map(|p| (p.number, p.state.clone(), p.merged, p.title.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Body and labels of pull request `number`.
    pub fn pull_detail(
        &self,
        full: &str,
        number: u64,
    ) -> Option<(String, Vec<String>, Vec<String>)> {
        let w = self.world();
        let p = w
            .repos
            .get(full)?
            .pulls
            .iter()
            .find(|p| p.number == number)?;
        Some((p.body.clone(), p.labels.clone(), p.reviewers.clone()))
    }

    /// `METHOD path` of every request served, and whether it was a 304.
    pub fn requests(&self) -> Vec<String> {
        self.world().requests.clone()
    }

    /// Remaining quota of `token`.
    pub fn remaining(&self, token: &str) -> Option<u64> {
        self.world().tokens.get(token).map(|l| l.remaining)
    }
}
