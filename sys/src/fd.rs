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
pub fn close_from(_child: &super::ForkedChild, first: RawFd) {
    close_range(first, RawFd::MAX);
}

/// Closes every fd from 3 up except `keep`. The caller gives all the others up: it is a
/// forked child that never returns into its parent's frames (the proof).
pub fn close_all_but(child: &super::ForkedChild, keep: &[BorrowedFd<'_>]) {
    let mut keep: Vec<RawFd> = keep.iter().map(|fd| fd.as_raw_fd()).collect();
    keep.sort_unstable();
    let mut next = 3;
    for fd in keep {
        if fd > next {
            close_range(next, fd - 1);
        }
        next = next.max(fd + 1);
    }
    close_from(child, next);
}

/// What one of our standard streams is, for deciding how it may reach a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    Pipe,
    Socket,
    Terminal,
    RegularFile,
    Directory,
    /// /dev/null (character device 1:3).
    Null,
    /// Another device, or something else.
    Other,
    Closed,
}

/// The kind of fd 0, 1 or 2 of this process.
pub fn std_kind(stream: StdStream) -> FdKind {
    let raw = match stream {
        StdStream::In => 0,
        StdStream::Out => 1,
        StdStream::Err => 2,
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat on a plain fd number (it may be closed: then EBADF) writes one stat into
    // the buffer; no fd is owned or borrowed.
    if unsafe { libc::fstat(raw, stat.as_mut_ptr()) } != 0 {
        return FdKind::Closed;
    }
    // SAFETY: zero-initialised, and filled by the successful fstat.
    let stat = unsafe { stat.assume_init() };
    // SAFETY: isatty on a plain fd number; an answer of 0 for anything else.
    let is_tty = unsafe { libc::isatty(raw) } == 1;
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFIFO => FdKind::Pipe,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFREG => FdKind::RegularFile,
        libc::S_IFDIR => FdKind::Directory,
        libc::S_IFCHR if is_tty => FdKind::Terminal,
        libc::S_IFCHR if stat.st_rdev == libc::makedev(1, 3) => FdKind::Null,
        _ => FdKind::Other,
    }
}

/// Sets or clears O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(nix::fcntl::fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// A connected pair of Unix datagram sockets (close-on-exec), for passing an fd.
pub fn fd_socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Sends `fd` over `socket` (SCM_RIGHTS).
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    let data = [io::IoSlice::new(b"f")];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &data,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one fd sent with `send_fd` (blocking).
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd as _;
    let mut byte = [0u8; 1];
    let mut data = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut data,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us alone.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(io::Error::other("no file descriptor came with the message"))
}
