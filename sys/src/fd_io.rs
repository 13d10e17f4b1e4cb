//! Reads, writes and polls on borrowed fds, retried across EINTR.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::poll::PollTimeout;
pub use nix::poll::{PollFd, PollFlags};

/// Writes all of `buf` to a (possibly non-blocking) fd; false when the fd fails.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut one = [PollFd::new(fd, PollFlags::POLLOUT)];
                poll(&mut one, 1000);
            }
            Err(_) => return false,
        }
    }
    true
}

/// Reads what is there: `Some(0)` when interrupted, `None` at EOF or on an error (EIO on a pty
/// master means every slave closed).
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
    match nix::unistd::read(fd, buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(Errno::EINTR) => Some(0),
        Err(_) => None,
    }
}

/// poll(2) over `fds` for at most `timeout_ms` (-1: no limit); the number ready (0 on EINTR).
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: i32) -> usize {
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    nix::poll::poll(fds, timeout).map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// Whether `fd` has something to read (or has ended) within `timeout_ms`.
pub fn readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut one = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut one, timeout_ms) > 0
}

/// Which of `fds` have an event after a `poll`.
pub fn ready(fds: &[PollFd<'_>]) -> Vec<bool> {
    fds.iter()
        .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

/// One write to a non-blocking fd: how much it took (0 when it is full or interrupted), or
/// `None` when it failed (the reader is gone).
pub fn write_some(fd: BorrowedFd<'_>, buf: &[u8]) -> Option<usize> {
    match nix::unistd::write(fd, buf) {
        Ok(n) => Some(n),
        Err(Errno::EINTR) | Err(Errno::EAGAIN) => Some(0),
        Err(_) => None,
    }
}
