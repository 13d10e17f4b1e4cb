//! Shared test harness: an environment that runs the real binary as the unprivileged test user,
//! a real registry on loopback, an OCI image builder, and a hostile registry.
#![allow(dead_code)]

pub mod env;
pub mod hostile;
pub mod oci;
pub mod registry;

pub use env::TestEnv;

#[allow(unused_imports)]
pub use registry::Registry;
