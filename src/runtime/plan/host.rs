//! Facts about the host a plan depends on, gathered once by the caller: who the user is, the
//! working directory, the terminal and locale variables, resolv.conf, whether the relay
//! network works here (else the installed helper), the overlay override and where the store and
//! caches live.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::runtime::net::helpers::Helper;
use crate::runtime::plan::launch::OverlayChoice;
pub use sys::FdKind;
use sys::StdStream;

/// The user as the host knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    /// The home with every symlink resolved: where the per-project home is mounted, so a
    /// project under it (whose path the kernel gives resolved) is seen inside it.
    pub home: PathBuf,
    /// The home as passwd names it, when that goes through a symlink (Fedora Silverblue's
    /// `/home -> var/home`): a link to `home` inside, so the named path works too.
    pub home_alias: Option<PathBuf>,
    pub shell: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub user: HostUser,
    pub cwd: PathBuf,
    /// TERM, COLORTERM, LANG, LANGUAGE and LC_*: the only host variables that come inside.
    pub terminal_env: Vec<(String, String)>,
    /// The host's /etc/resolv.conf (capped), for `host` networking.
    pub resolv_conf: String,
    /// Whether the relay network works under this kernel (the default network when it does).
    pub relay: bool,
    /// pasta when installed, else slirp4netns: the default network when the relay does not
    /// work (looked for only then).
    pub helper: Option<Helper>,
    /// The IPv4 default gateway, which pasta copies inside (host loopback's address).
    pub gateway: Option<Ipv4Addr>,
    /// `SANDBOX_OVERLAY=kernel|fuse`, else automatic.
    pub overlay: OverlayChoice,
    /// The store's root (`--root`).
    pub store: PathBuf,
    /// `$XDG_CACHE_HOME/sandbox/caches`; `None` when neither it nor HOME is set.
    pub cache_root: Option<PathBuf>,
    /// What our fds 0, 1 and 2 are.
    pub stdio: [FdKind; 3],
    /// The cgroups delegated to the user (from the user config, looked at).
    pub cgroups: crate::runtime::cgroups::CgroupFacts,
    /// The host's proxy variables, passed inside (as podman does) unless the user config says
    /// not to.
    pub proxy_env: Vec<(String, String)>,
}

/// The proxy variables tools read, in both cases.
pub fn is_proxy_variable(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "http_proxy" | "https_proxy" | "ftp_proxy" | "no_proxy" | "all_proxy"
    )
}

/// The most of the host's resolv.conf that is copied.
const RESOLV_CONF_LIMIT: usize = 64 * 1024;

fn is_terminal_variable(key: &str) -> bool {
    matches!(key, "TERM" | "COLORTERM" | "LANG" | "LANGUAGE") || key.starts_with("LC_")
}

impl HostFacts {
    /// `containers/` in the store: a dir for each container.
    pub fn containers_dir(&self) -> PathBuf {
        self.store.join("containers")
    }

    /// Reads the facts from this process and the host.
    pub fn gather(
        store: PathBuf,
        cache_root: Option<PathBuf>,
        cgroups_v1: &[(crate::settings::limits::Controller, PathBuf)],
    ) -> std::io::Result<Self> {
        let uid = nix::unistd::getuid();
        let entry = nix::unistd::User::from_uid(uid).ok().flatten();
        let name = entry
            .as_ref()
            .map(|u| u.name.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| format!("user{uid}"));
        let home = entry
            .as_ref()
            .map(|u| u.dir.clone())
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from("/home").join(&name));
        // The working dir and the project come resolved (getcwd), so the home must be too.
        let (home, home_alias) = match fs_err::canonicalize(&home) {
            Ok(real) if real != home => (real, Some(home)),
            _ => (home, None),
        };
        let shell = entry
            .as_ref()
            .map_or_else(|| PathBuf::from("/bin/sh"), |u| u.shell.clone());
        let relay = crate::runtime::probe::relay_here(&store);
        let mut resolv_conf = fs_err::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if resolv_conf.len() > RESOLV_CONF_LIMIT {
            let mut end = RESOLV_CONF_LIMIT;
            while !resolv_conf.is_char_boundary(end) {
                end -= 1;
            }
            resolv_conf.truncate(end);
        }
        Ok(Self {
            user: HostUser {
                uid: uid.as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                name,
                home,
                home_alias,
                shell,
            },
            cwd: std::env::current_dir()?,
            terminal_env: std::env::vars()
                .filter(|(k, _)| is_terminal_variable(k))
                .collect(),
            resolv_conf,
            relay,
            helper: if relay { None } else { Helper::detect() },
            gateway: crate::runtime::net::helpers::default_gateway(),
            overlay: match std::env::var("SANDBOX_OVERLAY").as_deref() {
                Ok("fuse") => OverlayChoice::Fuse,
                Ok("kernel") => OverlayChoice::Kernel,
                _ => OverlayChoice::Auto,
            },
            store,
            cache_root,
            stdio: [StdStream::In, StdStream::Out, StdStream::Err].map(sys::std_kind),
            cgroups: crate::runtime::cgroups::CgroupFacts::gather(cgroups_v1),
            proxy_env: std::env::vars()
                .filter(|(k, _)| is_proxy_variable(k))
                .collect(),
        })
    }
}
