//! The pseudo-terminal of `enter` (and of `run` on a terminal): a new pty pair, the host's
//! terminal in raw mode while it runs (restored on every way out), and window sizes kept in step.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use super::check;

/// A new pty pair (master, slave), sized like the host's terminal on `like`.
pub fn open_pty(like: RawFd) -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (0 as RawFd, 0 as RawFd);
    let size = super::window_size(like);
    let size_ptr = size
        .as_ref()
        .map_or(std::ptr::null(), |s| s as *const libc::winsize);
    // SAFETY: openpty fills two fds; name and termios may be null; winsize is null or valid.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            size_ptr,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and owned only here.
    let pair = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    super::set_cloexec(pair.0.as_raw_fd(), true)?;
    super::set_cloexec(pair.1.as_raw_fd(), true)?;
    Ok(pair)
}

/// Copies the host terminal's size to the pty.
pub fn sync_window_size(host: RawFd, master: RawFd) {
    if let Some(size) = super::window_size(host) {
        super::set_window_size(master, &size);
    }
}

/// The host terminal in raw mode for as long as this lives.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    pub fn enable(fd: RawFd) -> Option<Self> {
        // SAFETY: an all-zero termios is a valid out-buffer for tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and buffer.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid fd and termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) };
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `enable`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved) };
    }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_terminal(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(|_| ())
}

pub fn window_size(fd: RawFd) -> Option<libc::winsize> {
    let mut ws = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes one winsize into the buffer.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled on success.
    (rc == 0).then(|| unsafe { ws.assume_init() })
}

pub fn set_window_size(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws as *const libc::winsize) };
}
