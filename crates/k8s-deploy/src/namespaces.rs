//! Namespaces of `out`: deleting one (a test run's, or this build's by its prefix) and the
//! janitor that deletes what failed builds left; the label values the resource writes on
//! the namespaces it makes.

use crate::Version;
use crate::cluster::Cluster;
use protocol::{Metadata, Response};
use std::time::Duration;

/// The janitor: deletes the namespaces k8s-deploy made with `prefix` that are older than
/// `older_than` (a test run whose cleanup never ran: a worker lost, a hook that failed).
pub async fn prune(
    cluster: &Cluster,
    prefix: &str,
    older_than: Duration,
) -> anyhow::Result<Response<Version>> {
    let stale = cluster.stale_namespaces(prefix, older_than).await?;
    for name in &stale {
        cluster.delete_namespace(name).await?;
        tracing::info!(
            "namespace {name} deleted (older than {})",
            protocol::duration::format(older_than)
        );
    }
    if stale.is_empty() {
        tracing::info!(
            "no {prefix}-* namespace older than {}",
            protocol::duration::format(older_than)
        );
    }
    Ok(Response::new(Version {
        namespace: format!("{prefix}-*"),
        revision: format!("pruned-{}", stale.len()),
    })
    .with_metadata(
        Metadata::new()
            .with("deleted", stale.join(" "))
            .with("count", stale.len().to_string()),
    ))
}

pub async fn delete_namespace(
    cluster: &Cluster,
    namespace: String,
) -> anyhow::Result<Response<Version>> {
    let deleted = cluster.delete_namespace(&namespace).await?;
    tracing::info!(
        "namespace {namespace} {}",
        if deleted {
            "deleted"
        } else {
            "was already gone"
        }
    );
    Ok(Response::new(Version {
        namespace: namespace.clone(),
        revision: "deleted".into(),
    })
    .with_metadata(
        Metadata::new()
            .with("namespace", namespace)
            .with("deleted", deleted.to_string()),
    ))
}

pub use kube_access::label_value;
