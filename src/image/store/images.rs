//! Image records: which manifest, config and layers a reference resolved to when it was pulled.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::atomic::write_file_atomic;
use crate::image::digest::Digest;
use crate::image::error::ImageError;
use crate::image::store::{read_record, Store};

/// One layer of a stored image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub blob: Digest,
    pub media_type: String,
    pub compressed_size: u64,
}

/// What `images/<hash>.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// The normalised reference the user asked for (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The registry the manifest actually came from (a mirror, perhaps).
    pub source: String,
    /// The digest a tag resolved to: the index's, if the tag named an index.
    pub resolved_digest: Digest,
    /// The platform-specific image manifest.
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub platform: String,
    pub layers: Vec<LayerRef>,
    /// Unpacked bytes of all layers.
    pub size: u64,
    /// Seconds since the epoch.
    pub pulled: u64,
}

impl Store {
    fn record_path(&self, reference: &str) -> PathBuf {
        let name = Digest::of_bytes(reference.as_bytes());
        self.images_dir().join(format!("{}.json", name.hex()))
    }

    /// Saves (or replaces) the record for its reference, atomically.
    pub fn save_image(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| ImageError::Encode {
            what: "an image record",
            source,
        })?;
        write_file_atomic(&self.record_path(&record.reference), &bytes, 0o600)
            .map_err(|e| self.io_error(e))
    }

    /// The record for a normalised reference, if stored.
    pub fn image(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        let path = self.record_path(reference);
        read_record(&path)
    }

    /// Every stored image, sorted by reference. A damaged record is reported, not skipped.
    pub fn images(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut out = Vec::new();
        for entry in fs_err::read_dir(self.images_dir())? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = fs_err::read(&path)?;
            let record: ImageRecord =
                serde_json::from_slice(&bytes).map_err(|e| ImageError::DamagedRecord {
                    path: path.clone(),
                    source: e.into(),
                })?;
            out.push(record);
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Drops the record for `reference`; `false` if there was none.
    pub fn remove_image_record(&self, reference: &str) -> Result<bool, ImageError> {
        match fs_err::remove_file(self.record_path(reference)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
