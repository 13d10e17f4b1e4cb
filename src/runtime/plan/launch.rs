//! The plan's types: what a container is started from.

use std::path::PathBuf;

use crate::runtime::net::helpers::Helper;
use crate::runtime::plan::mounts::MountOp;
use crate::runtime::state::ContainerState;
use crate::settings::limits::Limits;
use crate::settings::network::PortMapping;

/// How the container reaches the network, once the mode is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    /// Its own network namespace, connected by a rootless helper (pasta or slirp4netns).
    Helper(Helper),
    /// Its own network namespace, reaching only what `options.policy` allows through
    /// sandbox's egress forwarder.
    Filtered,
    /// Its own network namespace, every connection made again from the host's side by
    /// sandbox's relay (the default).
    Relay,
}

/// Published ports and host loopback, for helper networking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    pub ports: Vec<PortMapping>,
    /// Let the container reach the host's loopback (as `host.containers.internal`).
    pub host_loopback: bool,
    /// The address inside that reaches the host when `host_loopback` is on.
    pub host_address: Option<String>,
    /// The egress allow-list, for `Network::Filtered`.
    pub policy: Option<crate::runtime::net::egress::Policy>,
    /// `--network-log`, for `Network::Relay` (an allow-list keeps it in its policy).
    pub log: Option<crate::fsutil::beneath::GuardedPath>,
}

/// How a container is networked, in words (`pasta -p 127.0.0.1:8080:80/tcp`): recorded in its
/// state, so a command joining it can tell whether it asked for a different network.
pub fn network_summary(network: Network, options: &NetworkOptions) -> String {
    let mut text = match network {
        Network::None => "none".to_owned(),
        Network::Host => "host".to_owned(),
        Network::Helper(helper) => helper.binary().to_owned(),
        Network::Relay => "relay".to_owned(),
        Network::Filtered => {
            let rules = options.policy.as_ref().map_or_else(Vec::new, |p| {
                p.allow.rules.iter().map(ToString::to_string).collect()
            });
            format!("filtered (allow {})", rules.join(","))
        }
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

/// Where the command's stdin, stdout and stderr go. No host fd but a pipe or a socket ever
/// reaches the container: a terminal, a file or a device is relayed, a directory refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// Asked for by the caller: decide each of fds 0-2 from what it is (`resolve` turns this
    /// into `Streams`; a plan never holds it).
    Inherit,
    /// A new pseudo-terminal in the container's own devpts, relayed by the monitor.
    Terminal,
    /// stdin from /dev/null; stdout and stderr into a pipe the monitor hands to the reporter
    /// (setup steps, whose output the CLI shows as it comes).
    Capture,
    /// Each of fds 0, 1 and 2 as decided.
    Streams([Stream; 3]),
}

/// How one of the caller's fds 0-2 reaches the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The caller's own fd (a pipe or a socket: nothing to reopen or walk through).
    Pass,
    /// Copied through a pipe by the monitor (a terminal, a regular file, a device), so the
    /// command cannot reopen /proc/self/fd/N or ioctl the host's terminal.
    Relay,
    /// The container's /dev/null (the caller's was /dev/null, or closed).
    Null,
}

/// An owner (uid, gid) as the container's user namespace sees it.
pub type Owner = (u32, u32);

/// The process that runs inside: what, as whom, where, with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessPlan {
    pub program: Program,
    /// The environment, already merged (see `resolve` for the order).
    pub env: Vec<(String, String)>,
    /// Working directory inside (under the project dir, which is bound at the same path).
    pub cwd: PathBuf,
    pub user: Identity,
    /// Run as container root instead of as the user.
    pub as_root: bool,
    pub stdio: Stdio,
    /// What container root holds (the user's own commands hold none).
    pub root_capabilities: Vec<caps::Capability>,
    /// The default seccomp filter, or none (`--security-opt seccomp=unconfined`).
    pub seccomp: Seccomp,
}

/// Which seccomp filter the process gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seccomp {
    Default,
    Unconfined,
}

/// What a file sandbox writes into the container's /etc holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcContent {
    /// The image's /etc/passwd with the user's entry.
    Passwd,
    /// The image's /etc/group with the user's group.
    Group,
    /// Fixed text.
    Text(String),
}

/// A file written into the new root (through no symlink the image planted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFile {
    pub path: PathBuf,
    pub content: EtcContent,
    pub mode: u32,
    pub owner: Option<Owner>,
}

/// A persistent host dir mounted into the user's home (made on the host by the executor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMount {
    pub host: PathBuf,
    pub target: PathBuf,
    pub owner: Owner,
}

/// The root file system: the overlay, then mounts, /etc files, the home, the caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Layer root dirs, lowest first.
    pub layers: Vec<PathBuf>,
    pub overlay: OverlayChoice,
    pub mounts: Vec<MountOp>,
    pub etc_files: Vec<EtcFile>,
    /// The user's home inside, made if missing, and its owner.
    pub home: (PathBuf, Option<Owner>),
    /// The project's persistent home on the host, bound there.
    pub home_source: Option<PathBuf>,
    /// Mounted after the home exists, so their targets are made inside it as the user's.
    pub caches: Vec<CacheMount>,
    /// The host's CAs: (file on the host, path inside), bound read-only last.
    pub trust: Vec<(PathBuf, PathBuf)>,
    /// What of the host's is forwarded.
    pub forward: Vec<ForwardMount>,
}

/// A host path bound inside for `[forward]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub dir: bool,
    pub read_only: bool,
}

/// The files that make a container trust the host's CAs (see `image::trust`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTrust {
    /// PEM: the image's CAs and the host's.
    pub bundle: PathBuf,
    /// The same as a JVM trust store.
    pub java_store: PathBuf,
    /// The image's system bundle and JVM trust stores, which a command's are mounted over.
    pub system_bundle: Option<String>,
    pub jvm_stores: Vec<String>,
}

/// Where a container finds the host's CAs: in sandbox's own tmpfs /dev, which no layer holds.
pub const TRUST_BUNDLE: &str = "/dev/sandbox/ca-certificates.crt";
pub const TRUST_JAVA_STORE: &str = "/dev/sandbox/cacerts.jks";

/// The variables tools read a CA bundle from.
pub const TRUST_VARIABLES: [&str; 6] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// The network and what its /etc files need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPlan {
    pub mode: Network,
    pub options: NetworkOptions,
}

impl NetworkPlan {
    /// Whether a warm network, prepared ahead of time, can serve: pasta, no published ports,
    /// no host loopback.
    pub fn can_be_warm(&self) -> bool {
        self.mode == Network::Helper(Helper::Pasta)
            && self.options.ports.is_empty()
            && !self.options.host_loopback
    }
}

/// A namespace the container gets of its own (the user namespace is the store's, entered
/// before; see `userns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
}

impl Namespace {
    /// Its `CLONE_NEW*` flag.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Net => libc::CLONE_NEWNET,
        }
    }
}

/// Everything needed to start a container.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchPlan {
    /// Short random id; also the name of `containers/<id>/`.
    pub id: String,
    /// `containers/<id>/` in the store.
    pub dir: PathBuf,
    /// The image as recorded in the container's state (what a later run joins by).
    pub image: String,
    pub project_dir: PathBuf,
    pub hostname: String,
    /// The namespaces pid 1 is cloned into.
    pub namespaces: Vec<Namespace>,
    pub rootfs: RootfsPlan,
    pub network: NetworkPlan,
    pub process: ProcessPlan,
    pub limits: Limits,
    /// The cgroups that carry the limits (and what cannot be applied).
    pub cgroup: crate::runtime::cgroups::CgroupPlan,
    /// Measure what the run costs (`--stats`).
    pub meter: bool,
    /// The store whose pool of warm networks this run takes its network from (and starts when
    /// none answers): set when the network can be a warm one (`NetworkPlan::can_be_warm`).
    pub warm_pool: Option<PathBuf>,
    /// Keep the upper dir (the command's changes) at this path when the command succeeds,
    /// instead of discarding it: how a setup layer is made.
    pub keep_upper: Option<PathBuf>,
    /// What the project's sandbox is made from, with digests (`ProjectInputs::sources`).
    pub sources: Vec<(String, String)>,
}

impl LaunchPlan {
    /// What `state.json` records of the container this plan started, as pid `pid` in the pid
    /// namespace `pid_ns`.
    pub fn record(&self, pid: i32, pid_ns: String) -> ContainerState {
        let plan = self;
        ContainerState {
            id: plan.id.clone(),
            project_dir: plan.project_dir.clone(),
            image: plan.image.clone(),
            pid,
            pid_start: crate::runtime::state::process_start(pid).unwrap_or(0),
            pid_ns,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            hostname: plan.hostname.clone(),
            network: network_summary(plan.network.mode, &plan.network.options),
            cgroup: None,
            trusts_host_cas: !plan.rootfs.trust.is_empty(),
            java_options: plan
                .process
                .env
                .iter()
                .any(|(k, v)| k == "JAVA_TOOL_OPTIONS" && v.contains(TRUST_JAVA_STORE)),
            sources: plan.sources.clone(),
            command: match &plan.process.program {
                Program::Command(argv) => argv.clone(),
                Program::LoginShell => Vec::new(),
            },
            ports: plan
                .network
                .options
                .ports
                .iter()
                .map(ToString::to_string)
                .collect(),
            dir: plan.dir.clone(),
        }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    /// The dir the layer dirs sit in (`layers/`), which overlay mounts work from.
    pub fn layers_dir(&self) -> &std::path::Path {
        self.rootfs
            .layers
            .first()
            .and_then(|l| l.parent())
            .and_then(|l| l.parent())
            .unwrap_or(std::path::Path::new("/"))
    }
    /// The lower dirs relative to `layers_dir`, topmost first (as overlayfs stacks them), so
    /// each option stays short.
    pub fn lower_dirs(&self) -> Vec<String> {
        let base = self.layers_dir();
        self.rootfs
            .layers
            .iter()
            .rev()
            .map(|l| {
                l.strip_prefix(base)
                    .map_or_else(|_| l.display().to_string(), |r| r.display().to_string())
            })
            .collect()
    }
}
