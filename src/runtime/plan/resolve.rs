//! From inputs to a plan, deciding everything and doing no I/O. The order of each decision is
//! written where it is made.

use std::path::{Path, PathBuf};

use crate::runtime::environment::{expand_home, Environment};
use crate::runtime::error::PlanError;
use crate::runtime::net::helpers::Helper;
use crate::runtime::plan::host::{FdKind, HostFacts};
use crate::runtime::plan::launch::{
    network_summary, CacheMount, EtcContent, EtcFile, Identity, LaunchPlan, Namespace, Network,
    NetworkOptions, NetworkPlan, ProcessPlan, Program, RootfsPlan, Seccomp, Stdio, Stream,
};
use crate::runtime::plan::mounts;
use crate::runtime::rootfs::etc_files;
use crate::runtime::state::ContainerState;
use crate::settings::capabilities;
use crate::settings::limits::Limits;
use crate::settings::network::NetworkMode;
use crate::settings::network::PortMapping;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub program: Program,
    pub stdio: Stdio,
    pub as_root: bool,
    /// `-e KEY=VALUE`, in order.
    pub env: Vec<(String, String)>,
    pub network: Option<NetworkMode>,
    pub publish: Vec<PortMapping>,
    pub host_loopback: bool,
    /// `--network-log FILE`: the egress forwarder's record of every connection.
    pub network_log: Option<PathBuf>,
    /// `--cap-add` and `--cap-drop`, for container root.
    pub cap_add: Vec<caps::Capability>,
    pub cap_drop: Vec<caps::Capability>,
    pub seccomp: Seccomp,
    /// `--memory`, `--cpus`, `--pids`, `--tmp`, `--require-limits`, over sandbox.toml's.
    pub limits: Limits,
    /// `--stats`.
    pub stats: bool,
    /// The project's persistent home, bound at the user's home (none: a fresh one in the
    /// overlay, gone when the sandbox ends: `--fresh-home`).
    pub home: Option<PathBuf>,
    /// What of the host's is forwarded (`[forward]`), for commands only.
    pub forward: Forwarded,
}

impl Request {
    /// `program` on `stdio` with nothing else asked for: as yourself, no flags, the default
    /// network and seccomp filter, no limits, a fresh home.
    pub fn new(program: Program, stdio: Stdio) -> Self {
        Self {
            program,
            stdio,
            as_root: false,
            env: Vec::new(),
            network: None,
            publish: Vec::new(),
            host_loopback: false,
            network_log: None,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: Seccomp::Default,
            limits: Limits::default(),
            stats: false,
            home: None,
            forward: Forwarded::default(),
        }
    }
}

/// The host's things a command may use, resolved on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The ssh agent's socket (SSH_AUTH_SOCK).
    pub ssh_agent: Option<PathBuf>,
    /// (file or dir on the host, where inside: absolute or `~/...`, whether a dir), read-only.
    pub paths: Vec<(PathBuf, String, bool)>,
    /// `-v HOST:CONTAINER[:ro]`, the user's own flags.
    pub volumes: Vec<crate::runtime::plan::launch::ForwardMount>,
}

/// What the project's sandbox.toml says (all empty without one: `--image`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectInputs {
    /// The project dir: sandbox.toml's, else the current dir.
    pub dir: PathBuf,
    /// Relative to `dir`.
    pub workdir: Option<PathBuf>,
    /// The template's env, then the project's (`~/` is the home inside).
    pub env: Vec<(String, String)>,
    /// A template's env on the user's own image: set only where the image leaves it unset.
    pub env_defaults: Vec<(String, String)>,
    /// (group, name, target inside: absolute or `~/...`).
    pub caches: Vec<(String, String, String)>,
    pub network: Option<NetworkMode>,
    pub ports: Vec<PortMapping>,
    pub host_loopback: bool,
    /// `[network] allow` (commands) and `setup_allow` (setup steps), with the user's floor
    /// applied: reach only these names.
    pub egress: Option<crate::runtime::net::egress::Policy>,
    pub setup_egress: Option<crate::runtime::net::egress::Policy>,
    pub limits: Limits,
    /// `[security] cap_add` (only from a trusted file) and `cap_drop`.
    pub cap_add: Vec<caps::Capability>,
    pub cap_drop: Vec<caps::Capability>,
    /// What the sandbox is made from, each with a digest (sandbox.toml, sandbox.lock, the
    /// files setup steps copy): recorded with a running container, so that a command joining
    /// it can say what changed since it started.
    pub sources: Vec<(String, String)>,
}

/// A user's command, or a setup container whose upper dir is kept at `keep_upper`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchKind {
    Command,
    Setup { keep_upper: PathBuf },
}

/// Everything `resolve` decides from.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub kind: LaunchKind,
    pub id: String,
    /// The image's reference, its layer dirs (lowest first) and its `Env`.
    pub image: &'a str,
    pub layers: Vec<PathBuf>,
    pub image_env: &'a [String],
    pub project: &'a ProjectInputs,
    pub request: &'a Request,
    pub host: &'a HostFacts,
    /// Whether the user has subordinate ids (keep-id), so ids other than theirs exist inside.
    pub ids_mapped: bool,
    /// The host's CAs, when the sandbox trusts them.
    pub trust: Option<&'a crate::runtime::plan::launch::HostTrust>,
}

const ROOT_HOME: &str = "/root";

/// The plan for a new container.
pub fn resolve(inputs: &Inputs<'_>) -> Result<LaunchPlan, PlanError> {
    let setup = matches!(inputs.kind, LaunchKind::Setup { .. });
    let project = inputs.project;
    let request = inputs.request;
    if request.as_root && !inputs.ids_mapped && !setup {
        return Err(PlanError::AsRootNeedsSubordinateIds);
    }
    // Setup steps run as root with root's home: the user's own home must not be made (as
    // root's) inside the layer every later run sits on.
    let user = if setup {
        Identity {
            home: ROOT_HOME.into(),
            shell: "/bin/sh".into(),
            ids_mapped: true,
            ..identity(inputs.host, true)
        }
    } else {
        identity(inputs.host, inputs.ids_mapped)
    };
    let as_root = setup || request.as_root;
    // Setup steps have the project's limits; a command, the flags' over them.
    let limits = if setup {
        project.limits.clone()
    } else {
        project.limits.overridden_by(&request.limits)
    };
    let meter = !setup && request.stats;
    let store = crate::runtime::cgroups::store_tag(&inputs.host.containers_dir());
    let cgroup =
        crate::runtime::cgroups::plan(&limits, &inputs.host.cgroups, &store, &inputs.id, meter);
    if limits.required && !cgroup.not_applied.is_empty() {
        return Err(PlanError::LimitsNotApplied(cgroup.not_applied));
    }
    let hostname = etc_files::hostname_for(&project.dir);
    // Setup sees only the project's own network settings; its layer must not depend on flags.
    let network = network(project, (!setup).then_some(request), inputs.host)?;
    let filtered = network.mode == Network::Filtered;
    let env = if setup {
        let mut env = Environment::base(
            inputs.image_env,
            &project.env_defaults,
            &project.env,
            Path::new(ROOT_HOME),
        );
        env.set("HOME", ROOT_HOME);
        env.set("DEBIAN_FRONTEND", "noninteractive");
        for (key, value) in &inputs.host.proxy_env {
            env.set(key, value);
        }
        if inputs.trust.is_some() {
            trust_variables(&mut env, true);
        }
        if filtered {
            proxy_variables(&mut env);
        }
        // The step's own variables: its secrets, which no other step or command sees.
        for (key, value) in &request.env {
            env.set(key, value);
        }
        env.into_vec()
    } else {
        environment(
            inputs.image_env,
            project,
            request,
            inputs.host,
            &user,
            &hostname,
            Added {
                trust: inputs.trust.map(|t| t.jvm_stores.is_empty()),
                proxy: filtered,
            },
        )
    };
    let cwd = if setup {
        PathBuf::from("/")
    } else {
        working_dir(project, &inputs.host.cwd)
    };
    let caches = if setup {
        Vec::new()
    } else {
        caches(project, inputs.host, &user)?
    };
    let root_owner = user.ids_mapped.then_some((0, 0));
    let home_owner = if as_root {
        root_owner
    } else {
        Some((user.uid, user.gid))
    };
    let own_netns = network.mode != Network::Host;
    let mut namespaces = vec![
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
    ];
    // `host` networking shares the host's network namespace.
    if own_netns {
        namespaces.push(Namespace::Net);
    }
    let project_mount = (!setup).then_some(project.dir.as_path());
    // Setup steps never see the per-project home: their layer must not depend on it.
    let home_source = if setup { None } else { request.home.clone() };
    let home = mounts::HomeMount {
        target: &user.home,
        owner: home_owner,
        source: home_source.as_deref(),
        skel: !setup,
        alias: if setup {
            None
        } else {
            inputs.host.user.home_alias.as_deref()
        },
    };
    let rootfs = RootfsPlan {
        layers: inputs.layers.clone(),
        overlay: inputs.host.overlay,
        mounts: mounts::plan(
            own_netns,
            &cgroup.view,
            home,
            project_mount,
            limits.tmp_size(),
        ),
        etc_files: etc(&network, &hostname, &inputs.host.resolv_conf, root_owner),
        home: (user.home.clone(), home_owner),
        home_source,
        caches,
        trust: trust_mounts(inputs.trust, setup),
        forward: if setup {
            Vec::new()
        } else {
            forward_mounts(&request.forward, &user.home)
        },
    };
    let stdio = if setup {
        Stdio::Capture
    } else {
        stdio(request.stdio, &inputs.host.stdio)?
    };
    Ok(LaunchPlan {
        dir: inputs.host.containers_dir().join(&inputs.id),
        warm_pool: network.can_be_warm().then(|| inputs.host.store.clone()),
        id: inputs.id.clone(),
        // A setup container is not the project's sandbox: a `run` meanwhile must not join it.
        image: if setup {
            format!("{} (setup)", inputs.image)
        } else {
            inputs.image.to_owned()
        },
        project_dir: project.dir.clone(),
        hostname,
        namespaces,
        rootfs,
        network,
        process: ProcessPlan {
            program: request.program.clone(),
            env,
            cwd,
            user,
            as_root,
            stdio,
            root_capabilities: root_capabilities(project, (!setup).then_some(request)),
            seccomp: if setup {
                Seccomp::Default
            } else {
                request.seccomp
            },
        },
        cgroup,
        meter,
        limits,
        keep_upper: match &inputs.kind {
            LaunchKind::Setup { keep_upper } => Some(keep_upper.clone()),
            LaunchKind::Command => None,
        },
        sources: project.sources.clone(),
    })
}

/// The process for a command joining the running container `running`. It shares that
/// container's network: asking for another (a mode, ports, host loopback) is an error rather
/// than silently ignored.
pub fn resolve_join(
    inputs: &Inputs<'_>,
    running: &ContainerState,
) -> Result<ProcessPlan, PlanError> {
    let request = inputs.request;
    let asked = request.network.is_some() || !request.publish.is_empty() || request.host_loopback;
    let wanted = network(inputs.project, Some(request), inputs.host)?;
    let wanted = network_summary(wanted.mode, &wanted.options);
    if asked && wanted != running.network {
        return Err(PlanError::OtherNetwork {
            id: running.id.clone(),
            running: running.network.clone(),
            wanted,
        });
    }
    let user = identity(inputs.host, true);
    Ok(ProcessPlan {
        program: request.program.clone(),
        env: environment(
            inputs.image_env,
            inputs.project,
            request,
            inputs.host,
            &user,
            &running.hostname,
            Added {
                trust: running.trusts_host_cas.then_some(running.java_options),
                proxy: running.network.starts_with("filtered"),
            },
        ),
        cwd: working_dir(inputs.project, &inputs.host.cwd),
        user,
        as_root: request.as_root,
        stdio: stdio(request.stdio, &inputs.host.stdio)?,
        root_capabilities: root_capabilities(inputs.project, Some(request)),
        seccomp: request.seccomp,
    })
}

/// Where the ssh agent's socket is inside: in sandbox's own tmpfs /dev, which no layer holds.
pub const SSH_AGENT_SOCKET: &str = "/dev/sandbox/ssh-agent.sock";

/// The forwarded socket (read-write: it is connected to) and paths (read-only).
fn forward_mounts(
    forward: &Forwarded,
    home: &Path,
) -> Vec<crate::runtime::plan::launch::ForwardMount> {
    let mut mounts: Vec<crate::runtime::plan::launch::ForwardMount> = forward
        .ssh_agent
        .iter()
        .map(|socket| crate::runtime::plan::launch::ForwardMount {
            source: socket.clone(),
            target: PathBuf::from(SSH_AGENT_SOCKET),
            dir: false,
            read_only: false,
        })
        .collect();
    for (host, inside, dir) in &forward.paths {
        mounts.push(crate::runtime::plan::launch::ForwardMount {
            source: host.clone(),
            target: PathBuf::from(expand_home(inside, home)),
            dir: *dir,
            read_only: true,
        });
    }
    mounts.extend(forward.volumes.iter().cloned());
    mounts
}

/// The host-trusting bundle and JVM store at their own paths; for a command, also over the
/// image's system bundle and JVM stores (not for setup steps, whose package installs rewrite
/// those files).
fn trust_mounts(
    trust: Option<&crate::runtime::plan::launch::HostTrust>,
    setup: bool,
) -> Vec<(PathBuf, PathBuf)> {
    let Some(trust) = trust else {
        return Vec::new();
    };
    let mut mounts = vec![
        (
            trust.bundle.clone(),
            PathBuf::from(crate::runtime::plan::launch::TRUST_BUNDLE),
        ),
        (
            trust.java_store.clone(),
            PathBuf::from(crate::runtime::plan::launch::TRUST_JAVA_STORE),
        ),
    ];
    if !setup {
        mounts.extend(
            trust
                .system_bundle
                .iter()
                .map(|p| (trust.bundle.clone(), PathBuf::from(p))),
        );
        mounts.extend(
            trust
                .jvm_stores
                .iter()
                .map(|p| (trust.java_store.clone(), PathBuf::from(p))),
        );
    }
    mounts
}

/// The command's stdio: what was asked for, with `Inherit` decided per fd from what it is.
fn stdio(asked: Stdio, host: &[FdKind; 3]) -> Result<Stdio, PlanError> {
    if asked != Stdio::Inherit {
        return Ok(asked);
    }
    let names = ["stdin", "stdout", "stderr"];
    let mut streams = [Stream::Null; 3];
    for ((stream, kind), name) in streams.iter_mut().zip(host).zip(names) {
        *stream = match kind {
            FdKind::Pipe | FdKind::Socket => Stream::Pass,
            FdKind::Null | FdKind::Closed => Stream::Null,
            FdKind::Terminal | FdKind::RegularFile | FdKind::Other => Stream::Relay,
            FdKind::Directory => return Err(PlanError::DirectoryAsStdio { stream: name }),
        };
    }
    Ok(Stdio::Streams(streams))
}

/// Container root's capabilities: podman's set with the project's changes, then the command
/// line's (setup steps see only the project's: their layer must not depend on flags).
fn root_capabilities(project: &ProjectInputs, request: Option<&Request>) -> Vec<caps::Capability> {
    let mut add = project.cap_add.clone();
    let mut drop = project.cap_drop.clone();
    if let Some(request) = request {
        // A flag overrides the file: `--cap-add X` wins over the file's `cap_drop = [X]`.
        drop.retain(|c| !request.cap_add.contains(c));
        add.extend(request.cap_add.iter().copied());
        drop.extend(request.cap_drop.iter().copied());
    }
    capabilities::container_root(&add, &drop)
}

fn identity(host: &HostFacts, ids_mapped: bool) -> Identity {
    Identity {
        uid: host.user.uid,
        gid: host.user.gid,
        name: host.user.name.clone(),
        home: host.user.home.clone(),
        shell: host.user.shell.clone(),
        ids_mapped,
    }
}

/// The variables sandbox adds for what it set up.
struct Added {
    /// The host's CAs are trusted (and whether the JVM needs its store named).
    trust: Option<bool>,
    /// Egress goes through the forwarder: proxy variables point at it.
    proxy: bool,
}

/// The image's env and the project's (see `Environment::base`), then who you are, then the
/// host's terminal, locale and proxy variables, then the CA bundle's (`trust`: whether the JVM
/// needs its trust store named), then `-e`.
fn environment(
    image_env: &[String],
    project: &ProjectInputs,
    request: &Request,
    host: &HostFacts,
    user: &Identity,
    hostname: &str,
    added: Added,
) -> Vec<(String, String)> {
    let mut env = Environment::base(image_env, &project.env_defaults, &project.env, &user.home);
    env.set("HOME", &user.home.display().to_string());
    env.set("USER", &user.name);
    env.set("LOGNAME", &user.name);
    env.set("HOSTNAME", hostname);
    env.set("container", "sandbox");
    for (key, value) in host.terminal_env.iter().chain(&host.proxy_env) {
        env.set(key, value);
    }
    if let Some(java_options) = added.trust {
        trust_variables(&mut env, java_options);
    }
    if added.proxy {
        proxy_variables(&mut env);
    }
    if request.forward.ssh_agent.is_some() {
        env.set("SSH_AUTH_SOCK", SSH_AGENT_SOCKET);
    }
    for (key, value) in &request.env {
        env.set(key, value);
    }
    env.into_vec()
}

/// Points proxy-aware tools (and the JVM) at the egress forwarder, in place of the host's
/// proxy (which the forwarder itself dials through): they then say which name they want.
fn proxy_variables(env: &mut Environment) {
    use crate::runtime::net::egress::PROXY_ADDRESS;
    use crate::runtime::net::egress::PROXY_PORT;
    let url = format!("http://{PROXY_ADDRESS}:{PROXY_PORT}");
    for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        env.set(name, &url);
    }
    for name in ["no_proxy", "NO_PROXY"] {
        env.set(name, "localhost,127.0.0.1,::1");
    }
    env.remove("all_proxy");
    env.remove("ALL_PROXY");
    let ours = format!(
        "-Dhttp.proxyHost={PROXY_ADDRESS} -Dhttp.proxyPort={PROXY_PORT} -Dhttps.proxyHost={PROXY_ADDRESS} -Dhttps.proxyPort={PROXY_PORT} -Dhttp.nonProxyHosts=localhost|127.0.0.1"
    );
    let options = match env.get("JAVA_TOOL_OPTIONS") {
        Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    env.set("JAVA_TOOL_OPTIONS", &options);
}

/// Points the variables tools read a CA bundle from at the host-trusting bundle; with
/// `java_options`, the JVM's trust store too (where none of the image's could be mounted over,
/// and in setup steps, which may install the JVM).
fn trust_variables(env: &mut Environment, java_options: bool) {
    for name in crate::runtime::plan::launch::TRUST_VARIABLES {
        env.set(name, crate::runtime::plan::launch::TRUST_BUNDLE);
    }
    if java_options {
        let ours = format!(
            "-Djavax.net.ssl.trustStore={} -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=JKS",
            crate::runtime::plan::launch::TRUST_JAVA_STORE
        );
        let options = match env.get("JAVA_TOOL_OPTIONS") {
            Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
            _ => ours,
        };
        env.set("JAVA_TOOL_OPTIONS", &options);
    }
}

/// sandbox.toml's workdir, else the current dir; the project dir when that is outside it.
fn working_dir(project: &ProjectInputs, cwd: &Path) -> PathBuf {
    let wanted = match &project.workdir {
        Some(workdir) => project.dir.join(workdir),
        None => cwd.to_owned(),
    };
    if wanted.starts_with(&project.dir) {
        wanted
    } else {
        project.dir.clone()
    }
}

/// The network: the flag, else sandbox.toml's mode, else the relay (where the kernel can, else
/// pasta if installed, else slirp4netns);
/// ports and host loopback from both. Without a request (a setup container) the project's own
/// settings count: its mode and host loopback; nothing is published.
fn network(
    project: &ProjectInputs,
    request: Option<&Request>,
    host: &HostFacts,
) -> Result<NetworkPlan, PlanError> {
    let flag = request.and_then(|r| r.network);
    // The allow-list, unless the user's own flag asks for a helper's open network.
    let policy = match request {
        Some(_) => project.egress.as_ref(),
        None => project.setup_egress.as_ref(),
    }
    .filter(|_| {
        !matches!(
            flag,
            Some(NetworkMode::Pasta | NetworkMode::Slirp4netns | NetworkMode::Relay)
        )
    });
    if let Some(policy) = policy {
        return filtered(project, request, flag, policy);
    }
    let mode = match flag.or(project.network) {
        Some(NetworkMode::None) => Network::None,
        Some(NetworkMode::Host) => Network::Host,
        Some(NetworkMode::Pasta) => Network::Helper(Helper::Pasta),
        Some(NetworkMode::Slirp4netns) => Network::Helper(Helper::Slirp4netns),
        Some(NetworkMode::Relay) => Network::Relay,
        None if host.relay => Network::Relay,
        None => Network::Helper(host.helper.ok_or(PlanError::NoNetworkHelper)?),
    };
    // A setup container publishes nothing, but has the project's own (trusted) host
    // loopback: a step installing from a package index or proxy on the host's loopback
    // reaches it as the project's commands do, as `podman build` reaches
    // host.containers.internal.
    let ports = published(project, request);
    let host_loopback = request.is_some_and(|r| r.host_loopback) || project.host_loopback;
    let host_address = match mode {
        Network::Helper(helper) => host_loopback
            .then(|| helper.host_address(host.gateway))
            .flatten(),
        Network::Relay => {
            host_loopback.then(|| crate::runtime::net::relay::HOST_ADDRESS.to_string())
        }
        _ => {
            if request.is_some() && (!ports.is_empty() || host_loopback) {
                return Err(PlanError::PortsNeedHelper);
            }
            return Ok(NetworkPlan {
                mode,
                options: NetworkOptions::default(),
            });
        }
    };
    Ok(NetworkPlan {
        mode,
        options: NetworkOptions {
            ports,
            host_loopback,
            host_address,
            policy: None,
            log: request
                .filter(|_| mode == Network::Relay)
                .and_then(|r| network_log(r, project)),
        },
    })
}

/// The ports published: sandbox.toml's and the flags'; none for a setup container (no request).
/// `--network-log FILE` (absolute): code inside may plant links in the project dir, so none
/// below it is followed on the way to the file.
fn network_log(
    request: &Request,
    project: &ProjectInputs,
) -> Option<crate::fsutil::beneath::GuardedPath> {
    request.network_log.as_deref().map(|log| {
        crate::fsutil::beneath::GuardedPath::new(log, Path::new("/"), &[project.dir.as_path()])
    })
}

fn published(project: &ProjectInputs, request: Option<&Request>) -> Vec<PortMapping> {
    request.map_or_else(Vec::new, |request| {
        project
            .ports
            .iter()
            .chain(&request.publish)
            .cloned()
            .collect()
    })
}

/// The network of a sandbox with an allow-list: none stays none, host is refused (it would
/// bypass the list), anything else is filtered.
fn filtered(
    project: &ProjectInputs,
    request: Option<&Request>,
    flag: Option<NetworkMode>,
    policy: &crate::runtime::net::egress::Policy,
) -> Result<NetworkPlan, PlanError> {
    match flag.or(project.network) {
        Some(NetworkMode::None) => {
            return Ok(NetworkPlan {
                mode: Network::None,
                options: NetworkOptions::default(),
            })
        }
        Some(NetworkMode::Host) => return Err(PlanError::AllowWithHostNetwork),
        _ => {}
    }
    // Published as with a helper (a setup container publishes nothing), except on a port the
    // forwarder holds inside.
    let ports = published(project, request);
    let held = policy.allow.ports();
    if let Some(taken) = ports.iter().find(|p| {
        p.protocol == crate::settings::network::Protocol::Tcp
            && (held.contains(&p.container_port)
                || p.container_port == crate::runtime::net::egress::PROXY_PORT)
    }) {
        return Err(PlanError::AllowHoldsPort {
            port: taken.container_port,
        });
    }
    let host_loopback = request.is_some_and(|r| r.host_loopback) || project.host_loopback;
    let mut policy = policy.clone();
    policy.host_loopback = host_loopback;
    policy.log = request.and_then(|r| network_log(r, project));
    Ok(NetworkPlan {
        mode: Network::Filtered,
        options: NetworkOptions {
            policy: Some(policy),
            ports,
            host_loopback,
            ..NetworkOptions::default()
        },
    })
}

/// The project's caches: `<cache root>/<group>/<name>` on the host, mounted at their target
/// (`~/` is the user's home inside), owned by the user.
fn caches(
    project: &ProjectInputs,
    host: &HostFacts,
    user: &Identity,
) -> Result<Vec<CacheMount>, PlanError> {
    if project.caches.is_empty() {
        return Ok(Vec::new());
    }
    let root = host.cache_root.as_ref().ok_or(PlanError::NoCacheDir)?;
    Ok(project
        .caches
        .iter()
        .map(|(group, name, target)| CacheMount {
            host: root.join(group).join(name),
            target: PathBuf::from(expand_home(target, &user.home)),
            owner: (user.uid, user.gid),
        })
        .collect())
}

/// passwd, group, hosts, hostname and resolv.conf, owned by root inside when there is one.
fn etc(
    network: &NetworkPlan,
    hostname: &str,
    host_resolv_conf: &str,
    owner: Option<(u32, u32)>,
) -> Vec<EtcFile> {
    let file = |path: &str, content| EtcFile {
        path: path.into(),
        content,
        mode: 0o644,
        owner,
    };
    let host_address = match network.mode {
        Network::Helper(_) | Network::Relay if network.options.host_loopback => {
            network.options.host_address.as_deref()
        }
        _ => None,
    };
    vec![
        file("/etc/passwd", EtcContent::Passwd),
        file("/etc/group", EtcContent::Group),
        file(
            "/etc/hosts",
            EtcContent::Text(etc_files::hosts(hostname, host_address)),
        ),
        file("/etc/hostname", EtcContent::Text(format!("{hostname}\n"))),
        file(
            "/etc/resolv.conf",
            EtcContent::Text(etc_files::resolv_conf(network.mode, host_resolv_conf)),
        ),
    ]
}
