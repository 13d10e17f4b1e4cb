//! The project a command works on: its sandbox.toml (from --config, or the nearest at or above
//! the current dir), checked against the trust list, and the image it resolves to.

use std::path::{Path, PathBuf};

use crate::config::project::{self, Project};
use crate::config::{lock, ConfigError};
use crate::project::error::ProjectError;
use crate::project::locations::Locations;

/// The sandbox.toml to use, if any: --config (which must exist), else the nearest one.
pub fn locate(locations: &Locations, cwd: &Path) -> Result<Option<PathBuf>, ProjectError> {
    match &locations.config {
        Some(file) => {
            let file = if file.is_absolute() {
                file.clone()
            } else {
                cwd.join(file)
            };
            if !file.is_file() {
                return Err(ConfigError::Read {
                    path: file,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }
                .into());
            }
            Ok(Some(file))
        }
        None => Ok(project::find(cwd)),
    }
}

/// The project, which must exist.
pub fn load(locations: &Locations, cwd: &Path) -> Result<Project, ProjectError> {
    let file = locate(locations, cwd)?.ok_or_else(|| ConfigError::NoProject {
        dir: cwd.to_owned(),
    })?;
    Ok(project::load(&file)?)
}

/// What the project's lock says about its current inputs.
pub enum LockState {
    /// No sandbox.lock.
    Missing,
    /// It matches sandbox.toml: these digests hold.
    Current(Box<lock::LockFile>),
    /// sandbox.toml changed since: the lines that differ.
    Drifted(Vec<String>),
}

pub fn lock_state(project: &Project) -> Result<LockState, ProjectError> {
    let Some(locked) = lock::read(project)? else {
        return Ok(LockState::Missing);
    };
    let drift = lock::drift(&locked.inputs, &lock::Inputs::of(project));
    Ok(if drift.is_empty() {
        LockState::Current(Box::new(locked))
    } else {
        LockState::Drifted(drift)
    })
}

/// `--locked`: the lock must exist and match.
pub fn require_current_lock(project: &Project) -> Result<lock::LockFile, ProjectError> {
    match lock_state(project)? {
        LockState::Current(locked) => Ok(*locked),
        LockState::Missing => Err(ProjectError::Refused {
            message: format!(
                "--locked: {} has no sandbox.lock",
                project.dir.display()
            ),
            hint: Some("write one with `sandbox lock` and commit it".into()),
        }),
        LockState::Drifted(lines) => Err(ProjectError::Refused {
            message: format!(
                "--locked: sandbox.toml no longer matches sandbox.lock:\n{}",
                lines
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            hint: Some(
                "run `sandbox lock` to record the change (and commit sandbox.lock), or undo the edit"
                    .into(),
            ),
        }),
    }
}
