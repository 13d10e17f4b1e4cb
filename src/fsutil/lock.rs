//! Cross-process locks with flock(2): the kernel drops them when the holder dies, so a kill -9
//! never leaves a stale lock behind.

use std::path::Path;

/// A held flock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    _held: nix::fcntl::Flock<std::fs::File>,
}

/// Shared (many readers or pullers) or exclusive (garbage collection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Blocks until the lock at `path` is held.
    pub fn acquire(path: &Path, mode: LockMode) -> std::io::Result<Self> {
        Self::lock(path, mode, true)
            .map(|l| l.ok_or_else(|| std::io::Error::other("lock not taken")))?
    }

    /// Takes the lock only if nobody holds it; `None` when it is busy.
    pub fn try_acquire(path: &Path, mode: LockMode) -> std::io::Result<Option<Self>> {
        Self::lock(path, mode, false)
    }

    fn lock(path: &Path, mode: LockMode, wait: bool) -> std::io::Result<Option<Self>> {
        use nix::errno::Errno;
        use nix::fcntl::{Flock, FlockArg};
        let (mut file, _) = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?
            .into_parts();
        let op = match (mode, wait) {
            (LockMode::Shared, true) => FlockArg::LockShared,
            (LockMode::Shared, false) => FlockArg::LockSharedNonblock,
            (LockMode::Exclusive, true) => FlockArg::LockExclusive,
            (LockMode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
        };
        loop {
            match Flock::lock(file, op) {
                Ok(held) => return Ok(Some(Self { _held: held })),
                Err((again, Errno::EINTR)) => file = again,
                Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
                Err((_, errno)) => {
                    let err = std::io::Error::from(errno);
                    return Err(std::io::Error::new(
                        err.kind(),
                        format!("cannot lock {}: {err}", path.display()),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::acquire(&path, LockMode::Exclusive).unwrap();
        assert!(FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .is_none());
        drop(held);
        let a = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        let b = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
    }
}
