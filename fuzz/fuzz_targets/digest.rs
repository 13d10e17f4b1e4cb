//! Digests from manifests, the lock and the command line (CVE-2024-3727: they become paths).
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(digest) = sandbox::image::Digest::parse(text) {
        let hex = digest.hex();
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(!hex.contains('/') && !hex.contains(".."));
    }
});
