//! Applies one layer tar to an empty directory in overlay format.
//!
//! Rules, from the peers' CVEs (shared/notes/security.md §1b):
//! - an entry whose path is absolute or has `..` is refused, as is one whose parent is a symlink
//!   (no path is ever resolved through a link), and a hard link to anything outside the layer;
//! - existing entries are replaced (unlinked, then created with O_EXCL|O_NOFOLLOW), never written
//!   through; the root entry `.` can only be a directory (CVE-2021-29136);
//! - `.wh.NAME` becomes a 0/0 character device and `.wh..wh..opq` the `user.overlay.opaque`
//!   xattr, as kernel overlayfs with `userxattr` expects; malformed whiteouts are refused;
//! - `*.overlay.*` and other privileged xattrs from the image are dropped, so a layer cannot steer
//!   the overlay mount; device nodes cannot be made rootless and are skipped (counted);
//! - owners are applied as they are in the image (we run in the store's user namespace), unless
//!   the id map has a single id, in which case everything belongs to the user.

pub mod ratio;

use ratio::{DEFAULT_RATIO, RATIO_VARIABLE};

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::image::digest::Digest;
use crate::image::error::ImageError;

/// Which owners extraction may give files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// chown to the image's ids, which must fall in these `(first, count)` ranges.
    Preserve {
        uids: Vec<(u32, u32)>,
        gids: Vec<(u32, u32)>,
    },
    /// Only one id is mapped: files keep the extracting user as owner.
    Squash,
}

/// What extraction did, for layer.json and notices.
#[derive(Clone, Debug, Default)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_devices: u64,
    pub dropped_xattrs: u64,
}

struct PendingDir {
    path: Vec<Vec<u8>>,
    mode: u32,
    mtime: u64,
}

/// Extracts the tar stream `input` into `dest` (an empty directory we created), writing at
/// most `limit` bytes of file data: a layer is untrusted, and a small one can name gigabytes.
pub fn unpack(
    input: impl Read,
    dest: &Path,
    layer: &Digest,
    ownership: &Ownership,
    limit: Limit,
) -> Result<UnpackStats, ImageError> {
    let root = sys::at::open_dir_path(dest)?;
    let mut job = Job {
        root,
        layer,
        ownership,
        limit,
        stats: UnpackStats::default(),
        pending: Vec::new(),
        cached_parent: None,
    };
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(|e| corrupt(layer, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| corrupt(layer, e))?;
        job.apply(entry)?;
    }
    job.finish_dirs()?;
    Ok(job.stats)
}

fn corrupt(layer: &Digest, error: io::Error) -> ImageError {
    // A network failure surfaces through the tar reader as an io::Error carrying our own error.
    if error.get_ref().is_some_and(|e| e.is::<ImageError>()) {
        if let Some(inner) = error.into_inner() {
            if let Ok(image_error) = inner.downcast::<ImageError>() {
                return *image_error;
            }
        }
        return ImageError::Internal("lost error".into());
    }
    ImageError::CorruptLayer {
        layer: layer.clone(),
        reason: error.to_string(),
        source: Some(error),
    }
}

/// However small, a layer may unpack this much.
const FLOOR: u64 = 64 << 20;
/// The most of the store's file system kept free, as a share of its size (1/100), at most this.
const MARGIN_MAX: u64 = 256 << 20;

/// The most file data a layer may unpack, and what set it (for the error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// The store whose free space (less a margin) set it, when that is smaller than the
    /// multiple of the layer's size.
    pub free_space_of: Option<std::path::PathBuf>,
}

impl Limit {
    /// For a layer of `declared` bytes unpacking under `store`: a generous multiple of its
    /// size, and never more than the file system has free less a margin.
    pub fn for_layer(declared: u64, store: &Path) -> Limit {
        let ratio = std::env::var(RATIO_VARIABLE)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RATIO);
        let by_size = declared.saturating_mul(ratio).max(FLOOR);
        let free = nix::sys::statvfs::statvfs(store).ok().map(|s| {
            let unit = s.fragment_size();
            let margin = (s.blocks() * unit / 100).min(MARGIN_MAX);
            (s.blocks_available() * unit).saturating_sub(margin)
        });
        match free {
            Some(free) if free < by_size => Limit {
                bytes: free,
                free_space_of: Some(store.to_owned()),
            },
            _ => Limit {
                bytes: by_size,
                free_space_of: None,
            },
        }
    }
}

struct Job<'a> {
    root: OwnedFd,
    layer: &'a Digest,
    ownership: &'a Ownership,
    limit: Limit,
    stats: UnpackStats,
    pending: Vec<PendingDir>,
    cached_parent: Option<(Vec<Vec<u8>>, OwnedFd)>,
}

/// Splits a tar path into clean components; `None` means the entry names the root itself.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute paths are not allowed in a layer");
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` would leave the layer root"),
            other => out.push(other.to_vec()),
        }
    }
    Ok(out)
}

fn show(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).chars().take(300).collect()
}

const S_IFDIR: libc::mode_t = libc::S_IFDIR;

impl Job<'_> {
    fn bad(&self, entry: &[u8], reason: impl Into<String>) -> ImageError {
        ImageError::BadLayerEntry {
            layer: self.layer.clone(),
            entry: show(entry),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &[u8], what: &str, error: io::Error) -> ImageError {
        if matches!(
            error.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) {
            return ImageError::Io(error);
        }
        self.bad(entry, format!("{what}: {error}"))
    }

    /// Opens the directory holding `parts[..len-1]`, creating missing ones, refusing links.
    fn parent(
        &mut self,
        raw: &[u8],
        dirs: &[Vec<u8>],
        create: bool,
    ) -> Result<OwnedFd, ImageError> {
        if let Some((cached, fd)) = &self.cached_parent {
            if cached.as_slice() == dirs {
                return fd.try_clone().map_err(ImageError::Io);
            }
        }
        let mut current = self.root.try_clone()?;
        for name in dirs {
            match sys::at::kind_at(current.as_fd(), name)
                .map_err(|e| self.io(raw, "inspect parent", e))?
            {
                None if create => {
                    sys::at::mkdir_at(current.as_fd(), name, 0o755)
                        .map_err(|e| self.io(raw, "create parent", e))?;
                    self.chown_at(raw, current.as_fd(), name, 0, 0)?;
                }
                None => {
                    return Err(self.bad(
                        raw,
                        format!("`{}` does not exist in this layer", show(name)),
                    ))
                }
                Some(libc::S_IFLNK) => {
                    return Err(self.bad(
                        raw,
                        format!(
                            "its parent `{}` is a symlink; paths through symlinks are not allowed",
                            show(name)
                        ),
                    ))
                }
                Some(kind) if kind != S_IFDIR => {
                    return Err(self.bad(
                        raw,
                        format!("its parent `{}` is not a directory", show(name)),
                    ))
                }
                Some(_) => {}
            }
            current = sys::at::open_dir_at(current.as_fd(), name)
                .map_err(|e| self.io(raw, "open parent", e))?;
        }
        self.cached_parent = Some((dirs.to_vec(), current.try_clone()?));
        Ok(current)
    }

    fn id_allowed(ranges: &[(u32, u32)], id: u64) -> bool {
        ranges.iter().any(|&(first, count)| {
            id >= u64::from(first) && id < u64::from(first) + u64::from(count)
        })
    }

    fn check_owner(
        &self,
        raw: &[u8],
        uid: u64,
        gid: u64,
    ) -> Result<Option<(u32, u32)>, ImageError> {
        match self.ownership {
            Ownership::Squash => Ok(None),
            Ownership::Preserve { uids, gids } => {
                for (id, ranges) in [(uid, uids), (gid, gids)] {
                    if !Self::id_allowed(ranges, id) {
                        let mapped = ranges
                            .iter()
                            .map(|(f, c)| format!("{f}-{}", u64::from(*f) + u64::from(*c) - 1))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(ImageError::UnmappedOwner {
                            layer: self.layer.clone(),
                            entry: show(raw),
                            id,
                            mapped,
                        });
                    }
                }
                // Both were checked to lie in u32 ranges above.
                Ok(Some((uid as u32, gid as u32)))
            }
        }
    }

    fn chown_at(
        &self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        uid: u64,
        gid: u64,
    ) -> Result<(), ImageError> {
        if let Some((uid, gid)) = self.check_owner(raw, uid, gid)? {
            sys::at::chown_at(dir, name, uid, gid).map_err(|e| self.io(raw, "set owner", e))?;
        }
        Ok(())
    }

    /// Removes what is at `name` so a new entry can take its place (never writing through it).
    fn clear(
        &self,
        raw: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        keep_dir: bool,
    ) -> Result<bool, ImageError> {
        match sys::at::kind_at(dir, name).map_err(|e| self.io(raw, "inspect", e))? {
            None => Ok(false),
            Some(S_IFDIR) if keep_dir => Ok(true),
            Some(S_IFDIR) => Err(self.bad(raw, "it would replace a directory of the same layer")),
            Some(_) => {
                sys::at::unlink_at(dir, name, false).map_err(|e| self.io(raw, "replace", e))?;
                Ok(false)
            }
        }
    }

    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ImageError> {
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let mut parts = components(&raw).map_err(|r| self.bad(&raw, r))?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let mut uid = header.uid().unwrap_or(0);
        let mut gid = header.gid().unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                let number = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                match key {
                    "uid" => uid = number().unwrap_or(uid),
                    "gid" => gid = number().unwrap_or(gid),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((name.to_owned(), value.to_vec()));
                        }
                    }
                }
            }
        }

        let Some(name) = parts.pop() else {
            // The layer root itself: only ever a directory.
            if !kind.is_dir() {
                return Err(self.bad(&raw, "refusing to change the type of the layer root"));
            }
            if let Some((u, g)) = self.check_owner(&raw, uid, gid)? {
                sys::at::chown_fd(self.root.as_fd(), u, g)
                    .map_err(|e| self.io(&raw, "set owner", e))?;
            }
            self.pending.push(PendingDir {
                path: Vec::new(),
                mode,
                mtime,
            });
            return Ok(());
        };

        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(&raw, &parts, target);
        }
        let parent = self.parent(&raw, &parts, true)?;
        let dir = parent.as_fd();

        if kind.is_dir() {
            let existed = self.clear(&raw, dir, &name, true)?;
            if !existed {
                sys::at::mkdir_at(dir, &name, 0o700)
                    .map_err(|e| self.io(&raw, "create directory", e))?;
            }
            self.chown_at(&raw, dir, &name, uid, gid)?;
            let fd =
                sys::at::open_dir_at(dir, &name).map_err(|e| self.io(&raw, "open directory", e))?;
            self.set_xattrs(&raw, fd.as_fd(), &xattrs)?;
            parts.push(name);
            self.pending.push(PendingDir {
                path: parts,
                mode,
                mtime,
            });
        } else if kind.is_file() || kind == tar::EntryType::GNUSparse {
            self.clear(&raw, dir, &name, false)?;
            let disk_error = |e: io::Error| {
                if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
                    ImageError::Io(e)
                } else {
                    corrupt(self.layer, e)
                }
            };
            let file = if kind == tar::EntryType::GNUSparse {
                // Its data is what the archive holds; the holes between stay holes (a 30 KB
                // layer can describe a 3 GiB file that is all hole). tar's own unpacking seeks
                // over them: it makes the file (O_EXCL) in our dir, reached through its fd.
                let stored = entry
                    .header()
                    .entry_size()
                    .map_err(|e| corrupt(self.layer, e))?;
                self.spend(stored)?;
                let at = format!(
                    "/proc/self/fd/{}/{}",
                    dir.as_raw_fd(),
                    String::from_utf8_lossy(&name)
                );
                if name.contains(&0) || std::str::from_utf8(&name).is_err() {
                    return Err(self.bad(&raw, "a sparse file's name must be UTF-8"));
                }
                entry.set_preserve_mtime(false);
                entry.unpack(&at).map_err(disk_error)?;
                self.stats.bytes += stored;
                sys::at::open_file_at(dir, &name).map_err(|e| self.io(&raw, "open file", e))?
            } else {
                let mut file = sys::at::create_file_at(dir, &name)
                    .map_err(|e| self.io(&raw, "create file", e))?;
                let left = self.limit.bytes.saturating_sub(self.stats.bytes);
                let written = io::copy(&mut (&mut entry).take(left.saturating_add(1)), &mut file)
                    .map_err(disk_error)?;
                self.spend(written)?;
                self.stats.bytes += written;
                file
            };
            if let Some((u, g)) = self.check_owner(&raw, uid, gid)? {
                sys::at::chown_fd(file.as_fd(), u, g).map_err(|e| self.io(&raw, "set owner", e))?;
            }
            // After chown, which would clear setuid/setgid bits.
            sys::at::chmod_fd(file.as_fd(), mode).map_err(|e| self.io(&raw, "set mode", e))?;
            self.set_xattrs(&raw, file.as_fd(), &xattrs)?;
            sys::at::set_mtime_fd(file.as_fd(), mtime).map_err(|e| self.io(&raw, "set time", e))?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| self.bad(&raw, "symlink without a target"))?
                .into_owned();
            self.clear(&raw, dir, &name, false)?;
            sys::at::symlink_at(&target, dir, &name)
                .map_err(|e| self.io(&raw, "create symlink", e))?;
            self.chown_at(&raw, dir, &name, uid, gid)?;
            sys::at::set_mtime_at(dir, &name, mtime).map_err(|e| self.io(&raw, "set time", e))?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| self.bad(&raw, "hard link without a target"))?
                .into_owned();
            let mut target_parts = components(&target)
                .map_err(|r| self.bad(&raw, format!("hard link target outside the layer: {r}")))?;
            let Some(target_name) = target_parts.pop() else {
                return Err(self.bad(&raw, "hard link to the layer root"));
            };
            let from = self.parent(&raw, &target_parts, false)?;
            // The cache now points at the target's dir; reopen ours.
            let parent = self.parent(&raw, &parts, true)?;
            match sys::at::kind_at(from.as_fd(), &target_name)
                .map_err(|e| self.io(&raw, "inspect link target", e))?
            {
                None => {
                    return Err(self.bad(
                        &raw,
                        format!("hard link target `{}` is not in this layer", show(&target)),
                    ))
                }
                Some(S_IFDIR) => return Err(self.bad(&raw, "hard link to a directory")),
                Some(_) => {}
            }
            self.clear(&raw, parent.as_fd(), &name, false)?;
            sys::at::link_at(from.as_fd(), &target_name, parent.as_fd(), &name)
                .map_err(|e| self.io(&raw, "create hard link", e))?;
        } else if kind.is_fifo() {
            self.clear(&raw, dir, &name, false)?;
            sys::at::mkfifo_at(dir, &name).map_err(|e| self.io(&raw, "create fifo", e))?;
            self.chown_at(&raw, dir, &name, uid, gid)?;
            sys::at::chmod_at(dir, &name, mode).map_err(|e| self.io(&raw, "set mode", e))?;
            sys::at::set_mtime_at(dir, &name, mtime).map_err(|e| self.io(&raw, "set time", e))?;
        } else if kind.is_character_special() || kind.is_block_special() {
            self.stats.skipped_devices += 1;
        } else if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            // Already folded into the following entry by the tar reader.
        } else {
            return Err(self.bad(&raw, format!("unsupported tar entry type {:?}", kind)));
        }
        Ok(())
    }

    /// Counts `bytes` more of file data against the layer's limit.
    fn spend(&self, bytes: u64) -> Result<(), ImageError> {
        if self.stats.bytes.saturating_add(bytes) <= self.limit.bytes {
            return Ok(());
        }
        Err(match &self.limit.free_space_of {
            Some(store) => ImageError::NoSpace {
                store: store.clone(),
                source: io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "layer {} needs more than the {} free there (less a margin)",
                        self.layer,
                        crate::settings::limits::human_size(self.limit.bytes)
                    ),
                ),
            },
            None => ImageError::LayerTooLarge {
                layer: self.layer.clone(),
                limit: self.limit.bytes,
            },
        })
    }

    fn whiteout(&mut self, raw: &[u8], dirs: &[Vec<u8>], target: &[u8]) -> Result<(), ImageError> {
        if target == b".wh..opq" {
            let parent = self.parent(raw, dirs, true)?;
            let name = c"user.overlay.opaque";
            return sys::at::set_xattr_fd(parent.as_fd(), name, b"y")
                .map_err(|e| self.io(raw, "mark opaque", e));
        }
        if target.starts_with(b".wh.") {
            // Other AUFS metadata (`.wh..wh.plnk`...) carries nothing for overlay.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(self.bad(raw, "invalid whiteout name"));
        }
        let parent = self.parent(raw, dirs, true)?;
        self.clear(raw, parent.as_fd(), target, false)?;
        sys::at::whiteout_at(parent.as_fd(), target).map_err(|e| self.io(raw, "create whiteout", e))
    }

    /// Keeps user xattrs (not overlay's) and file capabilities; drops the rest, counted.
    fn set_xattrs(
        &mut self,
        raw: &[u8],
        fd: BorrowedFd<'_>,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), ImageError> {
        for (name, value) in xattrs {
            let allowed = (name.starts_with("user.") && !name.contains(".overlay."))
                || name == "security.capability";
            if !allowed {
                self.stats.dropped_xattrs += 1;
                continue;
            }
            let Ok(cname) = CString::new(name.as_bytes()) else {
                return Err(self.bad(raw, "xattr name with a NUL byte"));
            };
            if sys::at::set_xattr_fd(fd, &cname, value).is_err() {
                self.stats.dropped_xattrs += 1;
            }
        }
        Ok(())
    }

    /// Directory modes and times last: creating children would change the times, and a
    /// read-only mode would get in the way of the children.
    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        self.cached_parent = None;
        let pending = std::mem::take(&mut self.pending);
        for dir in pending.iter().rev() {
            let fd = match dir.path.split_last() {
                None => self.root.try_clone()?,
                Some((name, parents)) => {
                    let parent = self.parent(b"", parents, false)?;
                    sys::at::open_dir_at(parent.as_fd(), name)
                        .map_err(|e| self.io(name, "open directory", e))?
                }
            };
            let shown = dir.path.join(&b'/');
            sys::at::chmod_fd(fd.as_fd(), dir.mode).map_err(|e| self.io(&shown, "set mode", e))?;
            sys::at::set_mtime_fd(fd.as_fd(), dir.mtime)
                .map_err(|e| self.io(&shown, "set time", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_escapes() {
        assert_eq!(
            components(b"./a//b/.").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(components(b"").unwrap().is_empty());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../x").is_err());
    }
}
