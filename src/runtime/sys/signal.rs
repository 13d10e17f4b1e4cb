//! Signals as fds: the monitor and pid 1 block the signals they handle and read them from a
//! signalfd in their poll loops; a command starts with every signal as it would from a shell.

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

fn set_of(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid buffer for sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in signals {
        // SAFETY: a valid set and a signal number.
        unsafe { libc::sigaddset(&mut set, *sig) };
    }
    set
}

/// Blocks `signals` and returns a non-blocking signalfd that reads them.
pub fn signal_fd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let set = set_of(signals);
    // SAFETY: a valid set; a null old-set pointer is allowed.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: -1 asks for a new signalfd for a valid set.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Every signal pending on a non-blocking signalfd.
pub fn read_signals(fd: RawFd) -> Vec<libc::c_int> {
    let mut out = Vec::new();
    loop {
        // SAFETY: an all-zero signalfd_siginfo is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading at most one siginfo into its own buffer.
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n != size as isize {
            break;
        }
        out.push(info.ssi_signo as libc::c_int);
    }
    out
}

/// Unblocks every signal and resets every disposition to its default (Rust ignores SIGPIPE,
/// which a command must not inherit).
pub fn reset_signals() {
    let empty = set_of(&[]);
    // SAFETY: a valid (empty) set; a null old-set pointer is allowed.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    for sig in 1..32 {
        // SAFETY: SIG_DFL is valid for every signal (SIGKILL and SIGSTOP fail harmlessly).
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
