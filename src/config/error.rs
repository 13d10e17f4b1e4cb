//! The config layer's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// toml's own message carries the line, column and a caret under the offending text.
    #[error("invalid config file {path}\n{message}")]
    Toml { path: PathBuf, message: String },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Toml { .. } => Some(
                "the keys are `prefix`, `location`, `insecure`, `blocked` and `[[registry.mirror]]` with `location` and `insecure`, as in containers-registries.conf(5)".into(),
            ),
            ConfigError::Io(_) => None,
        }
    }
}
