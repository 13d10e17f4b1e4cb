//! Processes: fork and clone (only with proof of a single thread), signals, waiting, ids.

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use super::check_long;

/// Proof that this process has one thread, so a forked child may do anything (allocate, lock)
/// before it execs or exits: no other thread can have held a lock at the fork.
pub struct SingleThreaded(());

impl SingleThreaded {
    /// Counts this process's threads; `None` when there is more than one (or /proc is gone).
    pub fn check() -> Option<Self> {
        let threads = fs_err::read_dir("/proc/self/task").ok()?.count();
        (threads == 1).then_some(Self(()))
    }
}

/// A process id as the kernel gives it.
pub type Pid = libc::pid_t;

/// fork(2); `Ok(0)` in the child.
pub fn fork(_proof: &SingleThreaded) -> io::Result<Pid> {
    // SAFETY: the process is single-threaded (the proof), so the child is a full copy in which
    // every lock is free and any call is allowed.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
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
pub fn kill(pid: Pid, signal: libc::c_int) -> bool {
    // SAFETY: kill takes integers only.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// waitpid(2): `(pid, status)` of a child that changed state, `None` when there is none (with
/// `nohang`) or on error.
pub fn waitpid(pid: Pid, nohang: bool) -> Option<(Pid, libc::c_int)> {
    let mut status = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: waitpid writes the status into a valid int.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return (rc > 0).then_some((rc, status));
    }
}

/// Starts a new session (and process group) led by this process.
pub fn setsid() {
    // SAFETY: setsid has no preconditions; failing (already a leader) changes nothing.
    unsafe { libc::setsid() };
}

/// A pidfd for `pid`: readable once that process has exited, whoever its parent is.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers only.
    let fd = check_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: a fresh fd owned only here (pidfds are always close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length from one slice.
    super::check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: integer arguments.
    super::check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: integer arguments.
    super::check(unsafe { libc::setresuid(uid, uid, uid) }).map(|_| ())
}

/// Makes `command` run as root of the user namespace (uid and gid 0), which keeps its
/// capabilities there across exec: what a helper that mounts or joins namespaces needs.
pub fn run_as_namespace_root(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: only setres[ug]id, which are async-signal-safe, run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// execve(2): becomes `path` with `argv` and `env`; returns only on failure.
pub fn execve(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: a NUL-terminated path, and NULL-terminated arrays of NUL-terminated strings that
    // outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Whether `path` is executable by this process (access(2) with X_OK).
pub fn is_executable_by_us(path: &std::ffi::CStr) -> bool {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// Prepares `command` (a network helper) to run as root of the user namespace, with each
/// `(from, to)` fd moved to `to`, and to die with its parent. At most four moves.
pub fn prepare_helper(command: &mut std::process::Command, moves: Vec<(RawFd, RawFd)>) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: only setres[ug]id, fcntl, dup2 and prctl (async-signal-safe, no allocation: the
    // moves are in a fixed array) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Through copies above every target first: a source may sit at another's target.
            let mut copies = [0; 4];
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
