//! `sandbox pull`, `images`, `rmi`, `prune`, `df` against a real registry, as the test user.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

use crate::support::oci::{self, Compression, Entry, ImageSpec, LayerSpec};
use crate::support::{Registry, TestEnv};

/// Three layers (gzip, zstd, plain) exercising whiteouts, opaque dirs, links and owners.
fn fixture_image() -> oci::BuiltImage {
    let mut base = oci::busybox_entries();
    base.extend([
        Entry::dir("opaque"),
        Entry::file("opaque/old", b"hidden by the opaque marker"),
        Entry::file("gone", b"whited out"),
        Entry::Dir {
            path: "srv".into(),
            mode: 0o750,
            uid: 1,
            gid: 1,
        },
        Entry::File {
            path: "bin/setuid-tool".into(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
            data: b"#!/bin/sh\n".to_vec(),
        },
        Entry::Fifo {
            path: "tmp/fifo".into(),
        },
        Entry::CharDevice {
            path: "dev-null-copy".into(),
            major: 1,
            minor: 3,
        },
        Entry::hardlink("bin/busybox-again", "bin/busybox"),
    ]);
    oci::build(&ImageSpec {
        layers: vec![
            LayerSpec {
                entries: base,
                compression: Compression::Gzip,
            },
            LayerSpec {
                entries: vec![
                    Entry::file(".wh.gone", b""),
                    Entry::dir("opaque"),
                    Entry::file("opaque/.wh..wh..opq", b""),
                    Entry::file("opaque/new", b"new"),
                ],
                compression: Compression::Zstd,
            },
            LayerSpec {
                entries: vec![
                    Entry::file("etc/motd", b"hello from layer three\n"),
                    Entry::symlink("etc/motd-link", "/etc/motd"),
                ],
                compression: Compression::None,
            },
        ],
        architecture: oci::host_arch().into(),
    })
}

#[test]
fn pulls_an_image_with_every_layer_kind_into_overlay_format() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = fixture_image();
    oci::push(&registry.url(), "library/fixture", "latest", &image);
    let reference = format!("{}/library/fixture", registry.host());

    let out = env.ok(&["pull", &reference]);
    assert!(
        out.contains(&format!(
            "pulled {reference}:latest {}",
            image.manifest_digest
        )),
        "{out}"
    );

    let layer = |i: usize| {
        env.store()
            .join("layers")
            .join(image.layers[i].diff_id.trim_start_matches("sha256:"))
            .join("root")
    };
    // Owners as in the image, through the keep-id map: root -> first subuid, uid 1 -> the next.
    let sub = env.subuid_start();
    let setuid = std::fs::metadata(layer(0).join("bin/setuid-tool")).unwrap();
    assert_eq!(setuid.uid(), sub);
    assert_eq!(setuid.mode() & 0o7777, 0o4755, "setuid bit kept");
    let srv = std::fs::metadata(layer(0).join("srv")).unwrap();
    assert_eq!(
        (srv.uid(), srv.gid(), srv.mode() & 0o777),
        (sub + 1, sub + 1, 0o750)
    );
    assert_eq!(srv.mtime() as u64, oci::MTIME);
    assert!(std::fs::metadata(layer(0).join("tmp/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(
        !layer(0).join("dev-null-copy").exists(),
        "device nodes are skipped rootless"
    );
    assert_eq!(
        std::fs::read_link(layer(0).join("bin/sh"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );

    // Whiteout as a 0/0 char device, opaque dir as the user.overlay xattr.
    let wh = std::fs::symlink_metadata(layer(1).join("gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        xattr(&layer(1).join("opaque"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    let (a, b) = (
        std::fs::metadata(layer(0).join("bin/busybox-again")).unwrap(),
        std::fs::metadata(layer(0).join("bin/busybox")).unwrap(),
    );
    assert_eq!(
        (a.ino(), a.nlink()),
        (b.ino(), 2),
        "hard links share one inode"
    );
    assert_eq!(
        std::fs::read_to_string(layer(2).join("etc/motd")).unwrap(),
        "hello from layer three\n"
    );

    // images lists it; the store holds no half object.
    let images = env.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].0, format!("{reference}:latest"));
    let table = env.ok(&["images"]);
    assert!(table.starts_with("REFERENCE"), "{table}");
    assert!(table.contains(&format!("{reference}:latest")), "{table}");
    env.assert_store_consistent();

    // Pulling again reuses everything.
    env.ok(&["pull", &reference]);
    assert_eq!(env.store_entries("layers").len(), 3);
}

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt as _;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    sys::small_link_xattr(&p, &n)
}

#[test]
fn an_index_resolves_to_this_machines_platform_and_shares_layers() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let shared = LayerSpec {
        entries: oci::busybox_entries(),
        compression: Compression::Gzip,
    };
    let native = oci::build(&ImageSpec {
        layers: vec![
            shared.clone(),
            LayerSpec {
                entries: vec![Entry::file("which", b"native")],
                compression: Compression::Gzip,
            },
        ],
        architecture: oci::host_arch().into(),
    });
    let other_arch = if oci::host_arch() == "arm64" {
        "s390x"
    } else {
        "arm64"
    };
    let foreign = oci::build(&ImageSpec {
        layers: vec![
            shared,
            LayerSpec {
                entries: vec![Entry::file("which", b"foreign")],
                compression: Compression::Gzip,
            },
        ],
        architecture: other_arch.into(),
    });
    let index_digest = oci::push_index(
        &registry.url(),
        "multi/app",
        "v1",
        &[(&foreign, other_arch), (&native, oci::host_arch())],
    );
    // A second image that shares the base layer.
    let sibling = oci::build(&ImageSpec {
        layers: vec![
            LayerSpec {
                entries: oci::busybox_entries(),
                compression: Compression::Gzip,
            },
            LayerSpec {
                entries: vec![Entry::file("which", b"sibling")],
                compression: Compression::Gzip,
            },
        ],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "single/app", "v1", &sibling);

    let reference = format!("{}/multi/app:v1", registry.host());
    env.ok(&["pull", &reference]);
    env.ok(&["pull", &format!("{}/single/app:v1", registry.host())]);
    let out = env.ok(&["images", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let multi = json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference.as_str())
        .unwrap();
    assert_eq!(
        multi["digest"],
        index_digest.as_str(),
        "the tag resolved to the index"
    );
    assert_eq!(
        multi["manifest_digest"],
        native.manifest_digest.as_str(),
        "the host's platform was picked"
    );
    assert_eq!(
        multi["platform"],
        format!("linux/{}", oci::host_arch()).as_str()
    );
    // Two images, two layers each, one layer shared: three layer dirs.
    assert_eq!(env.store_entries("layers").len(), 3);
    let df = env.ok(&["df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("layers") && l.split_whitespace().nth(1) == Some("3")),
        "{df}"
    );

    // An index without this platform names what it offers.
    let only_foreign = oci::push_index(
        &registry.url(),
        "foreign/app",
        "v1",
        &[(&foreign, other_arch)],
    );
    assert!(!only_foreign.is_empty());
    let err = env.fails(&["pull", &format!("{}/foreign/app:v1", registry.host())]);
    assert!(
        err.contains(&format!("has no image for linux/{}", oci::host_arch())),
        "{err}"
    );
    assert!(err.contains(&format!("linux/{other_arch}")), "{err}");

    // rmi keeps the shared layer for the other image, then prune has nothing left to do.
    let out = env.ok(&["rmi", &reference]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(env.store_entries("layers").len(), 2);
    env.ok(&["rmi", &format!("{}/single/app:v1", registry.host())]);
    assert_eq!(env.store_entries("layers"), Vec::<String>::new());
    assert_eq!(env.images().len(), 0);
    let err = env.fails(&["rmi", &reference]);
    assert!(err.contains("is not in the store"), "{err}");
}

#[test]
fn prune_removes_what_no_image_uses() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: oci::busybox_entries(),
            compression: Compression::Zstd,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "p/app", "1", &image);
    env.ok(&["pull", &format!("{}/p/app:1", registry.host())]);
    // Remove the record behind the store's back: its layer is now unused.
    for f in env.store_entries("images") {
        std::fs::remove_file(env.store().join("images").join(f)).unwrap();
    }
    let df = env.ok(&["df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("layers") && !l.trim_end().ends_with(" 0 B")),
        "{df}"
    );
    let out = env.ok(&["prune"]);
    assert!(out.starts_with("removed 1 layers"), "{out}");
    assert!(env.store_entries("layers").is_empty());
    assert!(env.store_entries("blobs/sha256").is_empty());
}

#[test]
fn without_a_terminal_only_the_final_line_is_printed() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: oci::busybox_entries(),
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "quiet/app", "1", &image);
    let reference = format!("{}/quiet/app:1", registry.host());
    let out = env.run(&["pull", &reference]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("pulled {reference} {}", image.manifest_digest)),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no progress without a terminal"
    );

    let out = env.run(&["-q", "pull", &reference]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", image.manifest_digest)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_malformed_reference_is_explained() {
    let env = TestEnv::new();
    let err = env.fails(&["pull", "Busy/Box"]);
    assert!(
        err.starts_with(
            "error: invalid image reference `Busy/Box`: repository names are lowercase"
        ),
        "{err}"
    );
    let err = env.fails(&["pull", "busybox@sha256:abc"]);
    assert!(
        err.contains("a sha256 digest has exactly 64 hex digits"),
        "{err}"
    );
}
