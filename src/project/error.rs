//! The project layer's errors: what went wrong preparing a project's sandbox, with the
//! layers' own errors kept as their causes.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::image::error::ImageError;
use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// What was asked cannot be done as asked; the hint says what can.
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    #[error("setup step {step} of {total} {} exit code {code}: {text}\n{output}", end.verb())]
    SetupStep {
        step: usize,
        total: usize,
        code: i32,
        text: String,
        /// The last lines it printed, indented.
        output: String,
        file: PathBuf,
        end: StepEnd,
    },
    #[error("{} pins a prepared sandbox, {prepared}, to run in place of the setup steps, and it was not made here (no `sandbox lock --push` of yours wrote it)", lock.display())]
    UntrustedPrepared { prepared: String, lock: PathBuf },
    #[error("the prepared sandbox {prepared} that sandbox.lock pins does not stand on the base it pins ({base}): its first layers differ")]
    PreparedOffBase { prepared: String, base: String },
    #[error("there is no place for {what}: HOME is not set")]
    NoHome {
        what: &'static str,
        variable: &'static str,
    },
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

/// How a setup step that did not succeed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    /// It failed by itself: the step needs fixing.
    Failed,
    /// Ended by Ctrl-C or SIGTERM (128 + 2 or 15): nothing to fix.
    Interrupted,
    /// The allow-list refused these while it ran (`name:port`).
    Blocked(Vec<String>),
}

impl StepEnd {
    pub fn of(code: i32, blocked: Vec<String>) -> Self {
        if code == 128 + libc::SIGINT || code == 128 + libc::SIGTERM {
            StepEnd::Interrupted
        } else if !blocked.is_empty() {
            StepEnd::Blocked(blocked)
        } else {
            StepEnd::Failed
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            StepEnd::Interrupted => "was interrupted, with",
            StepEnd::Failed | StepEnd::Blocked(_) => "failed with",
        }
    }
}

impl From<crate::image::reference::ReferenceError> for ProjectError {
    fn from(e: crate::image::reference::ReferenceError) -> Self {
        ProjectError::Image(e.into())
    }
}

impl ProjectError {
    /// A request refused, with what to do instead.
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ProjectError::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ProjectError::Config(e) => e.hint(),
            ProjectError::Image(e) => e.hint(),
            ProjectError::Runtime(e) => e.hint(),
            ProjectError::Refused { hint, .. } => hint.clone(),
            ProjectError::SetupStep { file, end, .. } => Some(match end {
                StepEnd::Interrupted => "run again to go on from this step: the steps before it are stored and will not rerun".to_owned(),
                StepEnd::Blocked(targets) => format!(
                    "the step reached for {}, which the setup steps' allow-list does not name: add it to `setup_allow` in [network] of {} (or a preset: \"@toolchain\", \"@debian\")",
                    targets.join(", "),
                    file.display()
                ),
                StepEnd::Failed => format!(
                    "fix the step in {} and run again; the steps before it are stored and will not rerun",
                    file.display()
                ),
            }),
            ProjectError::UntrustedPrepared { .. } => Some(
                "review where the lock came from, then `sandbox trust` to pull and run it; or `sandbox lock --update` to run the setup steps here instead".into(),
            ),
            ProjectError::PreparedOffBase { .. } => Some(
                "`sandbox lock --update` pins the base again and runs the setup steps here".into(),
            ),
            ProjectError::NoHome { variable, .. } => {
                Some(format!("set HOME, or {variable}, to an absolute path"))
            }
            ProjectError::Internal { .. } => {
                Some("this is a bug in sandbox; please report it with the command you ran".into())
            }
            ProjectError::Io(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StepEnd;

    #[test]
    fn a_step_ends_interrupted_blocked_or_failed() {
        assert_eq!(StepEnd::of(130, Vec::new()), StepEnd::Interrupted);
        assert_eq!(StepEnd::of(143, vec!["x:443".into()]), StepEnd::Interrupted);
        assert_eq!(
            StepEnd::of(1, vec!["evil.example:443".into()]),
            StepEnd::Blocked(vec!["evil.example:443".into()])
        );
        assert_eq!(StepEnd::of(2, Vec::new()), StepEnd::Failed);
    }
}
