//! `make demo`: the pipeline walked locally for the sample system in `examples/`.
//!
//! - `env`: the outside world on loopback — Debian's docker-registry (standing in for
//!   us.gcr.io), a Google token endpoint, two Kubernetes fakes (test and production) whose
//!   pods run as Docker containers, a GitHub fake with the sample repositories.
//! - `walk`: a small Concourse. The pipeline is rendered from `examples/sample-system/repos.yml` by the
//!   same renderer as `ci/pipeline.yml`; each job's plan is walked in order; every `get`/`put`
//!   of our resource types runs our resource image under Docker as a Concourse worker runs it
//!   (`/opt/resource/check|in|out`, the JSON request on stdin built from the pipeline's
//!   `source` and `params` with the `((vars))` filled in, the build directory mounted, the
//!   `BUILD_*` environment). What is not ours is stood in for and said so: git checkouts, the
//!   unit-test task, the image build task (`docker save` of the image `make images` built).
//! - `bad_release`: `demo bad-release`, a broken release the production canary stops.

pub mod bad_release;
pub mod env;
pub mod walk;

/// Where the production registry's repositories are, in the rendered pipeline.
pub const REGISTRY: &str = "us.gcr.io/microservices-kube";

/// One row of `examples/sample-system/repos.yml` beyond the renderer's columns: the local image the
/// build task stands for.
#[derive(Debug, Clone)]
pub struct DemoRepo {
    pub name: String,
    pub image: String,
}

/// The sample system's table: the renderer's rows and the demo's images.
pub fn table(text: &str) -> anyhow::Result<(Vec<pipeline::render::Repo>, Vec<DemoRepo>)> {
    let repos = pipeline::render::repos(text).map_err(anyhow::Error::msg)?;
    let doc = pipeline::yaml::parse(text).map_err(anyhow::Error::msg)?;
    let mut demo = Vec::new();
    for r in doc
        .get("repositories")
        .map(pipeline::yaml::Node::items)
        .unwrap_or_default()
    {
        let name = r.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let image = r.get("image").and_then(|n| n.as_str()).ok_or_else(|| {
            anyhow::anyhow!(
                "examples/sample-system/repos.yml:{}: {name} has no image",
                r.line
            )
        })?;
        demo.push(DemoRepo {
            name: name.to_owned(),
            image: image.to_owned(),
        });
    }
    Ok((repos, demo))
}
