//! Reading a small text file that may be hostile: it must be a regular file and is size-capped,
//! so a `sandbox.lock -> /dev/zero`, a FIFO or a 300 MB file is an error, not a hang or an
//! exhausted memory. Opened non-blocking so a FIFO cannot stall the open itself.

use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Why a small file could not be read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is {found}, not a regular file", path.display())]
    NotRegularFile { path: PathBuf, found: &'static str },

    #[error("{} is larger than {}", path.display(), size(*limit))]
    TooLarge { path: PathBuf, limit: u64 },
}

/// A byte count as `1 MiB` / `4 KiB`.
fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a path is, for an error that names it.
fn kind(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The text of `path`, `None` when it does not exist. Anything but a regular file of at most
/// `limit` bytes of UTF-8 is an error naming the file.
pub fn read_optional(path: &Path, limit: u64) -> Result<Option<String>, SmallFileError> {
    let read_error = |source| SmallFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read_error(source)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.file_type().is_file() {
        return Err(SmallFileError::NotRegularFile {
            path: path.to_owned(),
            found: kind(&meta.file_type()),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(SmallFileError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        ))
    })
}

/// Like `read_optional`, for a file that must exist.
pub fn read(path: &Path, limit: u64) -> Result<String, SmallFileError> {
    read_optional(path, limit)?.ok_or_else(|| SmallFileError::Read {
        path: path.to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_dirs_and_large_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let cases = [
            (Path::new("/dev/zero").to_owned(), "a character device"),
            (fifo, "a FIFO"),
            (dir.path().to_owned(), "a directory"),
        ];
        for (path, found) in cases {
            let error = read(&path, 1024).unwrap_err().to_string();
            assert!(error.contains(found), "{error}");
        }
        let big = dir.path().join("big");
        fs_err::write(&big, vec![b'#'; 2048]).unwrap();
        let error = read(&big, 1024).unwrap_err().to_string();
        assert!(error.contains("larger than 1 KiB"), "{error}");
        let text = dir.path().join("text");
        fs_err::write(&text, "a\n").unwrap();
        assert_eq!(read(&text, 1024).unwrap(), "a\n");
        assert_eq!(read_optional(&dir.path().join("none"), 1024).unwrap(), None);
    }
}
