//! Reads, writes and polls on raw fds, retried across EINTR.

use std::io;
use std::os::fd::RawFd;

/// Writes all of `buf` to a (possibly non-blocking) fd.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    let mut p = [libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    poll(&mut p, 1000);
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
    } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
        Some(0)
    } else {
        None
    }
}

/// poll(2) over `fds` for at most `timeout_ms` (-1: no limit); the number ready (0 on EINTR).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> usize {
    // SAFETY: a valid, exclusively borrowed array of pollfd of its length.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    usize::try_from(rc).unwrap_or(0)
}

/// Whether `fd` has something to read within `timeout_ms`.
pub fn readable(fd: RawFd, timeout_ms: libc::c_int) -> bool {
    let mut one = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    poll(&mut one, timeout_ms) > 0
}
