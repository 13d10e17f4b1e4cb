//! pid 1 of a container: sets up the root file system, starts the command, then reaps zombies
//! and forwards signals until the command ends and nothing else runs.
//!
//! Runs in the child `monitor::start` clones into new mount, pid, ipc, uts (and net)
//! namespaces, inside the store's user namespace, so it holds every capability there. The
//! order of the checklist matters where noted.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};

use nix::sys::signal::Signal;
use std::path::Path;

use crate::runtime::cgroups::metering;
use crate::runtime::cgroups::metering::Usage;
use crate::runtime::plan::steps::RootfsStep;
use crate::runtime::plan::{EtcContent, EtcFile, LaunchPlan, Network, OverlayChoice};
use crate::runtime::process::channel;
use crate::runtime::process::channel::FailureKind;
use crate::runtime::process::channel::Message;
use crate::runtime::process::control;
use crate::runtime::process::control::Control;
use crate::runtime::process::exec;
use crate::runtime::process::nest;
use crate::runtime::rootfs::etc_files;
use crate::runtime::rootfs::mounts;
use crate::runtime::rootfs::mounts::MountFailure;
use crate::runtime::rootfs::mounts::RootDir;
use crate::runtime::stdio::ends::CommandSide;

/// The fds pid 1 inherits from the monitor.
pub struct InitFds {
    /// Messages to the monitor.
    pub status: OwnedFd,
    /// EOF here without a goodbye means the monitor died: end the container.
    pub control: OwnedFd,
    /// The command's side of its stdio (pipe ends; for a terminal, the console socket).
    pub stdio: CommandSide,
    /// The seccomp filter for the command and for pid 1 itself (none: unconfined).
    pub filter: Option<seccompiler::BpfProgram>,
    /// /dev/fuse, when the root may have to fall back to fuse-overlayfs.
    pub fuse: Option<OwnedFd>,
    /// The container's cgroup v1 `tasks` files, opened by the monitor: pid 1 enters them
    /// itself before anything else (see `Cgroup::task_files`).
    pub cgroup_tasks: Vec<OwnedFd>,
    /// A warm network namespace, pasta already attached (see `warm`), to enter instead of
    /// a new one.
    pub netns: Option<OwnedFd>,
}

/// Signals pid 1 forwards to the command; SIGINT and SIGQUIT go to its whole process group,
/// as a terminal's Ctrl-C and Ctrl-\ would.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Runs as the cloned child; never returns.
pub fn run(plan: &LaunchPlan, fds: InitFds) -> ! {
    let InitFds {
        status: status_pipe,
        control,
        mut stdio,
        filter,
        fuse,
        cgroup_tasks,
        netns,
    } = fds;
    let status = status_pipe.as_fd();
    // Into the warm network first: /sys, mounted below, shows the network it is mounted in.
    let warm = netns.is_some();
    if let Some(netns) = netns {
        if let Err(e) = sys::setns(netns.as_fd(), libc::CLONE_NEWNET) {
            report(
                status,
                &failure("enter the prepared network", Path::new("/"))(e),
            );
            sys::exit_now(125);
        }
    }
    // 0. Into the limits, while our uid is still the user's (v1 lets a user move only its own
    //    processes); nothing of ours has run yet.
    for tasks in cgroup_tasks {
        if let Err(e) = crate::runtime::cgroups::enter_self(tasks.as_fd()) {
            report(
                status,
                &failure("enter the container's cgroup", Path::new("tasks"))(e),
            );
            sys::exit_now(125);
        }
    }
    let mut words = Control::new(control.as_fd());
    let overlay = match setup(plan, status, &mut words, fuse, warm) {
        Ok(overlay) => overlay,
        Err(failure) => {
            report(status, &failure);
            sys::exit_now(125);
        }
    };
    // The command's terminal lives in the container's devpts (so `tty` names it); its master
    // goes to the monitor, which relays it to the host's terminal.
    if let Some(console) = stdio.console.take() {
        let user = &plan.process.user;
        let opened = sys::open_pty_in_root().and_then(|(master, slave)| {
            // The user's own terminal, as on the host: programs reopen /dev/tty.
            if !plan.process.as_root && user.ids_mapped {
                sys::fchown(slave.as_fd(), user.uid, user.gid)?;
            }
            sys::send_fd(console.as_fd(), master.as_fd()).map(|()| slave)
        });
        match opened {
            Ok(slave) => stdio.fds[0] = Some(slave),
            Err(e) => {
                report(
                    status,
                    &failure("open the terminal in", Path::new("/dev/pts"))(e),
                );
                sys::exit_now(125);
            }
        }
    }
    // Joiners find the container's processes by this (pid 1 itself is not dumpable).
    let pid_ns = fs_err::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    channel::send(
        status,
        &Message::Started {
            pid_ns,
            overlay: overlay.to_owned(),
        },
    );
    // Wait for the monitor's go: the network helper attaches to our namespaces meanwhile.
    if !words.wait_for(control::GO) {
        sys::exit_now(137);
    }
    // From here on nothing may open /proc/1/{exe,fd,mem} or ptrace us (CVE-2019-5736); the
    // helper needed our namespaces only until now.
    if let Err(e) = sys::set_dumpable(false) {
        report(status, &failure("mark pid 1 undumpable", Path::new("/"))(e));
        sys::exit_now(125);
    }
    let code = supervise(plan, status, control, stdio, filter.as_ref());
    sys::exit_now(code)
}

fn failure(step: &str, path: &Path) -> impl Fn(std::io::Error) -> MountFailure {
    let (step, path) = (step.to_owned(), path.to_owned());
    move |error| MountFailure::new(&step, &path, error)
}

/// Tells the monitor why set-up failed, keeping the errno and what is known of the cause.
fn report(status: BorrowedFd<'_>, failure: &MountFailure) {
    channel::send(
        status,
        &Message::SetupFailed {
            step: failure.step.clone(),
            path: failure.path.display().to_string(),
            errno: failure.error.raw_os_error(),
            detail: failure.error.to_string(),
            kind: failure.kind,
        },
    );
}

/// The root file system, as a flat checklist. Returns which overlay was mounted.
fn setup(
    plan: &LaunchPlan,
    status: BorrowedFd<'_>,
    control: &mut Control<'_>,
    mut fuse: Option<OwnedFd>,
    warm: bool,
) -> Result<&'static str, MountFailure> {
    let merged = plan.merged();
    // 1. Our own session, so the host terminal's signals reach the monitor, which forwards them;
    //    and a session keyring of our own, so no key of the host's is reachable from here.
    sys::setsid();
    sys::join_new_session_keyring()
        .map_err(failure("make a new session keyring", Path::new("/")))?;
    // 2. Dumpable until the network helper has attached to our namespaces (gaining capabilities
    //    in the user namespace made us undumpable); undumpable again before the command starts.
    sys::set_dumpable(true).map_err(failure("let the network helper attach", Path::new("/")))?;
    if matches!(
        plan.network.mode,
        Network::Helper(_) | Network::Filtered | Network::Relay
    ) && !warm
    {
        channel::send(status, &Message::Attachable);
    }
    // 3. No mount event may propagate back to the host.
    let slash = sys::cstring("/").map_err(failure("make mounts private", Path::new("/")))?;
    sys::mount(None, &slash, None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(failure("make mounts private", Path::new("/")))?;
    // 3b. Servers inside may listen on ports below 1024 without capabilities, as in podman.
    //     Written now: per-network-namespace sysctls follow the writer, and /proc/sys becomes
    //     read-only below.
    if plan.network.mode != Network::Host {
        fs_err::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0").map_err(failure(
            "allow unprivileged ports",
            Path::new("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        ))?;
    }
    // 4. The root, step by step in the plan's order (`RootfsPlan::steps`): the overlay of the
    //    image's layers, our own cgroup namespace, /proc, /sys, /dev, /tmp, the cgroups, the
    //    home, the project dir, masks, /etc files, caches, the host's CAs, what is forwarded.
    let mut overlay = "";
    // The new root, opened once the overlay is on it, for every step after.
    let mut root: Option<RootDir> = None;
    for step in plan.rootfs.steps() {
        match step {
            RootfsStep::Overlay => {
                // The container's upper dir, whose mode and owner the merged root takes:
                // the image root's.
                root_like_the_images(plan)
                    .map_err(failure("give the root the image's mode", &plan.upper()))?;
                overlay = mount_overlay(plan, status, control, fuse.take())?;
            }
            RootfsStep::CgroupNamespace => {
                // Once we are in the sandbox's cgroups (the monitor moves us on v2, or has
                // systemd do it): /proc/self/cgroup and the cgroups mounted next are rooted
                // there, so a JVM or Go sizes itself by the sandbox's limits.
                if !control.wait_for(control::IN_CGROUPS) {
                    sys::exit_now(125);
                }
                sys::unshare(libc::CLONE_NEWCGROUP).map_err(failure(
                    "make the cgroup namespace",
                    Path::new("/sys/fs/cgroup"),
                ))?;
            }
            RootfsStep::Mount(op) => mounts::apply(opened(&mut root, &merged)?, &op)?,
            RootfsStep::WriteEtc(file) => write_etc(plan, opened(&mut root, &merged)?, &file)?,
        }
    }
    // 5. Switch root; the old root is detached, so nothing of the host stays reachable.
    pivot(&merged)?;
    // 6. Hostname and loopback.
    sys::sethostname(&plan.hostname).map_err(failure("set the hostname", Path::new("/")))?;
    if plan.network.mode != Network::Host {
        sys::loopback_up().map_err(failure("bring up lo", Path::new("/")))?;
    }
    Ok(overlay)
}

/// Gives the upper dir the mode and owner of the image's top layer's root. The overlay's root
/// takes them from the upper dir, which sandbox made 0700 and the user's: then no other id
/// inside (a daemon's user, `_apt`, `postgres`) could reach anything, as podman's `/` (the
/// image root's: root, 0755 on Debian) lets them. The container dir around it stays 0700.
fn root_like_the_images(plan: &LaunchPlan) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some(top) = plan.rootfs.layers.last() else {
        return Ok(());
    };
    let image_root = fs_err::symlink_metadata(top)?;
    // A layer without an entry for its root leaves the dir the store made, which is ours:
    // such a root is root's, as podman's is.
    let (uid, gid) = if image_root.uid() == nix::unistd::geteuid().as_raw() {
        (0, 0)
    } else {
        (image_root.uid(), image_root.gid())
    };
    let upper = plan.upper();
    std::os::unix::fs::lchown(&upper, Some(uid), Some(gid))?;
    fs_err::set_permissions(
        &upper,
        std::fs::Permissions::from_mode(image_root.mode() & 0o7777),
    )
}

/// Kernel overlayfs with `userxattr` (Linux 5.11+), its lower layers given one `lowerdir+`
/// call each (Linux 6.8+; before, one `lowerdir=` option, which holds about 57 layers). When
/// the kernel refuses (or fuse is asked for), the monitor mounts fuse-overlayfs from outside
/// the container's pid namespace: it holds fds of the store, which nothing inside may reach.
fn mount_overlay(
    plan: &LaunchPlan,
    status: BorrowedFd<'_>,
    control: &mut Control<'_>,
    fuse: Option<OwnedFd>,
) -> Result<&'static str, MountFailure> {
    let merged = plan.merged();
    let fail = failure("mount the overlay on", &merged);
    let bad_char = |p: &Path| p.to_string_lossy().contains([':', ',', '\n']);
    let layers = &plan.rootfs.layers;
    if layers
        .iter()
        .chain([&plan.upper(), &plan.work()])
        .any(|p| bad_char(p))
    {
        return Err(fail(std::io::Error::other(
            "a store path contains `:` or `,`, which overlayfs cannot take; use --root elsewhere",
        )));
    }
    let why = match plan.rootfs.overlay {
        OverlayChoice::Fuse => "fuse-overlayfs was asked for".to_owned(),
        OverlayChoice::Kernel | OverlayChoice::Auto => match kernel_overlay(plan) {
            Ok(()) => return Ok("kernel overlayfs"),
            Err(e) if plan.rootfs.overlay == OverlayChoice::Kernel => {
                return Err(MountFailure {
                    kind: FailureKind::KernelOverlay,
                    ..fail(e)
                });
            }
            Err(e) => format!("the kernel refused overlayfs ({e})"),
        },
    };
    let Some(fuse) = fuse else {
        return Err(MountFailure {
            kind: FailureKind::NoOverlay,
            ..fail(std::io::Error::other(format!(
                "{why}, and /dev/fuse could not be opened"
            )))
        });
    };
    // We mount the FUSE file system; the monitor starts its server outside our pid namespace.
    let fuse_options = format!(
        "fd={},rootmode=40000,user_id={},group_id={},allow_other,default_permissions",
        fuse.as_raw_fd(),
        nix::unistd::geteuid(),
        nix::unistd::getegid()
    );
    let fstype = c"fuse.fuse-overlayfs";
    sys::mount(
        Some(c"fuse-overlayfs"),
        &sys::cpath(&merged).map_err(&fail)?,
        Some(fstype),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&sys::cstring(&fuse_options).map_err(&fail)?),
    )
    .map_err(|e| MountFailure {
        kind: FailureKind::NoOverlay,
        ..fail(std::io::Error::new(
            e.kind(),
            format!("{why}, and the FUSE mount failed ({e})"),
        ))
    })?;
    // Only the server may hold the connection, so that if it dies our requests fail instead
    // of waiting forever.
    drop(fuse);
    channel::send(status, &Message::MountFuse { why });
    if !control.wait_for(control::FUSE_READY) {
        // The monitor reports why; it ends us.
        sys::exit_now(125);
    }
    Ok("fuse-overlayfs")
}

/// Mounts the kernel's overlayfs on the new root: through the new mount API with one
/// `lowerdir+` per layer (Linux 6.8+), else one `lowerdir=` option string.
fn kernel_overlay(plan: &LaunchPlan) -> std::io::Result<()> {
    match overlay_layer_by_layer(plan) {
        // Before 6.5 overlayfs has no parser of its own for the new API: `lowerdir+` is taken
        // as a string and refused only when the mount is made, as an unknown option.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            overlay_option_string(plan)
        }
        done => done,
    }
}

/// Lower dirs given relative to the layers dir (our working dir while mounting).
fn overlay_layer_by_layer(plan: &LaunchPlan) -> std::io::Result<()> {
    let merged = plan.merged();
    sys::chdir(&sys::cpath(plan.layers_dir())?)?;
    let context = sys::FsContext::open(c"overlay")?;
    for lower in plan.lower_dirs() {
        context.set("lowerdir+", &lower)?;
    }
    context.set("upperdir", &plan.upper().display().to_string())?;
    context.set("workdir", &plan.work().display().to_string())?;
    context.flag("userxattr")?;
    let target = sys::open_dir_path(&sys::cpath(&merged)?)?;
    context.mount_on(target.as_fd())
}

/// One option string, which the kernel takes up to a page long. Each lower dir is named by an
/// fd of ours, from /proc/self/fd as the working dir (`7:8:9`): a few bytes a layer, so any
/// image fits (overlayfs stacks at most 500), where the layers' own paths would fit about 57.
fn overlay_option_string(plan: &LaunchPlan) -> std::io::Result<()> {
    let layers_dir = sys::open_dir_path(&sys::cpath(plan.layers_dir())?)?;
    let fds = plan
        .lower_dirs()
        .iter()
        .map(|lower| {
            sys::open_at_nofollow(
                layers_dir.as_fd(),
                &sys::cstring(lower)?,
                libc::O_PATH | libc::O_DIRECTORY,
            )
        })
        .collect::<std::io::Result<Vec<OwnedFd>>>()?;
    let lower: Vec<String> = fds.iter().map(|fd| fd.as_raw_fd().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.join(":"),
        plan.upper().display(),
        plan.work().display()
    );
    sys::chdir(c"/proc/self/fd")?;
    let overlay = sys::cstring("overlay")?;
    let mounted = sys::mount(
        Some(&overlay),
        &sys::cpath(&plan.merged())?,
        Some(&overlay),
        0,
        Some(&sys::cstring(&options)?),
    );
    sys::chdir(&sys::cpath(plan.layers_dir())?)?;
    mounted
}

/// The new root at `merged`, opened the first time it is asked for.
fn opened<'a>(slot: &'a mut Option<RootDir>, merged: &Path) -> Result<&'a RootDir, MountFailure> {
    match slot {
        Some(root) => Ok(root),
        None => {
            Ok(slot.insert(RootDir::open(merged).map_err(failure("open the new root", merged))?))
        }
    }
}

/// One of the plan's /etc files (passwd and group merged with the image's own, read through
/// no link and with a size cap).
fn write_etc(plan: &LaunchPlan, root: &RootDir, file: &EtcFile) -> Result<(), MountFailure> {
    let user = &plan.process.user;
    let read = |p: &Path| {
        root.read_small(p, etc_files::READ_LIMIT)
            .unwrap_or_default()
    };
    let text = match &file.content {
        EtcContent::Passwd => etc_files::passwd(&read(&file.path), user),
        EtcContent::Group => etc_files::group(&read(&file.path), user),
        EtcContent::Text(text) => text.clone(),
    };
    root.write_file(&file.path, &text, file.mode, file.owner)
        .map_err(failure("write", &file.path))
}

fn pivot(merged: &Path) -> Result<(), MountFailure> {
    let fail = failure("switch to the new root", merged);
    let target = sys::cpath(merged).map_err(&fail)?;
    sys::chdir(&target).map_err(&fail)?;
    let dot = sys::cstring(".").map_err(&fail)?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only
    // the new root (as runc does).
    sys::pivot_root(&dot, &dot).map_err(&fail)?;
    sys::umount_detach(&dot).map_err(&fail)?;
    sys::chdir(&sys::cstring("/").map_err(&fail)?).map_err(&fail)
}

/// Blocks the signals pid 1 and the monitor handle, and reads them through a signalfd.
pub fn signal_fd() -> std::io::Result<sys::SignalFd> {
    let mut signals = FORWARDED.to_vec();
    signals.push(Signal::SIGCHLD);
    sys::signal_fd(&signals)
}

/// Starts the command, then reaps and forwards until it ends and nothing else runs.
/// What the command gets for `sig`: an interactive shell ignores SIGTERM, so `enter`'s shell
/// gets SIGHUP instead, which ends it (and its jobs) as a closed terminal would.
fn for_command(plan: &LaunchPlan, sig: Signal) -> Signal {
    match (&plan.process.program, sig) {
        (crate::runtime::plan::Program::LoginShell, Signal::SIGTERM) => Signal::SIGHUP,
        _ => sig,
    }
}

fn supervise(
    plan: &LaunchPlan,
    status: BorrowedFd<'_>,
    control: OwnedFd,
    stdio: CommandSide,
    filter: Option<&seccompiler::BpfProgram>,
) -> i32 {
    let signals = match signal_fd() {
        Ok(fd) => fd,
        Err(e) => {
            report(status, &failure("create a signalfd", Path::new("/"))(e));
            return 125;
        }
    };
    let (nest_parent, nest_child) = match nest::pair() {
        Ok(pair) => pair,
        Err(e) => {
            report(
                status,
                &failure("make the nesting pipes", Path::new("/"))(e),
            );
            return 125;
        }
    };
    // pid 1 is single-threaded (a clone of the single-threaded monitor).
    let forked = sys::SingleThreaded::check()
        .ok_or_else(|| std::io::Error::other("pid 1 has more than one thread"))
        .and_then(|proof| sys::fork(&proof));
    let child = match forked {
        Ok(sys::Forked::Parent(pid)) => pid,
        Ok(sys::Forked::Child(forked)) => {
            drop(signals);
            drop(control);
            drop(nest_parent);
            exec::exec(
                forked,
                &plan.process,
                status,
                stdio.for_exec(plan.process.stdio),
                exec::Confinement {
                    nest: Some(nest_child),
                    filter,
                    cgroups: &[],
                },
            );
        }
        Err(e) => {
            report(status, &failure("start the command", Path::new("/"))(e));
            return 125;
        }
    };
    drop(nest_child);
    if let Err(e) = nest_parent.map(child) {
        // The child fails on its own (its pipe closed) and reports; this is the cause.
        report(
            status,
            &failure("map the command's nested user namespace", Path::new("/"))(e),
        );
    }
    // pid 1 itself runs under the same filter from here on: it only waits, reads /proc and
    // signals.
    if let Some(filter) = filter {
        if let Err(e) = sys::install_seccomp(filter) {
            report(
                status,
                &failure("install the seccomp filter", Path::new("/"))(e),
            );
            sys::kill(child, Signal::SIGKILL);
        }
    }
    // pid 1 keeps nothing of the user's stdio or terminal, so readers see EOF when the command ends.
    drop(stdio);
    sys::stdio_to_dev_null();
    event_loop(plan, child, status, &signals, control)
}

fn event_loop(
    plan: &LaunchPlan,
    child: libc::pid_t,
    status: BorrowedFd<'_>,
    signals: &sys::SignalFd,
    control: OwnedFd,
) -> i32 {
    let mut child_code: Option<i32> = None;
    let mut usage: Option<Usage> = None;
    let mut control = Some(control);
    let mut monitor_said_bye = false;
    loop {
        let mut polls = vec![sys::PollFd::new(signals.as_fd(), sys::PollFlags::POLLIN)];
        if let Some(c) = &control {
            polls.push(sys::PollFd::new(c.as_fd(), sys::PollFlags::POLLIN));
        }
        // Once the command is done, look now and then for joined sessions ending.
        let timeout = if child_code.is_some() { 200 } else { -1 };
        sys::poll(&mut polls, timeout);
        let ready = sys::ready(&polls);
        drop(polls);
        for sig in sys::read_signals(signals) {
            if sig == Signal::SIGCHLD {
                continue;
            }
            if child_code.is_none() {
                // Ctrl-C and Ctrl-\ go to the command's whole process group, as a terminal's do.
                let target = if sig == Signal::SIGINT || sig == Signal::SIGQUIT {
                    -child
                } else {
                    child
                };
                sys::kill(target, for_command(plan, sig));
            }
        }
        reap(plan, child, &mut child_code, &mut usage, status);
        if let (Some(true), Some(c)) = (ready.get(1), &control) {
            let mut buf = [0u8; 16];
            match sys::read_some(c.as_fd(), &mut buf) {
                Some(n) if n > 0 => monitor_said_bye = true,
                // Interrupted: look again.
                Some(_) => {}
                None => {
                    control = None;
                    if !monitor_said_bye {
                        // The monitor was killed: end everything (exiting pid 1 kills the namespace).
                        return 137;
                    }
                }
            }
        }
        if let Some(code) = child_code {
            // The container lives while a joined session does; what the sessions left behind
            // (a daemon started from one) ends with the last of them: pid 1's exit kills
            // whatever is still in the namespace.
            if !joined_session_alive() {
                channel::send(
                    status,
                    &Message::Exited {
                        code,
                        last: true,
                        usage: usage.clone(),
                    },
                );
                return code;
            }
        }
    }
}

/// Reaps every exited child; records the command's own status and reports it once.
fn reap(
    plan: &LaunchPlan,
    child: libc::pid_t,
    child_code: &mut Option<i32>,
    usage: &mut Option<Usage>,
    status: BorrowedFd<'_>,
) {
    loop {
        let Some((pid, code)) = sys::waitpid(-1, true) else {
            return;
        };
        if pid == child {
            *child_code = Some(code);
            // What the command left behind goes with it, daemons that left its session too;
            // only joined sessions keep the container alive.
            kill_leftovers(true);
            if plan.meter {
                *usage = Some(command_usage(plan));
            }
            // Only a joined session keeps the container: anything else still dying goes with
            // pid 1, so the caller may start the next container at once.
            if joined_session_alive() {
                channel::send(
                    status,
                    &Message::Exited {
                        code,
                        last: false,
                        usage: usage.clone(),
                    },
                );
            }
        }
    }
}

/// What the command and what it left used, as pid 1 sees it: its children's rusage, and the
/// traffic of the sandbox's own network namespace.
fn command_usage(plan: &LaunchPlan) -> Usage {
    let mut usage = metering::children_usage();
    if plan.network.mode != Network::Host {
        let dev = fs_err::read_to_string("/proc/self/net/dev").unwrap_or_default();
        (usage.net_in, usage.net_out) = metering::net_totals(&dev);
    }
    usage
}

/// (ppid, session) of a process, from /proc/PID/stat.
fn parent_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split(' ');
    // After the command name: state, ppid, pgrp, session.
    let ppid = fields.nth(1)?.parse().ok()?;
    let session = fields.nth(1)?.parse().ok()?;
    Some((ppid, session))
}

/// Whether a session that joined from outside still runs: its leader has no parent inside the
/// namespace (ppid 0: its parent is the joining monitor).
fn joined_session_alive() -> bool {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != 1)
        .any(|pid| parent_and_session(pid).is_some_and(|(ppid, _)| ppid == 0))
}

/// SIGKILL to every process but pid 1 and (with `spare_joined`) the sessions that joined from
/// outside. A joined session's leader has no parent inside the namespace (ppid 0: its parent
/// is the joining monitor); everything else descends from the command, daemons that left its
/// session included.
fn kill_leftovers(spare_joined: bool) {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return;
    };
    let processes: Vec<(i32, i32, i32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != 1)
        .filter_map(|pid| parent_and_session(pid).map(|(ppid, sid)| (pid, ppid, sid)))
        .collect();
    let joined: Vec<i32> = processes
        .iter()
        .filter(|(_, ppid, _)| spare_joined && *ppid == 0)
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut killed = Vec::new();
    for (pid, _, sid) in &processes {
        if !joined.contains(sid) {
            sys::kill(*pid, Signal::SIGKILL);
            killed.push(*pid);
        }
    }
    // SIGKILL takes effect asynchronously: wait (bounded) until what it hit is gone and reaped,
    // so it does not count as still running. Otherwise the monitor would be told that joined
    // sessions remain, and the next command would try to join a container about to end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        loop {
            if sys::waitpid(-1, true).is_none() {
                break;
            }
        }
        if killed.iter().all(|pid| !alive(*pid)) || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat.get(end + 2..end + 3))
            .is_some_and(|state| state != "Z")
    })
}
