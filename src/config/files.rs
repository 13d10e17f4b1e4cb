//! Reading the config layer's files through `fsutil::small_file` (a regular file, size-capped),
//! its failures as the config layer's errors, with their hints.

use std::path::Path;

use crate::config::error::ConfigError;
use crate::fsutil::small_file;

/// sandbox.toml, sandbox.lock and the user's config.
pub const SMALL: u64 = 1024 * 1024;
/// The trust list grows by a line per trusted file.
pub const LIST: u64 = 4 * 1024 * 1024;

/// The text of `path`, `None` when it does not exist. Anything but a regular file of at most
/// `limit` bytes of UTF-8 is an error naming the file (with the config layer's hints).
pub fn read_optional(path: &Path, limit: u64) -> Result<Option<String>, ConfigError> {
    Ok(small_file::read_optional(path, limit)?)
}

/// Like `read_optional`, for a file that must exist.
pub fn read(path: &Path, limit: u64) -> Result<String, ConfigError> {
    Ok(small_file::read(path, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::small_file::SmallFileError;

    #[test]
    fn a_refused_file_is_the_config_layers_error_with_its_hint() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path(), SMALL).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::File(SmallFileError::NotRegularFile {
                found: "a directory",
                ..
            })
        ));
        assert!(error.hint().is_some());
        let big = dir.path().join("big");
        fs_err::write(&big, vec![b'#'; 2048]).unwrap();
        let error = read(&big, 1024).unwrap_err().to_string();
        assert!(error.contains("larger than 1 KiB"), "{error}");
        assert!(matches!(
            read(&dir.path().join("none"), SMALL),
            Err(ConfigError::File(SmallFileError::Read { .. }))
        ));
    }
}
