//! An OCI layer tar from a layer dir in the store (overlay format), written reproducibly: the
//! same tree gives the same bytes on any machine and for any user.
//!
//! - entries in byte order of their paths, each dir before what it holds;
//! - modification times clamped to `epoch` (`SOURCE_DATE_EPOCH`; default 0);
//! - owners as the ids inside the sandbox's mapping (read in the store's user namespace, so 0
//!   is root, never a host or subordinate id), no user or group names;
//! - overlay whiteouts (0/0 character devices) as `.wh.NAME`, opaque dirs
//!   (`user.overlay.opaque`) as `.wh..wh..opq`; overlay's own attributes left out;
//! - hard links as links to the first path of the same inode.
//!
//! What is in the tree is a setup step's making (untrusted): nothing is followed, a socket is
//! skipped (a tar cannot hold one).

use std::collections::HashMap;
use std::io::{self, Read as _, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// What was written: entries, and sockets skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TarStats {
    pub entries: u64,
    pub skipped_sockets: u64,
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn opaque(path: &Path) -> bool {
    let Ok(c) = sys::cpath(path) else {
        return false;
    };
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| {
            sys::cstring(name)
                .ok()
                .and_then(|n| sys::small_xattr(&c, &n))
                .is_some_and(|v| v == b"y")
        })
}

fn header(meta: &std::fs::Metadata, kind: tar::EntryType, epoch: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0).min(epoch));
    header.set_size(0);
    header
}

/// A fixed header for an entry sandbox makes (`.wh.` markers): root's, 0644, time 0.
fn marker_header(_epoch: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    header
}

/// Writes the tar of the layer at `root` to `out`; times clamped to `epoch`.
pub fn write<W: Write>(root: &Path, out: W, epoch: u64) -> io::Result<TarStats> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    let mut stats = TarStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk(
        root,
        Path::new(""),
        &mut builder,
        epoch,
        &mut stats,
        &mut links,
    )?;
    builder.into_inner()?.flush()?;
    Ok(stats)
}

fn walk<W: Write>(
    root: &Path,
    rel: &Path,
    builder: &mut tar::Builder<W>,
    epoch: u64,
    stats: &mut TarStats,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<std::ffi::OsString> = fs_err::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    if !rel.as_os_str().is_empty() && opaque(&dir) {
        builder.append_data(
            &mut marker_header(epoch),
            rel.join(".wh..wh..opq"),
            io::empty(),
        )?;
        stats.entries += 1;
    }
    for name in names {
        let path = rel.join(&name);
        let full = root.join(&path);
        let meta = fs_err::symlink_metadata(&full)?;
        let kind = meta.file_type();
        if is_whiteout(&meta) {
            let mut marker = std::ffi::OsString::from(".wh.");
            marker.push(&name);
            builder.append_data(&mut marker_header(epoch), rel.join(marker), io::empty())?;
            stats.entries += 1;
            continue;
        }
        if kind.is_socket() {
            stats.skipped_sockets += 1;
            continue;
        }
        stats.entries += 1;
        if kind.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory, epoch);
            builder.append_data(&mut h, &path, io::empty())?;
            walk(root, &path, builder, epoch, stats, links)?;
        } else if kind.is_symlink() {
            let target = fs_err::read_link(&full)?;
            let mut h = header(&meta, tar::EntryType::Symlink, epoch);
            builder.append_link(&mut h, &path, &target)?;
        } else if meta.nlink() > 1
            && !kind.is_dir()
            && links.contains_key(&(meta.dev(), meta.ino()))
        {
            let first = links[&(meta.dev(), meta.ino())].clone();
            let mut h = header(&meta, tar::EntryType::Link, epoch);
            builder.append_link(&mut h, &path, &first)?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), path.clone());
            }
            let mut h = header(&meta, tar::EntryType::Regular, epoch);
            h.set_size(meta.len());
            let file = fs_err::os::unix::fs::OpenOptionsExt::custom_flags(
                fs_err::OpenOptions::new().read(true),
                libc::O_NOFOLLOW,
            )
            .open(&full)?;
            // Large reads: io::copy would read 8 KiB at a time.
            let reader = io::BufReader::with_capacity(1 << 20, file.take(meta.len()));
            builder.append_data(&mut h, &path, reader)?;
        } else {
            let entry = if kind.is_fifo() {
                tar::EntryType::Fifo
            } else if kind.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header(&meta, entry, epoch);
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            builder.append_data(&mut h, &path, io::empty())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(bytes: &[u8]) -> Vec<(String, u64, u64, u32)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_sorted_and_clamped() {
        let root = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(root.path().join("usr/bin")).unwrap();
        fs_err::write(root.path().join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        fs_err::write(root.path().join("b"), "b").unwrap();
        fs_err::write(root.path().join("a"), "a").unwrap();
        std::fs::hard_link(root.path().join("a"), root.path().join("a2")).unwrap();
        std::os::unix::fs::symlink("usr/bin/tool", root.path().join("link")).unwrap();
        let mut first = Vec::new();
        write(root.path(), &mut first, 0).unwrap();
        let mut second = Vec::new();
        write(root.path(), &mut second, 0).unwrap();
        assert_eq!(first, second);
        let entries = listing(&first);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["a", "a2", "b", "link", "usr", "usr/bin", "usr/bin/tool"]
        );
        assert!(
            entries.iter().all(|e| e.1 == 0),
            "mtimes clamped: {entries:?}"
        );
        // A later epoch keeps earlier times.
        let mut later = Vec::new();
        write(root.path(), &mut later, u64::MAX).unwrap();
        assert!(listing(&later).iter().any(|e| e.1 > 0));
        let mut archive = tar::Archive::new(&first[..]);
        let hard = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("a2"))
            .unwrap();
        assert_eq!(hard.header().entry_type(), tar::EntryType::Link);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_oci_markers() {
        let root = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(root.path().join("etc/apt")).unwrap();
        let opaque_dir = sys::cpath(&root.path().join("etc/apt")).unwrap();
        let name = sys::cstring("user.overlay.opaque").unwrap();
        sys::set_xattr(&opaque_dir, &name, b"y").unwrap();
        let made = nix::sys::stat::mknod(
            &root.path().join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        );
        let mut bytes = Vec::new();
        write(root.path(), &mut bytes, 0).unwrap();
        let names: Vec<String> = listing(&bytes).into_iter().map(|e| e.0).collect();
        assert!(
            names.contains(&"etc/apt/.wh..wh..opq".to_owned()),
            "{names:?}"
        );
        // Making a whiteout needs root (CAP_MKNOD); where it could be made, it is a marker.
        if made.is_ok() {
            assert!(names.contains(&"etc/.wh.gone".to_owned()), "{names:?}");
            assert!(!names.contains(&"etc/gone".to_owned()));
        }
    }
}
