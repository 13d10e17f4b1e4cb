//! Persistent homes: one per project, under `homes/` in the store (not the host's home), so
//! shell history, editor state and tool logins survive between runs of that project's sandbox.
//! Like the project dir, a home is writable from inside and so a channel to later runs.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::image::store::Store;

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
    // Which project it is for, beside it (out of the sandbox's reach): `prune` removes the
    // homes of projects that are gone.
    // Its time is the home's last use.
    let marker = project_marker(&dir);
    let touched = fs_err::OpenOptions::new()
        .append(true)
        .open(&marker)
        .and_then(|f| f.into_parts().0.set_modified(std::time::SystemTime::now()));
    if touched.is_err() {
        crate::fsutil::atomic::write_file_atomic(
            &marker,
            project.as_os_str().as_encoded_bytes(),
            0o600,
        )?;
    }
    Ok(dir)
}

/// `homes/<hash>.project`: the path of the project whose home `homes/<hash>` is.
fn project_marker(home: &Path) -> PathBuf {
    home.with_extension("project")
}

/// A home in the store, and what is known of its project.
#[derive(Clone, Debug)]
pub struct HomeEntry {
    pub dir: PathBuf,
    /// The project's path (`None`: made before homes named theirs).
    pub project: Option<PathBuf>,
    pub bytes: u64,
    /// When a run last used it.
    pub used: Option<std::time::SystemTime>,
}

impl HomeEntry {
    /// Its project dir is gone (deleted or moved): nothing will use this home again.
    pub fn orphaned(&self) -> bool {
        self.project.as_ref().is_some_and(|p| !p.exists())
    }
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

    /// Every home in the store, with its size.
    pub fn homes(&self) -> Vec<HomeEntry> {
        use std::os::unix::ffi::OsStringExt as _;
        let Ok(entries) = fs_err::read_dir(self.homes_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| {
                let dir = e.path();
                // Written by us, beside the home (no sandbox reaches it); a path at most.
                let used = fs_err::metadata(project_marker(&dir))
                    .and_then(|m| m.modified())
                    .ok();
                let project = fs_err::read(project_marker(&dir))
                    .ok()
                    .filter(|bytes| bytes.len() <= 4096 && bytes.starts_with(b"/"))
                    .map(|bytes| PathBuf::from(std::ffi::OsString::from_vec(bytes)));
                HomeEntry {
                    bytes: crate::image::store::tree_size(&dir),
                    dir,
                    project,
                    used,
                }
            })
            .collect()
    }

    /// Removes the homes whose project is gone and that no run used for `grace`: how many,
    /// and their bytes. Needs the store's user namespace (container root's files are in them).
    pub fn prune_homes(
        &self,
        grace: std::time::Duration,
    ) -> Result<(usize, u64), crate::image::ImageError> {
        let idle = |home: &HomeEntry| {
            home.used
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|d| d >= grace)
        };
        let mut freed = (0, 0);
        for home in self.homes().into_iter().filter(|h| h.orphaned() && idle(h)) {
            crate::image::store::remove_any(&home.dir)?;
            crate::image::store::remove_any(&project_marker(&home.dir))?;
            freed.0 += 1;
            freed.1 += home.bytes;
        }
        Ok(freed)
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

    #[test]
    fn prune_removes_the_homes_of_projects_that_are_gone() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let projects = tempfile::tempdir().unwrap();
        let (kept, gone) = (projects.path().join("kept"), projects.path().join("gone"));
        fs_err::create_dir_all(&kept).unwrap();
        fs_err::create_dir_all(&gone).unwrap();
        fs_err::write(store.home_dir(&kept).unwrap().join(".bash_history"), "ls\n").unwrap();
        let old = store.home_dir(&gone).unwrap();
        fs_err::write(old.join(".bash_history"), "make\n").unwrap();
        fs_err::remove_dir(&gone).unwrap();
        let homes = store.homes();
        assert_eq!(homes.len(), 2);
        assert_eq!(homes.iter().filter(|h| h.orphaned()).count(), 1);
        // Used a moment ago: kept for the grace period, unless none is given.
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        assert_eq!(store.prune_homes(week).unwrap(), (0, 0));
        assert_eq!(
            store.prune_homes(std::time::Duration::ZERO).unwrap(),
            (1, 5)
        );
        assert!(!old.exists() && !old.with_extension("project").exists());
        assert!(store.home_path(&kept).join(".bash_history").exists());
        assert_eq!(
            store.prune_homes(std::time::Duration::ZERO).unwrap(),
            (0, 0)
        );
    }
}
