//! End-to-end tests across crates and images live in this package's test targets; this
//! library is empty.
