//! The CLI's error: one variant per lower layer, rendered as `error:`, the cause chain, `hint:`.

use crate::config::ConfigError;
use crate::image::ImageError;
use crate::project::error::ProjectError;
use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// A failure that is sandbox's own bug, not the user's or the host's.
    #[error("internal error: {what}")]
    Internal {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<crate::image::reference::ReferenceError> for CliError {
    fn from(e: crate::image::reference::ReferenceError) -> Self {
        CliError::Image(e.into())
    }
}

impl CliError {
    fn hint(&self) -> Option<String> {
        match self {
            CliError::Config(e) => e.hint(),
            CliError::Image(e) => e.hint(),
            CliError::Runtime(e) => e.hint(),
            CliError::Usage { hint, .. } => hint.clone(),
            CliError::Project(e) => e.hint(),
            CliError::Internal { .. } => {
                Some("this is a bug in sandbox; please report it with the command you ran".into())
            }
            CliError::Io(_) => None,
        }
    }

    /// The text printed for this error: message, causes, hint.
    pub fn render(&self) -> String {
        let mut out = format!("error: {self}\n");
        let mut source = std::error::Error::source(self);
        let mut last = self.to_string();
        while let Some(cause) = source {
            let text = cause.to_string();
            // transparent wrappers repeat their inner message; show each text once.
            if !last.contains(&text) {
                out.push_str(&format!("  caused by: {text}\n"));
            }
            last = text;
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}
