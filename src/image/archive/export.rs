//! The prepared sandbox as a standard OCI image: the base image's layers byte for byte (their
//! compressed blobs are kept in the store when pulled), each setup step's layer as a
//! reproducible tar (`layer_tar`), compressed deterministically, and a config that carries
//! what the sandbox runs with. Written as an OCI image layout (a dir) or an OCI archive (a tar
//! of one), which `podman load` and `docker load` read.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::{AsFd as _, BorrowedFd};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::fsutil::beneath;
use crate::image::blob_stream::{Blob, BlobStream, Tee};
use crate::image::error::ImageError;
use crate::image::store::images::ImageRecord;
use crate::image::store::Store;
use crate::image::Digest;

pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The user an exported sandbox runs as: root of the sandbox's mapping (what setup steps ran
/// as), by number.
pub const EXPORT_USER: &str = "0:0";
/// Its working dir: where `sandbox kube` mounts the project.
pub const EXPORT_WORKDIR: &str = "/workspace";

/// How setup layers are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
}

/// A setup step's layer to add: its dir in the store and the step, for the history.
#[derive(Clone, Debug)]
pub struct SetupLayer {
    pub root: PathBuf,
    /// The setup layer's entry (`setup/<key>/`), where its blob's description is kept.
    pub entry: PathBuf,
    pub step: String,
}

/// What the prepared image is made of.
pub struct ExportInputs<'a> {
    pub base: &'a ImageRecord,
    pub setup: &'a [SetupLayer],
    /// The environment the sandbox runs with (the image's, the template's, the project's).
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Times in setup layers are clamped to this (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    pub compression: LayerCompression,
}

/// The prepared image: its manifest, config and layers (all in the store's blobs).
#[derive(Debug)]
pub struct Prepared {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

/// A setup layer's blob, as made once and kept beside the layer.
#[derive(serde::Serialize, serde::Deserialize)]
struct SetupBlob {
    digest: Digest,
    diff_id: Digest,
    size: u64,
    epoch: u64,
}

/// The OCI media type for a base layer's (Docker's name for the same bytes, or OCI's own).
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => OCI_LAYER_GZIP.into(),
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => OCI_LAYER_ZSTD.into(),
        "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER_TAR.into(),
        other => other.to_owned(),
    }
}

/// A writer that hashes and counts what passes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn digest_of(hash: Sha256) -> Result<Digest, ImageError> {
    Digest::parse(&format!("sha256:{:x}", hash.finalize()))
        .map_err(|e| ImageError::Internal(format!("a sha256 that is not a digest: {e}")))
}

fn setup_record(layer: &SetupLayer, compression: LayerCompression) -> (PathBuf, &'static str) {
    let (name, media_type) = match compression {
        // v2: the parallel encoder (gzip_parallel), whose bytes differ from the first one's.
        LayerCompression::Gzip => ("blob-gzip-v2.json", OCI_LAYER_GZIP),
        LayerCompression::Zstd => ("blob-zstd.json", OCI_LAYER_ZSTD),
    };
    (layer.entry.join(name), media_type)
}

/// The setup layer's blob as described when it was made (the blob itself may not be in the
/// store: a push streams it without keeping it), and its tar's digest.
pub fn setup_blob_record(
    layer: &SetupLayer,
    epoch: u64,
    compression: LayerCompression,
) -> Result<Option<(Blob, Digest)>, ImageError> {
    let (record, media_type) = setup_record(layer, compression);
    Ok(crate::image::store::read_record::<SetupBlob>(&record)?
        .filter(|made| made.epoch == epoch)
        .map(|made| {
            (
                Blob {
                    digest: made.digest,
                    size: made.size,
                    media_type: media_type.into(),
                },
                made.diff_id,
            )
        }))
}

/// The setup layer's blob and its tar's digest, when made before and still in the store.
pub fn cached_setup_blob(
    store: &Store,
    layer: &SetupLayer,
    epoch: u64,
    compression: LayerCompression,
) -> Result<Option<(Blob, Digest)>, ImageError> {
    Ok(setup_blob_record(layer, epoch, compression)?
        .filter(|(blob, _)| store.blob_path(&blob.digest).is_file()))
}

/// What `prepare` must find or make for the setup layers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Their blobs in the store (to write an image).
    Blobs,
    /// Their descriptions (for a manifest whose blobs went to a registry).
    Descriptions,
}

/// The setup layer's blob (or its description): made once, then found.
fn setup_blob(
    store: &Store,
    layer: &SetupLayer,
    epoch: u64,
    compression: LayerCompression,
    need: Need,
) -> Result<(Blob, Digest), ImageError> {
    let made = match need {
        Need::Blobs => cached_setup_blob(store, layer, epoch, compression)?,
        Need::Descriptions => setup_blob_record(layer, epoch, compression)?,
    };
    match made {
        Some(made) => Ok(made),
        None => make_setup_blob(store, layer, epoch, compression, BlobSink::Store),
    }
}

/// Where a setup layer's blob goes as it is made.
#[derive(Clone, Copy)]
pub enum BlobSink<'a> {
    /// Into the store's blobs.
    Store,
    /// Into the store's blobs and to an uploader as it is made.
    Stream(&'a BlobStream),
}

/// Makes the setup layer's blob into `sink` and records its description.
pub fn make_setup_blob(
    store: &Store,
    layer: &SetupLayer,
    epoch: u64,
    compression: LayerCompression,
    sink: BlobSink<'_>,
) -> Result<(Blob, Digest), ImageError> {
    let (record, media_type) = setup_record(layer, compression);
    let io_error = |e: io::Error| store.io_error(e);
    let temp = store.root().join("tmp").join(format!(
        "export-{}-{}",
        std::process::id(),
        layer
            .entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let file = fs_err::File::create(&temp).map_err(io_error)?;
    let written = match sink {
        BlobSink::Store => compress_layer(store, layer, epoch, compression, file),
        BlobSink::Stream(stream) => {
            let tee = Tee::new(file, stream);
            compress_layer(store, layer, epoch, compression, tee)
                .and_then(|(tee, made)| Ok((tee.finish().map_err(io_error)?, made)))
        }
    };
    let (file, made) = match written {
        Ok(written) => written,
        Err(e) => {
            if let BlobSink::Stream(stream) = sink {
                stream.ended(Err(e.to_string()));
            }
            let _ = fs_err::remove_file(&temp);
            return Err(e);
        }
    };
    // The uploader may finish while the file is synced: a failure after this still fails the
    // push before its manifest.
    if let BlobSink::Stream(stream) = sink {
        stream.ended(Ok(Blob {
            digest: made.digest.clone(),
            size: made.size,
            media_type: media_type.into(),
        }));
    }
    file.sync_all().map_err(io_error)?;
    fs_err::rename(&temp, store.blob_path(&made.digest)).map_err(io_error)?;
    let bytes = serde_json::to_vec(&made).map_err(|e| ImageError::Internal(e.to_string()))?;
    crate::fsutil::atomic::write_file_atomic(&record, &bytes, 0o600).map_err(io_error)?;
    Ok((
        Blob {
            digest: made.digest,
            size: made.size,
            media_type: media_type.into(),
        },
        made.diff_id,
    ))
}

/// Writes the layer as a reproducible tar, compressed, into `out`; describes what it wrote.
fn compress_layer<W: Write>(
    store: &Store,
    layer: &SetupLayer,
    epoch: u64,
    compression: LayerCompression,
    out: W,
) -> Result<(W, SetupBlob), ImageError> {
    let io_error = |e: io::Error| store.io_error(e);
    let compressed = Hashing {
        inner: out,
        hash: Sha256::new(),
        size: 0,
    };
    // The tar's digest (diff_id) is taken before compression, the blob's after.
    let (compressed, diff_id) = match compression {
        LayerCompression::Gzip => {
            // On every core, the same bytes for the same tar whatever the core count.
            let encoder =
                crate::image::gzip_parallel::ParallelGzip::new(compressed).map_err(io_error)?;
            let mut tar = Hashing {
                inner: io::BufWriter::with_capacity(256 << 10, encoder),
                hash: Sha256::new(),
                size: 0,
            };
            crate::image::layer_tar::write(&layer.root, &mut tar, epoch).map_err(io_error)?;
            let diff_id = digest_of(tar.hash)?;
            let encoder = tar
                .inner
                .into_inner()
                .map_err(|e| io_error(e.into_error()))?;
            (encoder.finish().map_err(io_error)?, diff_id)
        }
        LayerCompression::Zstd => {
            let encoder = zstd::stream::write::Encoder::new(
                io::BufWriter::with_capacity(1 << 20, compressed),
                3,
            )
            .map_err(io_error)?;
            let mut tar = Hashing {
                inner: encoder,
                hash: Sha256::new(),
                size: 0,
            };
            crate::image::layer_tar::write(&layer.root, &mut tar, epoch).map_err(io_error)?;
            let diff_id = digest_of(tar.hash)?;
            let buffered = tar.inner.finish().map_err(io_error)?;
            (
                buffered
                    .into_inner()
                    .map_err(|e| io_error(e.into_error()))?,
                diff_id,
            )
        }
    };
    let Hashing { inner, hash, size } = compressed;
    Ok((
        inner,
        SetupBlob {
            digest: digest_of(hash)?,
            diff_id,
            size,
            epoch,
        },
    ))
}

/// Stores `bytes` as a blob and describes it.
fn json_blob(store: &Store, value: &Value, media_type: &str) -> Result<Blob, ImageError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ImageError::Internal(e.to_string()))?;
    let digest = Digest::of_bytes(&bytes);
    store.write_blob(&digest, &bytes)?;
    Ok(Blob {
        digest,
        size: bytes.len() as u64,
        media_type: media_type.into(),
    })
}

/// RFC 3339 for a time in seconds since the epoch (UTC), for the config's history.
fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The base image's layers as blobs of the prepared image: kept in the store since its pull.
pub fn base_layers(store: &Store, base: &ImageRecord) -> Result<Vec<Blob>, ImageError> {
    base.layers
        .iter()
        .map(|layer| {
            if !store.blob_path(&layer.blob).is_file() {
                return Err(ImageError::BlobNotKept {
                    reference: base.reference.clone(),
                    digest: layer.blob.clone(),
                });
            }
            Ok(Blob {
                digest: layer.blob.clone(),
                size: layer.compressed_size,
                media_type: oci_layer_type(&layer.media_type),
            })
        })
        .collect()
}

/// Makes (or finds) every blob of the prepared image in the store.
pub fn prepare(
    store: &Store,
    inputs: &ExportInputs<'_>,
    need: Need,
) -> Result<Prepared, ImageError> {
    let mut layers = base_layers(store, inputs.base)?;
    let mut config: Value = serde_json::from_slice(&store.read_blob(&inputs.base.config_digest)?)
        .map_err(|e| ImageError::BadManifest {
        what: "image config",
        reference: inputs.base.reference.clone(),
        source: e.into(),
    })?;
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for layer in inputs.setup {
        let (blob, diff_id) = setup_blob(store, layer, inputs.epoch, inputs.compression, need)?;
        layers.push(blob);
        diff_ids.push(Value::String(diff_id.to_string()));
        history.push(json!({
            "created": rfc3339(inputs.epoch),
            "created_by": layer.step,
            "comment": "sandbox setup step",
        }));
    }
    let object = config
        .as_object_mut()
        .ok_or_else(|| ImageError::BadManifest {
            what: "image config",
            reference: inputs.base.reference.clone(),
            source: "not a JSON object".into(),
        })?;
    let rootfs = object
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        ids.extend(diff_ids);
    }
    if let Some(entries) = object
        .entry("history")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    {
        entries.extend(history);
    }
    let run = object.entry("config").or_insert_with(|| json!({}));
    if let Some(run) = run.as_object_mut() {
        run.insert("Env".into(), json!(inputs.env));
        // Fixed, not the preparing user's: the same steps give the same config everywhere.
        run.insert("User".into(), json!(EXPORT_USER));
        run.insert("WorkingDir".into(), json!(EXPORT_WORKDIR));
        let labels = run.entry("Labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &inputs.labels {
                labels.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    object.insert("created".into(), Value::String(rfc3339(inputs.epoch)));
    let config_blob = json_blob(store, &config, OCI_CONFIG)?;
    let descriptor = |b: &Blob| json!({"mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::manifest::OCI_MANIFEST,
        "config": descriptor(&config_blob),
        "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
    });
    let manifest_blob = json_blob(store, &manifest, crate::image::manifest::OCI_MANIFEST)?;
    Ok(Prepared {
        manifest: manifest_blob,
        config: config_blob,
        layers,
    })
}

/// The index of a layout holding `prepared`, named `name` (`org.opencontainers.image.ref.name`).
fn index(prepared: &Prepared, name: &str) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": crate::image::manifest::OCI_INDEX,
        "manifests": [{
            "mediaType": prepared.manifest.media_type,
            "digest": prepared.manifest.digest.to_string(),
            "size": prepared.manifest.size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    })
}

fn all_blobs(prepared: &Prepared) -> Vec<&Blob> {
    let mut blobs = vec![&prepared.manifest, &prepared.config];
    blobs.extend(prepared.layers.iter());
    blobs
}

/// What `write_layout` makes in a layout dir: an existing dir may hold nothing else.
fn made_by_export(path: &[&str], kind: nix::sys::stat::SFlag) -> bool {
    use nix::sys::stat::SFlag;
    let temp =
        |name: &str| name.starts_with(".oci-layout.tmp-") || name.starts_with(".index.json.tmp-");
    let is_hex = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    match (path, kind) {
        (["oci-layout" | "index.json"], SFlag::S_IFREG) => true,
        ([name], SFlag::S_IFREG) => temp(name),
        (["blobs"] | ["blobs", "sha256"], SFlag::S_IFDIR) => true,
        (["blobs", "sha256", name], SFlag::S_IFREG) => {
            is_hex(name) || name.starts_with('.') && name.contains(".tmp-")
        }
        _ => false,
    }
}

/// Refuses a layout dir holding anything `write_layout` did not make (a link planted by code
/// in the sandbox, above all): `shown` names the dir.
fn check_layout_dir(dir: BorrowedFd<'_>, shown: &Path) -> io::Result<()> {
    fn walk(dir: BorrowedFd<'_>, path: &mut Vec<String>, shown: &Path) -> io::Result<()> {
        let entries = nix::dir::Dir::openat(
            dir,
            ".",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in entries.into_iter() {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        for name in names {
            let kind = beneath::kind_at(dir, std::ffi::OsStr::new(&name))?;
            path.push(name.clone());
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            if !kind.is_some_and(|k| made_by_export(&parts, k)) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} holds `{}`, which sandbox export did not make: export into a new or empty dir, or one an earlier export wrote",
                        shown.display(),
                        parts.join("/")
                    ),
                ));
            }
            if kind == Some(nix::sys::stat::SFlag::S_IFDIR) {
                let sub = beneath::open_dir_beneath(dir, Path::new(&name))?;
                walk(sub.as_fd(), path, shown)?;
            }
            path.pop();
        }
        Ok(())
    }
    walk(dir, &mut Vec::new(), shown)
}

/// Writes an OCI image layout into the dir `dir` (an existing layout gains the image). Code in
/// the sandbox may have written there: nothing but what an export makes is accepted, no link
/// is followed, and each file lands whole (written unnamed, then renamed into place).
pub fn write_layout(
    store: &Store,
    prepared: &Prepared,
    name: &str,
    dir: BorrowedFd<'_>,
    shown: &Path,
) -> io::Result<()> {
    use std::ffi::OsStr;
    check_layout_dir(dir, shown)?;
    let blobs = beneath::dir_at(dir, OsStr::new("blobs"), 0o755)?;
    let blobs = beneath::dir_at(blobs.as_fd(), OsStr::new("sha256"), 0o755)?;
    beneath::replace_at(dir, OsStr::new("oci-layout"), 0o644, |f| {
        f.write_all(br#"{"imageLayoutVersion":"1.0.0"}"#)
    })?;
    for blob in all_blobs(prepared) {
        let hex = OsStr::new(blob.digest.hex());
        if beneath::kind_at(blobs.as_fd(), hex)? == Some(nix::sys::stat::SFlag::S_IFREG) {
            continue;
        }
        let mut from = fs_err::File::open(store.blob_path(&blob.digest))?;
        beneath::replace_at(blobs.as_fd(), hex, 0o644, |f| {
            io::copy(&mut from, f).map(drop)
        })?;
    }
    let bytes = serde_json::to_vec(&index(prepared, name)).map_err(io::Error::other)?;
    beneath::replace_at(dir, OsStr::new("index.json"), 0o644, |f| {
        f.write_all(&bytes)
    })
}

/// Writes an OCI archive (a tar of an image layout) to `out`.
pub fn write_archive<W: Write>(
    store: &Store,
    prepared: &Prepared,
    name: &str,
    out: W,
) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    // Entries are the writing user's (tools that unpack the archive rootless, as skopeo does,
    // cannot make them root's), with dirs of their own.
    let (uid, gid) = (
        u64::from(nix::unistd::getuid().as_raw()),
        u64::from(nix::unistd::getgid().as_raw()),
    );
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(0);
        header
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            dir,
            io::empty(),
        )?;
    }
    let mut add = |path: &str, bytes: &[u8]| -> io::Result<()> {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        tar.append_data(&mut h, path, bytes)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::to_vec(&index(prepared, name)).map_err(io::Error::other)?;
    add("index.json", &index)?;
    let mut seen = std::collections::BTreeSet::new();
    for blob in all_blobs(prepared) {
        if !seen.insert(blob.digest.hex().to_owned()) {
            continue;
        }
        let file = fs_err::File::open(store.blob_path(&blob.digest))?;
        let mut h = header(tar::EntryType::Regular, 0o644, blob.size);
        tar.append_data(
            &mut h,
            format!("blobs/sha256/{}", blob.digest.hex()),
            io::Read::take(file, blob.size),
        )?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn docker_layer_types_are_named_as_oci_names_the_same_bytes() {
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            OCI_LAYER_GZIP
        );
        assert_eq!(oci_layer_type(OCI_LAYER_ZSTD), OCI_LAYER_ZSTD);
    }
}
