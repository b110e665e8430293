//! The Concourse resource protocol, and nothing else.
//!
//! Every resource binary is `fn main() { protocol::main(MyResource) }`. This crate owns
//! what Concourse sees: argv dispatch (`check`, `in <dir>`, `out <dir>`), the JSON request on
//! stdin, the JSON answer on stdout, the log on stderr, the exit code. Resource crates supply
//! typed `Source`/`Version`/params and three async step functions ([`Resource`]).
//!
//! Invariants kept here (see ARCHITECTURE.md):
//! - only [`harness`] writes stdout, exactly one JSON document, and only on success;
//! - every failure is one line on stderr and a non-zero exit; the request is never echoed;
//! - versions are flat maps of strings, metadata values are strings;
//! - a panic becomes one error line and exit 1.

pub mod abort;
pub mod build_info;
pub mod duration;
pub mod error;
pub mod harness;
pub mod image_ref;
pub mod lenient;
pub mod log;
pub mod order;
mod parse;
pub mod paths;
pub mod resource;
pub mod retry;
pub mod secret;
pub mod text;
pub mod time;
pub mod url;
pub mod wire;

pub use build_info::BuildMetadata;
pub use error::FieldError;
pub use harness::{Invocation, Outcome, main, run};
pub use order::versions_since;
pub use resource::{Context, Resource};
pub use secret::Secret;
pub use wire::{Metadata, Response};
