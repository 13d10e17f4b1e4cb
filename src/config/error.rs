//! The config layer's error type.

use std::path::PathBuf;

use crate::fsutil::small_file::SmallFileError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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

    /// A config file that is not a regular file, is too large or cannot be read.
    #[error(transparent)]
    File(#[from] SmallFileError),

    #[error("{} belongs to {owner}, not to you: sandbox does not obey another user's file", path.display())]
    NotOwned {
        path: PathBuf,
        owner: String,
        dir: PathBuf,
        /// The user config, where the exception would go.
        config: Option<PathBuf>,
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
            ConfigError::Invalid { hint, .. } | ConfigError::Other { hint, .. } => hint.clone(),
            ConfigError::NoProject { .. } => Some(
                "write one with `sandbox init` (e.g. `sandbox init java@21`); without one, `sandbox run` and `sandbox enter` take an image with --image".into(),
            ),
            ConfigError::NotOwned { dir, config, .. } => Some(format!(
                "if you trust it, add the directory to `safe_directories` in your config ({}): safe_directories = [\"{}\"]",
                config.as_ref().map_or_else(|| "~/.config/sandbox/config.toml".to_owned(), |p| p.display().to_string()),
                dir.display()
            )),
            ConfigError::File(SmallFileError::NotRegularFile { .. }) => Some("replace it with a regular file (or remove it)".into()),
            ConfigError::File(SmallFileError::TooLarge { .. }) => Some("a config file this large is not one sandbox wrote or expects; check what it is".into()),
            ConfigError::File(SmallFileError::Read { .. })
            | ConfigError::Read { .. }
            | ConfigError::EncodeLock { .. }
            | ConfigError::Io(_) => None,
        }
    }
}
