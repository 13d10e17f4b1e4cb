//! Executes the container's mounts (the plan's `MountOp`s) inside the new root.
//! Every target is resolved inside the new root by walking it with O_NOFOLLOW, creating what is
//! missing; a symlink anywhere on the way is refused (CVE-2019-16884, CVE-2021-30465,
//! CVE-2026-41579: an image's `/proc`, `/dev` or a mount target that is a symlink must not send a
//! mount or a write to the host). The mount then goes to `/proc/self/fd/N` of the opened target,
//! so nothing can be swapped between the check and the mount.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::runtime::plan::CgroupView;
pub use crate::runtime::plan::{Kind, MountOp};
use crate::runtime::process::channel::FailureKind;

/// Why a mount step failed, for the error the user sees.
#[derive(Debug)]
pub struct MountFailure {
    pub step: String,
    pub path: PathBuf,
    pub error: io::Error,
    pub kind: FailureKind,
}

impl MountFailure {
    /// A failure of `step` at `path`; a refused symlink is recognised by its error type.
    pub fn new(step: &str, path: &Path, error: io::Error) -> Self {
        let refused = error
            .get_ref()
            .is_some_and(|inner| inner.is::<SymlinkRefused>());
        Self {
            step: step.to_owned(),
            path: path.to_owned(),
            error,
            kind: if refused {
                FailureKind::SymlinkInImage
            } else {
                FailureKind::Other
            },
        }
    }
}

/// A path in the image that is a symlink (or not a directory) where sandbox mounts or writes.
#[derive(Debug, thiserror::Error)]
#[error("`{}` in the image is a symlink or not a directory; refusing to follow it", .0.display())]
pub struct SymlinkRefused(PathBuf);

/// The new root, walked with O_NOFOLLOW.
pub struct RootDir {
    fd: OwnedFd,
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_at(dir: BorrowedFd<'_>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    sys::open_at_nofollow(dir, &c_name(name)?, flags)
}

use sys::file_type;

fn symlink_error(path: &Path) -> io::Error {
    io::Error::other(SymlinkRefused(path.to_owned()))
}

impl RootDir {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            fd: sys::open_dir_path(&sys::cpath(path)?)?,
        })
    }

    fn names(path: &Path) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt as _;
        path.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes().to_vec()),
                _ => None,
            })
            .collect()
    }

    /// Opens (creating as needed, owned by `owner`) the directory at `path` inside the root.
    pub fn dir(&self, path: &Path, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
        // The walk starts at the root's own fd (no copy of it until there is nothing to walk).
        let mut current: Option<OwnedFd> = None;
        for name in Self::names(path) {
            let at = current.as_ref().map_or(self.fd.as_fd(), |c| c.as_fd());
            let next = match open_at(at, &name, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let c = c_name(&name)?;
                    match sys::mkdir_at(at, &c, 0o755) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                        _ => {}
                    }
                    if let Some((uid, gid)) = owner {
                        // Best effort, as before: a dir that cannot be chowned still works.
                        let _ = sys::chown_at_nofollow(at, &c, uid, gid);
                    }
                    open_at(at, &name, libc::O_PATH | libc::O_DIRECTORY)?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(symlink_error(path))
                }
                Err(e) => return Err(e),
            };
            current = Some(next);
        }
        match current {
            Some(fd) => Ok(fd),
            None => self.fd.try_clone(),
        }
    }

    /// Opens (creating empty if missing) the regular file at `path`, refusing anything else.
    pub fn file(&self, path: &Path) -> io::Result<OwnedFd> {
        let parent = self.dir(path.parent().unwrap_or(Path::new("/")), None)?;
        let name = Self::names(path)
            .pop()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        match open_at(parent.as_fd(), &name, libc::O_PATH) {
            Ok(fd) => {
                if file_type(fd.as_fd())? == libc::S_IFLNK {
                    return Err(symlink_error(path));
                }
                Ok(fd)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                open_at(
                    parent.as_fd(),
                    &name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                )
                .map(|_| ())?;
                open_at(parent.as_fd(), &name, libc::O_PATH)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces whatever is at `path` with a regular file holding `text` (never writing through
    /// a link the image planted), owned by `owner`.
    pub fn write_file(
        &self,
        path: &Path,
        text: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        use std::io::Write as _;
        let parent = self.dir(path.parent().unwrap_or(Path::new("/")), None)?;
        let name = Self::names(path)
            .pop()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // A missing file is fine.
        let _ = sys::unlink_at(parent.as_fd(), &c_name(&name)?);
        // O_PATH fds cannot be used for openat of a new file; reopen the dir for real.
        let dir = open_at(parent.as_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY)?;
        let fd = open_at(
            dir.as_fd(),
            &name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes())?;
        if let Some((uid, gid)) = owner {
            let _ = sys::fchown(file.as_fd(), uid, gid);
        }
        let _ = sys::fchmod(file.as_fd(), mode);
        Ok(())
    }

    /// Reads a small regular file inside the root, without following links; `None` if absent
    /// or not a regular file.
    pub fn read_small(&self, path: &Path, limit: u64) -> Option<String> {
        use std::io::Read as _;
        let parent = self.dir(path.parent()?, None).ok()?;
        let name = Self::names(path).pop()?;
        let dir = open_at(parent.as_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY).ok()?;
        let fd = open_at(dir.as_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK).ok()?;
        if file_type(fd.as_fd()).ok()? != libc::S_IFREG {
            return None;
        }
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    /// Creates a symlink at `path` (replacing a file there).
    fn symlink(&self, path: &Path, points_to: &str) -> io::Result<()> {
        let parent = self.dir(path.parent().unwrap_or(Path::new("/")), None)?;
        let dir = open_at(parent.as_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY)?;
        let name = Self::names(path)
            .pop()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        sys::symlink_at(&sys::cstring(points_to)?, dir.as_fd(), &c_name(&name)?)
    }
}

fn fd_path(fd: &OwnedFd) -> io::Result<CString> {
    sys::cstring(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What is at `path` in the root, opened (O_PATH, the last component not followed) so the
/// caller mounts on it without walking again; `None` when missing or a symlink.
fn existing(root: &RootDir, path: &Path) -> Option<(Kind, OwnedFd)> {
    let parent = root.dir(path.parent()?, None).ok()?;
    let name = RootDir::names(path).pop()?;
    let fd = open_at(parent.as_fd(), &name, libc::O_PATH).ok()?;
    let kind = match file_type(fd.as_fd()).ok()? {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => return None,
        _ => Kind::File,
    };
    Some((kind, fd))
}

/// A link at `link` unless the image has something there, or a link on the way to it (a
/// convenience is never worth walking an image's link).
fn link_if_missing(root: &RootDir, link: &Path, points_to: &Path) -> io::Result<()> {
    let Ok(parent) = root.dir(link.parent().unwrap_or(Path::new("/")), None) else {
        return Ok(());
    };
    let name = RootDir::names(link)
        .pop()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    match open_at(parent.as_fd(), &name, libc::O_PATH) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let to = points_to
                .to_str()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
            root.symlink(link, to)
        }
        Err(e) => Err(e),
    }
}

/// The shell files of /etc/skel (Debian's, Ubuntu's, Fedora's), copied when the home is empty.
const SKEL_FILES: &[&str] = &[
    ".bashrc",
    ".profile",
    ".bash_logout",
    ".bash_profile",
    ".zshrc",
];
/// The most one skel file may hold: they are a few KiB, and the image is untrusted.
const SKEL_LIMIT: u64 = 64 * 1024;

fn fill_from_skel(root: &RootDir, home: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let Some((Kind::Dir, fd)) = existing(root, home) else {
        return Ok(());
    };
    let mut entries = fs_err::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if entries.next().is_some() {
        return Ok(());
    }
    let skel = Path::new("/etc/skel");
    if !matches!(existing(root, skel), Some((Kind::Dir, _))) {
        return Ok(());
    }
    for name in SKEL_FILES {
        // Read without following a link: a planted `.bashrc -> /proc/...` copies nothing.
        if let Some(text) = root.read_small(&skel.join(name), SKEL_LIMIT) {
            root.write_file(&home.join(name), &text, 0o644, owner)?;
        }
    }
    Ok(())
}

/// Executes `ops` against the new root at `root_path` (still under the host's view).
pub fn execute(root_path: &Path, ops: &[MountOp]) -> Result<(), MountFailure> {
    let root = RootDir::open(root_path)
        .map_err(|error| MountFailure::new("open the new root", root_path, error))?;
    for op in ops {
        apply(&root, op)?;
    }
    Ok(())
}

/// Executes one step of the plan inside `root`.
pub fn apply(root: &RootDir, op: &MountOp) -> Result<(), MountFailure> {
    let fail = |step: &str, path: &Path| {
        let (step, path) = (step.to_owned(), path.to_owned());
        move |error| MountFailure::new(&step, &path, error)
    };
    let cs = |s: &str| sys::cstring(s).ok();
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    match op {
        MountOp::Bind {
            source,
            target,
            kind,
            read_only,
        } => {
            let f = fail("bind-mount", target);
            let src = sys::cpath(source).map_err(&f)?;
            let fd = match kind {
                Kind::Dir => root.dir(target, None),
                Kind::File => root.file(target),
            }
            .map_err(&f)?;
            let at = fd_path(&fd).map_err(&f)?;
            sys::mount(Some(&src), &at, None, libc::MS_BIND | libc::MS_REC, None).map_err(&f)?;
            if *read_only {
                remount_target_read_only(root, target, *kind).map_err(&f)?;
            }
        }
        MountOp::Proc { target } => {
            let f = fail("mount proc on", target);
            let fd = root.dir(target, None).map_err(&f)?;
            let at = fd_path(&fd).map_err(&f)?;
            sys::mount(
                cs("proc").as_deref(),
                &at,
                cs("proc").as_deref(),
                nosuid | libc::MS_NOEXEC,
                None,
            )
            .map_err(&f)?;
        }
        MountOp::Sys { target, own_netns } => {
            let f = fail("mount sysfs on", target);
            let fd = root.dir(target, None).map_err(&f)?;
            let at = fd_path(&fd).map_err(&f)?;
            let flags = nosuid | libc::MS_NOEXEC | libc::MS_RDONLY;
            let mounted = *own_netns
                && sys::mount(
                    cs("sysfs").as_deref(),
                    &at,
                    cs("sysfs").as_deref(),
                    flags,
                    None,
                )
                .is_ok();
            if !mounted {
                let src = sys::cstring("/sys").map_err(&f)?;
                sys::mount(Some(&src), &at, None, libc::MS_BIND | libc::MS_REC, None)
                    .map_err(&f)?;
                remount_target_read_only(root, target, Kind::Dir).map_err(&f)?;
            }
        }
        MountOp::CgroupFs { target, view } => {
            mount_cgroups(root, target, view).map_err(fail("mount the cgroups on", target))?;
        }
        MountOp::Tmpfs { target, options } => {
            let f = fail("mount tmpfs on", target);
            let fd = root.dir(target, None).map_err(&f)?;
            let at = fd_path(&fd).map_err(&f)?;
            let data = sys::cstring(options).map_err(&f)?;
            sys::mount(
                cs("tmpfs").as_deref(),
                &at,
                cs("tmpfs").as_deref(),
                nosuid,
                Some(&data),
            )
            .map_err(&f)?;
        }
        MountOp::Devpts { target } => {
            let f = fail("mount devpts on", target);
            let fd = root.dir(target, None).map_err(&f)?;
            let at = fd_path(&fd).map_err(&f)?;
            let data = sys::cstring("newinstance,ptmxmode=0666,mode=0620").map_err(&f)?;
            sys::mount(
                cs("devpts").as_deref(),
                &at,
                cs("devpts").as_deref(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                Some(&data),
            )
            .map_err(&f)?;
        }
        MountOp::Symlink { link, points_to } => {
            root.symlink(link, points_to)
                .map_err(fail("create symlink", link))?;
        }
        MountOp::SymlinkIfMissing { link, points_to } => {
            link_if_missing(root, link, points_to).map_err(fail("create symlink", link))?;
        }
        MountOp::Mask { target } => {
            let f = fail("mask", target);
            match existing(root, target) {
                None => {}
                Some((Kind::Dir, fd)) => {
                    let at = fd_path(&fd).map_err(&f)?;
                    sys::mount(
                        cs("tmpfs").as_deref(),
                        &at,
                        cs("tmpfs").as_deref(),
                        nosuid | libc::MS_RDONLY,
                        cs("size=0").as_deref(),
                    )
                    .map_err(&f)?;
                }
                Some((Kind::File, fd)) => {
                    let at = fd_path(&fd).map_err(&f)?;
                    let null = sys::cstring("/dev/null").map_err(&f)?;
                    sys::mount(Some(&null), &at, None, libc::MS_BIND, None).map_err(&f)?;
                    remount_target_read_only(root, target, Kind::File).map_err(&f)?;
                }
            }
        }
        MountOp::Skel { home, owner } => {
            fill_from_skel(root, home, *owner).map_err(fail("copy /etc/skel into", home))?;
        }
        MountOp::Dir { target, owner } => {
            root.dir(target, *owner)
                .map_err(fail("create the directory", target))?;
        }
        MountOp::ReadOnly { target } => {
            let f = fail("make read-only", target);
            let Some((kind, fd)) = existing(root, target) else {
                return Ok(());
            };
            let at = fd_path(&fd).map_err(&f)?;
            sys::mount(Some(&at), &at, None, libc::MS_BIND | libc::MS_REC, None).map_err(&f)?;
            remount_target_read_only(root, target, kind).map_err(&f)?;
        }
    }
    Ok(())
}

/// Mounts the sandbox's view of its cgroups at `target`, read-only. pid 1 is in its own
/// cgroup namespace by now, so each hierarchy's root is the sandbox's cgroup.
fn mount_cgroups(root: &RootDir, target: &Path, view: &CgroupView) -> io::Result<()> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    // Each `at` names an fd, which must stay open until its mount is made.
    let fd = root.dir(target, None)?;
    let at = fd_path(&fd)?;
    match view {
        CgroupView::Unified => sys::mount(Some(c"cgroup2"), &at, Some(c"cgroup2"), flags, None),
        CgroupView::Empty => sys::mount(
            Some(c"tmpfs"),
            &at,
            Some(c"tmpfs"),
            flags,
            Some(c"size=0,mode=755"),
        ),
        CgroupView::Hierarchies(hierarchies) => {
            // A tmpfs to hold them, writable until they are in place.
            sys::mount(
                Some(c"tmpfs"),
                &at,
                Some(c"tmpfs"),
                flags & !libc::MS_RDONLY,
                Some(c"size=64k,mode=755"),
            )?;
            for hierarchy in hierarchies {
                let dir = target.join(hierarchy);
                let options = sys::cstring(hierarchy)?;
                let fd = root.dir(&dir, None)?;
                let at = fd_path(&fd)?;
                sys::mount(Some(c"cgroup"), &at, Some(c"cgroup"), flags, Some(&options))
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
                let controllers: Vec<&str> = hierarchy.split(',').collect();
                if controllers.len() > 1 {
                    for controller in controllers {
                        root.symlink(&target.join(controller), hierarchy)?;
                    }
                }
            }
            let fd = root.dir(target, None)?;
            let at = fd_path(&fd)?;
            sys::mount(
                None,
                &at,
                None,
                flags | libc::MS_REMOUNT,
                Some(c"size=64k,mode=755"),
            )
        }
    }
}

/// Remounts what is now mounted at `target` read-only. The fd used for the first mount still
/// points under the new mount, so the target is opened again to reach the mount itself.
fn remount_target_read_only(root: &RootDir, target: &Path, kind: Kind) -> io::Result<()> {
    let fd = match kind {
        Kind::Dir => root.dir(target, None)?,
        Kind::File => root.file(target)?,
    };
    remount_read_only(&fd_path(&fd)?)
}

/// Remounts a bind mount read-only, keeping the flags the kernel locked on it.
fn remount_read_only(at: &CString) -> io::Result<()> {
    let locked = if let Ok(f) = sys::mount_flags(at) {
        let mut flags = 0;
        for (st_flag, ms_flag) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f & st_flag != 0 {
                flags |= ms_flag;
            }
        }
        flags
    } else {
        0
    };
    sys::mount(
        None,
        at,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The home's alias link: made where the image has nothing, never over what the image
    /// has, and never through a link the image planted on the way (`srv -> /outside`).
    #[test]
    fn the_home_alias_is_made_only_where_the_image_has_nothing() {
        let t = tempfile::tempdir().unwrap();
        let root_dir = t.path().join("root");
        let outside = t.path().join("outside");
        fs_err::create_dir_all(root_dir.join("home")).unwrap();
        fs_err::create_dir_all(&outside).unwrap();
        let root = RootDir::open(&root_dir).unwrap();
        let home = Path::new("/var/home/me");
        link_if_missing(&root, Path::new("/home/me"), home).unwrap();
        assert_eq!(
            fs_err::read_link(root_dir.join("home/me")).unwrap(),
            Path::new("/var/home/me")
        );
        // The image's own dir at that name stays.
        fs_err::create_dir_all(root_dir.join("home/you")).unwrap();
        link_if_missing(&root, Path::new("/home/you"), home).unwrap();
        assert!(fs_err::symlink_metadata(root_dir.join("home/you"))
            .unwrap()
            .is_dir());
        // A link on the way is not walked: nothing appears outside the root.
        std::os::unix::fs::symlink(&outside, root_dir.join("srv")).unwrap();
        link_if_missing(&root, Path::new("/srv/home/me"), home).unwrap();
        assert_eq!(fs_err::read_dir(&outside).unwrap().count(), 0);
    }
}
