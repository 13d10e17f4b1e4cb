//! The content-addressed store shared by all projects of a user.
//!
//! ```text
//! $SANDBOX_ROOT/                (mode 0700: layers hold setuid files other users must not reach)
//!   blobs/sha256/<hex>          manifests and configs, verified before they are renamed in
//!   layers/<hex>/root/          one extracted layer (overlay format), keyed by its diff_id
//!   layers/<hex>/layer.json     written last: a layer without it is not finished
//!   images/<hash of ref>.json   reference -> manifest digest, config, layers
//!   tmp/<kind>-<hex>-<unique>   work in progress, never read as finished
//!   locks/<hex>.lock            one flock per digest being downloaded or unpacked
//!   lock                        flock: shared for pulls, exclusive for rmi/prune
//!   idmap                       the uid/gid mapping layers were unpacked with
//! ```
//! Layer content lives one level down (`root/`) so that its metadata file can sit beside it
//! without showing up inside containers.
//!
//! Every object is made under `tmp/` and renamed into place once verified, so a kill at any moment
//! leaves either nothing or a whole object; `Store::clean_stale_temp` removes what a dead process left.

pub mod homes;
pub mod images;
mod prepared;

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::atomic;
use crate::fsutil::lock::{FileLock, LockMode};
use crate::image::digest::Digest;
use crate::image::error::ImageError;

/// What `layers/<hex>/layer.json` records about an unpacked layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: Digest,
    /// The compressed blob this layer was unpacked from.
    pub blob: Digest,
    pub media_type: String,
    /// Bytes of file content unpacked (what `df` counts).
    pub unpacked_bytes: u64,
    pub entries: u64,
}

/// An opened store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let store = Self {
            root: root.to_owned(),
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in ["", "blobs/sha256", "layers", "images", "tmp", "locks"] {
            let path = root.join(dir);
            builder.create(&path).map_err(|e| {
                store.io_error(std::io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", path.display()),
                ))
            })?;
        }
        // An existing root made by an older tool or by hand may be wider; never leave it so.
        let meta = fs_err::metadata(root)?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs_err::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// The directory overlayfs uses as this layer's lowerdir.
    pub fn layer_root(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("root")
    }

    /// Reads a small blob and checks it still hashes to its name.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let bytes = fs_err::read(&path)?;
        if &Digest::of_bytes(&bytes) != digest {
            return Err(ImageError::DamagedRecord {
                path,
                source: "content does not match its digest".into(),
            });
        }
        Ok(bytes)
    }

    /// A layer is present once its info file exists (it is written last, before the rename).
    pub fn layer_info(&self, diff_id: &Digest) -> Result<Option<LayerInfo>, ImageError> {
        let path = self.layer_dir(diff_id).join("layer.json");
        read_record(&path)
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Shared for pulls, exclusive for garbage collection.
    pub fn lock(&self, mode: LockMode) -> Result<FileLock, ImageError> {
        FileLock::acquire(&self.root.join("lock"), mode).map_err(|e| self.io_error(e))
    }

    /// Serialises work on one digest across processes; a second puller waits here.
    pub fn lock_digest(&self, digest: &Digest) -> Result<FileLock, ImageError> {
        let path = self.digest_lock_path(digest.hex());
        FileLock::acquire(&path, LockMode::Exclusive).map_err(|e| self.io_error(e))
    }

    fn digest_lock_path(&self, hex: &str) -> PathBuf {
        self.root.join("locks").join(format!("{hex}.lock"))
    }

    /// A fresh path under `tmp/` for work on `digest`.
    pub fn temp_path(&self, kind: &str, digest: &Digest) -> PathBuf {
        self.root.join("tmp").join(format!(
            "{kind}-{}-{}",
            digest.hex(),
            crate::fsutil::unique::unique_suffix()
        ))
    }

    /// Removes `tmp/` entries whose digest lock nobody holds: what a killed process left.
    pub fn clean_stale_temp(&self) -> Result<usize, ImageError> {
        let mut removed = 0;
        for entry in fs_err::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.split('-').nth(1).unwrap_or("");
            let stale = if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                // Holding the lock proves no live process works on this entry.
                FileLock::try_acquire(&self.digest_lock_path(hex), LockMode::Exclusive)
                    .map_err(|e| self.io_error(e))?
            } else {
                None
            };
            let unknown = hex.len() != 64;
            if stale.is_some() || unknown {
                remove_any(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Stores a small verified blob (manifest, config) under its digest.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
        let actual = Digest::of_bytes(bytes);
        if &actual != digest {
            return Err(ImageError::Internal(format!(
                "refusing to store blob {digest}: its content hashes to {actual}"
            )));
        }
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        let _guard = self.lock_digest(digest)?;
        let temp = self.temp_path("blob", digest);
        fs_err::write(&temp, bytes).map_err(|e| self.io_error(e))?;
        fs_err::rename(&temp, &path).map_err(|e| {
            let _ = fs_err::remove_file(&temp);
            self.io_error(e)
        })?;
        Ok(())
    }

    /// Records the id mapping layers are unpacked with, the first time; refuses a different one
    /// while layers made with the old one exist. `true` when it was recorded just now.
    pub fn check_id_mapping(&self, fingerprint: &str, shown: &str) -> Result<bool, ImageError> {
        let path = self.root.join("idmap");
        let record = format!("{fingerprint}\n{shown}\n");
        match fs_err::read_to_string(&path) {
            Ok(recorded) if recorded.lines().next() == Some(fingerprint) => return Ok(false),
            Ok(recorded) => {
                let has_layers = fs_err::read_dir(self.root.join("layers"))?.next().is_some();
                if has_layers {
                    return Err(ImageError::IdMappingChanged {
                        store: self.root.clone(),
                        recorded: recorded.lines().nth(1).unwrap_or("unknown").to_owned(),
                        current: shown.to_owned(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        atomic::write_file_atomic(&path, record.as_bytes(), 0o600).map_err(|e| self.io_error(e))?;
        Ok(true)
    }

    /// Turns an I/O error into a store error, naming the store when the disk is full.
    pub fn io_error(&self, error: std::io::Error) -> ImageError {
        // fs_err's errors carry the path and keep only the kind of the OS error.
        let full = matches!(
            error.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) || matches!(
            error.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        );
        if full {
            ImageError::NoSpace {
                store: self.root.clone(),
                source: error,
            }
        } else {
            ImageError::Io(error)
        }
    }
}

/// A JSON record of the store, `None` when absent; unreadable JSON is a damaged record.
pub fn read_record<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ImageError> {
    match fs_err::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ImageError::DamagedRecord {
                    path: path.to_owned(),
                    source: e.into(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes a file or a whole tree. Layer trees may hold read-only dirs; callers run with
/// CAP_DAC_OVERRIDE in the store's user namespace, which is what lets this succeed.
pub fn remove_any(path: &Path) -> Result<(), ImageError> {
    let meta = match fs_err::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if meta.is_dir() {
        fs_err::remove_dir_all(path)?;
    } else {
        fs_err::remove_file(path)?;
    }
    Ok(())
}

/// Total bytes of the regular files under `path` (not following links).
pub fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_entries_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let busy = Digest::of_bytes(b"busy");
        let dead = Digest::of_bytes(b"dead");
        let busy_path = store.temp_path("layer", &busy);
        let dead_path = store.temp_path("layer", &dead);
        fs_err::create_dir_all(busy_path.join("root/x")).unwrap();
        fs_err::create_dir_all(dead_path.join("root/x")).unwrap();
        fs_err::write(store.root().join("tmp/garbage"), "x").unwrap();
        let _held = store.lock_digest(&busy).unwrap();
        assert_eq!(store.clean_stale_temp().unwrap(), 2);
        assert!(busy_path.exists());
        assert!(!dead_path.exists());
    }

    #[test]
    fn blobs_are_verified_on_the_way_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::of_bytes(b"hello");
        assert!(store.write_blob(&d, b"other").is_err());
        store.write_blob(&d, b"hello").unwrap();
        assert_eq!(fs_err::read(store.blob_path(&d)).unwrap(), b"hello");
        let mode = fs_err::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
