//! Whose file is it: sandbox.toml (and sandbox.lock) in a directory another user controls is
//! refused, as git refuses a repository owned by someone else since CVE-2022-24765. In a
//! shared dir (/tmp, a group share) another user's sandbox.toml above the current dir would
//! otherwise run its setup steps as container root for whoever runs sandbox there.
//! Exceptions are the user's to make, in their own config: `safe_directories`.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::config::error::ConfigError;

/// Checks that `file` and its directory belong to us (or to root), unless the directory is
/// listed in `safe_directories` of the user config (or the list holds `*`).
pub fn check(file: &Path) -> Result<(), ConfigError> {
    let me = nix::unistd::geteuid().as_raw();
    let dir = file.parent().unwrap_or(Path::new("/"));
    for path in [file, dir] {
        let owner = fs_err::metadata(path).map_err(ConfigError::Io)?.uid();
        if owner != me && owner != 0 && !is_safe(dir) {
            return Err(ConfigError::NotOwned {
                path: path.to_owned(),
                owner: owner_name(owner),
                dir: dir.to_owned(),
                config: crate::config::user::own_config_path(),
            });
        }
    }
    Ok(())
}

fn owner_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// Whether the user config lists `dir` (or `*`) as safe. Read only when an owner differs.
fn is_safe(dir: &Path) -> bool {
    let listed = crate::config::user::safe_directories().unwrap_or_default();
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    listed.iter().any(|entry: &PathBuf| {
        entry.as_os_str() == "*"
            || entry == dir
            || entry.canonicalize().is_ok_and(|e| e == canonical)
    })
}
