//! cgroup v2, the unified hierarchy: which cgroup this user may make container cgroups in,
//! and what the kernel says of one.
//!
//! A cgroup is delegated to a user when the dir and its `cgroup.procs` are the user's (an
//! administrator's `chown`, or systemd's `Delegate=yes`). v2 lets a cgroup give controllers to
//! its children only while it holds no processes of its own, so the current cgroup (which
//! holds this process and the user's shell) rarely can; its nearest delegated ancestor that
//! does is used then (a service that keeps its processes in a leaf, as systemd's
//! `DelegateSubgroup=` does). When none is, systemd's user manager is asked for a scope.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::settings::limits::Controller;

/// Where cgroup2 is mounted when it is the only hierarchy.
pub const MOUNT: &str = "/sys/fs/cgroup";

/// The v2 name of a controller sandbox limits or meters with; CPU time is in every v2
/// cgroup's `cpu.stat`, so cpuacct has none.
pub fn v2_name(controller: Controller) -> Option<&'static str> {
    match controller {
        Controller::Memory => Some("memory"),
        Controller::Pids => Some("pids"),
        Controller::Cpu => Some("cpu"),
        Controller::Blkio => Some("io"),
        Controller::Cpuacct => None,
    }
}

/// The delegated cgroup container cgroups are made in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Base {
    pub path: PathBuf,
    /// What its children get (`cgroup.subtree_control`).
    pub enabled: Vec<String>,
    /// What it has and could give them (`cgroup.controllers`).
    pub available: Vec<String>,
    /// It holds no process of its own, so we may enable more controllers for its children.
    pub empty: bool,
    /// `memory.swap.max` exists (swap is accounted, and can be turned off inside a limit).
    pub swap: bool,
}

impl V2Base {
    /// Whether a child made here can have `name`, and whether that needs enabling first.
    pub fn offers(&self, name: &str) -> Offer {
        if self.enabled.iter().any(|c| c == name) {
            Offer::Enabled
        } else if self.empty && self.available.iter().any(|c| c == name) {
            Offer::AfterEnabling
        } else {
            Offer::No
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Enabled,
    AfterEnabling,
    No,
}

/// What a v2-only host offers this user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Facts {
    pub mount: PathBuf,
    /// This process's cgroup, as `/proc/self/cgroup` names it.
    pub current: String,
    /// The cgroup to make container cgroups in, when one is delegated to us.
    pub base: Option<V2Base>,
    /// systemd's user manager can be asked for a delegated scope (its bus is there and
    /// `busctl` is installed).
    pub systemd_user: bool,
}

impl V2Facts {
    /// The facts of this host, when cgroup2 is its only hierarchy (on hybrid hosts v2 has no
    /// controllers, and `[cgroups] v1` is the way).
    pub fn of_this_host() -> Option<Self> {
        let mount = Path::new(MOUNT);
        if !mount.join("cgroup.controllers").exists() {
            return None;
        }
        let current = current_cgroup(&fs_err::read_to_string("/proc/self/cgroup").ok()?)?;
        let uid = nix::unistd::getuid().as_raw();
        let mut facts = Self::gather(mount, &current, uid);
        facts.systemd_user = systemd_user_bus();
        Some(facts)
    }

    /// Looks at the tree mounted at `mount` from `current` up, for `uid`.
    pub fn gather(mount: &Path, current: &str, uid: u32) -> Self {
        Self {
            mount: mount.to_owned(),
            current: current.to_owned(),
            base: find_base(mount, current, uid),
            systemd_user: false,
        }
    }
}

/// The v2 path in `/proc/PID/cgroup` text (its `0::` line).
pub fn current_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_owned())
        .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."))
}

/// Ours to make cgroups in: the dir and its `cgroup.procs` are ours. A cgroup of a systemd
/// unit (`*.slice`, `*.scope`, `*.service`) must also be one systemd delegated (`Delegate=yes`,
/// marked with the `user.delegate` attribute): the user manager's own slices belong to the user
/// too, but it manages them and expects no one else to make cgroups there.
fn delegated(dir: &Path, uid: u32) -> bool {
    let owned = |p: &Path| fs_err::metadata(p).is_ok_and(|m| m.uid() == uid);
    let unit = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        [".slice", ".scope", ".service"]
            .iter()
            .any(|s| n.ends_with(s))
    });
    let marked = || {
        let path = sys::cpath(dir);
        let name = sys::cstring("user.delegate");
        matches!((path, name), (Ok(p), Ok(n)) if sys::small_xattr(&p, &n).as_deref() == Some(b"1"))
    };
    dir.is_dir() && owned(dir) && owned(&dir.join("cgroup.procs")) && (!unit || marked())
}

fn words(path: &Path) -> Vec<String> {
    fs_err::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The nearest delegated cgroup from `current` up that gives (or may give) its children
/// controllers; else the current one when it is delegated (it still meters CPU time).
fn find_base(mount: &Path, current: &str, uid: u32) -> Option<V2Base> {
    let look = |dir: &Path| V2Base {
        path: dir.to_owned(),
        enabled: words(&dir.join("cgroup.subtree_control")),
        available: words(&dir.join("cgroup.controllers")),
        empty: fs_err::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| t.trim().is_empty()),
        swap: dir.join("memory.swap.max").exists(),
    };
    let start = mount.join(current.trim_start_matches('/'));
    let mut first = None;
    let mut dir = start.as_path();
    while delegated(dir, uid) {
        let here = look(dir);
        let gives = !here.enabled.is_empty() || (here.empty && !here.available.is_empty());
        if gives {
            return Some(here);
        }
        first.get_or_insert(here);
        match dir.parent() {
            Some(parent) if dir != mount && parent.starts_with(mount) => dir = parent,
            _ => break,
        }
    }
    first
}

/// systemd's user bus, which `busctl --user` reaches.
fn systemd_user_bus() -> bool {
    let socket = std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("bus"));
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || socket.is_some_and(|s| s.exists());
    bus && std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("busctl").is_file()))
}

fn number(dir: &Path, name: &str) -> Option<u64> {
    fs_err::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A `key value` line's value in a flat-keyed file (`cpu.stat`, `memory.events`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Bytes read and written, summed over devices, from `io.stat`.
pub fn io_totals(text: &str) -> (u64, u64) {
    let mut totals = (0, 0);
    for field in text.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match key {
            "rbytes" => totals.0 += value,
            "wbytes" => totals.1 += value,
            _ => {}
        }
    }
    totals
}

/// The memory limit in `memory.max` (`max`: none).
pub fn memory_limit(dir: &Path) -> Option<u64> {
    number(dir, "memory.max")
}

/// (limit, peak) when the memory limit killed something in `dir`.
pub fn out_of_memory(dir: &Path) -> Option<(u64, u64)> {
    let events = fs_err::read_to_string(dir.join("memory.events")).ok()?;
    (keyed(&events, "oom_kill")? > 0).then(|| {
        (
            memory_limit(dir).unwrap_or(0),
            peak_memory(dir).unwrap_or(0),
        )
    })
}

/// `memory.peak` (Linux 5.19), else what is in use now.
fn peak_memory(dir: &Path) -> Option<u64> {
    number(dir, "memory.peak").or_else(|| number(dir, "memory.current"))
}

/// What everything that ran in `dir` used. Network counters are not there.
pub fn usage(dir: &Path) -> crate::runtime::cgroups::metering::Usage {
    let cpu = fs_err::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
    let (read_bytes, written_bytes) =
        io_totals(&fs_err::read_to_string(dir.join("io.stat")).unwrap_or_default());
    crate::runtime::cgroups::metering::Usage {
        cpu_user_us: keyed(&cpu, "user_usec").unwrap_or(0),
        cpu_system_us: keyed(&cpu, "system_usec").unwrap_or(0),
        peak_memory: peak_memory(dir).unwrap_or(0),
        peak_pids: number(dir, "pids.peak"),
        read_bytes,
        written_bytes,
        net_in: 0,
        net_out: 0,
    }
}

/// A running sandbox's figures now, from its cgroup `dir`: (cpu µs, memory, limit, pids, io).
pub fn now(dir: &Path) -> (u64, u64, Option<u64>, Option<u64>, (u64, u64)) {
    let cpu = fs_err::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
    (
        keyed(&cpu, "usage_usec").unwrap_or(0),
        number(dir, "memory.current").unwrap_or(0),
        memory_limit(dir),
        number(dir, "pids.current"),
        io_totals(&fs_err::read_to_string(dir.join("io.stat")).unwrap_or_default()),
    )
}

/// A fake cgroup2 tree for unit tests: `dirs` relative to the mount, each with its
/// controllers, what it enables for its children and its processes.
#[cfg(test)]
pub fn fake_tree(dirs: &[(&str, &str, &str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (dir, controllers, enabled, procs) in dirs {
        let dir = root.path().join(dir);
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("cgroup.controllers"), controllers).unwrap();
        fs_err::write(dir.join("cgroup.subtree_control"), enabled).unwrap();
        fs_err::write(dir.join("cgroup.procs"), procs).unwrap();
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    #[test]
    fn the_current_cgroup_is_read_from_the_unified_line() {
        let text = "12:pids:/user.slice\n1:name=systemd:/x\n0::/user.slice/app.slice/a.scope\n";
        assert_eq!(
            current_cgroup(text).as_deref(),
            Some("/user.slice/app.slice/a.scope")
        );
        assert_eq!(current_cgroup("0::/a/../../etc\n"), None);
        assert_eq!(current_cgroup("1:cpu:/x\n"), None);
    }

    #[test]
    fn a_delegated_parent_that_gives_controllers_is_the_base() {
        // A service delegated to us that keeps its processes in the leaf `main`.
        let root = fake_tree(&[
            ("svc", "cpu memory pids io", "memory pids", ""),
            ("svc/main", "memory pids", "", "4242\n"),
        ]);
        let facts = V2Facts::gather(root.path(), "/svc/main", me());
        let base = facts.base.unwrap();
        assert_eq!(base.path, root.path().join("svc"));
        assert_eq!(base.offers("memory"), Offer::Enabled);
        assert_eq!(base.offers("cpu"), Offer::AfterEnabling);
        assert_eq!(base.offers("hugetlb"), Offer::No);
    }

    #[test]
    fn the_walk_passes_a_cgroup_holding_processes_only_through_our_own() {
        // The shell's cgroup is ours but holds processes; its parent is not ours.
        let root = fake_tree(&[
            ("users", "cpu memory pids", "memory pids", ""),
            ("users/shell", "memory pids", "", "100\n101\n"),
        ]);
        let not_ours = me().wrapping_add(1);
        let facts = V2Facts::gather(root.path(), "/users/shell", not_ours);
        assert_eq!(facts.base, None);
        // Ours but full: kept for metering, offers no controller.
        let facts = V2Facts::gather(root.path(), "/users/shell", me());
        let base = facts.base.unwrap();
        assert_eq!(base.path, root.path().join("users"));
        let root2 = fake_tree(&[("shell", "memory pids", "", "100\n")]);
        // The walk stops at the mount: the tree's root is not a candidate above it.
        let facts = V2Facts::gather(&root2.path().join("shell"), "/", me());
        let base = facts.base.unwrap();
        assert_eq!(base.offers("memory"), Offer::No);
    }

    #[test]
    fn a_systemd_unit_counts_as_delegated_only_when_systemd_marked_it() {
        // The user manager's slice is the user's, but only the scope it delegated is ours.
        let root = fake_tree(&[
            (
                "user@1000.service/app.slice",
                "cpu memory pids",
                "memory pids",
                "",
            ),
            (
                "user@1000.service/app.slice/run-1.scope",
                "memory pids",
                "",
                "55\n",
            ),
        ]);
        let scope = root.path().join("user@1000.service/app.slice/run-1.scope");
        let current = "/user@1000.service/app.slice/run-1.scope";
        // Unmarked: not ours at all.
        assert_eq!(V2Facts::gather(root.path(), current, me()).base, None);
        let path = sys::cpath(&scope).unwrap();
        let name = sys::cstring("user.delegate").unwrap();
        if let Err(e) = sys::set_xattr(&path, &name, b"1") {
            panic!("the temp dir's file system takes no user.* attributes ({e}): TMPDIR must be on tmpfs (6.6+) or ext4");
        }
        // Marked: the scope is ours; the slice above it still is not, so the walk stops there.
        let base = V2Facts::gather(root.path(), current, me()).base.unwrap();
        assert_eq!(base.path, scope);
        assert_eq!(base.offers("memory"), Offer::No);
    }

    #[test]
    fn usage_and_out_of_memory_are_read_from_v2_files() {
        let root = fake_tree(&[("c", "memory pids", "", "")]);
        let dir = root.path().join("c");
        fs_err::write(
            dir.join("cpu.stat"),
            "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n",
        )
        .unwrap();
        fs_err::write(dir.join("memory.peak"), "67108864\n").unwrap();
        fs_err::write(dir.join("memory.max"), "67108864\n").unwrap();
        fs_err::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs_err::write(
            dir.join("io.stat"),
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2\n",
        )
        .unwrap();
        let usage = usage(&dir);
        assert_eq!((usage.cpu_user_us, usage.cpu_system_us), (2000, 1000));
        assert_eq!(usage.peak_memory, 64 << 20);
        assert_eq!((usage.read_bytes, usage.written_bytes), (4097, 8194));
        assert_eq!(out_of_memory(&dir), Some((64 << 20, 64 << 20)));
        fs_err::write(dir.join("memory.max"), "max\n").unwrap();
        fs_err::write(dir.join("memory.events"), "oom_kill 0\n").unwrap();
        assert_eq!(out_of_memory(&dir), None);
        assert_eq!(memory_limit(&dir), None);
    }
}
