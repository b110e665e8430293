//! `check`: the set of images deployed now, as one version; the protocol's ordering rule.

use crate::Version;
use crate::cluster::Cluster;
use crate::source::Config;
use crate::state;
use protocol::versions_since;

pub async fn check(config: &Config, given: Option<Version>) -> anyhow::Result<Vec<Version>> {
    let cluster = Cluster::connect(config).await?;
    let set = state::deployed(&cluster, &config.namespace, &config.deployments).await?;
    if set.is_empty() {
        return Ok(Vec::new());
    }
    let current = Version {
        namespace: config.namespace.clone(),
        revision: state::revision(&set),
    };
    Ok(versions_since(given.as_ref(), vec![current]))
}
