//! The runtime layer's error type.

/// A launch that cannot be planned: what was asked for does not fit together.
/// A limit that cannot be applied, why, and what fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotApplied {
    pub limit: String,
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--as-root needs subordinate ids, and this user has none")]
    AsRootNeedsSubordinateIds,

    #[error("-p/--publish and --host-loopback need the sandbox's own network, not --network none or host")]
    PortsNeedHelper,

    #[error("this kernel cannot set up sandbox's relay network, and no rootless network helper is installed (pasta or slirp4netns)")]
    NoNetworkHelper,

    #[error("[network] allow cannot hold with the host's network: it would reach everything")]
    AllowWithHostNetwork,

    #[error("port {port} inside is the egress forwarder's with [network] allow: a server there cannot be published")]
    AllowHoldsPort { port: u16 },

    #[error("this project's sandbox {id} is already running with network `{running}`; a command joining it shares that network and cannot have `{wanted}`")]
    OtherNetwork {
        id: String,
        running: String,
        wanted: String,
    },

    #[error("sandbox.toml names caches, and there is no cache dir: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir,

    #[error("{stream} is a directory; a directory's fd would let the command walk the host's files through /proc/self/fd")]
    DirectoryAsStdio { stream: &'static str },

    #[error("limits cannot be applied here: {}", .0.iter().map(|n| format!("{} ({})", n.limit, n.why)).collect::<Vec<_>>().join("; "))]
    LimitsNotApplied(Vec<NotApplied>),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PlanError::AsRootNeedsSubordinateIds => "add a range: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`".into(),
            PlanError::NoNetworkHelper => "install one (Debian: `sudo apt-get install passt`), or use --network none (loopback only); `sandbox doctor` says what the relay lacks".into(),
            PlanError::AllowWithHostNetwork => "drop `mode = \"host\"` (or --network host) to keep the allow-list, or drop `allow`".into(),
            PlanError::AllowHoldsPort { .. } => "serve on another port inside (the forwarder holds 3128 and the ports the list allows, 80 and 443 by default)".into(),
            PlanError::PortsNeedHelper => "with --network host the sandbox uses the host's ports directly; otherwise drop --network (the relay publishes ports) or use pasta or slirp4netns".into(),
            PlanError::OtherNetwork { id, .. } => format!("drop --network/-p/--host-loopback to join it, or end it first (`sandbox stop {id}`)"),
            PlanError::NoCacheDir => "set HOME (or XDG_CACHE_HOME) to where your caches should live".into(),
            PlanError::DirectoryAsStdio { .. } => "redirect a file (`< file`), not a directory".into(),
            PlanError::LimitsNotApplied(_) => "delegate the cgroups named above to your user, or drop --require-limits (limits.required in sandbox.toml) to run without them".into(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the container's cgroup at {}", path.display())]
    Cgroup {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "systemd's user manager could not give the container the cgroup scope {unit}: {detail}"
    )]
    Scope { unit: String, detail: String },

    #[error(transparent)]
    Plan(#[from] PlanError),

    #[error("cannot create a user namespace")]
    UserNamespace {
        #[source]
        source: std::io::Error,
    },

    #[error("`{tool}` is not installed")]
    MissingIdTool { tool: &'static str },

    #[error("`{tool}` failed to write the id map (status {status}): {stderr}")]
    IdMapTool {
        tool: &'static str,
        status: String,
        stderr: String,
    },

    #[error("cannot write the single-id map {path}")]
    SelfMap {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// pid 1 could not set the container up; `kind` says what is known of the cause.
    #[error("cannot {step} `{}`", path.display())]
    ContainerSetup {
        step: String,
        path: std::path::PathBuf,
        kind: crate::runtime::process::channel::FailureKind,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot {what}")]
    Syscall {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot join the running container's {namespace} namespace")]
    Join {
        namespace: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open the running container's namespace {path}")]
    JoinNamespace {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error: cannot encode the container's state")]
    EncodeState(#[source] serde_json::Error),

    #[error("cannot create the cache dir {}", path.display())]
    CacheDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot create the container directory {}", path.display())]
    ContainerDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("published port {port} is not available on the host")]
    PortUnavailable {
        port: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`{tool}` is not installed")]
    MissingNetworkHelper { tool: &'static str },

    #[error("the network helper `{tool}` failed: {error}")]
    NetworkHelper { tool: &'static str, error: String },

    #[error("container {id} is not running")]
    NotRunning { id: String },

    #[error("no running container {query}")]
    NoSuchContainer { query: String },

    #[error("{0}")]
    Internal(String),

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RuntimeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RuntimeError::UserNamespace { source } => Some(match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => "unprivileged user namespaces are off: `sudo sysctl -w kernel.unprivileged_userns_clone=1` (Debian) or `sudo sysctl -w user.max_user_namespaces=15000`; on Ubuntu 24.04+ also `kernel.apparmor_restrict_unprivileged_userns=0`".into(),
                Some(libc::ENOSPC) => "the user namespace limit is reached: raise `user.max_user_namespaces`".into(),
                _ => "check that the kernel supports user namespaces (CONFIG_USER_NS)".into(),
            }),
            RuntimeError::MissingIdTool { .. } => {
                Some("install the `uidmap` package (Debian/Ubuntu: `sudo apt-get install uidmap`)".into())
            }
            RuntimeError::IdMapTool { .. } => Some(
                "check this user's ranges in /etc/subuid and /etc/subgid (`sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`)".into(),
            ),
            RuntimeError::ContainerSetup { kind, .. } => kind.hint().map(str::to_owned),
            RuntimeError::PortUnavailable { .. } => Some(
                "another program holds that port: pick another host port (-p OTHER:CONTAINER) or stop it".into(),
            ),
            RuntimeError::MissingNetworkHelper { tool } => Some(format!(
                "install it (Debian: `sudo apt-get install {}`), or use --network none or --network host",
                if *tool == "pasta" { "passt" } else { "slirp4netns" }
            )),
            RuntimeError::Plan(e) => e.hint(),
            RuntimeError::NetworkHelper { tool, .. } if tool.contains("egress") => Some(
                "the forwarder for [network] allow configures the sandbox's own network namespace, which sandbox makes itself: this is sandbox's failure, worth reporting with the error above; `--network none` runs without any network meanwhile".into(),
            ),
            RuntimeError::NetworkHelper { tool, .. } if tool.contains("relay") => Some(
                "the relay (the default network) needs nf_tables with TPROXY and the NFQUEUE target; `sandbox doctor` tries what it needs and says what is missing; `--network pasta` (or `mode = \"pasta\"` in sandbox.toml) runs without it".into(),
            ),
            RuntimeError::NetworkHelper { .. } => Some(
                "pasta and slirp4netns need /dev/net/tun usable by your user (`ls -l /dev/net/tun`); --network none or host avoid them".into(),
            ),
            RuntimeError::NoSuchContainer { .. } => Some("`sandbox ps` lists running containers".into()),
            RuntimeError::Scope { .. } => Some(
                "`systemctl --user status` shows whether your user manager runs; drop the limits (and --stats) to run without a cgroup".into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_of_sandboxs_own_networks_has_its_own_hint() {
        let hint = |tool| {
            RuntimeError::NetworkHelper {
                tool,
                error: "x".into(),
            }
            .hint()
            .unwrap_or_default()
        };
        assert!(hint("sandbox's network relay").contains("sandbox doctor"));
        assert!(hint("sandbox's egress forwarder").contains("[network] allow"));
        assert!(hint("pasta").contains("/dev/net/tun"));
    }
}
