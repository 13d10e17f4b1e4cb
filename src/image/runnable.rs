//! What the runtime needs of a stored image: its layer dirs (lowest first) and its environment.

use std::path::PathBuf;

use crate::image::error::ImageError;
use crate::image::manifest;
use crate::image::store::images::ImageRecord;
use crate::image::store::Store;

/// A stored image, ready to be the lower layers of a container.
#[derive(Clone, Debug)]
pub struct Runnable {
    pub reference: String,
    /// The platform-specific manifest it came from.
    pub manifest: String,
    pub layers: Vec<PathBuf>,
    /// `KEY=VALUE` from the image config's Env.
    pub env: Vec<String>,
}

/// Reads the config and checks every layer is present; `None` when a layer is missing (the
/// caller pulls again).
pub fn load(store: &Store, record: &ImageRecord) -> Result<Option<Runnable>, ImageError> {
    let mut layers = Vec::with_capacity(record.layers.len());
    for layer in &record.layers {
        if store.layer_info(&layer.diff_id)?.is_none() {
            return Ok(None);
        }
        layers.push(store.layer_root(&layer.diff_id));
    }
    let config = store.read_blob(&record.config_digest)?;
    let parsed = manifest::parse_config(&config, record.layers.len(), &record.reference)?;
    Ok(Some(Runnable {
        reference: record.reference.clone(),
        manifest: record.manifest_digest.to_string(),
        layers,
        env: parsed.config.and_then(|c| c.env).unwrap_or_default(),
    }))
}
