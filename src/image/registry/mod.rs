//! Talking to OCI distribution registries.

pub mod blob_reader;
pub mod challenge;
pub mod client;
pub mod credentials;
pub mod hosts;
pub mod tls;
pub mod upload;
