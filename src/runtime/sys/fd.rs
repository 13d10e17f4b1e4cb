//! File descriptors: pipes, close-on-exec, the standard streams, and closing what a process
//! must not keep.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag};

/// A pipe with both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Sets or clears the close-on-exec flag of `fd`.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = FdFlag::from_bits_retain(nix::fcntl::fcntl(fd, FcntlArg::F_GETFD)?);
    let flags = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// One of the standard streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdStream {
    In,
    Out,
    Err,
}

/// Makes `stream` a copy of `with` (dup2 onto 0, 1 or 2).
pub fn replace_std(stream: StdStream, with: BorrowedFd<'_>) -> io::Result<()> {
    Ok(match stream {
        StdStream::In => nix::unistd::dup2_stdin(with),
        StdStream::Out => nix::unistd::dup2_stdout(with),
        StdStream::Err => nix::unistd::dup2_stderr(with),
    }?)
}

/// Points stdin at /dev/null.
pub fn stdin_from_dev_null() -> io::Result<()> {
    let null = fs_err::File::open("/dev/null")?;
    replace_std(StdStream::In, null.as_fd())
}

/// Points stdin, stdout and stderr at /dev/null (a process that outlives its caller's
/// terminal and pipes). Best effort.
pub fn stdio_to_dev_null() {
    if let Ok(null) = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for stream in [StdStream::In, StdStream::Out, StdStream::Err] {
            let _ = replace_std(stream, null.as_fd());
        }
    }
}

/// Closes the fds from `first` to `last` (inclusive); close_range(2), else one by one.
fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: close_range takes integers only. The callers give up every fd in the range
    // (they are about to exec or to run only code that owns no fd there).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        for fd in first..=last.min(4096) {
            // SAFETY: as above; a closed or unused fd number fails harmlessly.
            unsafe { libc::close(fd) };
        }
    }
}

/// Closes every fd from `first` up. The caller gives them all up.
pub fn close_from(first: RawFd) {
    close_range(first, RawFd::MAX);
}

/// Closes every fd from 3 up except `keep`. The caller gives all the others up.
pub fn close_all_but(keep: &[BorrowedFd<'_>]) {
    let mut keep: Vec<RawFd> = keep.iter().map(|fd| fd.as_raw_fd()).collect();
    keep.sort_unstable();
    let mut next = 3;
    for fd in keep {
        if fd > next {
            close_range(next, fd - 1);
        }
        next = next.max(fd + 1);
    }
    close_from(next);
}
