//! Write-to-temp-then-rename, so a reader sees either the old file or the whole new one.
//!
//! The bytes go to an unnamed file in the target's dir (`O_TMPFILE`; where the file system has
//! none, a fresh `O_EXCL` name), so a symlink planted at the target (or at a guessable temp
//! name) is never followed: the rename replaces the link itself.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically with `mode`, fsyncing file and directory.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_replacing(path, bytes, mode, true)
}

/// As `write_file_atomic` without the fsyncs, for records that do not outlive a reboot (a
/// running container's state): still never half-written, still never through a symlink.
pub fn write_file_replacing(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_replacing(path, bytes, mode, false)
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let dir_fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // Written unnamed (O_TMPFILE, else a fresh O_EXCL name) and renamed over the target.
    crate::fsutil::beneath::replace_at(dir_fd.as_fd(), name, mode, |file| {
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        Ok(())
    })?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_planted_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs_err::write(&victim, "keep").unwrap();
        let target = dir.path().join("sandbox.lock");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_file_atomic(&target, b"new", 0o644).unwrap();
        assert_eq!(fs_err::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs_err::read_to_string(&target).unwrap(), "new");
        assert!(!fs_err::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
