//! An OCI distribution (registry) client for our resources: gcr-image, and acceptance-run's
//! report storage. See `client` for why it is ours and how it spends requests.

pub mod client;
pub mod error;
pub mod oci;
pub mod push;
pub mod reference;

pub use client::{
    Client, Credentials, MANIFEST_TYPES, Manifest, Mount, Options, TagList, sha256_digest,
};
pub use error::RegistryError;
pub use reference::Repository;
