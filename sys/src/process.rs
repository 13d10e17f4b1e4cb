//! Processes: fork and clone (only with proof of a single thread), signals, waiting, ids.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};

use nix::unistd::Pid as NixPid;

use super::check_long;

/// Proof that this process has one thread, so a forked child may do anything (allocate, lock)
/// before it execs or exits: no other thread can have held a lock at the fork.
///
/// Neither `Send` nor `Sync` (the raw-pointer marker): a proof handed to another thread, or
/// kept in a static, would outlive the moment it proved.
pub struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    /// Counts this process's threads; `None` when there is more than one (or /proc is gone).
    pub fn check() -> Option<Self> {
        let threads = fs_err::read_dir("/proc/self/task").ok()?.count();
        (threads == 1).then_some(Self(std::marker::PhantomData))
    }

    /// Like `check`, waiting up to `limit` for threads that are ending: a joined thread can
    /// stay listed in /proc/self/task for a moment after the join returns (the kernel releases
    /// it after waking the joiner), longer on a busy machine, as after a pull's workers.
    pub fn wait(limit: std::time::Duration) -> Option<Self> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(proof) = Self::check() {
                return Some(proof);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The names of this process's other threads, for an error that says which still runs.
    pub fn other_threads() -> Vec<String> {
        let me = nix::unistd::gettid().as_raw().to_string();
        fs_err::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|t| t.file_name().to_string_lossy() != me)
                    .filter_map(|t| fs_err::read_to_string(t.path().join("comm")).ok())
                    .map(|name| name.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A process id as the kernel gives it.
pub type Pid = libc::pid_t;

/// fork(2); `Ok(0)` in the child.
pub fn fork(_proof: &SingleThreaded) -> io::Result<Forked> {
    // SAFETY: the process is single-threaded (the proof), so the child is a full copy in which
    // every lock is free and any call is allowed.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child(ForkedChild(std::marker::PhantomData))),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
    }
}

/// Proof that the code holding it runs in a child `fork` made, which ends in exec or
/// `exit_now` and never returns into the frames it copied from its parent: no `OwnedFd` of
/// those is used or dropped again, so closing fds wholesale (`close_from`, `close_all_but`)
/// cannot close one under its owner. Only `fork` makes it; it stays on its thread.
pub struct ForkedChild(std::marker::PhantomData<*const ()>);

/// Which side of a fork this is.
pub enum Forked {
    Child(ForkedChild),
    Parent(Pid),
}

/// Checked when compiling: the proof is not `Send` (a `Send` type would take the inherent
/// constant; the proof falls back to the trait's).
mod proof_is_not_send {
    trait NotSend {
        const SEND: bool = false;
    }
    impl<T> NotSend for T {}
    struct Probe<T>(std::marker::PhantomData<T>);
    #[allow(dead_code)]
    impl<T: Send> Probe<T> {
        const SEND: bool = true;
    }
    const _: () = assert!(!<Probe<super::SingleThreaded>>::SEND && <Probe<u8>>::SEND);
}

/// fork(2) with namespace flags: the child starts in new namespaces (pid 1 of a new pid
/// namespace when CLONE_NEWPID is given). Returns 0 in the child.
pub fn clone_process(flags: libc::c_int, _proof: &SingleThreaded) -> io::Result<Pid> {
    // SAFETY: a null stack makes clone behave as fork (the child runs on a copy of our stack);
    // the process is single-threaded (the proof), as fork's contract asks.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    check_long(rc).map(|pid| pid as Pid)
}

/// `_exit(2)`: leaves a forked child without running the parent's destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Sends `signal` to `pid` (a negative pid: its process group); whether it was delivered.
pub fn kill(pid: Pid, signal: nix::sys::signal::Signal) -> bool {
    nix::sys::signal::kill(NixPid::from_raw(pid), signal).is_ok()
}

/// waitpid(2) for `pid` (-1: any child): the child that ended and its exit code (128+n for
/// signal n); `None` when none has ended (with `nohang`) or there is none.
pub fn waitpid(pid: Pid, nohang: bool) -> Option<(Pid, i32)> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    let flags = nohang.then_some(WaitPidFlag::WNOHANG);
    loop {
        match nix::sys::wait::waitpid(NixPid::from_raw(pid), flags) {
            Ok(WaitStatus::Exited(child, code)) => return Some((child.as_raw(), code)),
            Ok(WaitStatus::Signaled(child, signal, _)) => {
                return Some((child.as_raw(), 128 + signal as i32))
            }
            Ok(WaitStatus::StillAlive) => return None,
            // Stopped or continued (not asked for): wait on.
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Starts a new session (and process group) led by this process; failing (already a leader)
/// changes nothing.
pub fn setsid() {
    let _ = nix::unistd::setsid();
}

/// A pidfd for `pid`: readable once that process has exited, whoever its parent is.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers only.
    let fd = check_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: a fresh fd owned only here (pidfds are always close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The user and group ids (real, effective, saved) and supplementary groups of this process.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    use nix::unistd::{Gid, Uid};
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups)?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setresgid(gid, gid, gid)?;
    Ok(nix::unistd::setresuid(uid, uid, uid)?)
}

/// Makes `command` (fuse-overlayfs) serve the FUSE connection `fuse` as its fd 3
/// (`/dev/fd/3`), in a session of its own (the terminal's Ctrl-C is not for it), as root of
/// the user namespace when `as_root` (it reads layer files of every owner). It runs in our
/// pid and mount namespaces: nothing in the container can see it or reach its fds.
pub fn serve_fuse_as_fd_3(
    command: &mut std::process::Command,
    fuse: BorrowedFd<'_>,
    as_root: bool,
) {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let fd = fuse.as_raw_fd();
    // SAFETY: only setres[ug]id, setsid, dup2 and fcntl (async-signal-safe, no allocation) run
    // between fork and exec; `fuse` stays open in the parent until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if as_root && (libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0) {
                return Err(io::Error::last_os_error());
            }
            libc::setsid();
            // dup2 onto itself would keep close-on-exec set.
            let moved = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if moved < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// execve(2): becomes `path` with `argv` and `env`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    match nix::unistd::execve(path, argv, env) {
        Err(errno) => errno.into(),
        Ok(never) => match never {},
    }
}

/// Whether `path` is a directory this process may make entries in (access(2), W_OK|X_OK).
pub fn is_writable_dir_by_us(path: &CStr) -> bool {
    use nix::unistd::AccessFlags;
    nix::unistd::access(path, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// Whether `path` is executable by this process (access(2) with X_OK).
pub fn is_executable_by_us(path: &CStr) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Prepares `command` (a network helper) to run as root of the user namespace, with each
/// `(from, to)` fd moved to `to`, and to die with its parent. The moves are a fixed array (no
/// allocation between fork and exec), every one of them made.
pub fn prepare_helper<const N: usize>(
    command: &mut std::process::Command,
    moves: [(BorrowedFd<'_>, RawFd); N],
) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: only setres[ug]id, fcntl, dup2 and prctl (async-signal-safe, no allocation: the
    // moves are in a fixed array) run between fork and exec.
    let moves: [(RawFd, RawFd); N] = moves.map(|(from, to)| (from.as_raw_fd(), to));
    unsafe {
        command.pre_exec(move || {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Through copies above every target first: a source may sit at another's target.
            let mut copies = [0; N];
            for (copy, (from, _)) in copies.iter_mut().zip(&moves) {
                *copy = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 64);
                if *copy < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (copy, (_, to)) in copies.iter().zip(&moves) {
                if libc::dup2(*copy, *to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
}

/// Prepares `command` to get each `(from, to)` fd at `to`, open across exec. The fds must stay
/// open until the command is spawned.
pub fn prepare_fds<const N: usize>(
    command: &mut std::process::Command,
    moves: [(BorrowedFd<'_>, RawFd); N],
) {
    use std::os::unix::process::CommandExt as _;
    let moves: [(RawFd, RawFd); N] = moves.map(|(from, to)| (from.as_raw_fd(), to));
    // SAFETY: only dup2 (async-signal-safe, no allocation: a fixed array) runs between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            for (from, to) in moves {
                if libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Prepares `command` to run in a session of its own whose controlling terminal is `tty`,
/// with `tty` as each std fd in `onto`, as a terminal emulator starts a shell. `tty` must stay
/// open until the command is spawned.
pub fn prepare_on_terminal<const N: usize>(
    command: &mut std::process::Command,
    tty: BorrowedFd<'_>,
    onto: [RawFd; N],
) {
    use std::os::unix::process::CommandExt as _;
    let tty = tty.as_raw_fd();
    // SAFETY: only setsid, ioctl and dup2 (async-signal-safe, no allocation) run between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in onto {
                if libc::dup2(tty, fd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The bounds of this process's argument strings, from /proc/self/stat (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = fs_err::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    // Fields from the third (state) on; arg_start is field 48.
    let mut fields = after_name.split(' ').skip(48 - 3);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (start < end).then_some((start, end))
}

/// Blanks our command line after argv[0] in place, as setproctitle does: /proc/PID/cmdline is
/// readable by every process that can see us (any local user; inside a container, pid 1 and a
/// joining process are visible), and ours may hold `-e API_KEY=...`. Call only once the
/// arguments have been parsed: `std::env::args` reads this same memory.
pub fn hide_arguments() {
    let Some((start, end)) = argument_area() else {
        return;
    };
    let Some(first) = std::env::args_os().next() else {
        return;
    };
    let keep = first.len() + 1;
    if start + keep >= end {
        return;
    }
    // SAFETY: [start, end) is the argument strings' area the kernel set up on our stack at
    // exec, mapped readable and writable for our whole life; nothing holds a Rust reference
    // into it (std reads it through raw pointers when asked for the arguments, which the
    // caller no longer does), and the process is single-threaded when this runs.
    unsafe {
        std::ptr::write_bytes((start + keep) as *mut u8, 0, end - start - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reaped by our waitpid, which is what is tested.
    #[allow(clippy::zombie_processes)]
    fn ended(script: &str) -> Option<(Pid, i32)> {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        let pid = child.id() as Pid;
        let result = waitpid(pid, false);
        assert_eq!(result.map(|(p, _)| p), Some(pid));
        result
    }

    #[test]
    fn waitpid_gives_the_exit_code_or_128_plus_the_signal() {
        assert_eq!(ended("exit 3").map(|(_, c)| c), Some(3));
        assert_eq!(ended("kill -9 $$").map(|(_, c)| c), Some(137));
        assert_eq!(ended("kill -15 $$").map(|(_, c)| c), Some(143));
    }
}
