//! Persistent homes: one per project, under `homes/` in the store (not the host's home), so
//! shell history, editor state and tool logins survive between runs of that project's sandbox.
//! Like the project dir, a home is writable from inside and so a channel to later runs.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use super::Store;

/// The home of the project at `project` in the store at `root` (by its path's digest).
pub fn home_path(root: &Path, project: &Path) -> PathBuf {
    let name = crate::image::Digest::of_bytes(project.as_os_str().as_encoded_bytes());
    root.join("homes").join(&name.hex()[..32])
}

/// The project's home, made (empty, the user's alone) when missing. Needs no user namespace:
/// it is the user's own dir, and the user is themselves inside.
pub fn ensure_home(root: &Path, project: &Path) -> std::io::Result<PathBuf> {
    let dir = home_path(root, project);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

impl Store {
    pub fn homes_dir(&self) -> PathBuf {
        self.root().join("homes")
    }

    pub fn home_path(&self, project: &Path) -> PathBuf {
        home_path(self.root(), project)
    }

    pub fn home_dir(&self, project: &Path) -> std::io::Result<PathBuf> {
        ensure_home(self.root(), project)
    }

    /// Empties the project's home; whether it had anything.
    pub fn reset_home(&self, project: &Path) -> std::io::Result<bool> {
        let dir = self.home_path(project);
        let Ok(entries) = fs_err::read_dir(&dir) else {
            return Ok(false);
        };
        let mut had = false;
        for entry in entries {
            let entry = entry?;
            had = true;
            // Never follows a link planted inside: a link itself is removed.
            if entry.file_type()?.is_dir() {
                fs_err::remove_dir_all(entry.path())?;
            } else {
                fs_err::remove_file(entry.path())?;
            }
        }
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_empties_the_home_without_following_links_out_of_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let home = store.home_dir(Path::new("/work/app")).unwrap();
        assert_ne!(home, store.home_dir(Path::new("/work/other")).unwrap());
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("keep"), "x").unwrap();
        fs_err::create_dir_all(home.join(".config/app")).unwrap();
        fs_err::write(home.join(".bash_history"), "ls\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), home.join("link")).unwrap();
        assert!(store.reset_home(Path::new("/work/app")).unwrap());
        assert_eq!(fs_err::read_dir(&home).unwrap().count(), 0);
        assert!(outside.path().join("keep").exists());
        assert!(!store.reset_home(Path::new("/work/app")).unwrap());
    }
}
