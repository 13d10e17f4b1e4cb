//! Manifest and index JSON from a registry, with each Content-Type a registry may send.
#![no_main]
const TYPES: [&str; 5] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/json",
];
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(*first) % TYPES.len()];
    let _ = sandbox::image::manifest::parse_manifest(body, content_type, "fuzz/app:1");
});
