//! `in`: what runs, as `deployments.json`, plus `namespace` and `revision` files. Fails if the
//! revision is no longer what runs, unless `allow_drift: true`.

use crate::Version;
use crate::cluster::Cluster;
use crate::source::{Config, GetParams};
use crate::state;
use protocol::{Metadata, Response};
use std::path::Path;

pub async fn get(
    config: &Config,
    version: Version,
    params: GetParams,
    dest: &Path,
) -> anyhow::Result<Response<Version>> {
    let write = |name: &str, content: &str| {
        std::fs::write(dest.join(name), content)
            .map_err(|e| anyhow::anyhow!("write {}/{name}: {e}", dest.display()))
    };
    write("namespace", &version.namespace)?;
    if version.revision == "deleted" {
        write("deployments.json", "[]")?;
        write("revision", "deleted")?;
        return Ok(Response::new(version)
            .with_metadata(Metadata::new().with("state", "namespace deleted")));
    }
    let cluster = Cluster::connect(config).await?;
    let set = state::deployed(&cluster, &version.namespace, &config.deployments).await?;
    let now = state::revision(&set);
    if now != version.revision && !params.allow_drift {
        anyhow::bail!(
            "namespace {} no longer runs revision {} (it runs {now}: someone deployed since); set params.allow_drift: true to take what runs",
            version.namespace,
            version.revision
        );
    }
    write("deployments.json", &serde_json::to_string_pretty(&set)?)?;
    write("revision", &now)?;
    let mut metadata = Metadata::new().with("namespace", version.namespace.as_str());
    for d in &set {
        metadata.push(
            d.name.as_str(),
            format!(
                "{}/{} ready; {}",
                d.ready_replicas,
                d.replicas,
                d.containers
                    .iter()
                    .map(|c| c.image.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    Ok(Response::new(version).with_metadata(metadata))
}
