//! The *at calls unpacking needs: relative to a directory fd, never following a symlink, so a
//! layer's entries cannot lead a write outside the directory being filled. On nix; only the
//! extended attribute call, which nix lacks, is raw.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Opens a directory by absolute path (the layer root just created), never through a symlink.
pub fn open_dir_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(path, flags, Mode::empty())?)
}

/// Opens the regular file `name` in `dir` for writing its metadata; fails on a symlink.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<File> {
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, cstr(name)?.as_c_str(), flags, Mode::empty())?;
    Ok(File::from(fd))
}

/// Opens the directory `name` in `dir`; fails with ELOOP/ENOTDIR on a symlink or non-directory.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::openat(
        dir,
        cstr(name)?.as_c_str(),
        flags,
        Mode::empty(),
    )?)
}

/// The file type bits of `name` in `dir` without following it, or `None` when absent.
pub fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<libc::mode_t>> {
    match nix::sys::stat::fstatat(dir, cstr(name)?.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat.st_mode & libc::S_IFMT)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    Ok(nix::sys::stat::mkdirat(dir, cstr(name)?.as_c_str(), mode)?)
}

/// Creates a new regular file; O_EXCL|O_NOFOLLOW so an existing entry or link is never written through.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<File> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        dir,
        cstr(name)?.as_c_str(),
        flags,
        Mode::from_bits_truncate(0o600),
    )?;
    Ok(File::from(fd))
}

pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(nix::unistd::symlinkat(
        cstr(target)?.as_c_str(),
        dir,
        cstr(name)?.as_c_str(),
    )?)
}

/// A hard link; no AT_SYMLINK_FOLLOW, so a symlink is linked itself, never followed.
pub fn link_at(
    from_dir: BorrowedFd<'_>,
    from: &[u8],
    to_dir: BorrowedFd<'_>,
    to: &[u8],
) -> io::Result<()> {
    Ok(nix::unistd::linkat(
        from_dir,
        cstr(from)?.as_c_str(),
        to_dir,
        cstr(to)?.as_c_str(),
        AtFlags::empty(),
    )?)
}

pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> io::Result<()> {
    use nix::unistd::UnlinkatFlags;
    let flag = if is_dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    Ok(nix::unistd::unlinkat(dir, cstr(name)?.as_c_str(), flag)?)
}

/// Changes the owner of `name` itself (a symlink's own, never its target's).
pub fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    Ok(nix::unistd::fchownat(
        dir,
        cstr(name)?.as_c_str(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    Ok(nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )?)
}

pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    Ok(nix::sys::stat::fchmod(fd, mode)?)
}

/// chmod of a FIFO just made (no symlink can be there: it was created in a private dir).
pub fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    use nix::sys::stat::FchmodatFlags;
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    Ok(nix::sys::stat::fchmodat(
        dir,
        cstr(name)?.as_c_str(),
        mode,
        FchmodatFlags::FollowSymlink,
    )?)
}

fn timespec(mtime: u64) -> TimeSpec {
    TimeSpec::new(mtime.min(i64::MAX as u64) as libc::time_t, 0)
}

/// Sets the access and modification times of `name` itself (a symlink's own).
pub fn set_mtime_at(dir: BorrowedFd<'_>, name: &[u8], mtime: u64) -> io::Result<()> {
    use nix::sys::stat::UtimensatFlags;
    let time = timespec(mtime);
    Ok(nix::sys::stat::utimensat(
        dir,
        cstr(name)?.as_c_str(),
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )?)
}

pub fn set_mtime_fd(fd: BorrowedFd<'_>, mtime: u64) -> io::Result<()> {
    let time = timespec(mtime);
    Ok(nix::sys::stat::futimens(fd, &time, &time)?)
}

/// An overlay whiteout: a character device 0/0 (allowed inside a user namespace).
pub fn whiteout_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(nix::sys::stat::mknodat(
        dir,
        cstr(name)?.as_c_str(),
        SFlag::S_IFCHR,
        Mode::empty(),
        0,
    )?)
}

pub fn mkfifo_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(0o600);
    Ok(nix::unistd::mkfifoat(dir, cstr(name)?.as_c_str(), mode)?)
}

pub fn set_xattr_fd(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: a valid fd, a NUL-terminated name, and a pointer and length from one slice.
    crate::check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}
