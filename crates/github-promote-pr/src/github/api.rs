//! The calls this resource makes, each one request (or one paged listing) through
//! `Github::call`: compare, pull requests, labels, reviewers, required checks, check runs and
//! statuses, merge.

use super::{CheckState, Github, GithubError, Pull};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

impl Github {
    /// Commits of `head` that `base` lacks, and `head`'s sha.
    pub async fn compare(&self, base: &str, head: &str) -> Result<(u64, String), GithubError> {
        let what = format!("compare {base}...{head} of {}/{}", self.owner, self.repo);
        let reply = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!(
                    "/compare/{}...{}?per_page=1",
                    in_path(base),
                    in_path(head)
                )),
                None,
                None,
            )
            .await?;
        if reply.status != 200 {
            return Err(self.error(&what, &reply));
        }
        let v = reply.json();
        let ahead = v["ahead_by"].as_u64().unwrap_or(0);
        let sha = v["commits"]
            .as_array()
            .and_then(|c| c.last())
            .and_then(|c| c["sha"].as_str())
            .map(str::to_owned)
            .unwrap_or_default();
        Ok((ahead, sha))
    }

    /// Pull requests `head` -> `base` in `state` (`open`, `all`), with an optional ETag for a
    /// conditional request. `Ok(None)`: not modified.
    pub async fn list_pulls(
        &self,
        head: &str,
        base: &str,
        state: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<Pull>, Option<String>)>, GithubError> {
        let what = format!(
            "list the pull requests {head} -> {base} of {}/{}",
            self.owner, self.repo
        );
        let mut headers = HeaderMap::new();
        if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(HeaderName::from_static("if-none-match"), tag);
        }
        let mut path = Some(self.repo_path(&format!(
            "/pulls?state={state}&head={}&base={}&per_page=100&direction=asc",
            in_query(&format!("{}:{head}", self.owner)),
            in_query(base)
        )));
        let mut all = Vec::new();
        let mut first_etag = None;
        while let Some(p) = path.take() {
            let reply = self
                .call(&what, http::Method::GET, &p, None, Some(headers.clone()))
                .await?;
            if reply.status == 304 {
                return Ok(None);
            }
            if reply.status != 200 {
                return Err(self.error(&what, &reply));
            }
            if first_etag.is_none() {
                first_etag = reply.header("etag").map(str::to_owned);
            }
            let page: Vec<Pull> =
                serde_json::from_str(&reply.body).map_err(|e| GithubError::Other {
                    what: what.clone(),
                    status: 200,
                    message: format!("unexpected JSON: {e}"),
                })?;
            all.extend(page);
            path = reply
                .header("link")
                .and_then(protocol::text::next_link)
                .map(|u| {
                    u.split_once("://")
                        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                        .unwrap_or(u)
                });
            headers = HeaderMap::new();
        }
        Ok(Some((all, first_etag)))
    }

    pub async fn create_pull(
        &self,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Result<Result<Pull, Vec<String>>, GithubError> {
        let what = format!("open a pull request in {}/{}", self.owner, self.repo);
        let reply = self.call(&what, http::Method::POST, &self.repo_path("/pulls"), Some(json!({"title": title, "body": body, "head": self.head_label(), "base": self.base_name(), "draft": draft, "maintainer_can_modify": false})), None).await?;
        match reply.status {
            201 => serde_json::from_str(&reply.body)
                .map(Ok)
                .map_err(|e| GithubError::Other {
                    what,
                    status: 201,
                    message: e.to_string(),
                }),
            422 => Ok(Err(reply.errors())),
            _ => Err(self.error(&what, &reply)),
        }
    }

    fn head_label(&self) -> String {
        format!("{}:{}", self.owner, self.head)
    }

    fn base_name(&self) -> String {
        self.base.clone()
    }

    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<Pull, GithubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        self.call_for(
            &format!("update pull request #{number}"),
            http::Method::PATCH,
            &path,
            Some(json!({"title": title, "body": body})),
            200,
        )
        .await
    }

    pub async fn get_pull(&self, number: u64) -> Result<Pull, GithubError> {
        self.read_pull(number).await
    }

    /// The raw JSON of a pull request (what `in` writes).
    pub async fn get_pull_json(&self, number: u64) -> Result<Value, GithubError> {
        self.read_pull(number).await
    }

    async fn read_pull<T: serde::de::DeserializeOwned>(
        &self,
        number: u64,
    ) -> Result<T, GithubError> {
        let what = format!(
            "read pull request #{number} of {}/{}",
            self.owner, self.repo
        );
        self.call_for(
            &what,
            http::Method::GET,
            &self.repo_path(&format!("/pulls/{number}")),
            None,
            200,
        )
        .await
    }

    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), GithubError> {
        let path = self.repo_path(&format!("/issues/{number}/labels"));
        let _: Value = self
            .call_for(
                &format!("label pull request #{number}"),
                http::Method::POST,
                &path,
                Some(json!({"labels": labels})),
                200,
            )
            .await?;
        Ok(())
    }

    pub async fn request_reviewers(
        &self,
        number: u64,
        users: &[String],
        teams: &[String],
    ) -> Result<(), GithubError> {
        let path = self.repo_path(&format!("/pulls/{number}/requested_reviewers"));
        let body = json!({"reviewers": users, "team_reviewers": teams});
        let _: Value = self
            .call_for(
                &format!("request reviewers on pull request #{number}"),
                http::Method::POST,
                &path,
                Some(body),
                201,
            )
            .await?;
        Ok(())
    }

    /// The contexts branch protection requires on `base`; `None` when it requires none.
    pub async fn required_checks(&self, base: &str) -> Result<Option<Vec<String>>, GithubError> {
        let what = format!("read the required checks of {base}");
        let reply = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!(
                    "/branches/{}/protection/required_status_checks",
                    in_path(base)
                )),
                None,
                None,
            )
            .await?;
        match reply.status {
            200 => {
                let v = reply.json();
                let mut contexts: Vec<String> = v["contexts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                for c in v["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["context"].as_str())
                {
                    if !contexts.iter().any(|x| x == c) {
                        contexts.push(c.to_owned());
                    }
                }
                Ok(Some(contexts))
            }
            // Not protected, or protected without required checks; 403 when the token may not
            // read protection: then every reported check must pass.
            404 | 403 => Ok(None),
            _ => Err(self.error(&what, &reply)),
        }
    }

    /// Every commit status context and check run on `sha`, reduced to one state each.
    pub async fn checks(&self, sha: &str) -> Result<Vec<(String, CheckState)>, GithubError> {
        let what = format!("read the checks of {}", &sha[..sha.len().min(12)]);
        let statuses = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!("/commits/{sha}/status")),
                None,
                None,
            )
            .await?;
        if statuses.status != 200 {
            return Err(self.error(&what, &statuses));
        }
        let runs = self
            .call(
                &what,
                http::Method::GET,
                &self.repo_path(&format!("/commits/{sha}/check-runs?per_page=100")),
                None,
                None,
            )
            .await?;
        if runs.status != 200 {
            return Err(self.error(&what, &runs));
        }
        let mut out = Vec::new();
        for s in statuses.json()["statuses"].as_array().into_iter().flatten() {
            let state = match s["state"].as_str() {
                Some("success") => CheckState::Success,
                Some("failure" | "error") => CheckState::Failure,
                _ => CheckState::Pending,
            };
            out.push((s["context"].as_str().unwrap_or("").to_owned(), state));
        }
        for r in runs.json()["check_runs"].as_array().into_iter().flatten() {
            let state = match (r["status"].as_str(), r["conclusion"].as_str()) {
                (Some("completed"), Some("success" | "neutral" | "skipped")) => CheckState::Success,
                (Some("completed"), _) => CheckState::Failure,
                _ => CheckState::Pending,
            };
            out.push((r["name"].as_str().unwrap_or("").to_owned(), state));
        }
        Ok(out)
    }

    /// Merges `number` if its head is still `sha`. `Ok(merge commit sha)`, or GitHub's refusal.
    pub async fn merge(
        &self,
        number: u64,
        sha: &str,
        method: &str,
    ) -> Result<Result<String, (u16, String)>, GithubError> {
        let what = format!("merge pull request #{number}");
        let reply = self
            .call(
                &what,
                http::Method::PUT,
                &self.repo_path(&format!("/pulls/{number}/merge")),
                Some(json!({"sha": sha, "merge_method": method})),
                None,
            )
            .await?;
        match reply.status {
            200 => Ok(Ok(reply.json()["sha"].as_str().unwrap_or("").to_owned())),
            405 | 409 => Ok(Err((reply.status, reply.message()))),
            _ => Err(self.error(&what, &reply)),
        }
    }
}

/// A branch name as a URL path segment: everything but unreserved characters and `/` (which
/// GitHub reads as part of the name there) percent-encoded, so `#` or `?` cannot end the path.
fn in_path(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &UNRESERVED_KEPT.remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A value in a query string (`owner:branch`): only unreserved characters and `:` kept.
fn in_query(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &UNRESERVED_KEPT.remove(b':');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Everything encoded but RFC 3986's unreserved characters.
const UNRESERVED_KEPT: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
