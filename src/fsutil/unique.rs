//! Names unique to this process and call, for temp files and dirs, and short names derived
//! from bytes.

use std::sync::atomic::{AtomicU64, Ordering};

/// A name unique to this process and call, for temp files and dirs.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The first `len` hex digits (at most 64) of the SHA-256 of `bytes`: a short name that stands
/// for them (a container's id, a store's tag in cgroup names).
pub fn short_hash(bytes: &[u8], len: usize) -> String {
    use sha2::Digest as _;
    let mut hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_short_hash_is_the_sha256_hex_prefix() {
        assert_eq!(super::short_hash(b"abc", 12), "ba7816bf8f01");
        assert_eq!(super::short_hash(b"abc", 100).len(), 64);
    }
}
