//! Namespaces beyond the mount calls: leaving for new ones, and finding a namespace's parent.

use std::ffi::CStr;
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
/// session (a login's, an agent's) can be found, read or linked to from here on. A kernel
/// without keyrings (ENOSYS) has none to leak. The user's key quota (kernel.keys.maxkeys,
/// 200 by default) is given back when a container's keyring is collected, shortly after it
/// ends: when it is exhausted (many sandboxes started at once), wait up to a second for that.
pub fn join_new_session_keyring() -> io::Result<()> {
    let mut wait = std::time::Duration::from_millis(5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        // SAFETY: a null name asks for a new anonymous keyring; no memory is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            )
        };
        match super::check_long(rc) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EDQUOT)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(100));
            }
            Err(e) if e.raw_os_error() == Some(libc::EDQUOT) => {
                return Err(io::Error::new(
                    e.kind(),
                    "your key quota is used up (see /proc/key-users); raise kernel.keys.maxkeys or end other sandboxes",
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Adds a key of type `user` holding `payload` to this process's session keyring, as a login
/// or an agent does: the key's id.
pub fn add_user_key(description: &CStr, payload: &[u8]) -> io::Result<libc::c_long> {
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: NUL-terminated type and description, and a pointer and length from one slice.
    super::check_long(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_SESSION_KEYRING,
        )
    })
}
