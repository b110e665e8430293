//! GitHub's JSON shapes, with every field the recorded exchanges show
//! (`../shared/fixtures/github-recorded/`), so that clients parse the fake as they parse GitHub.

use super::state::{Pull, Repo};
use serde_json::{Value, json};

pub const TIME: &str = "2026-11-26T12:00:00Z";

pub fn user(base: &str, login: &str, id: u64) -> Value {
    let u = format!("{base}/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": "Organization",
        "user_view_type": "public", "site_admin": false,
    })
}

pub fn repo(base: &str, r: &Repo) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    let u = format!("{base}/repos/{full}");
    let mut v = json!({
        "id": r.id, "node_id": format!("MDEwOlJlcG9zaXRvcnk{}", r.id), "name": r.name, "full_name": full,
        "private": true, "owner": user(base, &r.owner, 1000 + r.id), "html_url": format!("https://github.com/{full}"),
        "description": format!("{} service", r.name), "fork": false, "url": u,
        "created_at": TIME, "updated_at": TIME, "pushed_at": TIME,
        "git_url": format!("git://github.com/{full}.git"), "ssh_url": format!("git@github.com:{full}.git"),
        "clone_url": format!("https://github.com/{full}.git"), "svn_url": format!("https://github.com/{full}"),
        "homepage": "", "size": 1024, "stargazers_count": 0, "watchers_count": 0, "language": "Go",
        "has_issues": true, "has_projects": false, "has_downloads": true, "has_wiki": false, "has_pages": false,
        "has_discussions": false, "forks_count": 0, "mirror_url": null, "archived": false, "disabled": false,
        "open_issues_count": r.pulls.iter().filter(|p| p.state == "open").count(),
        "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT", "url": format!("{base}/licenses/mit"), "node_id": "MDc6TGljZW5zZTEz"},
        "allow_forking": false, "is_template": false, "web_commit_signoff_required": false, "topics": [],
        "visibility": "private", "forks": 0, "open_issues": r.pulls.iter().filter(|p| p.state == "open").count(),
        "watchers": 0, "default_branch": "master",
        "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
        "temp_clone_token": "", "allow_squash_merge": true, "allow_merge_commit": true, "allow_rebase_merge": true,
        "allow_auto_merge": false, "delete_branch_on_merge": false, "allow_update_branch": false,
        "use_squash_pr_title_as_default": false, "squash_merge_commit_message": "COMMIT_MESSAGES",
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE", "merge_commit_message": "PR_TITLE",
        "merge_commit_title": "MERGE_MESSAGE", "organization": user(base, &r.owner, 1000 + r.id),
        "network_count": 0, "subscribers_count": 1,
    });
    let urls = [
        ("forks_url", "/forks"),
        ("keys_url", "/keys{/key_id}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("teams_url", "/teams"),
        ("hooks_url", "/hooks"),
        ("issue_events_url", "/issues/events{/number}"),
        ("events_url", "/events"),
        ("assignees_url", "/assignees{/user}"),
        ("branches_url", "/branches{/branch}"),
        ("tags_url", "/tags"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("trees_url", "/git/trees{/sha}"),
        ("statuses_url", "/statuses/{sha}"),
        ("languages_url", "/languages"),
        ("stargazers_url", "/stargazers"),
        ("contributors_url", "/contributors"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("commits_url", "/commits{/sha}"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("comments_url", "/comments{/number}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("contents_url", "/contents/{+path}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("merges_url", "/merges"),
        ("archive_url", "/{archive_format}{/ref}"),
        ("downloads_url", "/downloads"),
        ("issues_url", "/issues{/number}"),
        ("pulls_url", "/pulls{/number}"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("labels_url", "/labels{/name}"),
        ("releases_url", "/releases{/id}"),
        ("deployments_url", "/deployments"),
    ];
    for (k, suffix) in urls {
        v[k] = json!(format!("{u}{suffix}"));
    }
    v
}

fn label(base: &str, r: &Repo, name: &str, i: usize) -> Value {
    json!({"id": 5000 + i, "node_id": format!("LA_{i}"), "url": format!("{base}/repos/{}/{}/labels/{name}", r.owner, r.name),
           "name": name, "color": "0e8a16", "default": false, "description": null})
}

pub fn labels(base: &str, r: &Repo, p: &Pull) -> Value {
    Value::Array(
        p.labels
            .iter()
            .enumerate()
            .map(|(i, l)| label(base, r, l, i))
            .collect(),
    )
}

pub fn pull(base: &str, r: &Repo, p: &Pull) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    let u = format!("{base}/repos/{full}/pulls/{}", p.number);
    let issue = format!("{base}/repos/{full}/issues/{}", p.number);
    let html = format!("https://github.com/{full}/pull/{}", p.number);
    let statuses = format!("{base}/repos/{full}/statuses/{}", p.head_sha);
    let side = |reference: &str, sha: &str| {
        json!({"label": format!("{}:{reference}", r.owner), "ref": reference, "sha": sha,
               "user": user(base, &r.owner, 1000 + r.id), "repo": repo(base, r)})
    };
    let base_sha = r
        .branches
        .get(&p.base)
        .and_then(|b| b.last().cloned())
        .unwrap_or_default();
    let bot = user(base, "concourse-ci", 77);
    json!({
        "url": u, "id": 9000 + p.number, "node_id": format!("PR_kw{}", p.number), "html_url": html,
        "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"), "issue_url": issue,
        "number": p.number, "state": p.state, "locked": false, "title": p.title, "user": bot,
        "body": p.body, "created_at": TIME, "updated_at": TIME,
        "closed_at": if p.state == "closed" { json!(TIME) } else { Value::Null },
        "merged_at": if p.merged { json!(TIME) } else { Value::Null },
        "merge_commit_sha": p.merge_commit_sha, "assignee": null, "assignees": [],
        "requested_reviewers": p.reviewers.iter().enumerate().map(|(i, l)| user(base, l, 200 + i as u64)).collect::<Vec<_>>(),
        "requested_teams": p.teams.iter().enumerate().map(|(i, t)| json!({"id": 300 + i, "node_id": format!("T_{i}"), "name": t, "slug": t, "description": "", "privacy": "closed", "permission": "pull", "url": format!("{base}/teams/{}", 300 + i), "html_url": format!("https://github.com/orgs/{}/teams/{t}", r.owner), "members_url": "", "repositories_url": "", "parent": null})).collect::<Vec<_>>(),
        "labels": labels(base, r, p), "milestone": null, "draft": p.draft,
        "commits_url": format!("{u}/commits"), "review_comments_url": format!("{u}/comments"),
        "review_comment_url": format!("{base}/repos/{full}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue}/comments"), "statuses_url": statuses,
        "head": side(&p.head, &p.head_sha), "base": side(&p.base, &base_sha),
        "_links": {
            "self": {"href": u}, "html": {"href": html}, "issue": {"href": issue},
            "comments": {"href": format!("{issue}/comments")}, "review_comments": {"href": format!("{u}/comments")},
            "review_comment": {"href": format!("{base}/repos/{full}/pulls/comments{{/number}}")},
            "commits": {"href": format!("{u}/commits")}, "statuses": {"href": statuses},
        },
        "author_association": "CONTRIBUTOR", "auto_merge": null, "active_lock_reason": null,
        "merged": p.merged, "mergeable": p.mergeable_json(), "rebaseable": p.mergeable_json(),
        "mergeable_state": p.mergeable_state(), "merged_by": if p.merged { bot.clone() } else { Value::Null },
        "comments": 0, "review_comments": 0, "maintainer_can_modify": false, "commits": p.commits,
        "additions": p.commits * 3, "deletions": p.commits, "changed_files": p.commits,
    })
}

pub fn commit(base: &str, r: &Repo, sha: &str, parent: Option<&str>) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    let u = format!("{base}/repos/{full}/commits/{sha}");
    let who = json!({"name": "Concourse CI", "email": "ci@example.com", "date": TIME});
    json!({
        "sha": sha, "node_id": format!("C_{}", &sha[..8]),
        "commit": {"author": who, "committer": who, "message": format!("change {}", &sha[..8]),
                   "tree": {"sha": sha, "url": format!("{base}/repos/{full}/git/trees/{sha}")},
                   "url": format!("{base}/repos/{full}/git/commits/{sha}"), "comment_count": 0,
                   "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}},
        "url": u, "html_url": format!("https://github.com/{full}/commit/{sha}"), "comments_url": format!("{u}/comments"),
        "author": user(base, "concourse-ci", 77), "committer": user(base, "concourse-ci", 77),
        "parents": parent.map(|p| vec![json!({"sha": p, "url": format!("{base}/repos/{full}/commits/{p}"), "html_url": format!("https://github.com/{full}/commit/{p}")})]).unwrap_or_default(),
    })
}

/// GitHub's error body: `{"message", "documentation_url", "status"}`.
pub fn error(message: &str, status: u16) -> Value {
    json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()})
}
