//! Mounts, the root switch, the hostname and namespaces.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// mount(2) with optional source, fstype and data; `flags` are `MS_*`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    Ok(nix::mount::mount(
        source,
        target,
        fstype,
        MsFlags::from_bits_retain(flags),
        data,
    )?)
}

pub fn umount_detach(target: &CStr) -> io::Result<()> {
    Ok(nix::mount::umount2(target, MntFlags::MNT_DETACH)?)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    Ok(nix::unistd::pivot_root(new_root, put_old)?)
}

pub fn chdir(path: &CStr) -> io::Result<()> {
    Ok(nix::unistd::chdir(path)?)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    Ok(nix::unistd::sethostname(name)?)
}

/// Joins the namespace `fd` refers to; `nstype` is its `CLONE_NEW*` flag.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    Ok(nix::sched::setns(fd, CloneFlags::from_bits_retain(nstype))?)
}
