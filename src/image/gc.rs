//! Removing images and what no image uses any more, and measuring the store.

use std::collections::BTreeSet;

use crate::fsutil::lock::LockMode;
use crate::image::error::ImageError;
use crate::image::reference::Reference;
use crate::image::setup_layer::{StoredSetup, UNUSED_DAYS};
use crate::image::store::{remove_any, tree_size, Store};

/// What a removal or prune freed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Freed {
    pub images: usize,
    pub layers: usize,
    pub blobs: usize,
    pub setup: usize,
    pub temp: usize,
    pub bytes: u64,
}

/// Store usage, for `sandbox df`.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub images: usize,
    pub layers: usize,
    pub layer_bytes: u64,
    /// Bytes of layers used by more than one image (stored once).
    pub shared_bytes: u64,
    pub unused_layers: usize,
    pub unused_bytes: u64,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub setup_layers: usize,
    pub setup_bytes: u64,
    /// Setup layers whose base image is gone (or never finished), or superseded by an edit of
    /// their project: what `prune` frees at least.
    pub unused_setup_bytes: u64,
    pub temp_bytes: u64,
}

/// Removes one image and any layers and blobs it alone used, and the setup layers built on
/// it. Refused while a current project's setup chain (one whose project dir still exists)
/// stands on it, unless `force`: superseded and orphaned setup layers are no use.
pub fn remove_image(
    store: &Store,
    reference: &Reference,
    force: bool,
) -> Result<Freed, ImageError> {
    let _lock = store.lock(LockMode::Exclusive)?;
    let key = reference.to_string();
    if !force {
        if let Some(record) = store.image(&key)? {
            let projects = projects_on(store, &record.manifest_digest.to_string());
            if !projects.is_empty() {
                return Err(ImageError::InUse {
                    reference: key,
                    projects,
                });
            }
        }
    }
    if !store.remove_image_record(&key)? {
        return Err(ImageError::NotInStore { reference: key });
    }
    let mut freed = collect_unused(store)?;
    freed.images = 1;
    Ok(freed)
}

/// Removes layers and blobs no image uses, and what interrupted work left in tmp/.
pub fn prune(store: &Store) -> Result<Freed, ImageError> {
    let _lock = store.lock(LockMode::Exclusive)?;
    let temp = store.clean_stale_temp()?;
    let mut freed = collect_unused(store)?;
    freed.temp = temp;
    // Setup layers an edit of their project superseded, and those no run used for a long time.
    let limit = std::time::Duration::from_secs(UNUSED_DAYS * 24 * 3600);
    let chains = store.chains();
    for setup in store.setup_layers() {
        let idle = setup
            .used
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|d| d > limit);
        if idle || crate::image::setup_layer::superseded(&setup, &chains) {
            freed.bytes += tree_size(&setup.dir);
            remove_any(&setup.dir)?;
            freed.setup += 1;
        }
    }
    // No pull runs while we hold the store exclusively, so the per-digest lock files can go,
    // but for those held by work that takes no store lock (a `load` extracting its archive).
    for entry in fs_err::read_dir(store.root().join("locks"))? {
        let path = entry?.path();
        if let Ok(Some(_free)) =
            crate::fsutil::lock::FileLock::try_acquire(&path, LockMode::Exclusive)
        {
            let _ = fs_err::remove_file(&path);
        }
    }
    Ok(freed)
}

fn collect_unused(store: &Store) -> Result<Freed, ImageError> {
    let images = store.images()?;
    let mut layers = BTreeSet::new();
    let mut blobs = BTreeSet::new();
    for image in &images {
        for layer in &image.layers {
            layers.insert(layer.diff_id.hex().to_owned());
            // The compressed blob, kept for export and push.
            blobs.insert(layer.blob.hex().to_owned());
        }
        for d in [
            &image.manifest_digest,
            &image.config_digest,
            &image.resolved_digest,
        ] {
            blobs.insert(d.hex().to_owned());
        }
    }
    let mut freed = Freed::default();
    // A setup layer sits on its base image: without that image it is never used again.
    let manifests: BTreeSet<String> = images
        .iter()
        .map(|i| i.manifest_digest.to_string())
        .collect();
    for setup in store.setup_layers() {
        if !setup_in_use(&setup, &manifests) {
            freed.bytes += tree_size(&setup.dir);
            remove_any(&setup.dir)?;
            freed.setup += 1;
        }
    }
    for entry in fs_err::read_dir(store.root().join("layers"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !layers.contains(&name) {
            let path = entry.path();
            freed.bytes += layer_bytes(&path);
            remove_any(&path)?;
            freed.layers += 1;
        }
    }
    for entry in fs_err::read_dir(store.root().join("blobs/sha256"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !blobs.contains(&name) {
            freed.bytes += entry.metadata().map_or(0, |m| m.len());
            remove_any(&entry.path())?;
            freed.blobs += 1;
        }
    }
    Ok(freed)
}

/// Whether a setup layer is whole and its base image is stored.
/// The existing project dirs whose current setup chain has a layer on the base `manifest`.
fn projects_on(store: &Store, manifest: &str) -> Vec<std::path::PathBuf> {
    let keys: BTreeSet<String> = store
        .setup_layers()
        .into_iter()
        .filter_map(|s| s.record)
        .filter(|r| r.base_manifest == manifest)
        .map(|r| r.key)
        .collect();
    let mut projects: Vec<std::path::PathBuf> = store
        .chains()
        .into_iter()
        .filter(|c| c.dir.is_dir() && c.keys.iter().any(|k| keys.contains(k)))
        .map(|c| c.dir)
        .collect();
    projects.sort();
    projects.dedup();
    projects
}

fn setup_in_use(setup: &StoredSetup, manifests: &BTreeSet<String>) -> bool {
    setup
        .record
        .as_ref()
        .is_some_and(|r| manifests.contains(&r.base_manifest))
}

/// A layer's unpacked size from its info file, or by walking it when the info is missing.
fn layer_bytes(dir: &std::path::Path) -> u64 {
    fs_err::read(dir.join("layer.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::image::store::LayerInfo>(&b).ok())
        .map_or_else(|| tree_size(dir), |i| i.unpacked_bytes)
}

/// Measures the store without changing it.
pub fn usage(store: &Store) -> Result<Usage, ImageError> {
    let images = store.images()?;
    let mut uses: std::collections::BTreeMap<String, usize> = Default::default();
    for image in &images {
        let distinct: BTreeSet<_> = image
            .layers
            .iter()
            .map(|l| l.diff_id.hex().to_owned())
            .collect();
        for hex in distinct {
            *uses.entry(hex).or_default() += 1;
        }
    }
    let mut usage = Usage {
        images: images.len(),
        ..Usage::default()
    };
    for entry in fs_err::read_dir(store.root().join("layers"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = layer_bytes(&entry.path());
        usage.layers += 1;
        usage.layer_bytes += bytes;
        match uses.get(&name) {
            None => {
                usage.unused_layers += 1;
                usage.unused_bytes += bytes;
            }
            Some(n) if *n > 1 => usage.shared_bytes += bytes,
            Some(_) => {}
        }
    }
    for entry in fs_err::read_dir(store.root().join("blobs/sha256"))? {
        usage.blobs += 1;
        usage.blob_bytes += entry?.metadata().map_or(0, |m| m.len());
    }
    let manifests: BTreeSet<String> = images
        .iter()
        .map(|i| i.manifest_digest.to_string())
        .collect();
    let chains = store.chains();
    for setup in store.setup_layers() {
        let bytes = tree_size(&setup.dir);
        usage.setup_layers += 1;
        usage.setup_bytes += bytes;
        if !setup_in_use(&setup, &manifests)
            || crate::image::setup_layer::superseded(&setup, &chains)
        {
            usage.unused_setup_bytes += bytes;
        }
    }
    usage.temp_bytes = tree_size(&store.root().join("tmp"));
    Ok(usage)
}
