//! The new mount API (fsopen, fsconfig, fsmount, move_mount): options one call each, so an
//! overlay takes any number of lower layers (`lowerdir+`, Linux 6.8+) instead of one option
//! string capped at a page.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};

use super::{check_long, cstring};

/// `FSCONFIG_*` commands from <linux/mount.h>.
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A file system being configured (an fsopen fd).
pub struct FsContext {
    fd: OwnedFd,
}

fn owned(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check_long(rc)? as RawFd;
    // SAFETY: a fresh fd the kernel just returned, owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl FsContext {
    /// fsopen(2) of the file system type `fstype`.
    pub fn open(fstype: &CStr) -> io::Result<Self> {
        // SAFETY: a valid C string and flags; returns a new fd or -1.
        let rc = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
        Ok(Self { fd: owned(rc)? })
    }

    fn config(
        &self,
        command: libc::c_uint,
        key: Option<&CStr>,
        value: Option<&CStr>,
    ) -> io::Result<()> {
        let key = key.map_or(std::ptr::null(), CStr::as_ptr);
        let value = value.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: our own fsopen fd; key and value are valid C strings or null, as the
        // command takes them; aux is 0.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                command,
                key,
                value,
                0 as libc::c_int,
            )
        };
        check_long(rc).map(|_| ())
    }

    /// `key=value`.
    pub fn set(&self, key: &str, value: &str) -> io::Result<()> {
        self.config(
            FSCONFIG_SET_STRING,
            Some(&cstring(key)?),
            Some(&cstring(value)?),
        )
    }

    /// A flag option such as `userxattr`.
    pub fn flag(&self, key: &str) -> io::Result<()> {
        self.config(FSCONFIG_SET_FLAG, Some(&cstring(key)?), None)
    }

    /// Creates the file system and mounts it on `target` (an fd of the mount point).
    pub fn mount_on(self, target: BorrowedFd<'_>) -> io::Result<()> {
        self.config(FSCONFIG_CMD_CREATE, None, None)?;
        // SAFETY: our own fsopen fd; flags and attributes are integers.
        let mounted = owned(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.fd.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                0 as libc::c_uint,
            )
        })?;
        // SAFETY: both fds live for the call; the empty path means "the fd itself".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mounted.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        check_long(rc).map(|_| ())
    }
}
