//! `source` and `params` as written, and the validated configuration.

use protocol::{FieldError, Secret};
use serde::Deserialize;

/// `source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `owner/name` of the repository, e.g. `microservices/micro-api-gateway`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub repository: Option<String>,
    /// The branch promoted into (default `master`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub base: Option<String>,
    /// The branch promoted (default `develop`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub head: Option<String>,
    /// The REST API root (default `https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub api_url: Option<String>,
    /// A token with pull-request write access.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// GitHub App id (with `private_key` and `installation_id`, instead of `access_token`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub app_id: Option<String>,
    /// The App's private key (PEM).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// The App's installation id on the repository's owner.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub installation_id: Option<String>,
}

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    Token(Secret),
    App {
        app_id: u64,
        key: std::sync::Arc<jwt::Signer>,
        installation_id: u64,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub owner: String,
    pub repo: String,
    pub base: String,
    pub head: String,
    pub api_url: String,
    pub auth: Auth,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// git's rules for a branch name (`git check-ref-format --branch`), which GitHub enforces: a
/// name that breaks them names no branch, so it is refused before any request.
fn check_branch(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.starts_with('-') {
        return Err("it starts with -");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '\u{7f}')
    {
        return Err("it holds a space or a control character");
    }
    if name
        .chars()
        .any(|c| matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err("it holds one of ~ ^ : ? * [ \\");
    }
    if name.contains("..") || name.contains("@{") || name == "@" {
        return Err("it holds .. or @{");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("it starts or ends with /, or holds //");
    }
    if name.ends_with('.') || name.ends_with(".lock") {
        return Err("it ends with . or .lock");
    }
    if name
        .split('/')
        .any(|c| c.starts_with('.') || c.ends_with(".lock"))
    {
        return Err("a part starts with . or ends with .lock");
    }
    Ok(())
}

impl TryFrom<Source> for Config {
    type Error = FieldError;

    fn try_from(s: Source) -> Result<Self, FieldError> {
        let repository = s.repository.ok_or_else(|| {
            FieldError::missing("source.repository", "\"microservices/micro-api-gateway\"")
        })?;
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| valid_name(o) && valid_name(r) && !r.contains('/'))
            .ok_or_else(|| {
                FieldError::new(
                    "source.repository",
                    "must be OWNER/NAME, e.g. \"microservices/micro-api-gateway\"",
                )
            })?;
        let base = s.base.unwrap_or_else(|| "master".to_owned());
        let head = s.head.unwrap_or_else(|| "develop".to_owned());
        for (field, branch) in [("source.base", &base), ("source.head", &head)] {
            if let Err(why) = check_branch(branch) {
                return Err(FieldError::new(
                    field,
                    format!("is not a valid branch name: {why}, e.g. \"develop\""),
                ));
            }
        }
        if base == head {
            return Err(FieldError::new(
                "source.head",
                format!(
                    "is the same branch as source.base (\"{base}\"); nothing would be promoted"
                ),
            ));
        }
        let api_url = s
            .api_url
            .unwrap_or_else(|| "https://api.github.com".to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(FieldError::new(
                "source.api_url",
                "must be an http(s) URL, e.g. \"https://github.example.com/api/v3\"",
            ));
        }
        if api_url.starts_with("http://") && !protocol::url::is_loopback_url(&api_url) {
            return Err(FieldError::new(
                "source.api_url",
                "is plain http: the token would cross the network in cleartext; use https:// (plain http is allowed on loopback only)",
            ));
        }
        let app = s.app_id.is_some() || s.private_key.is_some() || s.installation_id.is_some();
        let auth = match (s.access_token, app) {
            (Some(_), true) => {
                return Err(FieldError::conflict(
                    "source.access_token",
                    "source.app_id/private_key/installation_id",
                ));
            }
            (Some(token), false) => {
                if token.is_empty() {
                    return Err(FieldError::new(
                        "source.access_token",
                        "is empty; set a token or use a GitHub App",
                    ));
                }
                Auth::Token(token.header_token("source.access_token")?)
            }
            (None, true) => {
                let app_id = s
                    .app_id
                    .ok_or_else(|| FieldError::missing("source.app_id", "\"123456\""))?;
                let app_id = app_id.parse().map_err(|_| {
                    FieldError::new("source.app_id", "must be the App's numeric id")
                })?;
                let installation = s
                    .installation_id
                    .ok_or_else(|| FieldError::missing("source.installation_id", "\"7654321\""))?;
                let installation_id = installation.parse().map_err(|_| {
                    FieldError::new("source.installation_id", "must be a numeric id")
                })?;
                let pem = s.private_key.ok_or_else(|| {
                    FieldError::missing("source.private_key", "((github-app-key))")
                })?;
                let key = jwt::Signer::from_pem(&pem)
                    .map_err(|e| FieldError::new("source.private_key", e.to_string()))?;
                Auth::App {
                    app_id,
                    key: std::sync::Arc::new(key),
                    installation_id,
                }
            }
            (None, false) => {
                return Err(FieldError::new(
                    "source.access_token",
                    "missing; set it (e.g. ((github-token))) or app_id, private_key and installation_id",
                ));
            }
        };
        Ok(Self {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            base,
            head,
            api_url,
            auth,
        })
    }
}

/// How a pull request is merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    #[default]
    Merge,
    Squash,
    Rebase,
}

impl MergeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        }
    }
}

/// `out` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Title of the pull request (default `Promote develop to master`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub title: Option<String>,
    /// File holding the title.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub title_file: Option<String>,
    /// Body (default: the build link, the images promoted, the acceptance summary).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub body: Option<String>,
    /// File holding the body.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub body_file: Option<String>,
    /// `gcr-image` get directories whose images and digests the default body lists.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub images: Vec<String>,
    /// An `acceptance-run` get directory whose summary the default body includes.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub acceptance: Option<String>,
    /// Labels to add.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub labels: Vec<String>,
    /// Users asked to review.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub reviewers: Vec<String>,
    /// Teams asked to review.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub team_reviewers: Vec<String>,
    /// Open it as a draft.
    #[serde(default)]
    pub draft: bool,
    /// Merge once GitHub says it is mergeable and the required checks are green.
    #[serde(default)]
    pub merge: bool,
    /// `merge` (default), `squash` or `rebase`.
    #[serde(default)]
    pub merge_method: MergeMethod,
    /// How long `merge` waits for mergeability and checks, e.g. `10m`, `90s` (default `10m`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub timeout: Option<String>,
}
