//! Where a command's store, caches and sandbox.toml are, as the user chose them (`--root`,
//! `--config`, or their variables), else where they live by default.

use std::path::PathBuf;

use crate::project::error::ProjectError;

/// The user's choices of places; `None` takes the default.
#[derive(Clone, Debug, Default)]
pub struct Locations {
    /// `--root` / `SANDBOX_ROOT`: the store (and its caches).
    pub root: Option<PathBuf>,
    /// `--config` / `SANDBOX_CONFIG`: the project's sandbox.toml.
    pub config: Option<PathBuf>,
}

impl Locations {
    /// Where the store lives: --root, $SANDBOX_ROOT, else $XDG_DATA_HOME/sandbox (never a
    /// directory relative to wherever the command happens to run).
    pub fn store_root(&self) -> Result<PathBuf, ProjectError> {
        if let Some(root) = &self.root {
            return Ok(root.clone());
        }
        dirs::data_dir()
            .map(|d| d.join("sandbox"))
            .ok_or(ProjectError::NoHome {
                what: "the image store",
                variable: "SANDBOX_ROOT or XDG_DATA_HOME",
            })
    }

    /// Where the caches live: `$XDG_CACHE_HOME/sandbox/caches`; `None` when neither it nor
    /// HOME is set. A store of its own (`--root`, `SANDBOX_ROOT`) has its caches of its own,
    /// inside it, as podman's `--root` keeps its volumes: one move, one `rm -rf`, nothing
    /// shared by accident.
    pub fn caches_root(&self) -> Option<PathBuf> {
        match &self.root {
            Some(root) => Some(root.join("caches")),
            None => dirs::cache_dir().map(|d| d.join("sandbox").join("caches")),
        }
    }
}
