//! The host's CAs inside a sandbox. Behind a TLS-intercepting proxy (a company's, or these
//! machines' egress), pip, npm, curl, git and the JVM fail until they trust its CA. A bundle of
//! the image's CAs plus the host's is made here (and a JVM trust store of the same), kept in
//! the store by content, and mounted read-only when a container starts: never written into a
//! layer, which may be pushed, and not part of any setup key (a machine-local fact must not
//! change what a lock pins).

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::image::error::ImageError;
use crate::image::store::Store;

/// Where images keep their system bundle (the first found is used).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where JVMs keep their trust store, besides `$JAVA_HOME/lib/security/cacerts`.
const JVM_STORES: &[&str] = &[
    "/etc/ssl/certs/java/cacerts",
    "/etc/pki/ca-trust/extracted/java/cacerts",
];

/// The largest CA file read.
const CA_FILE_LIMIT: u64 = 4 << 20;

/// The host's own CA files: what a local administrator added to the distribution's bundle
/// (Debian's /usr/local/share/ca-certificates, Fedora's anchors) plus the user's `ca_files`.
pub fn host_ca_files(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "/usr/local/share/ca-certificates",
        "/etc/pki/ca-trust/source/anchors",
    ] {
        collect_crt(Path::new(dir), &mut files, 0);
    }
    files.sort();
    files.extend(extra.iter().cloned());
    files
}

fn collect_crt(dir: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < 4 {
            collect_crt(&path, out, depth + 1);
        } else if path.is_file() && path.extension().is_some_and(|e| e == "crt" || e == "pem") {
            out.push(path);
        }
    }
}

/// The certificates (DER) in PEM `text`.
pub fn certificates(text: &str) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            break;
        };
        let b64: String = body[..end].split_whitespace().collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push(der);
        }
        rest = &body[end + END.len()..];
    }
    out
}

/// A JKS trust store holding `certs`, with the password `changeit` every JVM tries (JDK 9 and
/// later also read it where they expect PKCS#12).
pub fn java_key_store(certs: &[Vec<u8>]) -> Vec<u8> {
    use sha1::Digest as _;
    let mut out = Vec::new();
    out.extend_from_slice(&0xFEED_FEEDu32.to_be_bytes());
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&(certs.len() as u32).to_be_bytes());
    let utf = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for (i, der) in certs.iter().enumerate() {
        // A trusted certificate entry.
        out.extend_from_slice(&2u32.to_be_bytes());
        utf(&mut out, &format!("sandbox-{i}"));
        out.extend_from_slice(&0u64.to_be_bytes());
        utf(&mut out, "X.509");
        out.extend_from_slice(&(der.len() as u32).to_be_bytes());
        out.extend_from_slice(der);
    }
    // The integrity check: SHA-1 of the password (UTF-16BE), a fixed phrase and the content.
    let mut hash = sha1::Sha1::new();
    for unit in "changeit".encode_utf16() {
        hash.update(unit.to_be_bytes());
    }
    hash.update(b"Mighty Aphrodite");
    hash.update(&out);
    out.extend_from_slice(&hash.finalize());
    out
}

pub use crate::image::layer_lookup::find_in_layers;

/// A digest of where the bundle's parts come from: the image's bundle (a path in an immutable
/// layer) and each host file's path, size and modification time.
fn fingerprint(image_bundle: Option<&Path>, host_files: &[PathBuf]) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let mut hash = Sha256::new();
    if let Some(path) = image_bundle {
        hash.update(path.as_os_str().as_encoded_bytes());
    }
    hash.update([0]);
    for file in host_files {
        hash.update(file.as_os_str().as_encoded_bytes());
        if let Ok(meta) = fs_err::metadata(file) {
            hash.update(format!(
                "\0{} {} {}\0",
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec()
            ));
        }
    }
    format!("{:x}", hash.finalize())
}

/// What a container mounts to trust the host's CAs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustFiles {
    /// The image's CAs and the host's, PEM.
    pub bundle: PathBuf,
    /// The same as a JVM trust store.
    pub java_store: PathBuf,
    /// The image's system bundle, which a command's bundle is mounted over.
    pub system_bundle: Option<String>,
    /// The image's JVM trust stores, which a command's trust store is mounted over.
    pub jvm_stores: Vec<String>,
    /// The host's CA files added, for `-v`.
    pub added: Vec<PathBuf>,
}

/// The trust files for an image whose layers are `layers` (lowest first), with the CAs in
/// `host_files`; `java_home` is the image's JAVA_HOME. Made once per content, in `tls/` of
/// the store. `None` when the host files hold no certificate.
pub fn prepare(
    store: &Store,
    layers: &[PathBuf],
    host_files: &[PathBuf],
    java_home: Option<&str>,
) -> Result<Option<TrustFiles>, ImageError> {
    // An image's bundle larger than any real one is not read (nor mounted over): the image may
    // be hostile.
    let system_bundle = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| find_in_layers(layers, p).map(|found| (p.to_string(), found)))
        .filter(|(_, found)| fs_err::metadata(found).is_ok_and(|m| m.len() <= CA_FILE_LIMIT));
    let mut jvm_candidates: Vec<String> = JVM_STORES.iter().map(|s| s.to_string()).collect();
    if let Some(home) = java_home.filter(|h| h.starts_with('/')) {
        jvm_candidates.insert(
            0,
            format!("{}/lib/security/cacerts", home.trim_end_matches('/')),
        );
    }
    let jvm_stores: Vec<String> = jvm_candidates
        .into_iter()
        .filter(|p| find_in_layers(layers, p).is_some())
        .collect();
    // Made before for the same sources (layers are immutable; host files by size and time):
    // nothing is read again, which keeps this off a run's start-up time.
    let dir = store.root().join("tls");
    let sources = fingerprint(system_bundle.as_ref().map(|(_, f)| f.as_path()), host_files);
    let index = dir.join(format!("{sources}.source"));
    if let Ok(record) = fs_err::read_to_string(&index) {
        let mut lines = record.lines();
        if let (Some(key), added) = (lines.next(), lines.map(PathBuf::from).collect::<Vec<_>>()) {
            let (pem_path, jks_path) = (
                dir.join(format!("{key}.pem")),
                dir.join(format!("{key}.jks")),
            );
            if pem_path.is_file() && jks_path.is_file() && !added.is_empty() {
                return Ok(Some(TrustFiles {
                    bundle: pem_path,
                    java_store: jks_path,
                    system_bundle: system_bundle.map(|(p, _)| p),
                    jvm_stores,
                    added,
                }));
            }
        }
    }
    let mut host_pem = String::new();
    let mut added = Vec::new();
    for file in host_files {
        let Ok(text) = crate::fsutil::small_file::read(file, CA_FILE_LIMIT) else {
            continue;
        };
        if !certificates(&text).is_empty() {
            host_pem.push_str(text.trim_end());
            host_pem.push('\n');
            added.push(file.clone());
        }
    }
    if added.is_empty() {
        return Ok(None);
    }
    let image_pem = match &system_bundle {
        Some((_, found)) => {
            crate::fsutil::small_file::read(found, CA_FILE_LIMIT).unwrap_or_default()
        }
        None => String::new(),
    };
    let mut bundle = image_pem.trim_end().to_owned();
    if !bundle.is_empty() {
        bundle.push('\n');
    }
    bundle.push_str(&host_pem);
    let key = format!("{:x}", Sha256::digest(bundle.as_bytes()));
    let pem_path = dir.join(format!("{key}.pem"));
    let jks_path = dir.join(format!("{key}.jks"));
    if !(pem_path.is_file() && jks_path.is_file()) {
        let write = || -> io::Result<()> {
            fs_err::create_dir_all(&dir)?;
            crate::fsutil::atomic::write_file_atomic(&pem_path, bundle.as_bytes(), 0o644)?;
            let store_bytes = java_key_store(&certificates(&bundle));
            crate::fsutil::atomic::write_file_atomic(&jks_path, &store_bytes, 0o644)
        };
        write().map_err(|e| store.io_error(e))?;
    }
    let record: Vec<String> = std::iter::once(key.clone())
        .chain(added.iter().map(|a| a.display().to_string()))
        .collect();
    let _ = crate::fsutil::atomic::write_file_atomic(&index, record.join("\n").as_bytes(), 0o644);
    Ok(Some(TrustFiles {
        bundle: pem_path,
        java_store: jks_path,
        system_bundle: system_bundle.map(|(p, _)| p),
        jvm_stores,
        added,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(der: &[u8]) -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }

    #[test]
    fn certificates_are_read_from_pem_text_between_other_lines() {
        let text = format!("# a comment\n{}garbage\n{}", pem(b"one"), pem(b"two"));
        assert_eq!(certificates(&text), vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(certificates("-----BEGIN CERTIFICATE-----\nAAAA").is_empty());
    }

    #[test]
    fn the_java_key_store_has_its_header_entries_and_checksum() {
        use sha1::Digest as _;
        let store = java_key_store(&[b"der1".to_vec(), b"der22".to_vec()]);
        assert_eq!(&store[..4], &[0xFE, 0xED, 0xFE, 0xED]);
        assert_eq!(&store[4..8], &2u32.to_be_bytes());
        assert_eq!(&store[8..12], &2u32.to_be_bytes());
        let (content, digest) = store.split_at(store.len() - 20);
        let mut hash = sha1::Sha1::new();
        for unit in "changeit".encode_utf16() {
            hash.update(unit.to_be_bytes());
        }
        hash.update(b"Mighty Aphrodite");
        hash.update(content);
        assert_eq!(digest, hash.finalize().as_slice());
        assert!(content.windows(5).any(|w| w == b"der22"));
    }

    #[test]
    fn a_file_is_found_in_the_highest_layer_and_never_through_a_link_or_whiteout() {
        let low = tempfile::tempdir().unwrap();
        let high = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(low.path().join("etc/ssl/certs")).unwrap();
        fs_err::write(low.path().join("etc/ssl/certs/ca-certificates.crt"), "low").unwrap();
        fs_err::create_dir_all(high.path().join("etc/ssl/certs")).unwrap();
        fs_err::write(
            high.path().join("etc/ssl/certs/ca-certificates.crt"),
            "high",
        )
        .unwrap();
        let layers = vec![low.path().to_owned(), high.path().to_owned()];
        let found = find_in_layers(&layers, "/etc/ssl/certs/ca-certificates.crt").unwrap();
        assert_eq!(fs_err::read_to_string(found).unwrap(), "high");
        std::os::unix::fs::symlink("/etc/shadow", high.path().join("etc/ssl/cert.pem")).unwrap();
        assert_eq!(find_in_layers(&layers, "/etc/ssl/cert.pem"), None);
        // A whiteout hides the lower layer's file (a device node needs root to make).
        let whiteout = high.path().join("etc/ssl/certs/ca-certificates.crt");
        fs_err::remove_file(&whiteout).unwrap();
        if nix::sys::stat::mknod(
            &whiteout,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .is_ok()
        {
            assert_eq!(
                find_in_layers(&layers, "/etc/ssl/certs/ca-certificates.crt"),
                None
            );
        }
    }
}
