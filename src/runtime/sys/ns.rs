//! Namespaces beyond the mount calls: leaving for new ones, and finding a namespace's parent.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use nix::sched::CloneFlags;

/// unshare(2) with `CLONE_NEW*` flags. A new user namespace needs a single-threaded caller,
/// which the kernel checks.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    Ok(nix::sched::unshare(CloneFlags::from_bits_retain(flags))?)
}

/// The user namespace that owns the one `ns` refers to (ioctl NS_GET_PARENT), as a new fd.
pub fn parent_namespace(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new fd or -1; `ns` is a live fd
    // for the borrow's duration.
    let fd = super::check(unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_PARENT) })?;
    // SAFETY: a fresh fd (close-on-exec, as every fd the nsfs ioctls return) owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `KEYCTL_JOIN_SESSION_KEYRING` from <linux/keyctl.h>.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Replaces this process's session keyring with a new anonymous one, so no key of the host's
/// session (a login's, an agent's) can be found, read or linked to from here on.
pub fn join_new_session_keyring() -> io::Result<()> {
    // SAFETY: a null name asks for a new anonymous keyring; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    super::check_long(rc).map(|_| ())
}
