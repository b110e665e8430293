//! The fake's world: repositories with branches (commit histories), pull requests, statuses,
//! check runs, branch protection; tokens, GitHub App installations, rate limits.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub state: String,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub teams: Vec<String>,
    pub draft: bool,
    pub commits: u64,
    /// GitHub computes mergeability in the background: `null` on the first read.
    pub mergeability_known: bool,
    pub conflict: bool,
}

impl Pull {
    pub fn mergeable_json(&self) -> Value {
        match (self.state.as_str(), self.mergeability_known) {
            ("open", false) => Value::Null,
            ("open", true) => Value::Bool(!self.conflict),
            _ => Value::Null,
        }
    }

    pub fn mergeable_state(&self) -> &'static str {
        match (self.state.as_str(), self.mergeability_known, self.conflict) {
            ("open", false, _) => "unknown",
            ("open", true, true) => "dirty",
            ("open", true, false) => "clean",
            _ => "unknown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub context: String,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    /// Branch name -> its history, oldest first; the last is the head commit.
    pub branches: BTreeMap<String, Vec<String>>,
    pub pulls: Vec<Pull>,
    pub statuses: HashMap<String, Vec<Status>>,
    pub check_runs: HashMap<String, Vec<CheckRun>>,
    /// Branch -> required status contexts (branch protection).
    pub protection: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Limit {
    pub limit: u64,
    pub remaining: u64,
    pub reset: SystemTime,
}

impl Limit {
    pub fn fresh() -> Self {
        Self {
            limit: 5000,
            remaining: 5000,
            reset: SystemTime::now() + Duration::from_secs(3600),
        }
    }

    pub fn reset_epoch(&self) -> u64 {
        self.reset
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

#[derive(Debug, Default)]
pub struct World {
    pub base_url: String,
    pub repos: BTreeMap<String, Repo>,
    pub tokens: HashMap<String, Limit>,
    /// App id -> RSA public key (DER, PKCS#1) that verifies its JWTs.
    pub apps: HashMap<u64, Vec<u8>>,
    pub installations: HashMap<u64, u64>,
    /// Next N requests answered with a secondary rate limit (403 + retry-after).
    pub secondary: (u32, u64),
    /// (repo, sha, context, final state, reads left): a status that settles after some reads.
    pub settling: Vec<(String, String, String, String, u32)>,
    /// Repositories where a commit lands on the head branch just before the next merge.
    pub race_before_merge: Vec<String>,
    pub requests: Vec<String>,
    next_sha: u64,
}

impl World {
    pub fn new_sha(&mut self) -> String {
        self.next_sha += 1;
        // 40 hex digits, deterministic, spread like git's (short refs differ).
        let d = ring::digest::digest(&ring::digest::SHA256, &self.next_sha.to_be_bytes());
        d.as_ref()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Ensures `owner/name` with `master` and `develop` at the same commit.
    pub fn add_repo(&mut self, full: &str) {
        if self.repos.contains_key(full) {
            return;
        }
        let (owner, name) = full.split_once('/').unwrap_or(("org", full));
        let sha = self.new_sha();
        let mut repo = Repo {
            id: self.repos.len() as u64 + 1,
            owner: owner.into(),
            name: name.into(),
            ..Repo::default()
        };
        repo.branches.insert("master".into(), vec![sha.clone()]);
        repo.branches.insert("develop".into(), vec![sha]);
        self.repos.insert(full.to_owned(), repo);
    }

    /// Adds `n` commits to `branch` (created from master if missing); returns the new head.
    pub fn push(&mut self, full: &str, branch: &str, n: usize) -> String {
        self.add_repo(full);
        let shas: Vec<String> = (0..n).map(|_| self.new_sha()).collect();
        let repo = self.repos.get_mut(full).expect("repo just added");
        let base = repo.branches.get("master").cloned().unwrap_or_default();
        let history = repo.branches.entry(branch.to_owned()).or_insert(base);
        history.extend(shas);
        let head = history.last().cloned().unwrap_or_default();
        // Open pull requests follow their head branch.
        for p in repo
            .pulls
            .iter_mut()
            .filter(|p| p.state == "open" && p.head == branch)
        {
            p.head_sha = head.clone();
            p.mergeability_known = false;
        }
        head
    }

    /// Commits of `head` that `base` lacks, and the reverse.
    pub fn compare(repo: &Repo, base: &str, head: &str) -> Option<(Vec<String>, Vec<String>)> {
        let b = repo.branches.get(base)?;
        let h = repo.branches.get(head)?;
        let ahead = h.iter().filter(|c| !b.contains(c)).cloned().collect();
        let behind = b.iter().filter(|c| !h.contains(c)).cloned().collect();
        Some((ahead, behind))
    }
}
