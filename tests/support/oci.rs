//! Builds small OCI images in memory (from a static busybox and files the tests describe) and
//! pushes them to a registry with the distribution API's monolithic upload.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};

pub const MTIME: u64 = 1_600_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    File {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Fifo {
        path: String,
    },
    CharDevice {
        path: String,
        major: u32,
        minor: u32,
    },
    /// A GNU sparse file of `size` bytes that holds only `data` at its end: the rest is hole.
    Sparse {
        path: String,
        size: u64,
        data: Vec<u8>,
    },
    /// A header whose name bytes are written verbatim (tar::Header refuses `..` and `/x`).
    Raw {
        name: Vec<u8>,
        kind: tar::EntryType,
        link: Vec<u8>,
        data: Vec<u8>,
    },
}

impl Entry {
    pub fn dir(path: &str) -> Self {
        Entry::Dir {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }
    pub fn file(path: &str, data: &[u8]) -> Self {
        Entry::File {
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            data: data.to_vec(),
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
    pub fn hardlink(path: &str, target: &str) -> Self {
        Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        }
    }
    pub fn raw_file(name: &[u8], data: &[u8]) -> Self {
        Entry::Raw {
            name: name.to_vec(),
            kind: tar::EntryType::Regular,
            link: Vec::new(),
            data: data.to_vec(),
        }
    }
    pub fn raw_link(name: &[u8], kind: tar::EntryType, link: &[u8]) -> Self {
        Entry::Raw {
            name: name.to_vec(),
            kind,
            link: link.to_vec(),
            data: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub entries: Vec<Entry>,
    pub compression: Compression,
}

#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub layers: Vec<LayerSpec>,
    pub architecture: String,
}

#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: &'static str,
}

#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub layers: Vec<BuiltLayer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    h.set_mtime(MTIME);
    h
}

/// The uncompressed tar of a layer.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let mut h = header(tar::EntryType::Directory, *mode, *uid, *gid, 0);
                b.append_data(&mut h, path, std::io::empty()).expect("dir");
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
            } => {
                let mut h = header(
                    tar::EntryType::Regular,
                    *mode,
                    *uid,
                    *gid,
                    data.len() as u64,
                );
                b.append_data(&mut h, path, data.as_slice()).expect("file");
            }
            Entry::Symlink { path, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
                b.append_link(&mut h, path, target).expect("symlink");
            }
            Entry::Hardlink { path, target } => {
                let mut h = header(tar::EntryType::Link, 0o644, 0, 0, 0);
                b.append_link(&mut h, path, target).expect("hardlink");
            }
            Entry::Fifo { path } => {
                let mut h = header(tar::EntryType::Fifo, 0o644, 0, 0, 0);
                b.append_data(&mut h, path, std::io::empty()).expect("fifo");
            }
            Entry::CharDevice { path, major, minor } => {
                let mut h = header(tar::EntryType::Char, 0o666, 0, 0, 0);
                h.set_device_major(*major).expect("major");
                h.set_device_minor(*minor).expect("minor");
                b.append_data(&mut h, path, std::io::empty())
                    .expect("device");
            }
            Entry::Sparse { path, size, data } => {
                let mut h = header(tar::EntryType::GNUSparse, 0o644, 0, 0, data.len() as u64);
                let gnu = h.as_gnu_mut().expect("gnu header");
                gnu.sparse[0].set_offset(size - data.len() as u64);
                gnu.sparse[0].set_length(data.len() as u64);
                gnu.set_real_size(*size);
                b.append_data(&mut h, path, data.as_slice())
                    .expect("sparse");
            }
            Entry::Raw {
                name,
                kind,
                link,
                data,
            } => {
                let mut h = header(*kind, 0o644, 0, 0, data.len() as u64);
                let gnu = h.as_gnu_mut().expect("gnu header");
                gnu.name[..name.len()].copy_from_slice(name);
                gnu.linkname[..link.len()].copy_from_slice(link);
                h.set_cksum();
                b.append(&h, data.as_slice()).expect("raw");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

pub fn compress(tar: &[u8], compression: Compression) -> (Vec<u8>, &'static str) {
    match compression {
        Compression::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            (
                e.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            zstd::encode_all(tar, 1).expect("zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

pub fn build_layer(spec: &LayerSpec) -> BuiltLayer {
    let tar = layer_tar(&spec.entries);
    let (blob, media_type) = compress(&tar, spec.compression);
    BuiltLayer {
        digest: digest(&blob),
        diff_id: digest(&tar),
        blob,
        media_type,
    }
}

/// Builds config and manifest around already-built layers.
pub fn assemble(layers: Vec<BuiltLayer>, architecture: &str) -> BuiltImage {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()})).collect::<Vec<_>>(),
    }))
    .expect("manifest");
    BuiltImage {
        manifest_digest: digest(&manifest),
        layers,
        config,
        config_digest,
        manifest,
    }
}

pub fn build(spec: &ImageSpec) -> BuiltImage {
    assemble(
        spec.layers.iter().map(build_layer).collect(),
        &spec.architecture,
    )
}

/// An index over (image, architecture) pairs.
pub fn index(images: &[(&BuiltImage, &str)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": images.iter().map(|(i, arch)| serde_json::json!({
            "mediaType": MANIFEST_TYPE, "digest": i.manifest_digest, "size": i.manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        })).collect::<Vec<_>>(),
    }))
    .expect("index")
}

/// A minimal busybox root: /bin/busybox, a few applet links, /etc/passwd and /etc/group.
pub fn busybox_entries() -> Vec<Entry> {
    let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|_| {
        panic!("/bin/busybox is missing: install Debian's `busybox-static` package (.ci/run does)")
    });
    let mut entries = vec![
        Entry::dir("bin"),
        Entry::dir("etc"),
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
            uid: 0,
            gid: 0,
        },
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: busybox,
        },
    ];
    for applet in ["sh", "ls", "cat", "id", "true", "echo", "stat"] {
        entries.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    entries.push(Entry::file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n",
    ));
    entries.push(Entry::file("etc/group", b"root:x:0:\n"));
    entries
}

/// A busybox root with every applet linked, plus extra files (e.g. test helpers).
pub fn busybox_full_entries() -> Vec<Entry> {
    let mut entries = busybox_entries();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let have: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            if let Entry::Symlink { path, .. } = e {
                Some(path.clone())
            } else {
                None
            }
        })
        .collect();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let path = format!("bin/{applet}");
        if applet != "busybox" && !have.contains(&path) {
            entries.push(Entry::symlink(&path, "busybox"));
        }
    }
    entries.push(Entry::dir("usr"));
    entries.push(Entry::dir("usr/bin"));
    entries.push(Entry::file(
        "usr/bin/not-executable",
        b"#!/bin/sh\necho no\n",
    ));
    entries
}

/// Compiles a small static C program (the image has no compiler) for checks from inside.
pub fn static_helper(name: &str, source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = dir.path().join(format!("{name}.c"));
    std::fs::write(&c, source).expect("write source");
    let out = dir.path().join(name);
    let status = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .unwrap_or_else(|_| {
            panic!("cc is missing: install Debian's gcc and libc6-dev (.ci/run does)")
        });
    assert!(
        status.success(),
        "compiling {name} failed: install Debian's libc6-dev for static linking"
    );
    std::fs::read(out).expect("read helper")
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Pushes blobs and the manifest of `image` under `repo:tag` (tag may be a digest).
pub fn push(base: &str, repo: &str, tag: &str, image: &BuiltImage) {
    let client = reqwest::blocking::Client::new();
    for blob in image
        .layers
        .iter()
        .map(|l| (&l.blob, &l.digest))
        .chain(std::iter::once((&image.config, &image.config_digest)))
    {
        push_blob(&client, base, repo, blob.0, blob.1);
    }
    put_manifest(&client, base, repo, tag, MANIFEST_TYPE, &image.manifest);
}

/// Pushes several images and an index over them under `repo:tag`.
pub fn push_index(base: &str, repo: &str, tag: &str, images: &[(&BuiltImage, &str)]) -> String {
    let client = reqwest::blocking::Client::new();
    for (image, _) in images {
        push(base, repo, &image.manifest_digest, image);
    }
    let body = index(images);
    put_manifest(&client, base, repo, tag, INDEX_TYPE, &body);
    digest(&body)
}

pub fn push_blob(
    client: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    blob: &[u8],
    digest: &str,
) {
    let start = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("start upload");
    assert_eq!(
        start.status().as_u16(),
        202,
        "upload start: {:?}",
        start.text()
    );
    let location = start.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let done = client
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .expect("upload");
    assert_eq!(
        done.status().as_u16(),
        201,
        "upload of {digest}: {:?}",
        done.text()
    );
}

pub fn put_manifest(
    client: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    tag: &str,
    media_type: &str,
    body: &[u8],
) {
    let r = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .expect("put manifest");
    assert_eq!(
        r.status().as_u16(),
        201,
        "manifest {repo}:{tag}: {:?}",
        r.text()
    );
}

/// `image` with its config and manifest JSON edited (digests and sizes kept in step), for
/// images that lie in their metadata.
pub fn rewrite(
    image: &BuiltImage,
    edit_config: impl Fn(&mut serde_json::Value),
    edit_manifest: impl Fn(&mut serde_json::Value),
) -> BuiltImage {
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).expect("config");
    edit_config(&mut config);
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = digest(&config);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&image.manifest).expect("manifest");
    manifest["config"]["digest"] = config_digest.clone().into();
    manifest["config"]["size"] = config.len().into();
    edit_manifest(&mut manifest);
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    BuiltImage {
        manifest_digest: digest(&manifest),
        layers: image.layers.clone(),
        config,
        config_digest,
        manifest,
    }
}
