//! An OCI distribution (registry) client for our resources: gcr-image, and acceptance-run's
//! report storage. See `client` for why it is ours and how it spends requests.

mod auth;
mod blobs;
pub mod client;
mod digest;
pub mod error;
mod manifests;
pub mod oci;
pub mod push;
pub mod reference;
mod tags;
mod transport;

pub use client::{
    Client, Credentials, Hints, MANIFEST_TYPES, Manifest, Mount, Options, TagList, sha256_digest,
};
pub use error::RegistryError;
pub use reference::Repository;
