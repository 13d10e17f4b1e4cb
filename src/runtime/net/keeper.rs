//! The network keeper: a small process of sandbox's own that starts a container's network
//! helper and keeps it, with the UDP relays, for as long as the container lives.
//!
//! Why a process of its own: the helper must outlive the command that started the container
//! when a joined `enter` still runs (else that session loses its network), yet the monitor
//! must exit with the command's status. The keeper sits in its own session (the terminal's ^C
//! and hang-up reach the command, not the network) with only its own fds, and ends the helper
//! when the container's pid 1 exits (a pidfd), or when the monitor closes the control pipe
//! without saying `detach` (the container ends with it, `kill -9` of sandbox included).

use std::io::Read as _;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runtime::error::RuntimeError;
use crate::runtime::net::egress;
use crate::runtime::net::egress::Policy;
use crate::runtime::net::helpers;
use crate::runtime::net::helpers::Helper;
use crate::settings::network::PortMapping;

/// What the keeper connects the sandbox with.
pub enum Connection<'a> {
    /// A rootless helper (pasta, slirp4netns), with published ports and host loopback.
    Helper {
        helper: Helper,
        ports: &'a [PortMapping],
        host_loopback: bool,
    },
    /// sandbox's own forwarder, letting through what the allow-list names, with its own
    /// relays for published ports.
    Filtered {
        policy: &'a Policy,
        ports: &'a [PortMapping],
    },
    /// sandbox's own open network (`relay`): every connection made again from the host's
    /// side, with the same relays for published ports.
    Relay {
        options: &'a crate::runtime::net::relay::Options,
        ports: &'a [PortMapping],
    },
}

/// What the keeper holds until the container ends (dropped: ended).
enum Held {
    Helper {
        _running: helpers::Running,
    },
    Udp {
        _relay: crate::runtime::net::published_udp::UdpRelay,
    },
}

impl Connection<'_> {
    fn name(&self) -> &'static str {
        match self {
            Connection::Helper { helper, .. } => helper.binary(),
            Connection::Filtered { .. } => "sandbox's egress forwarder",
            Connection::Relay { .. } => "sandbox's network relay",
        }
    }
}

/// What the keeper tells the monitor once, when the helper is ready or could not start.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Ready,
    Missing,
    PortUnavailable {
        port: String,
        errno: Option<i32>,
        detail: String,
    },
    Failed {
        error: String,
    },
}

/// The monitor's handle on a running keeper.
pub struct Keeper {
    pid: libc::pid_t,
    control: Option<OwnedFd>,
    /// The helper listens on published host ports: wait for them to be free before returning.
    holds_ports: bool,
    /// The forwarder's reports of blocked connections (JSON lines), for the monitor to show.
    pub notices: Option<OwnedFd>,
}

impl Keeper {
    /// The container ended: ends the keeper and waits until it has, so what it wrote last
    /// (the traffic it counted) is there to read.
    pub fn finish(mut self) {
        if self.control.take().is_some() {
            reap(self.pid);
        }
    }

    /// The command ended but joined sessions still run: the keeper stays until pid 1 exits.
    pub fn detach(mut self) {
        if let Some(control) = self.control.take() {
            let _ = sys::write_all(control.as_fd(), b"detach\n");
        }
    }
}

impl Drop for Keeper {
    /// The container ends with us: closing the control pipe ends the helper.
    fn drop(&mut self) {
        if self.control.take().is_some() && self.holds_ports {
            reap(self.pid);
        }
    }
}

fn reap(pid: libc::pid_t) {
    let _ = sys::waitpid(pid, false);
}

/// Forks the keeper, which connects pid 1's network namespace; returns once the helper (or
/// forwarder) is ready, or with why it is not.
pub fn start(
    connection: &Connection<'_>,
    pid1: libc::pid_t,
    dir: &Path,
) -> Result<Keeper, RuntimeError> {
    let pidfd = sys::pidfd_open(pid1)?;
    let (report_read, report_write) = sys::pipe()?;
    let (control_read, control_write) = sys::pipe()?;
    let (notices_read, notices_write) = sys::pipe()?;
    // The monitor is single-threaded here (it checked before cloning pid 1 and has started no
    // thread since); the child only runs `keep`, which never returns.
    let single = sys::SingleThreaded::check().ok_or_else(|| {
        RuntimeError::Internal("internal error: a thread runs when the network starts".into())
    })?;
    let pid = match sys::fork(&single)? {
        sys::Forked::Parent(pid) => pid,
        sys::Forked::Child(child) => {
            drop(notices_read);
            keep(
                child,
                connection,
                pid1,
                dir,
                [pidfd, report_write, control_read, notices_write],
            );
        }
    };
    drop((pidfd, report_write, control_read, notices_write));
    let tool = connection.name();
    let holds_ports = match connection {
        Connection::Helper { ports, .. }
        | Connection::Filtered { ports, .. }
        | Connection::Relay { ports, .. } => !ports.is_empty(),
    };
    let mut line = Vec::new();
    let _ = std::fs::File::from(report_read).read_to_end(&mut line);
    let report = serde_json::from_slice::<Report>(&line).ok();
    let failure = match report {
        Some(Report::Ready) => {
            return Ok(Keeper {
                pid,
                control: Some(control_write),
                holds_ports,
                notices: matches!(
                    connection,
                    Connection::Filtered { .. } | Connection::Relay { .. }
                )
                .then_some(notices_read),
            })
        }
        Some(Report::Missing) => RuntimeError::MissingNetworkHelper { tool },
        Some(Report::PortUnavailable {
            port,
            errno,
            detail,
        }) => RuntimeError::PortUnavailable {
            port,
            source: std::io::Error::new(
                errno.map_or(std::io::ErrorKind::Other, |e| {
                    std::io::Error::from_raw_os_error(e).kind()
                }),
                detail,
            ),
        },
        Some(Report::Failed { error }) => RuntimeError::NetworkHelper { tool, error },
        None => RuntimeError::NetworkHelper {
            tool,
            error: "sandbox's network keeper ended before the helper was ready".into(),
        },
    };
    drop(control_write);
    reap(pid);
    Err(failure)
}

/// The keeper process: never returns.
fn keep(
    child: sys::ForkedChild,
    connection: &Connection<'_>,
    pid1: libc::pid_t,
    dir: &Path,
    fds: [OwnedFd; 4],
) -> ! {
    let [pidfd, report, control, notices] = fds;
    // Not a group leader (just forked), so this starts a new session.
    sys::setsid();
    // Nothing of the monitor's stays open here: not its terminal or output pipes (a caller
    // reading our stdout to its end would wait for the container), not pid 1's control pipe
    // (its end tells pid 1 that the monitor died).
    sys::stdio_to_dev_null();
    sys::close_all_but(
        &child,
        &[
            pidfd.as_fd(),
            report.as_fd(),
            control.as_fd(),
            notices.as_fd(),
        ],
    );
    let started = match connection {
        Connection::Helper {
            helper,
            ports,
            host_loopback,
        } => helpers::start(*helper, pid1, ports, *host_loopback, dir)
            .map(|running| Some(Held::Helper { _running: running })),
        Connection::Filtered { policy, ports } => {
            start_own(connection.name(), pid1, ports, |netns| {
                egress::forwarder::start(policy, netns, notices)
            })
            .map(|relay| relay.map(|relay| Held::Udp { _relay: relay }))
        }
        Connection::Relay { options, ports } => {
            start_own(connection.name(), pid1, ports, |netns| {
                crate::runtime::net::relay::start(netns, options, notices)
            })
            .map(|relay| relay.map(|relay| Held::Udp { _relay: relay }))
        }
    };
    let answer = match started {
        Ok(running) => Ok(running),
        Err(RuntimeError::MissingNetworkHelper { .. }) => Err(Report::Missing),
        Err(RuntimeError::PortUnavailable { port, source }) => Err(Report::PortUnavailable {
            port,
            errno: source.raw_os_error(),
            detail: source.to_string(),
        }),
        Err(RuntimeError::NetworkHelper { error, .. }) => Err(Report::Failed { error }),
        Err(other) => Err(Report::Failed {
            error: other.to_string(),
        }),
    };
    // What the keeper's own relays carry, for `stats` and `--stats` (without it they show
    // only what the kernel counted). Made before the monitor hears `Ready`, so that no entry
    // appears in the container dir once the monitor may be removing it.
    let traffic = answer
        .is_ok()
        .then(|| egress::traffic::Publisher::create(dir).ok())
        .flatten()
        .map(std::sync::Arc::new);
    if let Some(traffic) = &traffic {
        traffic.keep_writing();
    }
    let message = answer.as_ref().err().unwrap_or(&Report::Ready);
    if let Ok(text) = serde_json::to_vec(message) {
        sys::write_all(report.as_fd(), &text);
    }
    drop(report);
    let Ok(running) = answer else {
        sys::exit_now(1);
    };
    wait_for_the_end(pidfd.as_fd(), control);
    drop(running);
    if let Some(traffic) = &traffic {
        traffic.finish();
    }
    sys::exit_now(0)
}

/// Sets up pid 1's network namespace with sandbox's own code, `tool` (the forwarder or the
/// relay, on threads of this process), then the relays of its published ports.
fn start_own(
    tool: &'static str,
    pid1: libc::pid_t,
    ports: &[PortMapping],
    set_up: impl FnOnce(&OwnedFd) -> std::io::Result<()>,
) -> Result<Option<crate::runtime::net::published_udp::UdpRelay>, RuntimeError> {
    let failed = |what: &str, e: std::io::Error| RuntimeError::NetworkHelper {
        tool,
        error: format!("{what}: {e}"),
    };
    let netns = fs_err::File::open(format!("/proc/{pid1}/ns/net"))
        .map(|f| OwnedFd::from(f.into_parts().0))
        .map_err(|e| failed("cannot open the sandbox's network namespace", e))?;
    set_up(&netns).map_err(|e| failed("cannot set up the sandbox's network", e))?;
    egress::inbound::start(&netns, ports)?;
    crate::runtime::net::published_udp::start(&netns, ports)
}

/// Returns when pid 1 has exited, or when the monitor closed the control pipe without `detach`.
fn wait_for_the_end(pidfd: BorrowedFd<'_>, control: OwnedFd) {
    let mut control = Some(std::fs::File::from(control));
    loop {
        let mut polls = vec![sys::PollFd::new(pidfd, sys::PollFlags::POLLIN)];
        if let Some(c) = &control {
            polls.push(sys::PollFd::new(c.as_fd(), sys::PollFlags::POLLIN));
        }
        if sys::poll(&mut polls, -1) == 0 {
            continue;
        }
        let ready = sys::ready(&polls);
        drop(polls);
        if ready[0] {
            return;
        }
        if ready.get(1) == Some(&true) {
            let mut said = [0u8; 16];
            match control.as_mut().map(|c| c.read(&mut said)) {
                Some(Ok(n)) if n > 0 && said[..n].starts_with(b"detach") => control = None,
                Some(Ok(n)) if n > 0 => {}
                // EOF (or an error) without `detach`: the container ends with its monitor.
                _ => return,
            }
        }
    }
}
