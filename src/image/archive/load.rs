//! `sandbox load`: an OCI archive or image layout (what `sandbox export` and `podman save
//! --format oci-archive` write) into the store, without a registry. The file is untrusted as a
//! registry is: only the layout's own names are taken from an archive, every blob is checked
//! against its digest, and layers are unpacked as a pull unpacks them.

use std::io::Read as _;
use std::path::Path;

use crate::image::error::ImageError;
use crate::image::manifest::{self, Manifest};
use crate::image::pull::{unpack_blob, LayerSource};
use crate::image::reporter::PullReporter;
use crate::image::store::images::{ImageRecord, LayerRef};
use crate::image::store::{remove_any, Store};
use crate::image::unpack::Ownership;
use crate::image::Digest;

/// The largest index, manifest or config read.
const JSON_LIMIT: u64 = 4 << 20;

fn bad(path: &Path, reason: impl Into<String>) -> ImageError {
    let reason: String = reason.into();
    ImageError::BadManifest {
        what: "image archive",
        reference: path.display().to_string(),
        source: reason.into(),
    }
}

/// The archive's layout files extracted into `dir`: `oci-layout`, `index.json` and
/// `blobs/sha256/<hex>` regular files; any other entry is refused.
fn extract(archive: &Path, dir: &Path) -> Result<(), ImageError> {
    let file = fs_err::File::open(archive)?;
    let mut tar = tar::Archive::new(file);
    fs_err::create_dir_all(dir.join("blobs/sha256"))?;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let blob = name
            .strip_prefix("blobs/sha256/")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let allowed = name == "oci-layout" || name == "index.json" || blob.is_some();
        if !allowed || !kind.is_file() {
            return Err(bad(archive, format!("unexpected entry `{name}`")));
        }
        let mut out = fs_err::File::create(dir.join(&name))?;
        std::io::copy(&mut entry, &mut out)?;
    }
    Ok(())
}

/// A blob of the layout, opened for reading: a regular file reached without following a link
/// (`blobs`, `sha256` or the blob itself) and without blocking. A FIFO, socket or device is
/// named and refused: the store's lock is held while loading, and a FIFO never answered.
fn open_blob(layout: &Path, digest: &Digest) -> Result<std::fs::File, ImageError> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsFd as _;
    let relative = format!("blobs/sha256/{}", digest.hex());
    let dir = nix::fcntl::open(
        layout,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| bad(layout, format!("cannot open the layout: {e}")))?;
    match crate::fsutil::beneath::open_regular_beneath(dir.as_fd(), Path::new(&relative)) {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(what)) => Err(bad(
            layout,
            format!("{relative} is {what}, not a regular file"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(bad(layout, format!("{relative} is missing")))
        }
        Err(e) => Err(bad(layout, format!("cannot open {relative}: {e}"))),
    }
}

/// A blob of the layout, checked against its digest; at most `limit` bytes.
fn read_blob(layout: &Path, digest: &Digest, limit: u64) -> Result<Vec<u8>, ImageError> {
    let mut bytes = Vec::new();
    open_blob(layout, digest)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(bad(
            layout,
            format!("{digest} is larger than {limit} bytes"),
        ));
    }
    let actual = Digest::of_bytes(&bytes);
    if &actual != digest {
        return Err(ImageError::DigestMismatch {
            what: "blob",
            expected: digest.clone(),
            actual,
            host: layout.display().to_string(),
        });
    }
    Ok(bytes)
}

/// What a load did.
pub struct Loaded {
    pub record: ImageRecord,
    /// The manifest digest the reference named before, when the load gave it another image.
    pub replaced: Option<Digest>,
}

/// Asked before a load replaces what a reference names (reference, its current manifest):
/// an error stops the load.
pub type ReplaceGuard<'a> = &'a dyn Fn(&str, &Digest) -> Result<(), ImageError>;

/// Loads the image at `path` (an archive, or a layout dir) as `name` (else the layout's own
/// name for it); `may_replace` is asked before a stored reference is given another image.
pub fn load(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    ownership: &Ownership,
    reporter: &dyn PullReporter,
    may_replace: ReplaceGuard<'_>,
) -> Result<Loaded, ImageError> {
    // An archive may be a pipe (`sandbox load <(...)`), which may block: it is extracted
    // before the store's lock is taken, into tmp/ under a key of its own whose lock tells
    // `prune` the work is live.
    let extracted = if path.is_dir() {
        None
    } else {
        let key = Digest::of_bytes(
            format!(
                "load {} {:?}",
                std::process::id(),
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        let guard = store.lock_digest(&key)?;
        let dir = store.temp_path("load", &key);
        if let Err(e) = extract(path, &dir) {
            let _ = remove_any(&dir);
            return Err(e);
        }
        Some((dir, guard))
    };
    let result = (|| {
        let _shared = store.lock(crate::fsutil::lock::LockMode::Shared)?;
        let layout = extracted.as_ref().map_or(path, |(dir, _)| dir.as_path());
        load_layout(store, layout, path, name, ownership, reporter, may_replace)
    })();
    if let Some((dir, _guard)) = extracted {
        let _ = remove_any(&dir);
    }
    result
}

fn load_layout(
    store: &Store,
    layout: &Path,
    shown: &Path,
    name: Option<&str>,
    ownership: &Ownership,
    reporter: &dyn PullReporter,
    may_replace: ReplaceGuard<'_>,
) -> Result<Loaded, ImageError> {
    let index_text = crate::fsutil::small_file::read(&layout.join("index.json"), JSON_LIMIT)
        .map_err(|e| bad(shown, format!("no readable index.json: {e}")))?;
    let index: serde_json::Value =
        serde_json::from_str(&index_text).map_err(|e| bad(shown, e.to_string()))?;
    let entries = index["manifests"]
        .as_array()
        .ok_or_else(|| bad(shown, "index.json lists no manifests"))?;
    let chosen = entries
        .iter()
        .find(|m| name.is_none_or(|n| m["annotations"]["org.opencontainers.image.ref.name"] == n))
        .or_else(|| entries.first())
        .ok_or_else(|| bad(shown, "index.json lists no manifests"))?;
    let digest = chosen["digest"]
        .as_str()
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| bad(shown, "a manifest without a valid digest"))?;
    let media_type = chosen["mediaType"]
        .as_str()
        .unwrap_or(manifest::OCI_MANIFEST);
    let reference = name
        .map(str::to_owned)
        .or_else(|| {
            chosen["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("localhost/loaded:{}", digest.short()));
    let reference = crate::image::Reference::parse(&reference)?.to_string();
    // Asked first, before any layer is unpacked: a reference other projects use is not
    // silently given other content (podman and docker replace it too, but say so).
    let replaced = store
        .image(&reference)?
        .map(|old| old.manifest_digest)
        .filter(|old| *old != digest);
    if let Some(old) = &replaced {
        may_replace(&reference, old)?;
    }
    let manifest_bytes = read_blob(layout, &digest, JSON_LIMIT)?;
    let image = match manifest::parse_manifest(&manifest_bytes, media_type, &reference)? {
        Manifest::Image(image) => image,
        Manifest::Index(_) => {
            return Err(bad(
                shown,
                "a multi-platform index; load one platform's image",
            ))
        }
    };
    let config_bytes = read_blob(layout, &image.config.digest, JSON_LIMIT)?;
    let config = manifest::parse_config(&config_bytes, image.layers.len(), &reference)?;
    let mut layers = Vec::new();
    let mut size = 0;
    for (descriptor, diff_id) in image.layers.iter().zip(&config.rootfs.diff_ids) {
        let _guard = store.lock_digest(diff_id)?;
        let info = match store.layer_info(diff_id)? {
            Some(info) => info,
            None => {
                let blob = open_blob(layout, &descriptor.digest)?;
                let temp = store.temp_path("layer", diff_id);
                let unpacked = unpack_blob(
                    store,
                    Box::new(blob),
                    LayerSource {
                        descriptor,
                        diff_id,
                        host: shown.display().to_string(),
                    },
                    &temp,
                    &|_| {},
                    ownership,
                    reporter,
                );
                let info = match unpacked {
                    Ok(info) => info,
                    Err(e) => {
                        let _ = remove_any(&temp);
                        return Err(e);
                    }
                };
                fs_err::rename(&temp, store.layer_dir(diff_id)).map_err(|e| {
                    let _ = remove_any(&temp);
                    store.io_error(e)
                })?;
                info
            }
        };
        size += info.unpacked_bytes;
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
            blob: descriptor.digest.clone(),
            media_type: descriptor.media_type.clone(),
            compressed_size: descriptor.size,
        });
    }
    store.write_blob(&digest, &manifest_bytes)?;
    store.write_blob(&image.config.digest, &config_bytes)?;
    let record = ImageRecord {
        reference,
        source: "file".into(),
        resolved_digest: digest.clone(),
        manifest_digest: digest,
        config_digest: image.config.digest.clone(),
        platform: format!("{}/{}", config.os, config.architecture),
        layers,
        size,
        pulled: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    store.save_image(&record)?;
    Ok(Loaded { record, replaced })
}
