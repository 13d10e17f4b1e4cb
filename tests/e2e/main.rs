//! The end-to-end tests, as one binary: each module drives the real `sandbox` binary as a user
//! would, against registries and servers the tests start on loopback. `support` (shared with
//! nothing else) holds the harness: the test user, registries, image builders.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::print_stderr
)]

#[path = "../support/mod.rs"]
mod support;

mod confinement;
mod debian_mirror;
mod egress;
mod hostile;
mod limits;
mod mobility;
mod network;
mod planted_links;
mod project;
mod pull;
mod run;
mod store;
mod vm;
