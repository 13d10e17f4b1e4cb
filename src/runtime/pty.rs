//! The pseudo-terminal of `enter` (and of `run` on a terminal): a new pty pair, the host's
//! terminal in raw mode while it runs (restored on every way out), and window sizes kept in step.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use super::sys;

/// A new pty pair (master, slave), sized like the host's terminal on `like`.
pub fn open(like: RawFd) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (0 as RawFd, 0 as RawFd);
    let size = sys::window_size(like);
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
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and owned only here.
    let pair = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    sys::set_cloexec(pair.0.as_raw_fd(), true)?;
    sys::set_cloexec(pair.1.as_raw_fd(), true)?;
    Ok(pair)
}

/// Copies the host terminal's size to the pty.
pub fn sync_size(host: RawFd, master: RawFd) {
    if let Some(size) = sys::window_size(host) {
        sys::set_window_size(master, &size);
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

/// Writes all of `buf` to a (possibly non-blocking) fd.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 1000) };
                    continue;
                }
                _ => return false,
            }
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Reads what is there; `None` at EOF or error (EIO on a master means every slave closed).
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: reading into a valid slice.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n > 0 {
        Some(n as usize)
    } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
        Some(0)
    } else {
        None
    }
}
