//! A layer's tar stream, unpacked into a fresh temp root: it fails cleanly or stays inside.
#![no_main]
use std::os::unix::fs::MetadataExt as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    if std::fs::create_dir(&root).is_err() || std::fs::write(&outside, b"sentinel").is_err() {
        return;
    }
    let before = std::fs::metadata(&outside).map(|m| (m.mode(), m.ino())).ok();
    let Ok(layer) = sandbox::image::Digest::parse(
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ) else {
        return;
    };
    let limit = sandbox::image::unpack::Limit {
        bytes: 64 << 20,
        free_space_of: None,
    };
    let _ = sandbox::image::unpack::unpack(
        data,
        &root,
        &layer,
        &sandbox::image::unpack::Ownership::Squash,
        limit,
    );
    // Nothing outside the root changed, and nothing new appeared beside it.
    assert_eq!(std::fs::read(&outside).ok().as_deref(), Some(&b"sentinel"[..]));
    assert_eq!(std::fs::metadata(&outside).map(|m| (m.mode(), m.ino())).ok(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "{names:?}");
});
