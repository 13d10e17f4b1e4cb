//! The pseudo-terminal of `enter` (and of `run` on a terminal): a new pty pair, the host's
//! terminal in raw mode while it runs (restored on every way out), and window sizes kept in step.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};

use nix::sys::termios::{self, SetArg, Termios};

use super::check;

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

/// Sets the window size of the terminal `fd` (on a pty's master, its processes get SIGWINCH).
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize; the fd is valid for the borrow.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
}

/// A new pty pair (master, slave) in the devpts mounted at `/dev/pts` of our root, so inside
/// the container `tty` names the slave. `/dev/pts/ptmx` is opened without following any link
/// and must be devpts' ptmx (5:2); the slave is opened from the master (TIOCGPTPEER), never by
/// a path. Both close-on-exec.
pub fn open_pty_in_root() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use nix::sys::stat::Mode;
    let root = nix::fcntl::open(c"/", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let master = nix::fcntl::openat2(root.as_fd(), c"dev/pts/ptmx", how)?;
    let stat = nix::sys::stat::fstat(master.as_fd())?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFCHR || stat.st_rdev != libc::makedev(5, 2) {
        return Err(io::Error::other(
            "/dev/pts/ptmx is not the devpts multiplexer",
        ));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int; the fd is ours.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags as an integer and returns a new fd or -1.
    let slave = check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: a fresh fd the kernel just returned, owned only here.
    let slave = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    Ok((master, slave))
}

/// Sets the size of the pty `master` from the host terminal `host` (when it is one).
pub fn size_like(master: BorrowedFd<'_>, host: BorrowedFd<'_>) {
    sync_window_size(host, master);
}

/// How many bytes wait to be read on the terminal `fd` (FIONREAD): what was typed, or injected.
pub fn pending_input(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `pending`; the fd is valid for the borrow.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut pending) })?;
    Ok(usize::try_from(pending).unwrap_or(0))
}
