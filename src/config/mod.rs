//! The config layer: it knows the TOML files and turns them into values the image layer uses.

pub mod error;
pub mod user;

pub use error::ConfigError;
