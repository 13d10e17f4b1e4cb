//! The last steps before the user's command runs, in the process that becomes it: a new session
//! (so nothing inside can push input into the host's terminal with TIOCSTI), the terminal, a
//! new session keyring, the nested namespaces, the identity, capabilities (none for the user,
//! podman's set for container root), the working directory (resolved as the user, inside the
//! root), no_new_privs, only fds 0-2, the seccomp filter, then execve.
//! Used both for a new container's command and for a command joining a running container.

use std::ffi::CString;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::runtime::plan::{ProcessPlan, Program, Stdio, Stream};
use crate::runtime::process::channel;
use crate::runtime::process::channel::FailureKind;
use crate::runtime::process::channel::Message;
use crate::runtime::process::nest::NestChild;

/// What confines the command beyond its plan: the nested namespaces to make (a new
/// container's command; a joining one enters the existing ones) and the seccomp filter.
pub struct Confinement<'a> {
    pub nest: Option<NestChild>,
    pub filter: Option<&'a seccompiler::BpfProgram>,
    /// A joining command's way into the container's cgroups (their `tasks`, or v2's
    /// `cgroup.procs`, opened before the join); a new container's command is in pid 1's.
    pub cgroups: &'a [std::os::fd::OwnedFd],
}

/// Puts the command's fds 0-2 in place.
fn set_stdio(stdio: Stdio, fds: &[Option<BorrowedFd<'_>>; 3]) -> std::io::Result<()> {
    let streams = [sys::StdStream::In, sys::StdStream::Out, sys::StdStream::Err];
    let missing = || std::io::Error::other("a stdio fd is missing");
    match stdio {
        Stdio::Inherit => {}
        Stdio::Terminal => {
            let slave = fds[0].ok_or_else(missing)?;
            sys::set_controlling_terminal(slave)?;
            for stream in streams {
                sys::replace_std(stream, slave)?;
            }
        }
        Stdio::Capture => {
            sys::stdin_from_dev_null()?;
            let pipe = fds[1].ok_or_else(missing)?;
            sys::replace_std(sys::StdStream::Out, pipe)?;
            sys::replace_std(sys::StdStream::Err, pipe)?;
        }
        Stdio::Streams(kinds) => {
            for ((kind, fd), stream) in kinds.iter().zip(fds).zip(streams) {
                match kind {
                    Stream::Pass => {}
                    Stream::Relay => sys::replace_std(stream, fd.ok_or_else(missing)?)?,
                    Stream::Null => {
                        let null = fs_err::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open("/dev/null")?;
                        sys::replace_std(stream, null.as_fd())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reports a failure of sandbox's own (not the command's) and ends with 125.
fn fail_setup(status: BorrowedFd<'_>, step: &str, error: std::io::Error) -> ! {
    channel::send(
        status,
        &Message::SetupFailed {
            step: step.to_owned(),
            path: "/".to_owned(),
            errno: error.raw_os_error(),
            detail: error.to_string(),
            kind: FailureKind::Other,
        },
    );
    sys::exit_now(125)
}

/// Enters the working directory as the user, inside the root: a link through /proc
/// (`/proc/N/fd/M`, `/proc/N/cwd`) that could lead out of the root is refused. A directory
/// that does not exist falls back to `/`, as before.
fn enter_working_dir(cwd: &Path) -> std::io::Result<()> {
    let root = sys::open_dir_path(&sys::cstring("/")?)?;
    match sys::open_dir_in_root(root.as_fd(), &sys::cpath(cwd)?) {
        Ok(dir) => sys::fchdir(dir.as_fd()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => sys::fchdir(root.as_fd()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!(
                "the working directory {} leads outside the sandbox or cannot be entered ({e})",
                cwd.display()
            ),
        )),
    }
}

fn fail(status: BorrowedFd<'_>, program: &str, error: std::io::Error) -> ! {
    let errno = error.raw_os_error().unwrap_or(libc::EIO);
    channel::send(
        status,
        &Message::ExecFailed {
            program: program.to_owned(),
            errno,
        },
    );
    sys::exit_now(i32::from(crate::runtime::process::exit_code::not_started(
        errno,
    )))
}

fn is_executable(path: &Path) -> bool {
    sys::cpath(path).is_ok_and(|c| sys::is_executable_by_us(&c))
        && fs_err::metadata(path).is_ok_and(|m| m.is_file())
}

/// Finds `name` on the container's PATH, or takes it as a path when it has a slash: a
/// relative one (`./mvnw`, `bin/test.sh`) is checked from the working dir `cwd`, and kept
/// relative, so it is run from there (entered before exec) and sees itself as `$0` as it was
/// typed, as a shell runs it.
fn resolve(name: &str, env: &[(String, String)], cwd: &Path) -> Result<PathBuf, std::io::Error> {
    if name.contains('/') {
        let path = cwd.join(name);
        return if !path.exists() {
            Err(std::io::Error::from_raw_os_error(libc::ENOENT))
        } else if is_executable(&path) {
            Ok(PathBuf::from(name))
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EACCES))
        };
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
    let mut found_not_executable = false;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        found_not_executable |= candidate.exists();
    }
    Err(std::io::Error::from_raw_os_error(if found_not_executable {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// The program and argv: the command as given, or a login shell.
fn program(plan: &ProcessPlan) -> Result<(PathBuf, Vec<String>), (String, std::io::Error)> {
    match &plan.program {
        Program::Command(argv) => {
            let name = argv.first().cloned().unwrap_or_default();
            let path = resolve(&name, &plan.env, &plan.cwd).map_err(|e| (name, e))?;
            Ok((path, argv.clone()))
        }
        Program::LoginShell => {
            let candidates = [
                plan.user.shell.clone(),
                "/bin/bash".into(),
                "/bin/sh".into(),
            ];
            let shell = candidates
                .into_iter()
                .find(|c| is_executable(c))
                .ok_or_else(|| {
                    (
                        "a shell (tried your login shell, /bin/bash and /bin/sh)".to_owned(),
                        std::io::Error::from_raw_os_error(libc::ENOENT),
                    )
                })?;
            let base = shell
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sh".into());
            Ok((shell, vec![format!("-{base}")]))
        }
    }
}

/// Becomes the command; never returns. `stdio` holds what becomes its fds 0, 1 and 2 as the
/// plan's `Stdio` says (a terminal's slave in all three, pipe ends for relayed or captured
/// streams).
pub fn exec(
    child: sys::ForkedChild,
    plan: &ProcessPlan,
    status: BorrowedFd<'_>,
    stdio: [Option<BorrowedFd<'_>>; 3],
    confinement: Confinement<'_>,
) -> ! {
    let shown = match &plan.program {
        Program::Command(argv) => argv.first().cloned().unwrap_or_default(),
        Program::LoginShell => "the login shell".to_owned(),
    };
    sys::reset_signals();
    // 0. Into the container's limits, before anything of the command's runs.
    for tasks in confinement.cgroups {
        if let Err(e) = crate::runtime::cgroups::enter_self(tasks.as_fd()) {
            fail_setup(status, "enter the container's cgroup", e);
        }
    }
    // 1. A new session: no controlling terminal of the host's (TIOCSTI needs one).
    sys::setsid();
    // 2. Stdio: the new terminal as controlling terminal and fds 0-2; pipes where relayed or
    //    captured; the container's /dev/null where nothing comes.
    if let Err(e) = set_stdio(plan.stdio, &stdio) {
        fail_setup(status, "set up the command's stdio", e);
    }
    // 3. A session keyring of its own: no key of the host's session is reachable. A new
    //    container's command has pid 1's, made for the container; a joining one makes its own.
    if confinement.nest.is_none() {
        if let Err(e) = sys::join_new_session_keyring() {
            fail_setup(status, "make a new session keyring", e);
        }
    }
    // 4. A new container's command nests its own user and mount namespaces (see `nest`).
    if let Some(nest) = confinement.nest {
        if let Err(e) = nest.enter() {
            fail_setup(status, "make the command's nested user namespace", e);
        }
    }
    // 5. What to run, found while we can still read everything.
    let (path, argv) = match program(plan) {
        Ok(p) => p,
        Err((name, e)) => fail(status, &name, e),
    };
    // 6. Identity: the user (same uid and gid), or container root with --as-root.
    let user = &plan.user;
    let ids = if plan.as_root {
        sys::set_ids(0, 0, &[0])
    } else if user.ids_mapped {
        sys::set_ids(user.uid, user.gid, &[user.gid])
    } else {
        Ok(())
    };
    if let Err(e) = ids {
        fail(status, "the user's identity", e);
    }
    // 7. Capabilities: none for the user; podman's set (and what was added) for container root.
    let capabilities = if plan.as_root {
        sys::limit_capabilities(&plan.root_capabilities)
    } else {
        sys::drop_all_capabilities()
    };
    if let Err(e) = capabilities {
        fail_setup(status, "limit capabilities", e);
    }
    // 8. The working directory, entered with the identity the command has.
    if let Err(e) = enter_working_dir(&plan.cwd) {
        fail_setup(status, "enter the working directory", e);
    }
    // 9. setuid and file capabilities give nothing from here on.
    if let Err(e) = sys::set_no_new_privs() {
        fail(status, "no_new_privs", e);
    }
    // 10. Die with our parent (set after the identity change, which clears it).
    let _ = sys::set_parent_death_signal(nix::sys::signal::Signal::SIGKILL);
    // 11. Only stdio survives exec: the status pipe stays open until then (close-on-exec, so a
    //     failed exec can still be reported), everything else goes now.
    let _ = sys::set_cloexec(status, true);
    sys::close_all_but(&child, &[status]);
    // 12. The seccomp filter, last: everything above may use what it denies.
    if let Some(filter) = confinement.filter {
        if let Err(e) = sys::install_seccomp(filter) {
            fail_setup(status, "install the seccomp filter", e);
        }
    }
    // 13. Exec.
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let c_path = sys::cpath(&path).unwrap_or_default();
    let c_argv: Vec<CString> = argv.iter().map(|a| to_c(a)).collect();
    let c_env: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| to_c(&format!("{k}={v}")))
        .collect();
    let error = sys::execve(&c_path, &c_argv, &c_env);
    fail(status, &shown, error)
}
