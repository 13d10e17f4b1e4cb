//! The pseudo-terminal of `enter` (and of `run` on a terminal): a new pty pair, the host's
//! terminal in raw mode while it runs (restored on every way out), and window sizes kept in step.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};

use nix::sys::termios::{self, SetArg, Termios};

use super::check;

/// A new pty pair (master, slave), both close-on-exec, sized like the host's terminal `like`.
pub fn open_pty(like: BorrowedFd<'_>) -> io::Result<(OwnedFd, OwnedFd)> {
    let size = window_size(like);
    let pair = nix::pty::openpty(size.as_ref(), None)?;
    super::set_cloexec(pair.master.as_fd(), true)?;
    super::set_cloexec(pair.slave.as_fd(), true)?;
    Ok((pair.master, pair.slave))
}

/// Copies the host terminal's size to the pty.
pub fn sync_window_size(host: BorrowedFd<'_>, master: BorrowedFd<'_>) {
    if let Some(size) = window_size(host) {
        set_window_size(master, &size);
    }
}

/// The host terminal in raw mode for as long as this lives.
pub struct RawMode<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> RawMode<'fd> {
    /// `None` when `fd` is not a terminal.
    pub fn enable(fd: BorrowedFd<'fd>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument; the fd is valid for the borrow.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(|_| ())
}

/// The window size of the terminal `fd`; `None` when it is not one.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    let mut ws = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes one winsize into the buffer; the fd is valid for the borrow.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled on success.
    (rc == 0).then(|| unsafe { ws.assume_init() })
}

fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize; the fd is valid for the borrow.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
}
