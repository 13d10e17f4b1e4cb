//! What a container is started from: plain data the CLI assembles, so the runtime's decisions
//! (mount plan, identity, environment) can be unit-tested without namespaces.

use std::path::PathBuf;

use super::network::{Helper, PortMapping};

/// How the container reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    /// Its own network namespace, connected by a rootless helper (pasta or slirp4netns).
    Helper(Helper),
}

/// Published ports and host loopback, for helper networking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    pub ports: Vec<PortMapping>,
    /// Let the container reach the host's loopback (as `host.containers.internal`).
    pub host_loopback: bool,
    /// The address inside that reaches the host when `host_loopback` is on; found by the
    /// monitor, which still sees the host's routes.
    pub host_address: Option<String>,
}

/// How a container is networked, in words (`pasta -p 127.0.0.1:8080:80/tcp`): recorded in its
/// state, so a command joining it can tell whether it asked for a different network.
pub fn network_summary(network: Network, options: &NetworkOptions) -> String {
    let mut text = match network {
        Network::None => "none".to_owned(),
        Network::Host => "host".to_owned(),
        Network::Helper(helper) => helper.binary().to_owned(),
    };
    for port in &options.ports {
        text.push_str(&format!(" -p {port}"));
    }
    if options.host_loopback {
        text.push_str(" --host-loopback");
    }
    text
}

/// Which overlay implementation mounts the root file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayChoice {
    /// Kernel overlayfs, falling back to fuse-overlayfs when the kernel refuses.
    Auto,
    Kernel,
    Fuse,
}

/// The user the command runs as (unless `as_root`), mirrored from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// Whether ids other than the user's own exist inside (keep-id), so files can be root's.
    pub ids_mapped: bool,
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// `run -- CMD ARGS`
    Command(Vec<String>),
    /// `enter`: the user's login shell if the image has it, else /bin/bash, else /bin/sh.
    LoginShell,
}

/// Everything needed to start, or join, a container.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Short random id; also the name of `containers/<id>/`.
    pub id: String,
    /// `containers/<id>/` in the store.
    pub dir: PathBuf,
    /// Layer root dirs, lowest first.
    pub layers: Vec<PathBuf>,
    pub image: String,
    pub project_dir: PathBuf,
    /// Working directory inside (a host path under the project dir, or the project dir).
    pub cwd: PathBuf,
    pub hostname: String,
    pub network: Network,
    pub network_options: NetworkOptions,
    pub identity: Identity,
    pub as_root: bool,
    /// The environment, already merged (image, then host terminal variables, then `-e`).
    pub env: Vec<(String, String)>,
    pub program: Program,
    /// Give the command a new pseudo-terminal.
    pub tty: bool,
    /// The host's /etc/resolv.conf text, for `host` networking.
    pub resolv_conf: String,
    pub overlay: OverlayChoice,
    /// Persistent dirs: (host dir, path inside), mounted once the user's home exists.
    pub caches: Vec<(PathBuf, PathBuf)>,
    /// Bind the project dir (not for setup steps, whose result must not depend on it).
    pub mount_project: bool,
    /// Keep the upper dir (the command's changes) at this path when the command succeeds,
    /// instead of discarding it: how a setup layer is made.
    pub keep_upper: Option<PathBuf>,
}

impl ContainerSpec {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}
