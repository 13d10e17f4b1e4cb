//! The layer of a setup `copy` step, made without a container: the project's files at their
//! place in the image, owned by container root with their modes kept, their parent dirs as the
//! image below has them. The source is read by `fsutil::tree` (beneath the project, no link
//! followed), so a sandbox.toml cannot copy a file from outside its project into a layer.

use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::fsutil::tree::{self, Node};
use crate::image::error::ImageError;
use crate::image::unpack::Ownership;

fn copy_error(from: &Path, source: io::Error) -> ImageError {
    ImageError::CopyStep {
        from: from.to_owned(),
        source,
    }
}

/// A digest of what `from` (beneath `project`) holds: each entry's path, kind, mode and bytes
/// (or link target). Times are left out, so a fresh clone of the project gives the same key.
pub fn content_digest(project: &Path, from: &Path) -> Result<String, ImageError> {
    let mut hasher = Sha256::new();
    tree::visit(project, from, &mut |path, node, file| {
        hash_entry(&mut hasher, path, node, file)
    })
    .map_err(|e| copy_error(from, e))?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

fn hash_entry(
    hasher: &mut Sha256,
    path: &Path,
    node: &Node,
    file: Option<std::fs::File>,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    hasher.update(path.as_os_str().as_bytes());
    hasher.update([0]);
    match node {
        Node::Dir { mode, .. } => hasher.update(format!("dir {mode:o}\0")),
        Node::File { mode, size, .. } => hasher.update(format!("file {mode:o} {size}\0")),
        Node::Symlink { target } => {
            hasher.update(b"link ");
            hasher.update(target.as_os_str().as_bytes());
            hasher.update([0]);
        }
    }
    if let Some(mut file) = file {
        let mut writer = HashWriter(hasher);
        io::copy(&mut file, &mut writer)?;
    }
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where `from` lands for `to`: `to` itself, or inside it when `to` ends with `/`.
pub fn destination(from: &Path, to: &str) -> PathBuf {
    let to_rel = PathBuf::from(to.trim_start_matches('/'));
    if to.ends_with('/') {
        to_rel.join(from.file_name().unwrap_or_default())
    } else {
        to_rel
    }
}

/// Makes the copy step's layer in `dest` (a new, empty dir of the store's): `from` at `to`,
/// on the image whose layer dirs are `lowers` (lowest first). Returns the content digest of
/// what it copied, which the caller checks against the step's key (the project may have
/// changed in between).
pub fn build(
    dest: &Path,
    project: &Path,
    from: &Path,
    to: &str,
    lowers: &[PathBuf],
    ownership: &Ownership,
) -> Result<String, ImageError> {
    let target = destination(from, to);
    make_parents(dest, &target, lowers, ownership).map_err(|e| copy_error(from, e))?;
    let root_owned = matches!(ownership, Ownership::Preserve { .. });
    let mut hasher = Sha256::new();
    // Dir modes are set last: a read-only dir would refuse its own children.
    let mut dirs: Vec<(PathBuf, u32, i64)> = Vec::new();
    tree::visit(project, from, &mut |path, node, file| {
        let at = if path.as_os_str().is_empty() {
            dest.join(&target)
        } else {
            dest.join(&target).join(path)
        };
        match node {
            Node::Dir { mode, mtime } => {
                match fs_err::create_dir(&at) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && at.is_dir() => {}
                    Err(e) => return Err(e),
                }
                dirs.push((at.clone(), *mode, *mtime));
                if root_owned {
                    std::os::unix::fs::lchown(&at, Some(0), Some(0))?;
                }
                hash_entry(&mut hasher, path, node, None)?;
            }
            Node::File { mode, mtime, size } => {
                use std::os::unix::ffi::OsStrExt as _;
                let mut out = fs_err::File::create_new(&at)?;
                // Read once: written and hashed (as `content_digest` does) as it passes.
                hasher.update(path.as_os_str().as_bytes());
                hasher.update([0]);
                hasher.update(format!("file {mode:o} {size}\0"));
                if let Some(mut file) = file {
                    let mut tee = Tee {
                        out: &mut out,
                        hash: &mut hasher,
                    };
                    io::copy(&mut file, &mut tee)?;
                }
                out.flush()?;
                if root_owned {
                    std::os::unix::fs::fchown(out.file(), Some(0), Some(0))?;
                }
                out.file()
                    .set_permissions(std::fs::Permissions::from_mode(*mode))?;
                set_mtime(out.file(), *mtime)?;
            }
            Node::Symlink { target } => {
                std::os::unix::fs::symlink(target, &at)?;
                if root_owned {
                    std::os::unix::fs::lchown(&at, Some(0), Some(0))?;
                }
                hash_entry(&mut hasher, path, node, None)?;
            }
        }
        Ok(())
    })
    .map_err(|e| copy_error(from, e))?;
    for (dir, mode, mtime) in dirs.into_iter().rev() {
        let set = || -> io::Result<()> {
            let handle = fs_err::File::open(&dir)?.into_parts().0;
            set_mtime(&handle, mtime)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
        };
        set().map_err(|e| copy_error(from, e))?;
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

struct Tee<'a> {
    out: &'a mut fs_err::File,
    hash: &'a mut Sha256,
}

impl io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn set_mtime(file: &std::fs::File, mtime: i64) -> io::Result<()> {
    let time = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::futimens(file, &time, &time).map_err(io::Error::from)
}

/// The dirs above `target` in the layer, each as the image has it (mode, owner, time), or
/// 0755 and root's where the image has none. A link or file on the way is an error: the copy
/// would replace what the image has there.
fn make_parents(
    dest: &Path,
    target: &Path,
    lowers: &[PathBuf],
    ownership: &Ownership,
) -> io::Result<()> {
    let mut prefix = PathBuf::new();
    let parents: Vec<_> = target
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in parents {
        prefix.push(part);
        let at = dest.join(&prefix);
        let found = lowers.iter().rev().find_map(|layer| {
            let meta = fs_err::symlink_metadata(layer.join(&prefix)).ok()?;
            Some(meta)
        });
        let (mode, uid, gid, mtime) = match found {
            Some(meta) if meta.file_type().is_dir() => {
                (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime())
            }
            // A whiteout (a character device 0/0): the image removed it; made anew.
            Some(meta) if is_whiteout(&meta) => (0o755, 0, 0, 0),
            Some(meta) if meta.file_type().is_symlink() => {
                let link = fs_err::read_link(
                    lowers
                        .iter()
                        .rev()
                        .map(|l| l.join(&prefix))
                        .find(|p| p.symlink_metadata().is_ok())
                        .unwrap_or_default(),
                )
                .unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "/{} is a symbolic link in the image (to {}); copy to the path it points to",
                        prefix.display(),
                        link.display()
                    ),
                ));
            }
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("/{} is a file in the image, not a dir", prefix.display()),
                ))
            }
            None => (0o755, 0, 0, 0),
        };
        fs_err::create_dir(&at)?;
        if matches!(ownership, Ownership::Preserve { .. }) {
            std::os::unix::fs::lchown(&at, Some(uid), Some(gid))?;
        }
        if mtime != 0 {
            set_mtime(&fs_err::File::open(&at)?.into_parts().0, mtime)?;
        }
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_lands_where_asked_with_modes_and_the_images_parents() {
        let project = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(project.path().join("ci/conf")).unwrap();
        fs_err::write(project.path().join("ci/conf/a.sh"), "echo a").unwrap();
        std::fs::set_permissions(
            project.path().join("ci/conf/a.sh"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.sh", project.path().join("ci/conf/b")).unwrap();
        let lower = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(lower.path().join("opt")).unwrap();
        std::fs::set_permissions(
            lower.path().join("opt"),
            std::fs::Permissions::from_mode(0o711),
        )
        .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let key = content_digest(project.path(), Path::new("ci/conf")).unwrap();
        let built = build(
            dest.path(),
            project.path(),
            Path::new("ci/conf"),
            "/opt/app/conf",
            &[lower.path().to_owned()],
            &Ownership::Squash,
        )
        .unwrap();
        assert_eq!(built, key, "what is copied hashes as its key does");
        let mode = |p: &str| {
            fs_err::symlink_metadata(dest.path().join(p))
                .unwrap()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("opt"), 0o711, "the image's parent, as it is");
        assert_eq!(mode("opt/app"), 0o755);
        assert_eq!(mode("opt/app/conf/a.sh"), 0o750);
        assert_eq!(
            fs_err::read_to_string(dest.path().join("opt/app/conf/a.sh")).unwrap(),
            "echo a"
        );
        assert_eq!(
            fs_err::read_link(dest.path().join("opt/app/conf/b")).unwrap(),
            Path::new("a.sh")
        );
        // Into a dir: a trailing slash.
        assert_eq!(
            destination(Path::new("ci/x.crt"), "/etc/ssl/"),
            Path::new("etc/ssl/x.crt")
        );
        // Editing the file changes the key.
        fs_err::write(project.path().join("ci/conf/a.sh"), "echo b").unwrap();
        assert_ne!(
            content_digest(project.path(), Path::new("ci/conf")).unwrap(),
            key
        );
    }

    #[test]
    fn a_link_in_the_images_path_is_refused() {
        let project = tempfile::tempdir().unwrap();
        fs_err::write(project.path().join("x"), "x").unwrap();
        let lower = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("usr/lib", lower.path().join("lib")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = build(
            dest.path(),
            project.path(),
            Path::new("x"),
            "/lib/x",
            &[lower.path().to_owned()],
            &Ownership::Squash,
        )
        .unwrap_err();
        assert!(
            format!("{:?}", err).contains("symbolic link in the image"),
            "{err:?}"
        );
    }
}
