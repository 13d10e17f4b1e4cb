//! The prepared sandboxes this user's own `lock --push` made: a lock pinning one of them was
//! written here, so its pin is the user's own, not a cloned lock's claim. One empty file per
//! pin, named by the digest of its text.

use std::path::PathBuf;

use crate::image::store::Store;
use crate::image::Digest;

impl Store {
    fn made_marker(&self, pinned: &str) -> PathBuf {
        self.root()
            .join("prepared")
            .join(Digest::of_bytes(pinned.as_bytes()).hex())
    }

    /// Records that `lock --push` here made the prepared sandbox `pinned` (`REF@sha256:...`).
    pub fn record_made_prepared(&self, pinned: &str) -> std::io::Result<()> {
        let marker = self.made_marker(pinned);
        if let Some(dir) = marker.parent() {
            fs_err::create_dir_all(dir)?;
        }
        crate::fsutil::atomic::write_file_atomic(&marker, pinned.as_bytes(), 0o600)
    }

    /// Whether this user's `lock --push` made `pinned`.
    pub fn made_prepared(&self, pinned: &str) -> bool {
        fs_err::read(self.made_marker(pinned)).is_ok_and(|b| b == pinned.as_bytes())
    }
}
