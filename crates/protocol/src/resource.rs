//! The `Resource` trait: what a resource crate implements, and the `Context` it is given.
//!
//! A resource supplies typed `Source`, `Version` and params (serde, `deny_unknown_fields`)
//! and three async steps. It never touches stdin, stdout, argv or the process environment: the
//! harness parses the request, passes the pieces and the [`Context`], and prints the answer.

use crate::build_info::BuildMetadata;
use crate::wire::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// What the harness knows about the run, beyond the request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `BUILD_*` variables (empty for `check`, which Concourse runs outside any build).
    pub build: BuildMetadata,
    /// `source.debug: true` was set: log request detail at debug level.
    pub debug: bool,
    /// What to undo if Concourse stops the step (SIGTERM): see [`crate::abort`].
    pub on_abort: crate::abort::OnAbort,
    env: BTreeMap<String, String>,
}

impl Context {
    pub fn new(env: BTreeMap<String, String>, debug: bool) -> Self {
        Self {
            build: BuildMetadata::from_lookup(|k| env.get(k).cloned()),
            debug,
            on_abort: Default::default(),
            env,
        }
    }

    /// One environment variable of the step's process (e.g. `DOCKER_HOST`). Steps read the
    /// environment only through here, so tests can set it without touching the process.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Params of a step that takes none: any key is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A Concourse resource type.
///
/// `async fn` in a public trait: the harness runs one current-thread runtime, so the futures
/// need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Resource {
    /// The resource type's name (`gcr-image`), as in the usage line and the binary name.
    const NAME: &'static str;
    /// `("source.repository", "\"us.gcr.io/project/name\"")`: shown when a field is missing.
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[];

    /// `source`, as written in the pipeline.
    type Source: DeserializeOwned;
    /// A version: must serialize to a flat object of strings.
    type Version: Serialize + DeserializeOwned + PartialEq;
    /// `params` of `get` (and `get_params` of a put).
    type GetParams: DeserializeOwned + Default;
    /// `params` of `put`.
    type PutParams: DeserializeOwned + Default;

    /// Versions since `version`, oldest first (use [`crate::versions_since`]). Changes nothing.
    async fn check(
        &self,
        source: Self::Source,
        version: Option<Self::Version>,
        ctx: &Context,
    ) -> anyhow::Result<Vec<Self::Version>>;

    /// Fetches `version` into `dest`. Fails if the version no longer exists. Changes nothing
    /// outside `dest`.
    async fn get(
        &self,
        source: Self::Source,
        version: Self::Version,
        params: Self::GetParams,
        dest: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Self::Version>>;

    /// Creates a version from the build's inputs under `sources`. The only writer.
    async fn put(
        &self,
        source: Self::Source,
        params: Self::PutParams,
        sources: &Path,
        ctx: &Context,
    ) -> anyhow::Result<Response<Self::Version>>;
}
