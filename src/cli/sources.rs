//! What a project's sandbox is made from, each with a digest: sandbox.toml, sandbox.lock and
//! the files its setup steps copy. A running sandbox records them, so that a command joining
//! it can say what changed since it started (it runs in the old sandbox all the same).

use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::config::project::Project;
use crate::config::setup::SetupStep;

/// Files bigger than this are told apart by size and time alone (a copied dataset need not
/// be read on every command).
const READ_LIMIT: u64 = 16 << 20;
/// The most entries a copied dir is walked for.
const WALK_LIMIT: usize = 10_000;

/// (what, digest) for sandbox.toml, sandbox.lock and each file or dir a setup step copies.
pub fn of(config: &Project) -> Vec<(String, String)> {
    let mut sources = vec![
        ("sandbox.toml".to_owned(), digest_of(&config.file)),
        (
            crate::config::lock::FILE_NAME.to_owned(),
            digest_of(&config.dir.join(crate::config::lock::FILE_NAME)),
        ),
    ];
    for step in &config.setup {
        if let SetupStep::Copy { from, .. } = step {
            sources.push((
                format!("{} (copied by a setup step)", from.display()),
                digest_of(&config.dir.join(from)),
            ));
        }
    }
    sources
}

/// A digest of a file's bytes, of a dir's entries (names, sizes, times), or `absent`.
fn digest_of(path: &Path) -> String {
    let mut hash = Sha256::new();
    let Ok(meta) = fs_err::symlink_metadata(path) else {
        return "absent".into();
    };
    if meta.is_dir() {
        let mut entries = Vec::new();
        walk(path, path, &mut entries);
        entries.sort();
        for entry in entries {
            hash.update(entry.as_bytes());
            hash.update(b"\n");
        }
    } else {
        hash_file(path, &meta, &mut hash);
    }
    format!("{:x}", hash.finalize())
}

fn hash_file(path: &Path, meta: &std::fs::Metadata, hash: &mut Sha256) {
    use std::os::unix::fs::MetadataExt as _;
    if meta.len() > READ_LIMIT || !meta.is_file() {
        hash.update(format!("{} {} {}", meta.len(), meta.mtime(), meta.mtime_nsec()).as_bytes());
        return;
    }
    if let Ok(mut file) = fs_err::File::open(path) {
        let mut buffer = [0u8; 64 * 1024];
        while let Ok(n) = file.read(&mut buffer) {
            if n == 0 {
                break;
            }
            hash.update(&buffer[..n]);
        }
    }
}

fn walk(root: &Path, dir: &Path, entries: &mut Vec<String>) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(read) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        if entries.len() >= WALK_LIMIT {
            return;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        entries.push(format!(
            "{name} {} {} {}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
        if meta.is_dir() {
            walk(root, &path, entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_or_dir_changes_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.crt");
        assert_eq!(digest_of(&file), "absent");
        fs_err::write(&file, "one").unwrap();
        let first = digest_of(&file);
        fs_err::write(&file, "two").unwrap();
        assert_ne!(digest_of(&file), first);
        let before = digest_of(dir.path());
        fs_err::write(dir.path().join("more"), "x").unwrap();
        assert_ne!(digest_of(dir.path()), before);
    }
}
