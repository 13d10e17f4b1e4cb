//! A path as the merged image shows it, read from the extracted layers without mounting them:
//! the top-most layer that has it wins; a whiteout (a 0/0 character device) hides it in the
//! layers below, and so does an opaque dir (`user.overlay.opaque`) on the way to it. Layers
//! come from registries: no component may be a link, and only a regular file is a result.

use std::path::{Path, PathBuf};

/// The file `path` (absolute or relative to the image root) is in the merged image, when the
/// image has it as a regular file reached through real dirs only.
pub fn find_in_layers(layers: &[PathBuf], path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let rel = path.trim_start_matches('/');
    for layer in layers.iter().rev() {
        let mut at = layer.clone();
        let mut parts = Path::new(rel).components().peekable();
        // An opaque dir on the way hides the lower layers' part of the path.
        let mut opaque = false;
        while let Some(part) = parts.next() {
            at.push(part);
            let Ok(meta) = fs_err::symlink_metadata(&at) else {
                break;
            };
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            if whiteout || meta.file_type().is_symlink() {
                return None;
            }
            if parts.peek().is_none() {
                return meta.file_type().is_file().then_some(at);
            }
            if !meta.is_dir() {
                return None;
            }
            opaque |= is_opaque(&at);
        }
        if opaque {
            return None;
        }
    }
    None
}

/// The text of `path` in the merged image, at most `limit` bytes of it.
pub fn read_in_layers(layers: &[PathBuf], path: &str, limit: u64) -> Option<String> {
    use std::io::Read as _;
    let found = find_in_layers(layers, path)?;
    let mut text = String::new();
    fs_err::File::open(found)
        .ok()?
        .take(limit)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn is_opaque(dir: &Path) -> bool {
    let (Ok(path), Ok(name)) = (sys::cpath(dir), sys::cstring("user.overlay.opaque")) else {
        return false;
    };
    sys::small_xattr(&path, &name).is_some_and(|v| v == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = root.join(name);
        for (path, text) in files {
            let file = dir.join(path);
            fs_err::create_dir_all(file.parent().unwrap()).unwrap();
            fs_err::write(file, text).unwrap();
        }
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_what_lower_layers_have() {
        let root = tempfile::tempdir().unwrap();
        let base = layer(
            root.path(),
            "base",
            &[
                (
                    "etc/apt/sources.list",
                    "deb http://deb.debian.org/debian bookworm main\n",
                ),
                (
                    "etc/apt/sources.list.d/extra.list",
                    "deb http://extra.example/ x main\n",
                ),
            ],
        );
        let top = layer(root.path(), "top", &[("etc/motd", "hi\n")]);
        let layers = vec![base.clone(), top.clone()];
        assert!(read_in_layers(&layers, "/etc/apt/sources.list", 1024)
            .is_some_and(|t| t.contains("bookworm")));
        // A higher layer deletes the file: a whiteout.
        fs_err::create_dir_all(top.join("etc/apt")).unwrap();
        nix::sys::stat::mknod(
            &top.join("etc/apt/sources.list"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        assert_eq!(read_in_layers(&layers, "/etc/apt/sources.list", 1024), None);
        // A higher layer replaces the dir: opaque, so the lower one's files are gone.
        let opaque = top.join("etc/apt/sources.list.d");
        fs_err::create_dir_all(&opaque).unwrap();
        sys::set_xattr(
            &sys::cpath(&opaque).unwrap(),
            &sys::cstring("user.overlay.opaque").unwrap(),
            b"y",
        )
        .unwrap();
        assert_eq!(
            find_in_layers(&layers, "etc/apt/sources.list.d/extra.list"),
            None
        );
        // What the top layer has itself is there.
        assert!(find_in_layers(&layers, "/etc/motd").is_some());
    }
}
