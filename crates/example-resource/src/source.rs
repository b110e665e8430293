//! `source` and `params` as written in the pipeline, and the validated configuration.

use protocol::{FieldError, Secret};
use serde::Deserialize;

/// `source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// URL of the feed: versions one per line, oldest first.
    #[serde(deserialize_with = "protocol::lenient::string")]
    pub url: String,
    /// Bearer token sent to the feed.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Only lines starting with this prefix are versions.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub prefix: Option<String>,
}

/// `get` params: none.
pub type GetParams = protocol::resource::NoParams;

/// `put` params as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Path, relative to the build's directory, of a file holding the version to publish.
    #[serde(default, deserialize_with = "protocol::lenient::opt_string")]
    pub file: Option<String>,
}

impl PutParams {
    pub fn file(&self) -> Result<String, FieldError> {
        match self.file.as_deref() {
            None | Some("") => Err(FieldError::missing(
                "params.file",
                "\"build-output/version\"",
            )),
            Some(f) if f.starts_with('/') || f.split('/').any(|c| c == "..") => Err(
                FieldError::new("params.file", "must be a path inside the build's directory"),
            ),
            Some(f) => Ok(f.to_owned()),
        }
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub url: reqwest::Url,
    pub token: Option<Secret>,
    pub prefix: String,
}

impl TryFrom<Source> for Config {
    type Error = FieldError;

    fn try_from(source: Source) -> Result<Self, FieldError> {
        let url = reqwest::Url::parse(&source.url).map_err(|e| {
            FieldError::new(
                "source.url",
                format!("not a URL ({e}); e.g. \"http://feed.example.com/versions\""),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FieldError::new(
                "source.url",
                "must start with http:// or https://",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FieldError::new(
                "source.url",
                "must not hold credentials; put the token in source.token",
            ));
        }
        if source.token.as_ref().is_some_and(Secret::is_empty) {
            return Err(FieldError::new(
                "source.token",
                "is empty; remove it or set a token",
            ));
        }
        Ok(Self {
            url,
            token: source.token,
            prefix: source.prefix.unwrap_or_default(),
        })
    }
}
