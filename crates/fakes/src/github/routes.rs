//! The fake's HTTP surface: one middleware for what every GitHub answer has (authentication,
//! rate-limit headers and refusals, ETags and 304s), then one handler per endpoint.

use super::json;
use super::state::{Limit, Pull, World};
use super::{Shared, lock};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Answer = (StatusCode, HeaderMap, Value);

fn answer(status: StatusCode, body: Value) -> Answer {
    (status, HeaderMap::new(), body)
}

fn err(status: StatusCode, message: &str) -> Answer {
    answer(status, json::error(message, status.as_u16()))
}

fn validation(message: &str, errors: Value) -> Answer {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        HeaderMap::new(),
        json!({"message": message, "errors": errors, "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "422"}),
    )
}

pub fn router(world: Shared) -> Router {
    Router::new()
        .route("/user", get(user))
        .route("/rate_limit", get(rate_limit))
        .route("/repos/{owner}/{repo}", get(repository))
        .route("/repos/{owner}/{repo}/compare/{basehead}", get(compare))
        .route(
            "/repos/{owner}/{repo}/pulls",
            get(list_pulls).post(create_pull),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}",
            get(get_pull).patch(update_pull),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/merge",
            put(merge).get(merged),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers",
            post(request_reviewers),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/labels",
            post(add_labels),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{reference}/status",
            get(combined_status),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{reference}/check-runs",
            get(check_runs),
        )
        .route(
            "/repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks",
            get(required_checks),
        )
        .route(
            "/app/installations/{id}/access_tokens",
            post(installation_token),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json::error("Not Found", 404)),
            )
        })
        .layer(middleware::from_fn_with_state(world.clone(), github))
        .with_state(world)
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("token ")
        .or_else(|| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rate_headers(headers: &mut HeaderMap, limit: &Limit) {
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(headers, "x-ratelimit-limit", limit.limit.to_string());
    set(
        headers,
        "x-ratelimit-remaining",
        limit.remaining.to_string(),
    );
    set(
        headers,
        "x-ratelimit-reset",
        limit.reset_epoch().to_string(),
    );
    set(
        headers,
        "x-ratelimit-used",
        (limit.limit - limit.remaining).to_string(),
    );
    set(headers, "x-ratelimit-resource", "core".to_owned());
}

fn finish(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    h.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Authentication, rate limits, ETags: what every GitHub answer goes through.
async fn github(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let line = format!("{method} {}", request.uri());
    let app_route = path.starts_with("/app/");
    let token = token_of(request.headers());
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    // Authentication and quotas (App routes authenticate with a JWT in their handler).
    let mut limit_snapshot = None;
    if !app_route {
        let mut w = lock(&world);
        w.requests.push(line.clone());
        let Some(token) = token.clone() else {
            return finish(json_response(
                StatusCode::UNAUTHORIZED,
                &json::error("Requires authentication", 401),
            ));
        };
        if !w.tokens.contains_key(&token) {
            return finish(json_response(
                StatusCode::UNAUTHORIZED,
                &json::error("Bad credentials", 401),
            ));
        }
        if w.secondary.0 > 0 {
            w.secondary.0 -= 1;
            let secs = w.secondary.1;
            let mut r = json_response(
                StatusCode::FORBIDDEN,
                &json::error(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    403,
                ),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            return finish(r);
        }
        let limit = w.tokens.get_mut(&token).expect("checked above");
        if limit.remaining == 0 && SystemTime::now() >= limit.reset {
            *limit = Limit::fresh();
        }
        if limit.remaining == 0 {
            let mut r = json_response(
                StatusCode::FORBIDDEN,
                &json::error(
                    "API rate limit exceeded for user ID 77. If you reach out to GitHub Support for help, please include the request ID.",
                    403,
                ),
            );
            rate_headers(r.headers_mut(), limit);
            return finish(r);
        }
        limit_snapshot = Some(token);
    } else {
        lock(&world).requests.push(line.clone());
    }

    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();

    // ETag on successful GETs; a matching If-None-Match is a 304 that costs no quota.
    let mut not_modified = false;
    if method == Method::GET && parts.status == StatusCode::OK {
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let etag = format!("W/\"{}\"", hex(&digest.as_ref()[..16]));
        not_modified = if_none_match.as_deref() == Some(etag.as_str());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            parts.headers.insert(header::ETAG, v);
        }
    }
    let mut w = lock(&world);
    if let Some(token) = limit_snapshot
        && let Some(limit) = w.tokens.get_mut(&token)
    {
        if !not_modified {
            limit.remaining = limit.remaining.saturating_sub(1);
        }
        rate_headers(&mut parts.headers, limit);
    }
    if not_modified {
        if let Some(last) = w.requests.last_mut() {
            last.push_str(" -> 304");
        }
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        return finish(Response::from_parts(parts, Body::empty()));
    }
    finish(Response::from_parts(parts, Body::from(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn respond((status, headers, body): Answer) -> Response {
    let mut r = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        json_response(status, &body)
    };
    r.headers_mut().extend(headers);
    r
}

async fn user(State(world): State<Shared>) -> Response {
    let base = lock(&world).base_url.clone();
    respond(answer(
        StatusCode::OK,
        json::user(&base, "concourse-ci", 77),
    ))
}

async fn rate_limit(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let w = lock(&world);
    let limit = token_of(&headers)
        .and_then(|t| w.tokens.get(&t).cloned())
        .unwrap_or_else(Limit::fresh);
    let core = json!({"limit": limit.limit, "remaining": limit.remaining, "reset": limit.reset_epoch(), "used": limit.limit - limit.remaining, "resource": "core"});
    respond(answer(
        StatusCode::OK,
        json!({"resources": {"core": core}, "rate": core}),
    ))
}

fn with_repo(
    world: &Shared,
    owner: &str,
    repo: &str,
    f: impl FnOnce(&mut World, String) -> Answer,
) -> Response {
    let mut w = lock(world);
    let full = format!("{owner}/{repo}");
    if !w.repos.contains_key(&full) {
        return respond(err(StatusCode::NOT_FOUND, "Not Found"));
    }
    respond(f(&mut w, full))
}

async fn repository(
    State(world): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        answer(StatusCode::OK, json::repo(&w.base_url, &w.repos[&full]))
    })
}

async fn compare(
    State(world): State<Shared>,
    Path((owner, repo, basehead)): Path<(String, String, String)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let Some((base, head)) = basehead.split_once("...") else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let r = &w.repos[&full];
        let Some((ahead, behind)) = World::compare(r, base, head) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let base_sha = r.branches[base].last().cloned().unwrap_or_default();
        let status = match (ahead.is_empty(), behind.is_empty()) {
            (true, true) => "identical",
            (false, true) => "ahead",
            (true, false) => "behind",
            (false, false) => "diverged",
        };
        let u = format!("{}/repos/{full}", w.base_url);
        let commits: Vec<Value> = ahead
            .iter()
            .map(|c| json::commit(&w.base_url, r, c, None))
            .collect();
        answer(
            StatusCode::OK,
            json!({
                "url": format!("{u}/compare/{basehead}"), "html_url": format!("https://github.com/{full}/compare/{basehead}"),
                "permalink_url": format!("https://github.com/{full}/compare/{basehead}"),
                "diff_url": format!("https://github.com/{full}/compare/{basehead}.diff"),
                "patch_url": format!("https://github.com/{full}/compare/{basehead}.patch"),
                "base_commit": json::commit(&w.base_url, r, &base_sha, None),
                "merge_base_commit": json::commit(&w.base_url, r, &base_sha, None),
                "status": status, "ahead_by": ahead.len(), "behind_by": behind.len(), "total_commits": ahead.len(),
                "commits": commits, "files": [],
            }),
        )
    })
}

fn branch_of(head: &str) -> &str {
    head.split_once(':').map_or(head, |(_, b)| b)
}

async fn list_pulls(
    State(world): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let r = &w.repos[&full];
        let state = q.get("state").map_or("open", String::as_str);
        let mut list: Vec<&Pull> = r
            .pulls
            .iter()
            .filter(|p| state == "all" || p.state == state)
            .filter(|p| {
                q.get("head").is_none_or(|h| {
                    branch_of(h) == p.head && h.split_once(':').is_none_or(|(o, _)| o == r.owner)
                })
            })
            .filter(|p| q.get("base").is_none_or(|b| *b == p.base))
            .collect();
        // Default sort: newest first.
        if q.get("direction").map(String::as_str) == Some("asc") {
            list.sort_by_key(|p| p.number);
        } else {
            list.sort_by_key(|p| std::cmp::Reverse(p.number));
        }
        let per_page: usize = q
            .get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page: usize = q
            .get("page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1);
        let pages = list.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = list
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|p| json::pull(&w.base_url, r, p))
            .collect();
        let mut headers = HeaderMap::new();
        if pages > 1 {
            let mut query: Vec<(String, String)> = q
                .iter()
                .filter(|(k, _)| k.as_str() != "page")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            query.sort();
            let base = format!(
                "{}/repos/{full}/pulls?{}",
                w.base_url,
                query
                    .iter()
                    .map(|(k, v)| format!("{k}={v}&"))
                    .collect::<String>()
            );
            let mut links = Vec::new();
            if page < pages {
                links.push(format!("<{base}page={}>; rel=\"next\"", page + 1));
                links.push(format!("<{base}page={pages}>; rel=\"last\""));
            }
            if page > 1 {
                links.push(format!("<{base}page={}>; rel=\"prev\"", page - 1));
                links.push(format!("<{base}page=1>; rel=\"first\""));
            }
            if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
                headers.insert(header::LINK, v);
            }
        }
        (StatusCode::OK, headers, Value::Array(items))
    })
}

async fn create_pull(
    State(world): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    body: String,
) -> Response {
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return respond(err(StatusCode::BAD_REQUEST, "Problems parsing JSON"));
    };
    with_repo(&world, &owner, &repo, |w, full| {
        let (Some(title), Some(head), Some(base)) = (
            req["title"].as_str(),
            req["head"].as_str(),
            req["base"].as_str(),
        ) else {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "code": "missing_field", "field": "title"}]),
            );
        };
        let head_branch = branch_of(head).to_owned();
        let r = &w.repos[&full];
        if !r.branches.contains_key(&head_branch) {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            );
        }
        if !r.branches.contains_key(base) {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
            );
        }
        if r.pulls
            .iter()
            .any(|p| p.state == "open" && p.head == head_branch && p.base == base)
        {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head_branch}.", r.owner)}]),
            );
        }
        let (ahead, _) = World::compare(r, base, &head_branch).unwrap_or_default();
        if ahead.is_empty() {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head_branch}")}]),
            );
        }
        let number = r.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        let pull = Pull {
            number,
            title: title.to_owned(),
            body: req["body"].as_str().unwrap_or("").to_owned(),
            head: head_branch.clone(),
            base: base.to_owned(),
            head_sha: r.branches[&head_branch].last().cloned().unwrap_or_default(),
            state: "open".into(),
            merged: false,
            merge_commit_sha: None,
            labels: Vec::new(),
            reviewers: Vec::new(),
            teams: Vec::new(),
            draft: req["draft"].as_bool().unwrap_or(false),
            commits: ahead.len() as u64,
            mergeability_known: false,
            conflict: false,
        };
        let base_url = w.base_url.clone();
        let r = w.repos.get_mut(&full).expect("exists");
        r.pulls.push(pull);
        let body = json::pull(&base_url, r, r.pulls.last().expect("just pushed"));
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("{base_url}/repos/{full}/pulls/{number}")) {
            headers.insert(header::LOCATION, v);
        }
        (StatusCode::CREATED, headers, body)
    })
}

fn find_pull(w: &mut World, full: &str, number: u64) -> Option<usize> {
    w.repos
        .get(full)?
        .pulls
        .iter()
        .position(|p| p.number == number)
}

async fn get_pull(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(i) = find_pull(w, &full, number) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let body = json::pull(&w.base_url, &w.repos[&full], &w.repos[&full].pulls[i]);
        // GitHub computes mergeability after the first read.
        w.repos.get_mut(&full).expect("exists").pulls[i].mergeability_known = true;
        answer(StatusCode::OK, body)
    })
}

async fn update_pull(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: String,
) -> Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(i) = find_pull(w, &full, number) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let base_url = w.base_url.clone();
        let r = w.repos.get_mut(&full).expect("exists");
        if let Some(t) = req["title"].as_str() {
            r.pulls[i].title = t.to_owned();
        }
        if let Some(b) = req["body"].as_str() {
            r.pulls[i].body = b.to_owned();
        }
        answer(StatusCode::OK, json::pull(&base_url, r, &r.pulls[i]))
    })
}

async fn request_reviewers(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: String,
) -> Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(i) = find_pull(w, &full, number) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let base_url = w.base_url.clone();
        let r = w.repos.get_mut(&full).expect("exists");
        let names = |k: &str| {
            req[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        for n in names("reviewers") {
            if !r.pulls[i].reviewers.contains(&n) {
                r.pulls[i].reviewers.push(n);
            }
        }
        for n in names("team_reviewers") {
            if !r.pulls[i].teams.contains(&n) {
                r.pulls[i].teams.push(n);
            }
        }
        answer(StatusCode::CREATED, json::pull(&base_url, r, &r.pulls[i]))
    })
}

async fn add_labels(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: String,
) -> Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(i) = find_pull(w, &full, number) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let base_url = w.base_url.clone();
        let r = w.repos.get_mut(&full).expect("exists");
        for l in req["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            if !r.pulls[i].labels.iter().any(|x| x == l) {
                r.pulls[i].labels.push(l.to_owned());
            }
        }
        answer(StatusCode::OK, json::labels(&base_url, r, &r.pulls[i]))
    })
}

/// `success`, `pending` or `failure` for each required context on `sha`.
fn context_states(r: &super::state::Repo, sha: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for s in r.statuses.get(sha).into_iter().flatten() {
        let state = match s.state.as_str() {
            "error" | "failure" => "failure",
            other => other,
        };
        out.insert(s.context.clone(), state.to_owned());
    }
    for c in r.check_runs.get(sha).into_iter().flatten() {
        let state = match (c.status.as_str(), c.conclusion.as_deref()) {
            ("completed", Some("success" | "neutral" | "skipped")) => "success",
            ("completed", _) => "failure",
            _ => "pending",
        };
        out.insert(c.name.clone(), state.to_owned());
    }
    out
}

async fn merge(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: String,
) -> Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(json!({}));
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(i) = find_pull(w, &full, number) else {
            return err(StatusCode::NOT_FOUND, "Not Found");
        };
        let method = req["merge_method"].as_str().unwrap_or("merge").to_owned();
        if !["merge", "squash", "rebase"].contains(&method.as_str()) {
            return validation(
                "Validation Failed",
                json!([{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}]),
            );
        }
        if let Some(pos) = w.race_before_merge.iter().position(|r| *r == full) {
            w.race_before_merge.remove(pos);
            let head = w.repos[&full].pulls[i].head.clone();
            w.push(&full, &head, 1);
        }
        let r = &w.repos[&full];
        let p = &r.pulls[i];
        if p.draft {
            return err(
                StatusCode::METHOD_NOT_ALLOWED,
                "Pull Request is still a draft",
            );
        }
        if p.state != "open" || p.conflict {
            return err(
                StatusCode::METHOD_NOT_ALLOWED,
                "Pull Request is not mergeable",
            );
        }
        if let Some(sha) = req["sha"].as_str()
            && sha != p.head_sha
        {
            return err(
                StatusCode::CONFLICT,
                "Head branch was modified. Review and try the merge again.",
            );
        }
        if let Some(required) = r.protection.get(&p.base) {
            let states = context_states(r, &p.head_sha);
            for context in required {
                match states.get(context).map(String::as_str) {
                    Some("success") => {}
                    Some("failure") => {
                        return err(
                            StatusCode::METHOD_NOT_ALLOWED,
                            &format!("Required status check \"{context}\" is failing."),
                        );
                    }
                    _ => {
                        return err(
                            StatusCode::METHOD_NOT_ALLOWED,
                            &format!("Required status check \"{context}\" is expected."),
                        );
                    }
                }
            }
        }
        let (head, base) = (p.head.clone(), p.base.clone());
        let merge_sha = w.new_sha();
        let r = w.repos.get_mut(&full).expect("exists");
        let (ahead, _) = World::compare(r, &base, &head).unwrap_or_default();
        let history = r.branches.get_mut(&base).expect("base exists");
        if method != "squash" {
            history.extend(ahead);
        }
        history.push(merge_sha.clone());
        let p = &mut r.pulls[i];
        p.state = "closed".into();
        p.merged = true;
        p.merge_commit_sha = Some(merge_sha.clone());
        answer(
            StatusCode::OK,
            json!({"sha": merge_sha, "merged": true, "message": "Pull Request successfully merged"}),
        )
    })
}

async fn merged(
    State(world): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        match find_pull(w, &full, number) {
            Some(i) if w.repos[&full].pulls[i].merged => {
                answer(StatusCode::NO_CONTENT, Value::Null)
            }
            _ => err(StatusCode::NOT_FOUND, "Not Found"),
        }
    })
}

fn resolve(r: &super::state::Repo, reference: &str) -> Option<String> {
    r.branches
        .get(reference)
        .and_then(|b| b.last().cloned())
        .or_else(|| {
            r.branches
                .values()
                .flatten()
                .find(|c| c.as_str() == reference)
                .cloned()
        })
}

async fn combined_status(
    State(world): State<Shared>,
    Path((owner, repo, reference)): Path<(String, String, String)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let Some(sha) = resolve(&w.repos[&full], &reference) else {
            return validation("No commit found for SHA: ", json!([]));
        };
        // Statuses that settle after some reads.
        let mut settled = Vec::new();
        for entry in w.settling.iter_mut().filter(|e| e.0 == full && e.1 == sha) {
            entry.4 = entry.4.saturating_sub(1);
            if entry.4 == 0 {
                settled.push((entry.2.clone(), entry.3.clone()));
            }
        }
        w.settling.retain(|e| e.4 > 0);
        if let Some(repo) = w.repos.get_mut(&full) {
            for (context, state) in settled {
                let list = repo.statuses.entry(sha.clone()).or_default();
                list.retain(|s| s.context != context);
                list.push(super::state::Status { context, state });
            }
        }
        let r = &w.repos[&full];
        let list = r.statuses.get(&sha).cloned().unwrap_or_default();
        let state = if list
            .iter()
            .any(|s| s.state == "failure" || s.state == "error")
        {
            "failure"
        } else if list.is_empty() || list.iter().any(|s| s.state == "pending") {
            "pending"
        } else {
            "success"
        };
        let u = format!("{}/repos/{full}", w.base_url);
        let statuses: Vec<Value> = list.iter().enumerate().map(|(i, s)| json!({
            "url": format!("{u}/statuses/{sha}"), "id": 700 + i, "node_id": format!("SC_{i}"), "state": s.state,
            "description": format!("{} {}", s.context, s.state), "target_url": "https://ci.example.com/builds/1",
            "context": s.context, "created_at": json::TIME, "updated_at": json::TIME, "avatar_url": "",
        })).collect();
        answer(
            StatusCode::OK,
            json!({
                "state": state, "statuses": statuses, "sha": sha, "total_count": list.len(),
                "repository": json::repo(&w.base_url, r), "commit_url": format!("{u}/commits/{sha}"), "url": format!("{u}/commits/{sha}/status"),
            }),
        )
    })
}

async fn check_runs(
    State(world): State<Shared>,
    Path((owner, repo, reference)): Path<(String, String, String)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let r = &w.repos[&full];
        let Some(sha) = resolve(r, &reference) else {
            return validation("No commit found for SHA: ", json!([]));
        };
        let u = format!("{}/repos/{full}", w.base_url);
        let runs: Vec<Value> = r.check_runs.get(&sha).into_iter().flatten().enumerate().map(|(i, c)| json!({
            "id": 800 + i, "node_id": format!("CR_{i}"), "head_sha": sha, "external_id": "",
            "url": format!("{u}/check-runs/{}", 800 + i), "html_url": format!("https://github.com/{full}/runs/{}", 800 + i),
            "details_url": "https://ci.example.com", "status": c.status, "conclusion": c.conclusion,
            "started_at": json::TIME, "completed_at": if c.status == "completed" { json!(json::TIME) } else { Value::Null },
            "output": {"title": c.name, "summary": "", "text": null, "annotations_count": 0, "annotations_url": ""},
            "name": c.name, "check_suite": {"id": 900 + i},
            "app": {"id": 15368, "slug": "github-actions", "node_id": "MDM6QXBwMTUzNjg=", "owner": json::user(&w.base_url, "github", 9919),
                    "name": "GitHub Actions", "description": "Automate your workflow from idea to production",
                    "external_url": "https://help.github.com/en/actions", "html_url": "https://github.com/apps/github-actions",
                    "created_at": json::TIME, "updated_at": json::TIME,
                    "permissions": {"checks": "write", "contents": "write", "metadata": "read", "pull_requests": "write", "statuses": "write"},
                    "events": ["check_run", "pull_request", "push"]},
            "pull_requests": [],
        })).collect();
        answer(
            StatusCode::OK,
            json!({"total_count": runs.len(), "check_runs": runs}),
        )
    })
}

async fn required_checks(
    State(world): State<Shared>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Response {
    with_repo(&world, &owner, &repo, |w, full| {
        let r = &w.repos[&full];
        match r.protection.get(&branch) {
            None => err(StatusCode::NOT_FOUND, "Branch not protected"),
            Some(contexts) => {
                let u = format!(
                    "{}/repos/{full}/branches/{branch}/protection/required_status_checks",
                    w.base_url
                );
                answer(
                    StatusCode::OK,
                    json!({
                        "url": u, "strict": false, "contexts": contexts, "contexts_url": format!("{u}/contexts"),
                        "checks": contexts.iter().map(|c| json!({"context": c, "app_id": null})).collect::<Vec<_>>(),
                    }),
                )
            }
        }
    })
}

/// `POST /app/installations/{id}/access_tokens` with `Authorization: Bearer <app JWT>`.
async fn installation_token(
    State(world): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let mut w = lock(&world);
    let Some(jwt) = token_of(&headers) else {
        return finish(json_response(
            StatusCode::UNAUTHORIZED,
            &json::error("A JSON web token could not be decoded", 401),
        ));
    };
    let verified = (|| -> Option<u64> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, s] = parts.as_slice() else {
            return None;
        };
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header["alg"] != "RS256" {
            return None;
        }
        let app: u64 = claims["iss"]
            .as_u64()
            .or_else(|| claims["iss"].as_str()?.parse().ok())?;
        let key = w.apps.get(&app)?;
        let signed = format!("{h}.{c}");
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(s).ok()?)
            .ok()?;
        let now = epoch(SystemTime::now());
        let (iat, exp) = (claims["iat"].as_u64()?, claims["exp"].as_u64()?);
        (exp > now && iat <= now + 60 && exp - iat <= 600).then_some(app)
    })();
    let Some(app) = verified else {
        return finish(json_response(
            StatusCode::UNAUTHORIZED,
            &json::error("A JSON web token could not be decoded", 401),
        ));
    };
    if w.installations.get(&id) != Some(&app) {
        return finish(json_response(
            StatusCode::NOT_FOUND,
            &json::error("Not Found", 404),
        ));
    }
    let n = w.tokens.len();
    let token = format!("ghs_fakeinstallation{n:020}");
    w.tokens.insert(token.clone(), Limit::fresh());
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let _ = expires;
    finish(json_response(
        StatusCode::CREATED,
        &json!({
            "token": token, "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"pull_requests": "write", "contents": "read", "statuses": "read", "checks": "read"},
            "repository_selection": "all",
        }),
    ))
}
