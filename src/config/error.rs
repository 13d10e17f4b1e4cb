//! The config layer's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// toml's own message carries the line, column and a caret under the offending text.
    #[error("invalid config file {path}\n{message}")]
    Toml { path: PathBuf, message: String },

    /// A problem at a place in a file: the first line is `path:line:column: message`, then the
    /// offending line with the text underlined.
    #[error("{}:{line}:{column}: {message}{}", path.display(), if snippet.is_empty() { String::new() } else { format!("\n{snippet}") })]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
        hint: Option<String>,
    },

    #[error("no sandbox.toml in {} or any directory above it", dir.display())]
    NoProject { dir: PathBuf },

    #[error("internal error: cannot encode sandbox.lock")]
    EncodeLock {
        #[source]
        source: toml::ser::Error,
    },

    #[error("there is no place for {what}: HOME is not set")]
    NoHome { what: &'static str },

    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{message}")]
    Other {
        message: String,
        hint: Option<String>,
    },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NoHome { .. } => {
                Some("set HOME (or XDG_CONFIG_HOME) to an absolute path".into())
            }
            ConfigError::Toml { .. } => Some(
                "the keys are `prefix`, `location`, `insecure`, `blocked` and `[[registry.mirror]]` with `location` and `insecure`, as in containers-registries.conf(5)".into(),
            ),
            ConfigError::Invalid { hint, .. } | ConfigError::Other { hint, .. } => hint.clone(),
            ConfigError::NoProject { .. } => Some(
                "write one with `sandbox init` (e.g. `sandbox init java@21`), or name an image with --image".into(),
            ),
            ConfigError::Read { .. } | ConfigError::EncodeLock { .. } | ConfigError::Io(_) => None,
        }
    }
}
