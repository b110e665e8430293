//! `out`: open the promotion pull request or reuse the open one, then merge it when asked.
//!
//! Requests for create-or-reuse without merge: compare (is there anything to promote?), list the
//! open pull request of `head` -> `base`, then create it or update its title and body only when
//! they differ: at most 3. A create that races with another build (422 "A pull request already
//! exists") is resolved by reusing the other build's pull request.

use crate::Version;
use crate::get::metadata;
use crate::github::{CheckState, Github, Pull};
use crate::source::{Config, MergeMethod, PutParams};
use anyhow::{Context as _, bail};
use protocol::duration::parse as parse_duration;
use protocol::{Context, FieldError, Response};
use std::path::Path;
use std::time::Duration;

/// Everything `out` will do, read and validated before the first request.
#[derive(Debug)]
pub struct Plan {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    pub draft: bool,
    pub merge: Option<(MergeMethod, Duration)>,
    /// What to say if Concourse stops the step (see `protocol::abort`).
    pub on_abort: protocol::abort::OnAbort,
}

use protocol::paths::{inside, read_text};

fn read(sources: &Path, relative: &str, field: &str) -> Result<String, FieldError> {
    read_text(sources, &inside(sources, relative, field)?, field)
}

impl Plan {
    pub fn new(
        config: &Config,
        params: PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Self> {
        let title = match (&params.title, &params.title_file) {
            (Some(_), Some(_)) => {
                return Err(FieldError::conflict("params.title", "params.title_file").into());
            }
            (Some(t), None) => t.clone(),
            (None, Some(f)) => read(sources, f, "params.title_file")?.trim().to_owned(),
            (None, None) => format!("Promote {} to {}", config.head, config.base),
        };
        if title.trim().is_empty() {
            return Err(FieldError::new("params.title", "is empty").into());
        }
        let body = match (&params.body, &params.body_file) {
            (Some(_), Some(_)) => {
                return Err(FieldError::conflict("params.body", "params.body_file").into());
            }
            (Some(b), None) => b.clone(),
            (None, Some(f)) => read(sources, f, "params.body_file")?,
            (None, None) => default_body(config, &params, sources, ctx)?,
        };
        if !params.merge && (params.timeout.is_some() || params.merge_method != MergeMethod::Merge)
        {
            return Err(FieldError::new(
                "params.merge_method",
                "merge_method and timeout go with merge: true",
            )
            .into());
        }
        let merge = if params.merge {
            let timeout = match &params.timeout {
                Some(t) => parse_duration(t).ok_or_else(|| {
                    FieldError::new(
                        "params.timeout",
                        "must be a duration like \"10m\", \"90s\", \"1h\"",
                    )
                })?,
                None => Duration::from_secs(600),
            };
            Some((params.merge_method, timeout))
        } else {
            None
        };
        Ok(Self {
            on_abort: ctx.on_abort.clone(),
            title,
            body,
            labels: params.labels,
            reviewers: params.reviewers,
            team_reviewers: params.team_reviewers,
            draft: params.draft,
            merge,
        })
    }
}

/// What passed: the build, the images and digests, the acceptance summary.
fn default_body(
    config: &Config,
    params: &PutParams,
    sources: &Path,
    ctx: &Context,
) -> anyhow::Result<String> {
    let mut body = format!(
        "Promotes `{}` into `{}`: the acceptance tests passed on these images.\n\n",
        config.head, config.base
    );
    if let Some(url) = ctx.build.build_url() {
        body.push_str(&format!("**Build:** [{}]({url})\n\n", ctx.build.label()));
    }
    if !params.images.is_empty() {
        body.push_str("**Images:**\n\n| image | tag | digest |\n|---|---|---|\n");
        for (i, dir) in params.images.iter().enumerate() {
            let field = format!("params.images[{i}]");
            let path = inside(sources, dir, &field)?;
            let file = |name: &str| {
                let file = path.join(name);
                protocol::paths::stays_inside(sources, &file, &field)?;
                std::fs::read_to_string(&file).map(|s| s.trim().to_owned()).map_err(|_| {
                    FieldError::new(field.clone(), format!("{dir} has no {name} file; give the directory of a gcr-image get step"))
                })
            };
            body.push_str(&format!(
                "| `{}` | `{}` | `{}` |\n",
                file("repository")?,
                file("tag")?,
                file("digest")?
            ));
        }
        body.push('\n');
    }
    if let Some(dir) = &params.acceptance {
        let path = inside(sources, dir, "params.acceptance")?;
        protocol::paths::stays_inside(sources, &path.join("summary.md"), "params.acceptance")?;
        let summary = std::fs::read_to_string(path.join("summary.md")).map_err(|_| {
            FieldError::new(
                "params.acceptance",
                format!(
                    "{dir} has no summary.md; give the directory of an acceptance-run get step"
                ),
            )
        })?;
        body.push_str("**Acceptance:**\n\n");
        body.extend(summary.lines().take(60).map(|l| format!("{l}\n")));
        body.push('\n');
    }
    body.push_str("<!-- opened by the github-promote-pr Concourse resource -->\n");
    Ok(body)
}

pub async fn put(config: &Config, gh: &Github, plan: Plan) -> anyhow::Result<Response<Version>> {
    let (ahead, head_sha) = gh.compare(&config.base, &config.head).await?;
    let open = gh
        .list_pulls(&config.head, &config.base, "open", None)
        .await?
        .map(|(pulls, _)| pulls)
        .unwrap_or_default()
        .into_iter()
        .next();
    if ahead == 0 {
        tracing::info!(
            "{} has no commits that {} lacks: nothing to promote",
            config.head,
            config.base
        );
        return Ok(match open {
            Some(pr) => respond(&pr),
            None => Response::new(Version {
                number: "0".into(),
                head_sha,
            })
            .with_metadata(protocol::Metadata::new().with("state", "nothing to promote")),
        });
    }
    tracing::info!(
        "{} is {ahead} commit(s) ahead of {}",
        config.head,
        config.base
    );
    let mut pr = match open {
        Some(pr) => update(gh, pr, &plan).await?,
        None => match gh.create_pull(&plan.title, &plan.body, plan.draft).await? {
            Ok(pr) => {
                tracing::info!("opened #{} {}", pr.number, pr.html_url);
                pr
            }
            Err(errors)
                if errors
                    .iter()
                    .any(|e| e.starts_with("A pull request already exists")) =>
            {
                // Another build opened it between our list and our create: reuse it.
                let pr = gh
                    .list_pulls(&config.head, &config.base, "open", None)
                    .await?
                    .and_then(|(p, _)| p.into_iter().next())
                    .context("GitHub says a pull request already exists but lists none open")?;
                update(gh, pr, &plan).await?
            }
            Err(errors) => bail!(
                "open a pull request {} -> {}: GitHub refused it (422 Validation Failed: {})",
                config.head,
                config.base,
                errors.join("; ")
            ),
        },
    };
    let missing_labels: Vec<String> = plan
        .labels
        .iter()
        .filter(|l| !pr.labels.iter().any(|x| x.name == **l))
        .cloned()
        .collect();
    if !missing_labels.is_empty() {
        gh.add_labels(pr.number, &missing_labels).await?;
    }
    let missing_reviewers: Vec<String> = plan
        .reviewers
        .iter()
        .filter(|r| !pr.requested_reviewers.iter().any(|x| x.name == **r))
        .cloned()
        .collect();
    if !missing_reviewers.is_empty() || !plan.team_reviewers.is_empty() {
        gh.request_reviewers(pr.number, &missing_reviewers, &plan.team_reviewers)
            .await?;
    }
    if let Some((method, timeout)) = plan.merge {
        // Stopped while waiting: nothing to undo; the pull request stays as it is.
        let number = pr.number;
        let _abort = plan.on_abort.register(move || async move {
            format!("#{number} stays open and unmerged; the next run merges it once it is green")
        });
        pr = merge_when_green(config, gh, pr.number, method, timeout).await?;
    }
    Ok(respond(&pr))
}

async fn update(gh: &Github, pr: Pull, plan: &Plan) -> anyhow::Result<Pull> {
    if pr.title == plan.title && pr.body.as_deref().unwrap_or("") == plan.body {
        tracing::info!("reusing #{} {} (unchanged)", pr.number, pr.html_url);
        return Ok(pr);
    }
    let updated = gh.update_pull(pr.number, &plan.title, &plan.body).await?;
    tracing::info!(
        "reusing #{} {} (title and body updated)",
        updated.number,
        updated.html_url
    );
    Ok(updated)
}

fn respond(pr: &Pull) -> Response<Version> {
    let merged = pr.merged.unwrap_or(false);
    Response::new(Version {
        number: pr.number.to_string(),
        head_sha: pr.head.sha.clone(),
    })
    .with_metadata(metadata(
        &pr.html_url,
        &pr.state,
        merged,
        pr.merge_commit_sha
            .as_deref()
            .filter(|_| merged)
            .unwrap_or(""),
    ))
}

/// Waits until GitHub reports the pull request mergeable and the required checks of the base
/// green on its head, then merges with that head sha.
async fn merge_when_green(
    config: &Config,
    gh: &Github,
    number: u64,
    method: MergeMethod,
    timeout: Duration,
) -> anyhow::Result<Pull> {
    // Looks at 1 s, 2 s, 4 s ... 15 s apart; the last at the deadline itself.
    let mut looks = protocol::retry::Policy::new(timeout, Duration::from_secs(1))
        .capped(Duration::from_secs(15))
        .start();
    let required = gh.required_checks(&config.base).await?;
    match &required {
        Some(list) => tracing::info!(
            "{} requires: {}",
            config.base,
            if list.is_empty() {
                "no checks".to_owned()
            } else {
                list.join(", ")
            }
        ),
        None => tracing::info!(
            "{} has no required checks: every reported check must pass",
            config.base
        ),
    }
    let mut last_wait = String::new();
    loop {
        let pr = gh.get_pull(number).await?;
        if pr.merged == Some(true) {
            tracing::info!("#{number} is already merged");
            return Ok(pr);
        }
        if pr.state != "open" {
            bail!("#{number} was closed without being merged; nothing to merge");
        }
        let waiting = match pr.mergeable {
            Some(false) => bail!(
                "#{number} is not mergeable: it conflicts with {} (mergeable_state: {}); resolve the conflicts on {}",
                config.base,
                pr.mergeable_state.as_deref().unwrap_or("dirty"),
                config.head
            ),
            None => Some("GitHub to compute mergeability".to_owned()),
            Some(true) => {
                let checks = gh.checks(&pr.head.sha).await?;
                let relevant: Vec<(String, CheckState)> = match &required {
                    Some(list) => list
                        .iter()
                        .map(|c| {
                            (
                                c.clone(),
                                checks
                                    .iter()
                                    .find(|(n, _)| n == c)
                                    .map_or(CheckState::Pending, |(_, s)| s.clone()),
                            )
                        })
                        .collect(),
                    None => checks,
                };
                if let Some((name, _)) = relevant.iter().find(|(_, s)| *s == CheckState::Failure) {
                    bail!(
                        "#{number} cannot be merged: check \"{name}\" failed on {}",
                        short(&pr.head.sha)
                    );
                }
                let pending: Vec<&str> = relevant
                    .iter()
                    .filter(|(_, s)| *s == CheckState::Pending)
                    .map(|(n, _)| n.as_str())
                    .collect();
                if pending.is_empty() {
                    None
                } else {
                    Some(format!(
                        "checks on {}: {}",
                        short(&pr.head.sha),
                        pending.join(", ")
                    ))
                }
            }
        };
        match waiting {
            None => {
                return match gh.merge(number, &pr.head.sha, method.as_str()).await? {
                    Ok(sha) => {
                        tracing::info!("merged #{number} ({}) as {}", method.as_str(), short(&sha));
                        gh.get_pull(number).await.map_err(Into::into)
                    }
                    Err((409, message)) => bail!(
                        "#{number} was not merged: its head moved after the checks passed on {} ({message}); the next run will check the new head",
                        short(&pr.head.sha)
                    ),
                    Err((_, message)) => bail!("#{number} is not mergeable: {message}"),
                };
            }
            Some(what) => {
                if what != last_wait {
                    tracing::info!("#{number}: waiting for {what}");
                    last_wait.clone_from(&what);
                }
                if !looks.poll().await {
                    bail!(
                        "#{number} not merged: timed out after {} waiting for {what}",
                        protocol::duration::format(timeout)
                    );
                }
            }
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
