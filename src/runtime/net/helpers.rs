//! Rootless networking for a container's own network namespace: pasta (preferred) or
//! slirp4netns, started by the network keeper on pid 1's namespace once it exists, with published ports
//! and a DNS forwarder, and ended with the container. No root, no host interface changes.
//!
//! Host loopback is off by default (`--no-map-gw`, `--disable-host-loopback`): the host's
//! 127.0.0.1 services are not reachable from inside unless `host_loopback` asks for it.
//! The helper is started by the network keeper (`net_keeper`), which holds it for as long as
//! the container lives; it dies with the keeper (PR_SET_PDEATHSIG; slirp4netns also watches an
//! exit fd), so nothing is left behind, `kill -9` of sandbox included.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtime::error::RuntimeError;
use crate::runtime::net::egress::DNS_ADDRESS;
use crate::settings::network::{PortMapping, Protocol};

/// slirp4netns' built-in DNS forwarder and host address.
pub const SLIRP_DNS: &str = "10.0.2.3";
pub const SLIRP_HOST: &str = "10.0.2.2";

/// Which helper connects a container's own network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    Pasta,
    Slirp4netns,
}

impl Helper {
    pub fn binary(self) -> &'static str {
        match self {
            Helper::Pasta => "pasta",
            Helper::Slirp4netns => "slirp4netns",
        }
    }

    /// pasta when installed, else slirp4netns; `None` when neither is.
    pub fn detect() -> Option<Self> {
        [Helper::Pasta, Helper::Slirp4netns]
            .into_iter()
            .find(|h| which::which(h.binary()).is_ok())
    }

    /// The name server the container's resolv.conf names.
    pub fn dns(self) -> &'static str {
        match self {
            Helper::Pasta => DNS_ADDRESS,
            Helper::Slirp4netns => SLIRP_DNS,
        }
    }

    /// The address inside that reaches the host's loopback when that is allowed (pasta copies
    /// the host's default `gateway` inside).
    pub fn host_address(self, gateway: Option<std::net::Ipv4Addr>) -> Option<String> {
        match self {
            Helper::Pasta => gateway.map(|g| g.to_string()),
            Helper::Slirp4netns => Some(SLIRP_HOST.to_owned()),
        }
    }
}

/// The host's IPv4 default gateway (pasta copies it into the namespace).
pub fn default_gateway() -> Option<std::net::Ipv4Addr> {
    let text = fs_err::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&"00000000"))
            .then(|| u32::from_str_radix(f.get(2)?, 16).ok())
            .flatten()
            .map(|g| std::net::Ipv4Addr::from(g.swap_bytes()))
    })
}

/// Fails with the port's name when a published port cannot be bound on the host.
pub fn check_ports_free(ports: &[PortMapping]) -> Result<(), RuntimeError> {
    for p in ports {
        let address = std::net::SocketAddr::new(p.host_ip, p.host_port);
        let result = match p.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(address).map(drop),
            Protocol::Udp => std::net::UdpSocket::bind(address).map(drop),
        };
        if let Err(source) = result {
            return Err(RuntimeError::PortUnavailable {
                port: p.to_string(),
                source,
            });
        }
    }
    Ok(())
}

/// A running helper; ended (and reaped) on drop.
pub struct Running {
    child: Child,
    _exit_fd: Option<OwnedFd>,
    /// pasta's pid-file dir, removed once it ended.
    temp_dir: Option<std::path::PathBuf>,
    /// Published UDP ports, relayed by us.
    udp: Option<crate::runtime::net::published_udp::UdpRelay>,
    /// Whether it listens on published host ports, which must be free again when we return.
    holds_ports: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.temp_dir {
            let _ = fs_err::remove_dir_all(dir);
        }
    }
}

impl Running {
    /// Ends the helper and reaps it (a long-lived owner collects no zombies).
    pub fn end(mut self) {
        self.end_in_place();
    }

    /// The same, for an owner that cannot give it up.
    pub fn end_in_place(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.udp = None;
    }

    /// A helper holds nothing worth a graceful end: SIGKILL. Reaped only when it holds
    /// published ports (so the next command may bind them at once): pasta takes some 25 ms to
    /// free its tables after the signal, time the user would otherwise wait for their exit
    /// code. The keeper exits right after, and init reaps the helper.
    fn stop(&mut self) {
        let _ = self.child.kill();
        if self.holds_ports {
            let _ = self.child.wait();
        }
    }
}

fn failed(helper: Helper, child: &mut Child, why: &str) -> RuntimeError {
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("syslog")).collect();
    RuntimeError::NetworkHelper {
        tool: helper.binary(),
        error: format!("{why}: {}", lines.join("; ")),
    }
}

/// The helper gets the container's network namespace as an inherited fd at this number, named
/// `/proc/self/fd/N`: opening its own fd needs no access to pid 1's /proc entries.
const NETNS_FD: i32 = 5;

/// Starts `helper` on the network namespace of `pid` and waits until it is ready.
pub fn start(
    helper: Helper,
    pid: i32,
    ports: &[PortMapping],
    host_loopback: bool,
    dir: &Path,
) -> Result<Running, RuntimeError> {
    let open = |name: &str| {
        fs_err::File::open(format!("/proc/{pid}/ns/{name}"))
            .map(OwnedFd::from)
            .map_err(|e| RuntimeError::NetworkHelper {
                tool: helper.binary(),
                error: format!("cannot open the container's {name} namespace: {e}"),
            })
    };
    let namespaces = open("net")?;
    start_on(helper, &namespaces, ports, host_loopback, dir)
}

/// Starts `helper` on the network namespace `netns` and waits until it is ready.
pub fn start_on(
    helper: Helper,
    netns: &OwnedFd,
    ports: &[PortMapping],
    host_loopback: bool,
    dir: &Path,
) -> Result<Running, RuntimeError> {
    let binary = which::which(helper.binary()).map_err(|_| RuntimeError::MissingNetworkHelper {
        tool: helper.binary(),
    })?;
    let relay = crate::runtime::net::published_udp::start(netns, ports)?;
    let mut running = match helper {
        Helper::Pasta => start_pasta(&binary, netns, ports, host_loopback, dir),
        Helper::Slirp4netns => start_slirp(&binary, netns, ports, host_loopback, dir),
    }?;
    running.udp = relay;
    running.holds_ports = !ports.is_empty();
    Ok(running)
}

/// In the helper: container root of the sandbox's user namespace (so it may enter the
/// container's network namespace, which that user namespace owns, and nothing beyond), the
/// namespace at its fixed fd, and death with the keeper (set last: an id change clears it).
/// `moves` start with the namespace's own: `(netns, NETNS_FD)`.
fn prepare<const N: usize>(command: &mut Command, moves: [(BorrowedFd<'_>, i32); N]) {
    sys::prepare_helper(command, moves);
}

/// pasta started and not ready yet: `poll` says when it is.
pub struct Starting {
    child: Option<Child>,
    pid_file: std::path::PathBuf,
    pid_dir: std::path::PathBuf,
    deadline: Instant,
}

impl Starting {
    /// `Some` once ready; `None` while it is setting up; the error once it failed.
    pub fn poll(&mut self) -> Result<Option<Running>, RuntimeError> {
        let Some(child) = self.child.as_mut() else {
            return Err(RuntimeError::Internal(
                "pasta was already handed out".into(),
            ));
        };
        if fs_err::metadata(&self.pid_file).is_ok_and(|m| m.len() > 0) {
            let child = self
                .child
                .take()
                .ok_or_else(|| RuntimeError::Internal("pasta was already handed out".into()))?;
            return Ok(Some(Running {
                child,
                _exit_fd: None,
                temp_dir: Some(self.pid_dir.clone()),
                udp: None,
                holds_ports: false,
            }));
        }
        let why = match child.try_wait() {
            Ok(Some(status)) => format!("it exited before it was ready ({status})"),
            _ if Instant::now() > self.deadline => "it was not ready after 10 s".to_owned(),
            _ => return Ok(None),
        };
        let _ = fs_err::remove_dir_all(&self.pid_dir);
        Err(failed(Helper::Pasta, child, &why))
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs_err::remove_dir_all(&self.pid_dir);
        }
    }
}

fn start_pasta(
    binary: &Path,
    netns: &OwnedFd,
    ports: &[PortMapping],
    host_loopback: bool,
    dir: &Path,
) -> Result<Running, RuntimeError> {
    let mut starting = spawn_pasta(binary, netns, ports, host_loopback, dir)?;
    loop {
        if let Some(running) = starting.poll()? {
            return Ok(running);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Starts pasta without waiting for it (a warm pool prepares several at once).
pub fn begin_pasta(netns: &OwnedFd, dir: &Path) -> Result<Starting, RuntimeError> {
    let binary =
        which::which("pasta").map_err(|_| RuntimeError::MissingNetworkHelper { tool: "pasta" })?;
    spawn_pasta(&binary, netns, &[], false, dir)
}

fn spawn_pasta(
    binary: &Path,
    netns: &OwnedFd,
    ports: &[PortMapping],
    host_loopback: bool,
    dir: &Path,
) -> Result<Starting, RuntimeError> {
    // pasta writes its pid file once set up. It runs as container root without capabilities,
    // which cannot even traverse the user's private store, so the file goes in a private dir of
    // its own under the temp dir, owned by that root; removed with the helper.
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pid_dir = std::env::temp_dir().join(format!("sandbox-pasta-{id}"));
    let setup = |e: std::io::Error| RuntimeError::NetworkHelper {
        tool: "pasta",
        error: format!("cannot prepare {}: {e}", pid_dir.display()),
    };
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&pid_dir)
            .map_err(setup)?;
    }
    if let Err(e) = std::os::unix::fs::chown(&pid_dir, Some(0), Some(0)) {
        let _ = fs_err::remove_dir(&pid_dir);
        return Err(setup(e));
    }
    let pid_file = pid_dir.join("pid");
    let mut command = Command::new(binary);
    // Stay container root (it owns nothing outside the sandbox's user namespace).
    command.args([
        "--config-net",
        "--foreground",
        "--quiet",
        "--runas",
        "0:0",
        "--dns-forward",
        DNS_ADDRESS,
    ]);
    if !host_loopback {
        command.arg("--no-map-gw");
    }
    // UDP is relayed by sandbox (see udp_relay), so pasta forwards TCP only.
    for (flag, protocol) in [("-t", Protocol::Tcp), ("-u", Protocol::Udp)] {
        let list: Vec<String> = ports
            .iter()
            .filter(|p| p.protocol == protocol && protocol == Protocol::Tcp)
            .map(|p| format!("{}/{}:{}", p.host_ip, p.host_port, p.container_port))
            .collect();
        command.arg(flag).arg(if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(",")
        });
    }
    // Nothing inside reaches the host's ports through pasta's own loopback forwarding.
    command
        .args(["-T", "none", "-U", "none", "--pid"])
        .arg(&pid_file);
    command.args(["--netns", &format!("/proc/self/fd/{NETNS_FD}")]);
    // We end it ourselves; it must not quit on its own watching of the namespace path.
    command.arg("--no-netns-quit");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    prepare(&mut command, [(netns.as_fd(), NETNS_FD)]);
    let child = command.spawn().map_err(|e| RuntimeError::NetworkHelper {
        tool: "pasta",
        error: e.to_string(),
    })?;
    Ok(Starting {
        child: Some(child),
        pid_file,
        pid_dir,
        deadline: Instant::now() + Duration::from_secs(10),
    })
}

fn start_slirp(
    binary: &Path,
    netns: &OwnedFd,
    ports: &[PortMapping],
    host_loopback: bool,
    dir: &Path,
) -> Result<Running, RuntimeError> {
    let (ready_read, ready_write) = sys::pipe()?;
    let (exit_read, exit_write) = sys::pipe()?;
    let api = dir.join("slirp4netns.sock");
    let mut command = Command::new(binary);
    command.args(["--configure", "--mtu=65520", "--ready-fd=3", "--exit-fd=4"]);
    if !host_loopback {
        command.arg("--disable-host-loopback");
    }
    if ports.iter().any(|p| p.protocol == Protocol::Tcp) {
        command.arg(format!("--api-socket={}", api.display()));
    }
    command.arg("--netns-type=path");
    command.arg(format!("/proc/self/fd/{NETNS_FD}")).arg("tap0");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    prepare(
        &mut command,
        [
            (netns.as_fd(), NETNS_FD),
            (ready_write.as_fd(), 3),
            (exit_read.as_fd(), 4),
        ],
    );
    let mut child = command.spawn().map_err(|e| RuntimeError::NetworkHelper {
        tool: "slirp4netns",
        error: e.to_string(),
    })?;
    drop(ready_write);
    drop(exit_read);
    let mut byte = [0u8; 1];
    let mut ready = std::fs::File::from(ready_read);
    if !matches!(ready.read(&mut byte), Ok(1)) {
        return Err(failed(
            Helper::Slirp4netns,
            &mut child,
            "it did not become ready",
        ));
    }
    let running = Running {
        child,
        _exit_fd: Some(exit_write),
        temp_dir: None,
        udp: None,
        holds_ports: false,
    };
    for p in ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
        add_slirp_port(&api, p)?;
    }
    Ok(running)
}

/// Publishes one port through slirp4netns' API socket.
fn add_slirp_port(api: &Path, p: &PortMapping) -> Result<(), RuntimeError> {
    let fail = |error: String| RuntimeError::NetworkHelper {
        tool: "slirp4netns",
        error: format!("publishing {p}: {error}"),
    };
    let mut socket =
        std::os::unix::net::UnixStream::connect(api).map_err(|e| fail(e.to_string()))?;
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": if p.protocol == Protocol::Tcp { "tcp" } else { "udp" },
            "host_addr": p.host_ip.to_string(),
            "host_port": p.host_port,
            "guest_port": p.container_port,
        }
    });
    socket
        .write_all(request.to_string().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    socket
        .read_to_string(&mut answer)
        .map_err(|e| fail(e.to_string()))?;
    if answer.contains("\"error\"") {
        return Err(fail(answer.trim().to_owned()));
    }
    Ok(())
}
