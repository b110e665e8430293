//! `source` and `params` as written in the pipeline, and the validated configuration built
//! from them in one place.

use protocol::{FieldError, Secret};
use registry::{Credentials, Repository};
use serde::Deserialize;

/// `source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `HOST/PATH` of the repository, e.g. `us.gcr.io/microservices-kube/api-gateway`.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub repository: Option<String>,
    /// Watch this one tag's digest (default `latest` when neither tag nor tag_regex is set).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub tag: Option<String>,
    /// Watch every tag this regular expression finds (unanchored: `\.dev$`); a `version` (or
    /// first) capture group names the semver part, for ordering.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub tag_regex: Option<String>,
    /// A Google service-account key (the whole JSON file).
    #[serde(default)]
    pub google_credentials: Option<Secret>,
    /// Registry user (`_json_key`, `_json_key_base64`, `oauth2accesstoken`, or any user).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub username: Option<String>,
    /// Registry password for `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Extra CA certificates (PEM) to trust for the registry.
    #[serde(default, deserialize_with = "protocol::lenient::strings")]
    pub ca_certs: Vec<String>,
    /// Plain HTTP; allowed only for a loopback registry (127.0.0.1, localhost).
    #[serde(default)]
    pub insecure: bool,
    /// Platform picked from multi-platform images where one is needed (default `linux/amd64`).
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub platform: Option<String>,
}

/// What `check` watches.
#[derive(Debug, Clone)]
pub enum Watch {
    Tag(String),
    Regex(regex::Regex),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub repository: Repository,
    pub watch: Watch,
    pub credentials: Credentials,
    pub ca_certs: Vec<String>,
    pub insecure: bool,
    pub platform: (String, String),
}

pub const REPOSITORY_EXAMPLE: &str = "\"us.gcr.io/microservices-kube/api-gateway\"";

impl Config {
    pub fn from_source(source: Source) -> Result<Self, anyhow::Error> {
        let repository = match source.repository.as_deref() {
            None | Some("") => {
                return Err(FieldError::missing("source.repository", REPOSITORY_EXAMPLE).into());
            }
            Some(r) => Repository::parse(r).map_err(|m| FieldError::new("source.repository", m))?,
        };
        let watch = match (source.tag, source.tag_regex) {
            (Some(_), Some(_)) => {
                return Err(FieldError::conflict("source.tag", "source.tag_regex").into());
            }
            (None, Some(re)) => Watch::Regex(regex::Regex::new(&re).map_err(|e| {
                FieldError::new(
                    "source.tag_regex",
                    format!(
                        "not a valid regular expression ({}); e.g. \"\\\\.dev$\"",
                        regex_reason(&e)
                    ),
                )
            })?),
            (tag, None) => {
                let tag = tag.unwrap_or_else(|| "latest".to_owned());
                registry::reference::validate_tag(&tag)
                    .map_err(|m| FieldError::new("source.tag", m))?;
                Watch::Tag(tag)
            }
        };
        let (credentials, _) = registry_source::credentials(
            source.google_credentials,
            source.username,
            source.password,
            &source.ca_certs,
            concat!("gcr-image/", env!("CARGO_PKG_VERSION")),
        )?;
        if source.insecure && !registry::client::is_loopback(&repository.host) {
            return Err(FieldError::new(
                "source.insecure",
                "plain HTTP is allowed only for a loopback registry (127.0.0.1, localhost); use ca_certs for a private CA",
            )
            .into());
        }
        let platform = parse_platform(source.platform.as_deref().unwrap_or("linux/amd64"))
            .ok_or_else(|| {
                FieldError::new("source.platform", "must be OS/ARCH, e.g. \"linux/amd64\"")
            })?;
        Ok(Self {
            repository,
            watch,
            credentials,
            ca_certs: source.ca_certs,
            insecure: source.insecure,
            platform,
        })
    }

    /// A registry client for this configuration.
    pub fn client(&self) -> anyhow::Result<registry::Client> {
        let options = registry::Options {
            insecure: self.insecure,
            ca_certs: self.ca_certs.clone(),
            user_agent: concat!("gcr-image/", env!("CARGO_PKG_VERSION")).to_owned(),
            hints: registry_source::hints(&self.credentials),
            ..registry::Options::default()
        };
        registry::Client::new(&self.repository.host, self.credentials.clone(), options)
            .map_err(|e| anyhow::anyhow!("source.ca_certs: {e:#}"))
    }
}

fn regex_reason(e: &regex::Error) -> String {
    // The regex crate's message spans several lines and repeats the pattern; keep the reason.
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| "syntax error".to_owned())
}

fn parse_platform(p: &str) -> Option<(String, String)> {
    let mut parts = p.split('/');
    let os = parts.next().filter(|s| !s.is_empty())?;
    let arch = parts.next().filter(|s| !s.is_empty())?;
    Some((os.to_owned(), arch.to_owned()))
}
