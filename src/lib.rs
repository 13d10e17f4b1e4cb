//! `sandbox`: rootless per-project developer sandboxes from OCI images.
//!
//! Layers, in the one direction data flows: `cli` (parses, dispatches, prints) -> `project` (a
//! project's sandbox: its image, setup layers, trust, start or join) -> `config` (the TOML
//! files), `image` (references, registries, manifests, blobs, unpacking, the store) and
//! `runtime` (namespaces, identity, mounts, network, limits); `settings` holds sandbox.toml's
//! vocabulary that config and runtime share, and the `sys` crate every unsafe block. Lower
//! layers report through traits and never print.
//! A library as well as the binary so the fuzz targets (`fuzz/`) reach the parsers of
//! untrusted input.

#![forbid(unsafe_code)]
pub mod cli;
pub mod config;
pub mod fsutil;
pub mod image;
pub mod project;
pub mod runtime;
pub mod settings;
