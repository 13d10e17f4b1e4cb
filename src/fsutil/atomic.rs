//! Write-to-temp-then-rename, so a reader sees either the old file or the whole new one.
//!
//! The temp file is created next to the target with `O_EXCL`, so a symlink planted at the target
//! (or at a guessable temp name) is never followed: the rename replaces the link itself.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name unique to this process and call, for temp files and dirs.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

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
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp: PathBuf = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let result = (|| {
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs_err::rename(&temp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&temp);
    }
    result
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
