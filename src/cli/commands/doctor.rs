//! `sandbox doctor`: what this host gives a sandbox, one check per line (ok, warn, fail), each
//! shortfall with the command that fixes it. Exit 0 when every check a run needs passes.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::args::{DoctorArgs, GlobalArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::runtime::identity::idmap;
use crate::runtime::probe;
use crate::settings::limits::Controller;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    /// The command (or setting) that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// A run cannot start without it.
    critical: bool,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: None,
        critical: false,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
    fn critical(mut self) -> Self {
        self.critical = true;
        self
    }
}

fn read_number(path: &str) -> Option<i64> {
    fs_err::read_to_string(path).ok()?.trim().parse().ok()
}

fn user_namespaces() -> Check {
    if read_number("/proc/sys/user/max_user_namespaces") == Some(0) {
        return check(
            "user namespaces",
            Status::Fail,
            "user.max_user_namespaces is 0",
        )
        .fix("sudo sysctl -w user.max_user_namespaces=28633")
        .critical();
    }
    let restricted =
        read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1);
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sandbox"));
    userns_verdict(restricted, probe::user_namespaces(), &exe).critical()
}

/// What the probe of a user namespace says, on a host where AppArmor may restrict them
/// (Ubuntu 23.10+: then only programs whose profile says `userns` may make one, as podman's
/// and bubblewrap's do).
fn userns_verdict(restricted: bool, probe: Result<(), String>, exe: &Path) -> Check {
    match (probe, restricted) {
        (Ok(()), false) => check(
            "user namespaces",
            Status::Ok,
            "unprivileged user namespaces work",
        ),
        (Ok(()), true) => check(
            "user namespaces",
            Status::Ok,
            "AppArmor restricts unprivileged user namespaces; a profile allows them for sandbox",
        ),
        (Err(e), true) => check(
            "user namespaces",
            Status::Fail,
            format!("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1), and no profile allows them for {}: {e}", exe.display()),
        )
        .fix(format!(
            "scripts/install.sh installs one; by hand: printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile sandbox {} flags=(unconfined) {{\\n  userns,\\n}}\\n' | sudo tee /etc/apparmor.d/sandbox && sudo apparmor_parser -r /etc/apparmor.d/sandbox",
            exe.display()
        )),
        (Err(e), false) => check("user namespaces", Status::Fail, e)
            .fix("sudo sysctl -w kernel.unprivileged_userns_clone=1"),
    }
}

/// Every command reads the user's config first: one that does not parse stops them all.
fn user_config() -> Check {
    let path = crate::config::user::own_config_path().map_or_else(
        || "~/.config/sandbox/config.toml".into(),
        |p| p.display().to_string(),
    );
    match crate::config::user::check() {
        Ok(()) => check(
            "user config",
            Status::Ok,
            format!("{path} reads (or there is none)"),
        ),
        Err(e) => {
            let fixed = e.hint().unwrap_or_else(|| format!("edit {path}"));
            check("user config", Status::Fail, e.to_string())
                .fix(fixed)
                .critical()
        }
    }
}

fn subordinate_ids() -> Vec<Check> {
    let fix = "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER";
    let mut checks = Vec::new();
    let nsswitch = fs_err::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    // newuidmap asks this service (through libsubid) when the files have no range.
    let service = idmap::subid_service(&nsswitch)
        .map(|s| format!(" or {s} (nsswitch.conf subid, via getsubids)"));
    let service = service.unwrap_or_default();
    for (name, path) in [
        ("subordinate uids", "/etc/subuid"),
        ("subordinate gids", "/etc/subgid"),
    ] {
        let ranges = idmap::subordinate_ranges(Path::new(path)).unwrap_or_default();
        checks.push(match ranges.iter().map(|(_, n)| u64::from(*n)).sum::<u64>() {
            0 => check(
                name,
                Status::Warn,
                format!("none for you in {path}{service}: only your own id exists inside (no --as-root, no setup steps as root)"),
            )
            .fix(fix),
            n if n < 65536 => check(name, Status::Warn, format!("{n} ids in {path}{service}; images may use ids up to 65535")).fix(fix),
            n => {
                let shown: Vec<String> = ranges.iter().map(|(f, c)| format!("{f}-{}", f + c - 1)).collect();
                check(name, Status::Ok, format!("{} ({n}) in {path}{service}", shown.join(", ")))
            }
        });
    }
    checks
}

/// setuid root, or holding the file capabilities it needs (as getcap shows them).
fn is_privileged_helper(path: &Path) -> bool {
    let setuid_root =
        fs_err::metadata(path).is_ok_and(|m| m.uid() == 0 && m.permissions().mode() & 0o4000 != 0);
    setuid_root
        || std::process::Command::new("getcap")
            .arg(path)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cap_set"))
}

fn id_map_helpers() -> Check {
    let found: Vec<PathBuf> = ["newuidmap", "newgidmap"]
        .iter()
        .filter_map(|t| which::which(t).ok())
        .collect();
    if found.len() < 2 {
        return check("newuidmap/newgidmap", Status::Fail, "not installed")
            .fix("sudo apt-get install uidmap")
            .critical();
    }
    if found.iter().all(|p| is_privileged_helper(p)) {
        check(
            "newuidmap/newgidmap",
            Status::Ok,
            format!("{} and {}", found[0].display(), found[1].display()),
        )
    } else {
        check(
            "newuidmap/newgidmap",
            Status::Fail,
            "installed, but neither setuid root nor with file capabilities",
        )
        .fix("sudo chmod u+s $(command -v newuidmap) $(command -v newgidmap)")
        .critical()
    }
}

/// Whether this user may read and write `path` (a device node).
fn usable_by_us(path: &str) -> bool {
    use nix::unistd::AccessFlags;
    nix::unistd::access(path, AccessFlags::R_OK | AccessFlags::W_OK).is_ok()
}

fn overlay(scratch: &Path) -> Vec<Check> {
    let fuse = which::which("fuse-overlayfs").ok();
    let fuse_usable = fuse.is_some() && usable_by_us("/dev/fuse");
    let kernel = probe::overlay_in_user_namespace(scratch);
    let mut checks = vec![match (&kernel, fuse_usable) {
        (Ok(()), _) => check("overlay", Status::Ok, "kernel overlayfs in a user namespace"),
        (Err(e), true) => check("overlay", Status::Warn, format!("the kernel refuses overlayfs in a user namespace ({e}); fuse-overlayfs is used")),
        (Err(e), false) => check("overlay", Status::Fail, format!("the kernel refuses overlayfs in a user namespace ({e}) and fuse-overlayfs is not usable"))
            .fix("sudo apt-get install fuse-overlayfs (and /dev/fuse readable and writable by you), or Linux 5.11+")
            .critical(),
    }];
    checks.push(match (&fuse, fuse_usable) {
        (Some(path), true) => check(
            "fuse-overlayfs",
            Status::Ok,
            format!("{} (the fallback)", path.display()),
        ),
        (Some(_), false) => check(
            "fuse-overlayfs",
            Status::Warn,
            "/dev/fuse is not readable and writable by you",
        )
        .fix("sudo chmod 0666 /dev/fuse"),
        (None, _) => check(
            "fuse-overlayfs",
            Status::Warn,
            "not installed (the fallback when the kernel refuses overlayfs)",
        )
        .fix("sudo apt-get install fuse-overlayfs"),
    });
    checks
}

fn network() -> Vec<Check> {
    let relay = match probe::relay_network() {
        Ok(()) => check(
            "network relay",
            Status::Ok,
            "nftables TPROXY and NFQUEUE in a network namespace of yours (the default network)",
        ),
        Err(e) => check(
            "network relay",
            Status::Warn,
            format!("the default network cannot be set up here: {e}"),
        )
        .fix("use --network pasta (or `mode = \"pasta\"` in sandbox.toml); a kernel with nf_tables, TPROXY and the NFQUEUE target has it"),
    };
    let helpers: Vec<String> = ["pasta", "slirp4netns"]
        .iter()
        .filter(|h| which::which(h).is_ok())
        .map(|h| h.to_string())
        .collect();
    let mut checks = vec![relay];
    checks.push(if helpers.is_empty() {
        check(
            "network helper",
            Status::Warn,
            "neither pasta nor slirp4netns: --network pasta and slirp4netns do not work",
        )
        .fix("sudo apt-get install passt")
    } else {
        check("network helper", Status::Ok, helpers.join(", "))
    });
    checks.push(if usable_by_us("/dev/net/tun") {
        check("/dev/net/tun", Status::Ok, "readable and writable")
    } else {
        check(
            "/dev/net/tun",
            Status::Warn,
            "not readable and writable by you: pasta and slirp4netns need it",
        )
        .fix("sudo chmod 0666 /dev/net/tun")
    });
    checks
}

/// The user's name, as `chown` takes it.
fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name)
}

/// What an administrator runs to delegate the five v1 controllers to `user`, the config line
/// naming them, and the tmpfiles.d entry that makes them again at every boot.
fn v1_delegation_commands(user: &str) -> String {
    let controllers = Controller::ALL.map(Controller::name).join(" ");
    let config = crate::fsutil::shown::config_dir();
    format!(
        "for c in {controllers}; do sudo mkdir -p /sys/fs/cgroup/$c/sandbox/{user} && sudo chown {user} /sys/fs/cgroup/$c/sandbox/{user}; done; \
then in {config}/sandbox/config.toml: [cgroups] v1 = \"/sys/fs/cgroup/{{controller}}/sandbox/{user}\"; \
to have them after a reboot: printf 'd /sys/fs/cgroup/%s/sandbox/{user} 0755 {user} - -\\n' {controllers} | sudo tee /etc/tmpfiles.d/sandbox-cgroups.conf"
    )
}

/// What the lack of a cgroup means inside, said with each warning about it.
const NO_VIEW: &str =
    "and /sys/fs/cgroup inside is empty, so a JVM or Go sizes itself by the host's memory and CPUs";

fn cgroups() -> Check {
    let v2_only = !Path::new("/sys/fs/cgroup/memory").exists()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let configured = crate::config::user::cgroups_v1().unwrap_or_default();
    let commands = v1_delegation_commands(&whoami());
    if v2_only {
        return cgroups_v2();
    }
    if configured.is_empty() {
        return check(
            "cgroups",
            Status::Warn,
            format!("cgroup v1, nothing delegated to you: [limits] are not applied, {NO_VIEW}"),
        )
        .fix(commands);
    }
    let writable: Vec<&str> = configured
        .iter()
        .filter(|(_, d)| sys::cpath(d).is_ok_and(|c| sys::is_writable_dir_by_us(&c)))
        .map(|(c, _)| c.name())
        .collect();
    if writable.len() == configured.len() {
        check(
            "cgroups",
            Status::Ok,
            format!("cgroup v1, delegated to you: {}", writable.join(", ")),
        )
    } else {
        check(
            "cgroups",
            Status::Warn,
            format!(
                "cgroup v1: of the dirs your config names, only {} are yours to write",
                if writable.is_empty() {
                    "none".into()
                } else {
                    writable.join(", ")
                }
            ),
        )
        .fix(commands)
    }
}

/// cgroup v2: the delegated cgroup sandbox would use and the controllers it gives, else
/// systemd's user manager, else what to do.
fn cgroups_v2() -> Check {
    use crate::runtime::cgroups::v2::{Offer, V2Facts};
    let Some(facts) = V2Facts::of_this_host() else {
        return check(
            "cgroups",
            Status::Warn,
            "cgroup v2, but /proc/self/cgroup names no cgroup of this process",
        );
    };
    let linger = "log in through systemd (pam_systemd), or `sudo loginctl enable-linger $USER`";
    match &facts.base {
        Some(base) => {
            let (given, missing): (Vec<&str>, Vec<&str>) = ["memory", "pids", "cpu", "io"]
                .into_iter()
                .partition(|c| base.offers(c) != Offer::No);
            let detail = format!(
                "cgroup v2, delegated to you: {} (gives {})",
                base.path.display(),
                if given.is_empty() { "no controller".into() } else { given.join(", ") }
            );
            if missing.is_empty() {
                check("cgroups", Status::Ok, detail)
            } else if facts.systemd_user && given.is_empty() {
                check("cgroups", Status::Ok, format!("cgroup v2: systemd's user manager gives each sandbox a delegated scope ({} gives no controller)", base.path.display()))
            } else {
                check("cgroups", Status::Warn, format!("{detail}; not {}", missing.join(", ")))
                    .fix(format!("run sandbox from a leaf cgroup of {} (it must hold no processes to give controllers), or have systemd delegate them (Delegate=yes)", base.path.display()))
            }
        }
        None if facts.systemd_user => check(
            "cgroups",
            Status::Ok,
            "cgroup v2: systemd's user manager gives each sandbox a delegated scope (through busctl --user)",
        ),
        None => check(
            "cgroups",
            Status::Warn,
            format!("cgroup v2: your cgroup {} is not delegated to you and no systemd user manager answers: [limits] are not applied, {NO_VIEW}", facts.current),
        )
        .fix(linger),
    }
}

fn store(root: &Path) -> Vec<Check> {
    let me = nix::unistd::getuid().as_raw();
    let mut checks = Vec::new();
    checks.push(match fs_err::metadata(root) {
        Err(_) => check(
            "store",
            Status::Ok,
            format!("{} (made at the first pull)", root.display()),
        ),
        Ok(m) if m.uid() != me => check(
            "store",
            Status::Fail,
            format!("{} belongs to uid {}, not you", root.display(), m.uid()),
        )
        .fix(format!(
            "use your own with --root, or sudo chown -R $USER {}",
            root.display()
        ))
        .critical(),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => check(
            "store",
            Status::Warn,
            format!(
                "{} is mode {:o}: other users can reach setuid files in it",
                root.display(),
                m.permissions().mode() & 0o777
            ),
        )
        .fix(format!("chmod 0700 {}", root.display())),
        Ok(_) => check(
            "store",
            Status::Ok,
            format!("{} (yours, 0700)", root.display()),
        ),
    });
    let existing = root
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let free =
        nix::sys::statvfs::statvfs(existing).map(|s| s.blocks_available() * s.fragment_size());
    checks.push(match free {
        Ok(bytes) if bytes < 1 << 30 => check(
            "free space",
            Status::Warn,
            format!(
                "{} free where the store is",
                crate::settings::limits::human_size(bytes)
            ),
        )
        .fix("sandbox prune, or --root on a larger file system"),
        Ok(bytes) => check(
            "free space",
            Status::Ok,
            format!(
                "{} free where the store is",
                crate::settings::limits::human_size(bytes)
            ),
        ),
        Err(e) => check("free space", Status::Warn, format!("cannot tell: {e}")),
    });
    checks
}

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, CliError> {
    let root = global.locations().store_root()?;
    let scratch = root
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_owned)
        .unwrap_or_else(std::env::temp_dir);
    let mut checks = vec![user_namespaces()];
    checks.extend(subordinate_ids());
    checks.push(id_map_helpers());
    checks.push(user_config());
    checks.extend(overlay(&scratch));
    checks.extend(network());
    checks.push(cgroups());
    checks.extend(store(&root));
    checks.push(if probe::seccomp() {
        check("seccomp", Status::Ok, "supported")
    } else {
        check(
            "seccomp",
            Status::Fail,
            "this kernel has no seccomp filtering (CONFIG_SECCOMP_FILTER)",
        )
        .critical()
    });
    let failed = checks
        .iter()
        .any(|c| c.critical && c.status == Status::Fail);
    if args.json {
        println!("{}", format::json(&checks)?);
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{mark}  {:<22} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("      {:<22} fix: {fix}", "");
            }
        }
    }
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apparmors_restriction_is_named_with_the_profile_that_lifts_it() {
        let exe = Path::new("/usr/local/bin/sandbox");
        let refused = userns_verdict(true, Err("unshare: Permission denied".into()), exe);
        assert_eq!(refused.status, Status::Fail);
        assert!(
            refused.detail.contains("AppArmor restricts"),
            "{}",
            refused.detail
        );
        let fix = refused.fix.unwrap_or_default();
        assert!(
            fix.contains("profile sandbox /usr/local/bin/sandbox flags=(unconfined) {\\n  userns,")
                && fix.contains("apparmor_parser -r"),
            "{fix}"
        );
        // A profile already lets sandbox in: fine, and said.
        let allowed = userns_verdict(true, Ok(()), exe);
        assert_eq!(allowed.status, Status::Ok);
        assert!(allowed.detail.contains("a profile allows them"));
        let plain = userns_verdict(false, Err("EPERM".into()), exe);
        assert_eq!(plain.status, Status::Fail);
        assert!(!plain.detail.contains("AppArmor"));
    }
}
