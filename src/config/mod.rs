//! The config layer: it knows the TOML files (the user's config, sandbox.toml, the templates,
//! sandbox.lock, the trust list) and turns them into values the other layers use.

pub mod diagnostic;
pub mod egress;
pub mod error;
pub mod files;
pub mod forward;
pub mod lock;
pub mod ownership;
pub mod project;
pub mod setup;
pub mod templates;
pub mod trust;
pub mod user;
pub mod version_hints;

pub use error::ConfigError;
