#![recursion_limit = "512"]
//! Test doubles of external systems, shared by every test and by the demo.
//!
//! Each double listens on a free 127.0.0.1 port, runs on its own thread and runtime (so
//! synchronous tests and the harness's own runtime never share one), and stops when dropped.
//! A double must behave like the real system on everything we use; each module says what it
//! is checked against.

pub mod certs;
pub mod fault;
pub mod feed;
pub mod github;
pub mod google;
pub mod kube;
pub mod registry;
mod server;
pub mod token;

pub use server::Server;
