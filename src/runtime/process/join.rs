//! A second `sandbox enter` or `run` in a project whose container runs: the new command joins
//! it (its user, mount, pid, ipc, uts, cgroup and network namespaces) with its own terminal,
//! and the container lives on until its last process ends.
//!
//! Order: open every namespace file first (after the mount namespace changes, /proc is the
//! container's); join the container's outer user namespace first (it grants the rights for the
//! ipc, uts, net, pid and cgroup namespaces it owns; the command enters the cgroups below that
//! namespace's root before it runs, through files opened beforehand), then the command's
//! nested user namespace (see `nest`), the mount namespace it owns last. setns into a user
//! namespace needs a single-threaded process.
//!
//! The joiner is made undumpable before it joins anything: its memory holds the host's
//! environment until it execs, and the child it forks lives in the container's pid namespace.

use std::os::fd::{AsFd as _, OwnedFd};

use crate::runtime::cgroups::metering;
use crate::runtime::error::RuntimeError;
use crate::runtime::plan::{ProcessPlan, Stdio};
use crate::runtime::process::exec;
use crate::runtime::process::init;
use crate::runtime::process::monitor;
use crate::runtime::process::monitor::Outcome;
use crate::runtime::process::monitor::Session;
use crate::runtime::state::ContainerState;
use crate::runtime::stdio::ends;
use crate::runtime::RunReporter;

fn open_ns(pid: i32, name: &str) -> Result<OwnedFd, RuntimeError> {
    let path = format!("/proc/{pid}/ns/{name}");
    fs_err::File::open(&path)
        .map(|f| f.into_parts().0.into())
        .map_err(|source| RuntimeError::JoinNamespace { path, source })
}

/// Opens `name` of the member `pid`: a member that ended meanwhile means the container is
/// ending, which the caller treats as not running (and starts a new one).
fn open_member_ns(
    container: &ContainerState,
    pid: i32,
    name: &str,
) -> Result<OwnedFd, RuntimeError> {
    open_ns(pid, name).map_err(|e| match e {
        RuntimeError::JoinNamespace { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            RuntimeError::NotRunning {
                id: container.id.clone(),
            }
        }
        other => other,
    })
}

/// A process of the container to enter through: pid 1 is not dumpable, its others are ours.
/// The earliest started is the container's first command (or what it left), which sits in the
/// nested namespaces; a later process may have made namespaces of its own.
fn member(container: &ContainerState) -> Result<i32, RuntimeError> {
    container
        .members()
        .into_iter()
        .min_by_key(|pid| crate::runtime::state::process_start(*pid).unwrap_or(u64::MAX))
        .ok_or_else(|| RuntimeError::NotRunning {
            id: container.id.clone(),
        })
}

/// The container's outer user namespace: the one that owns the nested one `nested` refers to.
fn outer_user_namespace(nested: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    sys::parent_namespace(nested.as_fd()).map_err(|source| RuntimeError::Join {
        namespace: "outer user",
        source,
    })
}

/// Joins only the container's outer user namespace (for `stop`, which signals its processes,
/// pid 1 included).
pub fn enter_user_namespace(container: &ContainerState) -> Result<(), RuntimeError> {
    let user = outer_user_namespace(&open_member_ns(container, member(container)?, "user")?)?;
    if !container.is_running() {
        return Err(RuntimeError::NotRunning {
            id: container.id.clone(),
        });
    }
    sys::setns(user.as_fd(), libc::CLONE_NEWUSER).map_err(|source| RuntimeError::Join {
        namespace: "user",
        source,
    })
}

/// Runs `plan`'s program inside the running `container`; waits for it. With `meter`, reports
/// what it cost (its process tree's rusage and the sandbox's network counters).
pub fn run(
    container: &ContainerState,
    plan: &ProcessPlan,
    cgroup_v1_parents: &[std::path::PathBuf],
    meter: bool,
    reporter: &dyn RunReporter,
) -> Result<Outcome, RuntimeError> {
    let started = std::time::Instant::now();
    sys::set_dumpable(false).map_err(|source| RuntimeError::Syscall {
        what: "make the joining process undumpable",
        source,
    })?;
    let filter = monitor::seccomp_filter(plan.seccomp)?;
    let names = [
        "outer user",
        "ipc",
        "uts",
        "net",
        "pid",
        "cgroup",
        "user",
        "mnt",
    ];
    let kinds = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
    ];
    // Opened now, with the user's rights: the command enters them before it runs. Into a
    // systemd scope, systemd moves us (and so the command we fork) now, while its bus is in
    // reach.
    if let Some(scope) = container
        .cgroup
        .as_deref()
        .filter(|c| crate::runtime::cgroups::scope::is_scope(c))
    {
        crate::runtime::cgroups::scope::attach(scope, std::process::id() as i32)?;
    }
    let cgroups = crate::runtime::cgroups::container_task_files(container, cgroup_v1_parents)?;
    let through = member(container)?;
    let nested = open_member_ns(container, through, "user")?;
    let mut fds = vec![outer_user_namespace(&nested)?];
    for name in ["ipc", "uts", "net", "pid", "cgroup"] {
        fds.push(open_member_ns(container, through, name)?);
    }
    fds.push(nested);
    fds.push(open_member_ns(container, through, "mnt")?);
    if !container.is_running() {
        return Err(RuntimeError::NotRunning {
            id: container.id.clone(),
        });
    }
    // Opened now, while the store is in view: the keeper's counts for --stats.
    let traffic = meter
        .then(|| crate::runtime::net::egress::traffic::open(&container.dir))
        .flatten();
    let (mut ours, mut theirs) = ends::prepare(plan.stdio, false)?;
    // Taken before the mount namespace changes (then /proc is the container's, where we are not).
    let single = sys::SingleThreaded::check().ok_or_else(|| {
        RuntimeError::Internal("internal error: a thread is running while joining".into())
    })?;
    for ((fd, kind), name) in fds.iter().zip(kinds).zip(names) {
        // Joining our own (host) network namespace again is refused with EINVAL; it is shared.
        match sys::setns(fd.as_fd(), kind) {
            Ok(()) => {}
            Err(e) if kind == libc::CLONE_NEWNET && e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(source) => {
                return Err(RuntimeError::Join {
                    namespace: name,
                    source,
                })
            }
        }
    }
    // The terminal lives in the container's devpts, where `tty` can name it.
    if plan.stdio == Stdio::Terminal {
        let (master, slave) = sys::open_pty_in_root().map_err(|source| RuntimeError::Syscall {
            what: "open a terminal in the container's /dev/pts",
            source,
        })?;
        sys::size_like(master.as_fd(), std::io::stdin().as_fd());
        ours.master = Some(master);
        theirs.fds[0] = Some(slave);
    }
    let signals = init::signal_fd().map_err(|source| RuntimeError::Syscall {
        what: "block signals",
        source,
    })?;
    let (status_read, status_write) = sys::pipe()?;
    let child = match sys::fork(&single)? {
        sys::Forked::Parent(pid) => pid,
        sys::Forked::Child(forked) => {
            drop(status_read);
            drop(ours);
            drop(signals);
            exec::exec(
                forked,
                plan,
                status_write.as_fd(),
                theirs.for_exec(plan.stdio),
                exec::Confinement {
                    nest: None,
                    filter: filter.as_ref(),
                    cgroups: &cgroups,
                },
            );
        }
    };
    drop(status_write);
    drop(theirs);
    drop(cgroups);
    let session = Session {
        forward_to: child,
        hang_up_on_term: matches!(plan.program, crate::runtime::plan::Program::LoginShell),
        status: status_read,
        stdio: ours,
        notices: None,
    };
    let outcome = monitor::wait_child(session, &signals, child)?;
    if meter {
        // Our only child was the command; we are in the sandbox's network namespace.
        let mut usage = metering::children_usage();
        let dev = fs_err::read_to_string("/proc/self/net/dev").unwrap_or_default();
        (usage.net_in, usage.net_out) = metering::with_keepers(
            metering::net_totals(&dev),
            traffic
                .as_ref()
                .map_or((0, 0), crate::runtime::net::egress::traffic::read_from),
        );
        reporter.stats(&metering::Stats {
            wall_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            usage,
            source: "rusage",
        });
    }
    Ok(outcome)
}
