//! The monitor: the `sandbox` process outside the container. It clones pid 1 into new
//! namespaces, relays the terminal, forwards the signals it gets, and reports how the command
//! ended. The same loop serves a command joining a running container (`join`).

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::runtime::cgroups::metering;
use crate::runtime::cgroups::metering::Stats;
use crate::runtime::cgroups::metering::Usage;
use crate::runtime::cgroups::Cgroup;
use crate::runtime::confinement::seccomp;
use crate::runtime::error::RuntimeError;
use crate::runtime::net::helpers;
use crate::runtime::net::keeper;
use crate::runtime::net::warm_pool;
use crate::runtime::plan::{CacheMount, LaunchPlan, Network, OverlayChoice, Seccomp};
use crate::runtime::process::channel;
use crate::runtime::process::channel::FailureKind;
use crate::runtime::process::channel::Message;
use crate::runtime::process::control;
use crate::runtime::process::init;
use crate::runtime::process::init::InitFds;
use crate::runtime::process::init::FORWARDED;
use crate::runtime::state;
use crate::runtime::stdio::ends;
use crate::runtime::stdio::ends::MonitorSide;
use crate::runtime::stdio::pipes::Relays;
use crate::runtime::RunReporter;
use crate::settings::capabilities;

/// How a command ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its own exit code (128+n when signal n killed it).
    Exited(i32),
    /// It could not be started (`exit_code::not_started` gives its code).
    NotStarted { program: String, errno: i32 },
}

/// What the waiting loop watches.
pub struct Session {
    /// Who to forward signals to (pid 1 for a new container, the command for a join).
    pub forward_to: libc::pid_t,
    /// SIGTERM goes on as SIGHUP: a joined interactive shell ignores SIGTERM.
    pub hang_up_on_term: bool,
    pub status: OwnedFd,
    /// The terminal, the captured output and the relayed streams.
    pub stdio: MonitorSide,
    /// The egress forwarder's reports of blocked connections.
    pub notices: Option<OwnedFd>,
}

/// Makes the caches' host dirs (owned by the user, private) before they are mounted.
fn make_cache_dirs(caches: &[CacheMount]) -> Result<(), RuntimeError> {
    use std::os::unix::fs::DirBuilderExt as _;
    for cache in caches {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cache.host)
            .map_err(|source| RuntimeError::CacheDir {
                path: cache.host.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Executes `plan`: starts a new container and waits for its command.
pub fn start(plan: &LaunchPlan, reporter: &dyn RunReporter) -> Result<Outcome, RuntimeError> {
    let started = Instant::now();
    make_cache_dirs(&plan.rootfs.caches)?;
    let filter = seccomp_filter(plan.process.seccomp)?;
    let mut fuse = open_fuse(plan);
    let signals = init::signal_fd().map_err(|source| RuntimeError::Syscall {
        what: "block signals",
        source,
    })?;
    // From here until pid 1 runs the command, a failure ends pid 1 and removes what was made
    // for it: dropping `starting` does, in the order it needs (see `Starting`).
    let mut starting = Starting::default();
    starting.container = Some(state::create_dir(&plan.dir, &plan.id)?);
    let cgroup = starting.cgroup.insert(Cgroup::create(&plan.cgroup)?);
    let cgroup_tasks = cgroup.task_files()?;
    let (status_read, status_write) = sys::pipe()?;
    let (control_read, control_write) = sys::pipe()?;
    starting.control = Some(control_write);
    // The command's stdio: what we keep (`ours`) and what pid 1 gets (`theirs`).
    let (mut ours, theirs) = ends::prepare(plan.process.stdio, true)?;
    helpers::check_ports_free(&plan.network.options.ports)?;
    // The store's pool may hold a network ready for this one (see `warm_pool`).
    let (warm, start_pool) = match &plan.warm_pool {
        Some(store) => match warm_pool::take(store) {
            warm_pool::Answer::Taken(taken) => (Some(taken), false),
            warm_pool::Answer::NoneReady => (None, false),
            warm_pool::Answer::NoPool => (None, true),
        },
        None => (None, false),
    };
    let flags = plan
        .namespaces
        .iter()
        .filter(|ns| !(warm.is_some() && **ns == crate::runtime::plan::Namespace::Net))
        .fold(0, |flags, ns| flags | ns.clone_flag());
    let warm_netns = match &warm {
        Some(taken) => Some(taken.netns.try_clone()?),
        None => None,
    };
    let Some(single) = sys::SingleThreaded::wait(std::time::Duration::from_secs(2)) else {
        return Err(RuntimeError::Internal(format!(
            "internal error: a thread is still running when the container starts ({})",
            sys::SingleThreaded::other_threads().join(", ")
        )));
    };
    let pid = sys::clone_process(flags, &single).map_err(|source| RuntimeError::Syscall {
        what: "create the container's namespaces",
        source,
    })?;
    if pid == 0 {
        drop(status_read);
        drop(starting.control.take());
        // Undoing the start is the monitor's alone: pid 1 never removes what it runs in, not
        // even should it unwind.
        std::mem::forget(starting);
        drop(ours);
        drop(signals);
        init::run(
            plan,
            InitFds {
                status: status_write,
                control: control_read,
                stdio: theirs,
                filter,
                fuse: fuse.take(),
                cgroup_tasks,
                netns: warm_netns,
            },
        );
    }
    starting.pid = Some(pid);
    drop(warm_netns);
    // The pool ends the helper when pid 1 exits; without this handback it ends it at once.
    let warm_bound = match warm {
        Some(taken) => sys::pidfd_open(pid)
            .and_then(|pidfd| taken.bind_to(&pidfd))
            .is_ok(),
        None => false,
    };
    if warm_bound {
        reporter.verbose("network: a warm pasta, prepared ahead of time");
    }
    drop(cgroup_tasks);
    drop(status_write);
    drop(control_read);
    drop(theirs);
    // Into the v2 limits before anything else; pid 1 makes its cgroup namespace once we say it
    // is in (it entered v1's itself) and starts the command only on our go.
    starting.cgroup()?.enter(pid)?;
    // A pid 1 that failed already has said why on the status pipe, read below.
    let _ = sys::write_all(starting.control()?, &[control::IN_CGROUPS]);
    // The network helper attaches to pid 1's namespaces while pid 1 mounts; pid 1 starts the
    // command only on our go, once the helper is ready.
    let mut buffer = Vec::new();
    let pid_ns = loop {
        match next_message(status_read.as_fd(), &mut buffer) {
            Some(Message::Attachable) => match start_helper(plan, pid, reporter) {
                Ok(running) => starting.helper = running,
                Err(e) => {
                    // pid 1 ends at its next wait for us; if it failed first (and the helper
                    // only because pid 1 was gone), its failure is the one to report.
                    drop(starting.control.take());
                    return Err(own_failure(status_read.as_fd(), &mut buffer).unwrap_or(e));
                }
            },
            Some(Message::MountFuse { why }) => {
                reporter.verbose(&format!("overlay: fuse-overlayfs, since {why}"));
                serve_fuse(plan, fuse.take(), why)?;
                if !sys::write_all(starting.control()?, &[control::FUSE_READY]) {
                    return Err(ended_before_it_started());
                }
            }
            Some(Message::Started { pid_ns, overlay }) => {
                reporter.verbose(&format!(
                    "container {} runs on {overlay}; container root holds {}; seccomp: {}",
                    plan.id,
                    capabilities::names(&plan.process.root_capabilities),
                    match plan.process.seccomp {
                        Seccomp::Default => "default filter",
                        Seccomp::Unconfined => "unconfined",
                    }
                ));
                if starting.helper.is_none()
                    && !warm_bound
                    && matches!(
                        plan.network.mode,
                        Network::Helper(_) | Network::Filtered | Network::Relay
                    )
                {
                    return Err(RuntimeError::Internal(
                        "the container's pid 1 started before its network helper could attach"
                            .into(),
                    ));
                }
                drop(fuse.take());
                // pid 1 sent the terminal's master before it said it started.
                if let Some(console) = ours.console.take() {
                    let master =
                        sys::recv_fd(console.as_fd()).map_err(|source| RuntimeError::Syscall {
                            what: "receive the container's terminal",
                            source,
                        })?;
                    sys::size_like(master.as_fd(), std::io::stdin().as_fd());
                    ours.master = Some(master);
                }
                break pid_ns;
            }
            Some(Message::SetupFailed {
                step,
                path,
                errno,
                detail,
                kind,
            }) => return Err(setup_error(step, path, errno, detail, kind)),
            _ => return Err(ended_before_it_started()),
        }
    };
    if !sys::write_all(starting.control()?, &[control::GO]) {
        return Err(ended_before_it_started());
    }
    // The command runs: from here on the container is ours to wait for, not to undo.
    let Started {
        container,
        cgroup,
        control: control_write,
        mut helper,
    } = starting.started()?;
    let mut record = plan.record(pid, pid_ns);
    record.cgroup = cgroup.unified().map(std::path::Path::to_owned);
    state::write(&container, &record)?;
    // The first eligible run of a store starts its pool of warm networks, for the next ones.
    if let (true, Some(store), Some(single)) =
        (start_pool, &plan.warm_pool, sys::SingleThreaded::check())
    {
        warm_pool::spawn_pool(store, &single);
    }
    let session = Session {
        forward_to: pid,
        // pid 1 turns it into SIGHUP for a shell itself.
        hang_up_on_term: false,
        status: status_read,
        stdio: ours,
        notices: helper.as_mut().and_then(|k| k.notices.take()),
    };
    let result = wait(session, &signals, reporter);
    // Goodbye: pid 1 may now outlive us if joined sessions still run.
    let _ = sys::write_all(control_write.as_fd(), b"bye");
    drop(control_write);
    // The network stays while joined sessions run; it ends with the container.
    let last = result.as_ref().map_or(true, |(_, last, _)| *last);
    match helper {
        Some(keeper) if !last => keeper.detach(),
        // Its last counts are written as it ends: wait for them.
        Some(keeper) if plan.meter => keeper.finish(),
        other => drop(other),
    }
    let (outcome, last, usage) = result?;
    if outcome == Outcome::Exited(137) {
        if let Some((limit, peak)) = cgroup.out_of_memory() {
            reporter.out_of_memory(limit, peak);
        }
    }
    if plan.meter {
        let traffic = crate::runtime::net::egress::traffic::read(&plan.dir);
        reporter.stats(&stats(&cgroup, usage, traffic, started));
    }
    if let Some(keep) = &plan.keep_upper {
        // The changes are kept only once pid 1 is gone: nothing can write to them any more.
        reap(pid);
        if outcome == Outcome::Exited(0) {
            fs_err::rename(plan.upper(), keep)?;
        }
    }
    // pid 1 said nothing else runs: only its own exit (namespace teardown) is left, which we do
    // not wait for; the user has their exit code 1-2 ms sooner. Init reaps it.
    if last {
        // The cgroups go once pid 1 is gone from them, without us waiting for that.
        state::remove(&container);
        // Last: the cleaner's start must not compete with our own work.
        cgroup.remove_when_gone(pid);
    }
    Ok(outcome)
}

/// A container being started. Until pid 1 runs the command, dropping this undoes the start,
/// in the order that needs: the control pipe closed (pid 1 ends at its next wait for us), the
/// network helper ended, pid 1 reaped, its cgroups and its dir removed. `started` hands the
/// pieces over once the command runs.
#[derive(Default)]
struct Starting {
    container: Option<state::ContainerDir>,
    cgroup: Option<Cgroup>,
    control: Option<OwnedFd>,
    helper: Option<keeper::Keeper>,
    pid: Option<libc::pid_t>,
}

/// What a started container's monitor keeps.
struct Started {
    container: state::ContainerDir,
    cgroup: Cgroup,
    control: OwnedFd,
    helper: Option<keeper::Keeper>,
}

impl Starting {
    fn cgroup(&mut self) -> Result<&mut Cgroup, RuntimeError> {
        self.cgroup.as_mut().ok_or_else(|| missing("cgroup"))
    }

    fn control(&self) -> Result<BorrowedFd<'_>, RuntimeError> {
        self.control
            .as_ref()
            .map(std::os::fd::AsFd::as_fd)
            .ok_or_else(|| missing("control pipe"))
    }

    fn started(mut self) -> Result<Started, RuntimeError> {
        let started = Started {
            container: self
                .container
                .take()
                .ok_or_else(|| missing("container dir"))?,
            cgroup: self.cgroup.take().ok_or_else(|| missing("cgroup"))?,
            control: self.control.take().ok_or_else(|| missing("control pipe"))?,
            helper: self.helper.take(),
        };
        self.pid = None;
        Ok(started)
    }
}

fn missing(what: &str) -> RuntimeError {
    RuntimeError::Internal(format!("the starting container has no {what}"))
}

fn ended_before_it_started() -> RuntimeError {
    RuntimeError::Internal("the container's pid 1 ended before it started".into())
}

impl Drop for Starting {
    fn drop(&mut self) {
        drop(self.control.take());
        drop(self.helper.take());
        if let Some(pid) = self.pid.take() {
            reap(pid);
        }
        if let Some(mut cgroup) = self.cgroup.take() {
            cgroup.remove();
        }
        if let Some(container) = self.container.take() {
            state::remove(&container);
        }
    }
}

/// Starts fuse-overlayfs on the FUSE connection pid 1 mounted on its new root. It runs here,
/// outside the container's pid namespace, so no process in the container can see it or reach
/// the store through its fds; it ends by itself once the container's mounts are gone.
fn serve_fuse(plan: &LaunchPlan, fuse: Option<OwnedFd>, why: String) -> Result<(), RuntimeError> {
    let fail = |detail: String, errno: Option<i32>| {
        setup_error(
            "mount the overlay on".into(),
            plan.merged().display().to_string(),
            errno,
            detail,
            FailureKind::NoOverlay,
        )
    };
    let Some(fuse) = fuse else {
        return Err(fail(
            format!("{why}, and /dev/fuse could not be opened"),
            None,
        ));
    };
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        plan.lower_dirs().join(":"),
        plan.upper().display(),
        plan.work().display()
    );
    let mut command = std::process::Command::new("fuse-overlayfs");
    sys::serve_fuse_as_fd_3(&mut command, fuse.as_fd(), plan.process.user.ids_mapped);
    let out = command
        .args(["-o", &options, "/dev/fd/3"])
        .current_dir(plan.layers_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    // Our copy goes now: if the helper died, the connection ends and pid 1 gets errors, not
    // a hang.
    drop(fuse);
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(fail(
            format!(
                "{why}, and fuse-overlayfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            None,
        )),
        Err(e) => Err(fail(
            format!("{why}, and fuse-overlayfs could not run ({e})"),
            e.raw_os_error(),
        )),
    }
}

/// /dev/fuse, opened before pid 1 starts when the plan may fall back to fuse-overlayfs: pid 1
/// mounts with it, we hand it to the helper.
fn open_fuse(plan: &LaunchPlan) -> Option<OwnedFd> {
    if plan.rootfs.overlay == OverlayChoice::Kernel {
        return None;
    }
    fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .ok()
        .map(|f| f.into_parts().0.into())
}

/// The run's figures: the cgroups' when there are (everything that ran in the sandbox), with
/// the network counters pid 1 read and what the network keeper carried (`traffic`); else pid
/// 1's children's rusage.
fn stats(
    cgroup: &Cgroup,
    from_pid1: Option<Usage>,
    traffic: (u64, u64),
    started: Instant,
) -> Stats {
    let mut from_pid1 = from_pid1.unwrap_or_default();
    (from_pid1.net_in, from_pid1.net_out) =
        metering::with_keepers((from_pid1.net_in, from_pid1.net_out), traffic);
    let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match cgroup.usage() {
        Some(mut usage) => {
            usage.net_in = from_pid1.net_in;
            usage.net_out = from_pid1.net_out;
            Stats {
                wall_us,
                usage,
                source: "cgroup",
            }
        }
        None => Stats {
            wall_us,
            usage: from_pid1,
            source: "rusage",
        },
    }
}

/// The BPF program of the plan's seccomp choice, built before anything starts.
pub fn seccomp_filter(choice: Seccomp) -> Result<Option<seccompiler::BpfProgram>, RuntimeError> {
    match choice {
        Seccomp::Unconfined => Ok(None),
        Seccomp::Default => seccomp::default_filter()
            .map(Some)
            .map_err(|e| RuntimeError::Internal(e.to_string())),
    }
}

/// The error for what pid 1 reported: its text as the cause, of the kind its errno says.
fn setup_error(
    step: String,
    path: String,
    errno: Option<i32>,
    detail: String,
    kind: FailureKind,
) -> RuntimeError {
    let error_kind = errno.map_or(std::io::ErrorKind::Other, |e| {
        std::io::Error::from_raw_os_error(e).kind()
    });
    RuntimeError::ContainerSetup {
        step,
        path: path.into(),
        kind,
        source: std::io::Error::new(error_kind, detail),
    }
}

/// How pid 1's set-up failed, if it did: its messages until it has ended (it ends at its next
/// wait for the control pipe, once we have closed our end).
fn own_failure(status: BorrowedFd<'_>, buffer: &mut Vec<u8>) -> Option<RuntimeError> {
    while let Some(message) = next_message(status, buffer) {
        if let Message::SetupFailed {
            step,
            path,
            errno,
            detail,
            kind,
        } = message
        {
            return Some(setup_error(step, path, errno, detail, kind));
        }
    }
    None
}

fn reap(pid: libc::pid_t) {
    let _ = sys::waitpid(pid, false);
}

/// Starts the network helper on pid 1's network namespace, when the plan asks for one.
fn start_helper(
    plan: &LaunchPlan,
    pid: libc::pid_t,
    reporter: &dyn RunReporter,
) -> Result<Option<keeper::Keeper>, RuntimeError> {
    let options = &plan.network.options;
    let relay = crate::runtime::net::relay::Options {
        host_loopback: options.host_loopback,
        log: options.log.clone(),
    };
    let (connection, name) = match (plan.network.mode, &options.policy) {
        (Network::Relay, _) => (
            keeper::Connection::Relay {
                options: &relay,
                ports: &options.ports,
            },
            "the network relay",
        ),
        (Network::Helper(helper), _) => (
            keeper::Connection::Helper {
                helper,
                ports: &options.ports,
                host_loopback: options.host_loopback,
            },
            helper.binary(),
        ),
        (Network::Filtered, Some(policy)) => (
            keeper::Connection::Filtered {
                policy,
                ports: &options.ports,
            },
            "the egress forwarder",
        ),
        _ => return Ok(None),
    };
    let started = Instant::now();
    let running = keeper::start(&connection, pid, &plan.dir)?;
    reporter.verbose(&format!(
        "{name} ready in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(Some(running))
}

/// Blocks for pid 1's next set-up message (Attachable, Started, or why it could not start).
fn next_message(fd: BorrowedFd<'_>, buffer: &mut Vec<u8>) -> Option<Message> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(message) = channel::parse_one(buffer) {
            return Some(message);
        }
        match sys::read_some(fd, &mut chunk) {
            Some(n) => buffer.extend_from_slice(&chunk[..n]),
            None => return None,
        }
    }
}

/// Waits for a command we forked ourselves (a join): its outcome comes from waitpid.
pub fn wait_child(
    session: Session,
    signals: &sys::SignalFd,
    child: libc::pid_t,
) -> Result<Outcome, RuntimeError> {
    wait_for(session, signals, Some(child), &Silent).map(|(outcome, _, _)| outcome)
}

struct Silent;
impl RunReporter for Silent {}

/// Relays the terminal and forwards signals until pid 1 reports the command's outcome. Returns
/// it and whether the container has nothing else running. Captured output goes to `reporter`.
pub fn wait(
    session: Session,
    signals: &sys::SignalFd,
    reporter: &dyn RunReporter,
) -> Result<(Outcome, bool, Option<Usage>), RuntimeError> {
    wait_for(session, signals, None, reporter)
}

/// Appends a poll entry for `fd` and returns its index.
fn watch<'fd>(polls: &mut Vec<sys::PollFd<'fd>>, fd: BorrowedFd<'fd>) -> usize {
    polls.push(sys::PollFd::new(fd, sys::PollFlags::POLLIN));
    polls.len() - 1
}

fn wait_for(
    session: Session,
    signals: &sys::SignalFd,
    child: Option<libc::pid_t>,
    reporter: &dyn RunReporter,
) -> Result<(Outcome, bool, Option<Usage>), RuntimeError> {
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let MonitorSide {
        master: master_fd,
        capture,
        stdin: relay_stdin,
        outputs,
        ..
    } = session.stdio;
    let mut relays = Relays::new(relay_stdin, outputs);
    let master = master_fd.as_ref().map(|m| m.as_fd());
    let raw = master.and_then(|_| sys::RawMode::enable(stdin.as_fd()));
    let mut stdin_open = master.is_some();
    let mut typed = crate::runtime::stdio::typeahead::EnterPadding::default();
    let mut buffer = Vec::new();
    let mut not_started = None;
    let mut setup_failed = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut status_open = true;
    let mut output = capture.as_ref().map(|o| o.as_fd());
    let mut notices = Notices::new(session.notices.as_ref().map(|n| n.as_fd()));
    loop {
        let mut polls = Vec::with_capacity(8);
        watch(&mut polls, signals.as_fd());
        let status_at = status_open.then(|| watch(&mut polls, session.status.as_fd()));
        let output_at = output.map(|o| watch(&mut polls, o));
        let master_at = master.map(|m| watch(&mut polls, m));
        let stdin_at = (master.is_some() && stdin_open).then(|| watch(&mut polls, stdin.as_fd()));
        let notices_at = notices.fd.map(|n| watch(&mut polls, n));
        relays.register(&mut polls);
        sys::poll(&mut polls, -1);
        let ready = sys::ready(&polls);
        drop(polls);
        relays.service(&ready, &mut buf);
        let is_ready = |at: Option<usize>| at.is_some_and(|i| ready[i]);
        if is_ready(notices_at) {
            notices.read(reporter);
        }
        for sig in sys::read_signals(signals) {
            match (sig, master) {
                (Signal::SIGWINCH, Some(m)) => sys::sync_window_size(stdin.as_fd(), m),
                (Signal::SIGCHLD, _) => {
                    if let Some(pid) = child {
                        if let Some((_, code)) = sys::waitpid(pid, true) {
                            read_messages(
                                session.status.as_fd(),
                                &mut buffer,
                                &mut not_started,
                                &mut setup_failed,
                            );
                            if let Some(m) = master {
                                drain(m, &mut buf);
                            }
                            relays.drain(&mut buf);
                            notices.drain(reporter);
                            notices.drain(reporter);
                            drop(raw);
                            if let Some(f) = setup_failed {
                                return Err(f);
                            }
                            return Ok((not_started.unwrap_or(Outcome::Exited(code)), false, None));
                        }
                    }
                }
                (Signal::SIGTERM, _) if session.hang_up_on_term => {
                    sys::kill(session.forward_to, Signal::SIGHUP);
                }
                (sig, _) if FORWARDED.contains(&sig) => {
                    sys::kill(session.forward_to, sig);
                }
                _ => {}
            }
        }
        if let Some(o) = output.filter(|_| is_ready(output_at)) {
            if !pass_output(o, &mut buf, reporter) {
                output = None;
            }
        }
        if let Some(m) = master.filter(|_| is_ready(master_at)) {
            if let Some(n) = sys::read_some(m, &mut buf) {
                sys::write_all(stdout.as_fd(), &buf[..n]);
            }
        }
        if let Some(m) = master.filter(|_| is_ready(stdin_at)) {
            match sys::read_some(stdin.as_fd(), &mut buf) {
                Some(n) if n > 0 => {
                    let n = typed.filter(&mut buf[..n]);
                    sys::write_all(m, &buf[..n]);
                }
                Some(_) => {}
                None => stdin_open = false,
            }
        }
        if is_ready(status_at) {
            let mut chunk = [0u8; 4096];
            match sys::read_some(session.status.as_fd(), &mut chunk) {
                Some(n) => buffer.extend_from_slice(&chunk[..n]),
                None if child.is_some() => {
                    // The command exec'd (the pipe is close-on-exec) or failed; SIGCHLD decides.
                    status_open = false;
                }
                None => {
                    // Everything inside closed the pipe without a verdict: pid 1 died.
                    drain_output(output, &mut buf, reporter);
                    relays.drain(&mut buf);
                    notices.drain(reporter);
                    drop(raw);
                    if let Some(f) = setup_failed {
                        return Err(f);
                    }
                    return Ok((Outcome::Exited(137), true, None));
                }
            }
            for message in channel::parse(&mut buffer) {
                match message {
                    Message::Attachable | Message::Started { .. } | Message::MountFuse { .. } => {}
                    Message::SetupFailed {
                        step,
                        path,
                        errno,
                        detail,
                        kind,
                    } => {
                        setup_failed = Some(setup_error(step, path, errno, detail, kind));
                    }
                    Message::ExecFailed { program, errno } => {
                        not_started = Some(Outcome::NotStarted { program, errno });
                    }
                    Message::Exited { code, last, usage } => {
                        if let Some(m) = master {
                            drain(m, &mut buf);
                        }
                        drain_output(output, &mut buf, reporter);
                        relays.drain(&mut buf);
                        notices.drain(reporter);
                        drop(raw);
                        if let Some(f) = setup_failed {
                            return Err(f);
                        }
                        return Ok((not_started.unwrap_or(Outcome::Exited(code)), last, usage));
                    }
                }
            }
        }
    }
}

/// The egress forwarder's reports, read as they come (JSON lines).
struct Notices<'fd> {
    fd: Option<BorrowedFd<'fd>>,
    pending: Vec<u8>,
}

impl<'fd> Notices<'fd> {
    fn new(fd: Option<BorrowedFd<'fd>>) -> Self {
        Self {
            fd,
            pending: Vec::new(),
        }
    }

    /// Reads what is there (the fd is ready) and reports each whole line.
    fn read(&mut self, reporter: &dyn RunReporter) {
        let Some(fd) = self.fd else { return };
        let mut chunk = [0u8; 4096];
        match sys::read_some(fd, &mut chunk) {
            Some(n) => self.pending.extend_from_slice(&chunk[..n]),
            None => self.fd = None,
        }
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Ok(blocked) =
                serde_json::from_slice::<crate::runtime::net::egress::refusals::Blocked>(&line)
            {
                reporter.egress_blocked(&blocked.target, &blocked.reason);
            }
        }
    }

    /// Reports what the forwarder wrote before the command ended.
    fn drain(&mut self, reporter: &dyn RunReporter) {
        while let Some(fd) = self.fd {
            let mut polls = [sys::PollFd::new(fd, sys::PollFlags::POLLIN)];
            if sys::poll(&mut polls, 0) == 0 {
                return;
            }
            self.read(reporter);
        }
    }
}

/// Hands what is in the output pipe to the reporter; false at its end.
fn pass_output(fd: BorrowedFd<'_>, buf: &mut [u8], reporter: &dyn RunReporter) -> bool {
    match sys::read_some(fd, buf) {
        Some(n) if n > 0 => {
            reporter.output(&buf[..n]);
            true
        }
        _ => false,
    }
}

/// Reads the captured output to its end (every writer is gone once the command and what it
/// left behind are), within a bound.
fn drain_output(fd: Option<BorrowedFd<'_>>, buf: &mut [u8], reporter: &dyn RunReporter) {
    let Some(fd) = fd else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if !sys::readable(fd, 100) || !pass_output(fd, buf, reporter) {
            return;
        }
    }
}

/// Copies what the command wrote just before it ended to our stdout.
fn drain(master: BorrowedFd<'_>, buf: &mut [u8]) {
    let stdout = std::io::stdout();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while std::time::Instant::now() < deadline {
        if !sys::readable(master, 50) {
            return;
        }
        match sys::read_some(master, buf) {
            Some(n) if n > 0 => {
                sys::write_all(stdout.as_fd(), &buf[..n]);
            }
            Some(_) => {}
            None => return,
        }
    }
}

/// Picks up an ExecFailed or SetupFailed that may still sit in the pipe after the child ended.
fn read_messages(
    fd: BorrowedFd<'_>,
    buffer: &mut Vec<u8>,
    not_started: &mut Option<Outcome>,
    setup_failed: &mut Option<RuntimeError>,
) {
    let mut chunk = [0u8; 4096];
    while sys::readable(fd, 0) {
        match sys::read_some(fd, &mut chunk) {
            Some(n) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    for message in channel::parse(buffer) {
        match message {
            Message::ExecFailed { program, errno } => {
                *not_started = Some(Outcome::NotStarted { program, errno });
            }
            Message::SetupFailed {
                step,
                path,
                errno,
                detail,
                kind,
            } => *setup_failed = Some(setup_error(step, path, errno, detail, kind)),
            _ => {}
        }
    }
}
