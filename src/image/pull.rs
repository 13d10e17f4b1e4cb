//! `sandbox pull`: resolve a reference to one platform's image and bring its layers into the
//! store, each in one streaming pass (download -> sha256 -> decompress -> sha256 -> unpack), up to
//! four layers at a time. Must run inside the store's user namespace (see runtime::userns).

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::fsutil::lock::LockMode;
use crate::image::digest::Digest;
use crate::image::error::ImageError;
use crate::image::hashing::HashingReader;
use crate::image::manifest::{self, Compression, ImageManifest, Manifest};
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::image::registry::blob_reader::BlobReader;
use crate::image::registry::client::{Connection, RegistryClient};
use crate::image::registry::credentials::CredentialFiles;
use crate::image::registry::hosts::{PullSource, RegistryConfig};
use crate::image::reporter::PullReporter;
use crate::image::store::images::{ImageRecord, LayerRef};
use crate::image::store::{remove_any, LayerInfo, Store};
use crate::image::unpack::{self, Ownership};

const PARALLEL_LAYERS: usize = 4;

/// Everything a pull needs besides the store and the reference.
pub struct PullContext<'a> {
    pub registries: &'a RegistryConfig,
    pub credentials: &'a CredentialFiles,
    pub ownership: Ownership,
    pub platform: Platform,
    pub reporter: &'a dyn PullReporter,
}

/// What a reference resolved to on one source.
struct Resolved {
    client: RegistryClient,
    source: PullSource,
    resolved_digest: Digest,
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    index_bytes: Option<Vec<u8>>,
    manifest: ImageManifest,
    config_bytes: Vec<u8>,
    diff_ids: Vec<Digest>,
    platform: String,
}

/// Pulls `reference` into `store` and records it; returns the record.
pub fn pull(
    store: &Store,
    reference: &Reference,
    cx: &PullContext<'_>,
) -> Result<ImageRecord, ImageError> {
    pull_as(store, reference, reference, cx)
}

/// Pulls `reference` and records it under `record_as` (a digest a lock pins, under the tag
/// it came from).
pub fn pull_as(
    store: &Store,
    reference: &Reference,
    record_as: &Reference,
    cx: &PullContext<'_>,
) -> Result<ImageRecord, ImageError> {
    let _shared = store.lock(LockMode::Shared)?;
    store.clean_stale_temp()?;
    let resolved = resolve_from_sources(reference, cx)?;
    cx.reporter.resolved(
        reference,
        &resolved.manifest_digest,
        resolved.manifest.layers.len(),
    );

    if let Some(index) = &resolved.index_bytes {
        store.write_blob(&resolved.resolved_digest, index)?;
    }
    store.write_blob(&resolved.manifest_digest, &resolved.manifest_bytes)?;
    store.write_blob(&resolved.manifest.config.digest, &resolved.config_bytes)?;

    let infos = fetch_layers(store, &resolved, cx)?;
    let layers = resolved
        .manifest
        .layers
        .iter()
        .zip(&resolved.diff_ids)
        .map(|(d, diff_id)| LayerRef {
            diff_id: diff_id.clone(),
            blob: d.digest.clone(),
            media_type: d.media_type.clone(),
            compressed_size: d.size,
        })
        .collect();
    let record = ImageRecord {
        reference: record_as.to_string(),
        source: resolved.source.reference.registry().to_owned(),
        resolved_digest: resolved.resolved_digest.clone(),
        manifest_digest: resolved.manifest_digest.clone(),
        config_digest: resolved.manifest.config.digest.clone(),
        platform: resolved.platform.clone(),
        layers,
        size: infos.iter().map(|i| i.unpacked_bytes).sum(),
        pulled: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    store.save_image(&record)?;
    Ok(record)
}

fn resolve_from_sources(
    reference: &Reference,
    cx: &PullContext<'_>,
) -> Result<Resolved, ImageError> {
    let sources = cx.registries.sources(reference)?;
    let count = sources.len();
    // A mirror's "no such image" is the answer when the registry behind it cannot be reached
    // (as where the mirror is the only way out): not the unreachable registry's DNS error.
    let mut mirror_not_found = None;
    for (i, source) in sources.into_iter().enumerate() {
        match resolve(reference, &source, cx) {
            Ok(r) => return Ok(r),
            Err(e) if source.mirror && i + 1 < count => {
                cx.reporter.notice(&format!(
                    "mirror {} failed ({e}); trying the next source",
                    source.reference.registry()
                ));
                if mirror_not_found.is_none() && matches!(e, ImageError::NotFound { .. }) {
                    mirror_not_found = Some(e);
                }
            }
            Err(e @ ImageError::Unreachable { .. }) => {
                return Err(match mirror_not_found {
                    Some(not_found) => {
                        cx.reporter.notice(&format!("{e}"));
                        not_found
                    }
                    None => e,
                })
            }
            Err(e) => return Err(e),
        }
    }
    Err(ImageError::Internal(format!(
        "no source to pull {reference} from"
    )))
}

fn resolve(
    wanted: &Reference,
    source: &PullSource,
    cx: &PullContext<'_>,
) -> Result<Resolved, ImageError> {
    let reference = &source.reference;
    let shown = reference.to_string();
    let credential = cx.credentials.lookup(reference.registry())?;
    let client = RegistryClient::connect(&Connection {
        registry: reference.registry().to_owned(),
        repository: reference.repository().to_owned(),
        insecure: source.insecure || cx.registries.is_insecure(reference.registry()),
        credential,
        push: false,
    })?;
    let (bytes, content_type) = client.fetch_manifest(&reference.manifest_selector(), &shown)?;
    let resolved_digest = Digest::of_bytes(&bytes);
    if let Some(pinned) = wanted.digest() {
        if &resolved_digest != pinned {
            return Err(ImageError::DigestMismatch {
                what: "manifest",
                expected: pinned.clone(),
                actual: resolved_digest,
                host: client.host_name(),
            });
        }
    }
    let (manifest, manifest_digest, manifest_bytes, index_bytes) =
        match manifest::parse_manifest(&bytes, &content_type, &shown)? {
            Manifest::Image(m) => (m, resolved_digest.clone(), bytes, None),
            Manifest::Index(entries) => {
                let chosen =
                    crate::image::manifest::select_platform(&entries, &cx.platform, &shown)?;
                let digest = chosen.digest.clone();
                let (inner, inner_type) = client.fetch_manifest(&digest.to_string(), &shown)?;
                let actual = Digest::of_bytes(&inner);
                if actual != digest {
                    return Err(ImageError::DigestMismatch {
                        what: "manifest",
                        expected: digest,
                        actual,
                        host: client.host_name(),
                    });
                }
                match manifest::parse_manifest(&inner, &inner_type, &shown)? {
                    Manifest::Image(m) => (m, digest, inner, Some(bytes)),
                    Manifest::Index(_) => {
                        return Err(ImageError::BadManifest {
                            what: "index",
                            reference: shown,
                            source: "an index inside an index is not supported".into(),
                        })
                    }
                }
            }
        };
    for layer in &manifest.layers {
        if manifest::layer_compression(&layer.media_type).is_none() {
            return Err(ImageError::UnsupportedMediaType {
                media_type: layer.media_type.clone(),
                what: format!("layer {} of {shown}", layer.digest),
            });
        }
    }
    let config_bytes = client.fetch_small_blob(&manifest.config.digest, "config", &shown)?;
    let config = manifest::parse_config(&config_bytes, manifest.layers.len(), &shown)?;
    let platform = Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: None,
    };
    if !config.architecture.is_empty() && config.architecture != cx.platform.architecture {
        cx.reporter.notice(&format!(
            "{shown} is built for {platform}, not for this machine ({})",
            cx.platform
        ));
    }
    Ok(Resolved {
        client,
        source: source.clone(),
        resolved_digest,
        manifest_digest,
        manifest_bytes,
        index_bytes,
        manifest,
        config_bytes,
        diff_ids: config.rootfs.diff_ids,
        platform: platform.to_string(),
    })
}

/// Brings every layer into the store, PARALLEL_LAYERS at a time; the first error stops the rest.
fn fetch_layers(
    store: &Store,
    resolved: &Resolved,
    cx: &PullContext<'_>,
) -> Result<Vec<LayerInfo>, ImageError> {
    let layers = &resolved.manifest.layers;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<LayerInfo, ImageError>>>> =
        Mutex::new((0..layers.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_LAYERS.min(layers.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= layers.len() || failed.load(Ordering::SeqCst) {
                    break;
                }
                let result = fetch_layer(store, resolved, i, cx);
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                if let Ok(mut slots) = results.lock() {
                    slots[i] = Some(result);
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .map_err(|_| ImageError::Internal("a layer worker panicked".into()))?;
    let mut infos = Vec::with_capacity(slots.len());
    let mut first_error = None;
    for slot in slots {
        match slot {
            Some(Ok(info)) => infos.push(info),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if infos.len() == layers.len() => Ok(infos),
        None => Err(ImageError::Internal("a layer was not fetched".into())),
    }
}

fn fetch_layer(
    store: &Store,
    resolved: &Resolved,
    index: usize,
    cx: &PullContext<'_>,
) -> Result<LayerInfo, ImageError> {
    let descriptor = &resolved.manifest.layers[index];
    let diff_id = &resolved.diff_ids[index];
    let id = cx
        .reporter
        .layer_started(&descriptor.digest, descriptor.size);
    // A concurrent pull of the same layer holds this; we wait, then find the layer done.
    let _guard = store.lock_digest(diff_id)?;
    if let Some(info) = store.layer_info(diff_id)? {
        cx.reporter.layer_finished(id, true);
        return Ok(info);
    }
    let temp = store.temp_path("layer", diff_id);
    let result = unpack_into(store, resolved, index, &temp, id, cx);
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            let _ = remove_any(&temp);
            return Err(match e {
                ImageError::Io(io) => store.io_error(io),
                other => other,
            });
        }
    };
    let final_dir = store.layer_dir(diff_id);
    if let Err(e) = fs_err::rename(&temp, &final_dir) {
        let _ = remove_any(&temp);
        return Err(store.io_error(e));
    }
    cx.reporter.layer_finished(id, false);
    Ok(info)
}

fn unpack_into(
    store: &Store,
    resolved: &Resolved,
    index: usize,
    temp: &std::path::Path,
    progress_id: usize,
    cx: &PullContext<'_>,
) -> Result<LayerInfo, ImageError> {
    let descriptor = &resolved.manifest.layers[index];
    let shown = resolved.source.reference.to_string();
    let blob = BlobReader::open(
        &resolved.client,
        &descriptor.digest,
        descriptor.size,
        &shown,
    )?;
    unpack_blob(
        store,
        Box::new(blob),
        LayerSource {
            descriptor,
            diff_id: &resolved.diff_ids[index],
            host: resolved.client.host_name(),
        },
        temp,
        &|n| cx.reporter.layer_progress(progress_id, n),
        &cx.ownership,
        cx.reporter,
    )
}

/// A layer blob to unpack: its descriptor, the diff_id the config names, and where it came
/// from (for errors).
pub(crate) struct LayerSource<'a> {
    pub descriptor: &'a crate::image::manifest::Descriptor,
    pub diff_id: &'a Digest,
    pub host: String,
}

/// Unpacks the layer blob read from `blob` into `temp` (made here), checking its size, digest
/// and diff_id, and keeps the blob itself in the store.
pub(crate) fn unpack_blob(
    store: &Store,
    blob: Box<dyn Read + '_>,
    source: LayerSource<'_>,
    temp: &std::path::Path,
    progress: &dyn Fn(u64),
    ownership: &Ownership,
    reporter: &dyn PullReporter,
) -> Result<LayerInfo, ImageError> {
    let descriptor = source.descriptor;
    let diff_id = source.diff_id;
    let host = source.host;
    let compression = manifest::layer_compression(&descriptor.media_type).ok_or_else(|| {
        ImageError::UnsupportedMediaType {
            media_type: descriptor.media_type.clone(),
            what: format!("layer {}", descriptor.digest),
        }
    })?;
    fs_err::create_dir(temp).map_err(|e| store.io_error(e))?;
    let root = temp.join("root");
    fs_err::create_dir(&root).map_err(|e| store.io_error(e))?;

    // The compressed blob is kept as it came (export and push send base layers byte for
    // byte); it joins the store's blobs only once its digest is checked.
    let kept = temp.join("blob");
    let kept_file = fs_err::File::create(&kept).map_err(|e| store.io_error(e))?;
    let tee = Tee {
        inner: blob.take(descriptor.size + 1),
        copy: std::io::BufWriter::new(kept_file),
        store,
    };
    // One byte past the declared size is enough to tell that the blob is too long.
    let mut compressed = HashingReader::new(tee, progress);
    let unpacked = {
        let decoder: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut compressed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(&mut compressed).map_err(|e| {
                    ImageError::CorruptLayer {
                        layer: descriptor.digest.clone(),
                        reason: "cannot start zstd".into(),
                        source: Some(e),
                    }
                })?,
            ),
        };
        let mut tar_stream = HashingReader::new(decoder, |_| {});
        let limit = unpack::Limit::for_layer(descriptor.size, &root);
        let stats = unpack::unpack(&mut tar_stream, &root, &descriptor.digest, ownership, limit);
        match stats {
            Ok(stats) => {
                let drained = tar_stream.drain().map_err(|e| ImageError::CorruptLayer {
                    layer: descriptor.digest.clone(),
                    reason: "cannot read past the end of the tar".into(),
                    source: Some(e),
                });
                drained.map(|(digest, _, _)| (stats, digest))
            }
            Err(e) => Err(e),
        }
    };
    // Finish hashing the compressed stream either way: a digest mismatch explains a corrupt
    // stream better than the decompressor's complaint does.
    let (blob_digest, blob_size, tee) = compressed
        .drain()
        .map_err(|e| unwrap_io(e, &descriptor.digest))?;
    tee.copy
        .into_inner()
        .map_err(|e| store.io_error(e.into_error()))?
        .sync_all()
        .map_err(|e| store.io_error(e))?;
    if blob_size > descriptor.size || (unpacked.is_ok() && blob_size != descriptor.size) {
        return Err(ImageError::SizeMismatch {
            what: "layer",
            digest: descriptor.digest.clone(),
            expected: descriptor.size,
            actual: blob_size,
            host,
        });
    }
    if blob_digest != descriptor.digest && blob_size == descriptor.size {
        return Err(ImageError::DigestMismatch {
            what: "layer",
            expected: descriptor.digest.clone(),
            actual: blob_digest,
            host,
        });
    }
    let (stats, actual_diff_id) = unpacked?;
    if &actual_diff_id != diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: descriptor.digest.clone(),
            expected: diff_id.clone(),
            actual: actual_diff_id,
        });
    }
    if stats.skipped_devices > 0 {
        reporter.notice(&format!(
            "layer {}: skipped {} device node(s), which cannot be created without root",
            descriptor.digest.short(),
            stats.skipped_devices
        ));
    }
    if stats.dropped_xattrs > 0 {
        reporter.notice(&format!(
            "layer {}: dropped {} extended attribute(s) that rootless overlay cannot keep",
            descriptor.digest.short(),
            stats.dropped_xattrs
        ));
    }
    let blob_path = store.blob_path(&descriptor.digest);
    if blob_path.exists() {
        let _ = fs_err::remove_file(&kept);
    } else {
        fs_err::rename(&kept, &blob_path).map_err(|e| store.io_error(e))?;
    }
    let info = LayerInfo {
        diff_id: diff_id.clone(),
        blob: descriptor.digest.clone(),
        media_type: descriptor.media_type.clone(),
        unpacked_bytes: stats.bytes,
        entries: stats.entries,
    };
    let bytes =
        serde_json::to_vec_pretty(&info).map_err(|e| ImageError::Internal(e.to_string()))?;
    fs_err::write(temp.join("layer.json"), bytes).map_err(|e| store.io_error(e))?;
    Ok(info)
}

/// Reads `inner`, writing a copy of every byte to `copy` (in the store: a failure to write is
/// the store's, a full disk named as such, not a broken download).
struct Tee<'s, R, W> {
    inner: R,
    copy: W,
    store: &'s Store,
}

impl<R: Read, W: std::io::Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy
            .write_all(&buf[..n])
            .map_err(|e| std::io::Error::other(self.store.io_error(e)))?;
        Ok(n)
    }
}

fn unwrap_io(error: std::io::Error, layer: &Digest) -> ImageError {
    if error.get_ref().is_some_and(|e| e.is::<ImageError>()) {
        if let Some(Ok(inner)) = error.into_inner().map(|e| e.downcast::<ImageError>()) {
            return *inner;
        }
        return ImageError::Internal("lost error".into());
    }
    ImageError::CorruptLayer {
        layer: layer.clone(),
        reason: "reading the blob failed".into(),
        source: Some(error),
    }
}
