//! The *at calls that walk a container's new root without following links.

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

/// openat(2) with O_NOFOLLOW and O_CLOEXEC added to `flags`; a created file is 0644.
pub fn open_at_nofollow(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::openat(
        dir,
        name,
        flags,
        Mode::from_bits_truncate(0o644),
    )?)
}

/// An O_PATH fd of the directory at `path` (which is followed: the caller's own path).
pub fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    Ok(nix::sys::stat::mkdirat(
        dir,
        name,
        Mode::from_bits_truncate(mode),
    )?)
}

/// Changes the owner of `name` in `dir`, never following a link.
pub fn chown_at_nofollow(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    Ok(nix::unistd::fchownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(
        dir,
        name,
        UnlinkatFlags::NoRemoveDir,
    )?)
}

pub fn symlink_at(points_to: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(nix::unistd::symlinkat(points_to, dir, name)?)
}

/// The file type bits (`S_IFMT`) of what `fd` refers to.
pub fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    let stat = nix::sys::stat::fstat(fd)?;
    Ok(stat.st_mode & SFlag::S_IFMT.bits())
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    Ok(nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )?)
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    Ok(nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))?)
}

/// The mount flags (`ST_*`) of the file system at `path`.
pub fn mount_flags(path: &CStr) -> io::Result<libc::c_ulong> {
    Ok(nix::sys::statvfs::statvfs(path)?.flags().bits())
}

/// Opens the directory at `path` as if `root` were `/`: `..` and absolute links stay inside
/// it, and /proc's magic links (`/proc/N/fd/M`, `/proc/N/cwd`), which lead anywhere, are refused.
pub fn open_dir_in_root(root: BorrowedFd<'_>, path: &CStr) -> io::Result<OwnedFd> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    Ok(nix::fcntl::openat2(root, path, how)?)
}

/// fchdir(2): makes the directory `dir` refers to the working directory.
pub fn fchdir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::fchdir(dir)?)
}

/// getxattr(2) of `path` (followed): the value of the extended attribute `name`, when it has
/// one of at most 64 bytes (the ones asked for are flags such as systemd's `user.delegate`).
pub fn small_xattr(path: &CStr, name: &CStr) -> Option<Vec<u8>> {
    read_small_xattr(path, name, libc::getxattr)
}

/// The same of `path` itself, a symlink's own and never its target's (lgetxattr(2)).
pub fn small_link_xattr(path: &CStr, name: &CStr) -> Option<Vec<u8>> {
    read_small_xattr(path, name, libc::lgetxattr)
}

type GetXattr = unsafe extern "C" fn(
    *const libc::c_char,
    *const libc::c_char,
    *mut libc::c_void,
    libc::size_t,
) -> libc::ssize_t;

fn read_small_xattr(path: &CStr, name: &CStr, call: GetXattr) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated, and the kernel writes at most `buf.len()` bytes
    // into `buf`, which lives across the call.
    let n = unsafe {
        call(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.get(..n).map(<[u8]>::to_vec)
}

/// setxattr(2): tests build fake cgroup trees and overlay layers with it.
pub fn set_xattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated; `value` is read for its length, which is passed.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
