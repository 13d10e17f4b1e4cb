//! What the host offers for limits (delegated v1 dirs, what v2 offers this user), where a
//! container's cgroup is, and what the sandbox sees at /sys/fs/cgroup.

use std::path::PathBuf;

use crate::runtime::cgroups::v2;
use crate::settings::limits::Controller;

/// Where the user config says a controller's delegated v1 dir is, and what is true of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegatedDir {
    pub controller: Controller,
    pub path: PathBuf,
    /// It exists and this user may make cgroups in it.
    pub writable: bool,
    /// `memory.memsw.limit_in_bytes` exists there (swap accounting is on).
    pub swap_accounting: bool,
}

/// A short tag of the store (its containers dir): in every cgroup name, so two stores under
/// one delegated parent (two `--root`s, two users of one subtree) never collect each other's.
pub fn store_tag(containers: &std::path::Path) -> String {
    crate::fsutil::unique::short_hash(containers.as_os_str().as_encoded_bytes(), 8)
}

/// The cgroup of container `id` of the store tagged `tag`.
pub fn cgroup_name(tag: &str, id: &str) -> String {
    format!("sandbox-{tag}-{id}")
}

/// The v1 cgroup of `container` under the delegated `parent`: its tagged name, else the
/// untagged one earlier versions made.
pub fn v1_dir_of(
    container: &crate::runtime::state::ContainerState,
    parent: &std::path::Path,
) -> std::path::PathBuf {
    let tagged = container
        .dir
        .parent()
        .map(|containers| parent.join(cgroup_name(&store_tag(containers), &container.id)));
    match tagged {
        Some(dir) if dir.is_dir() => dir,
        _ => parent.join(&container.id),
    }
}

/// What the host offers for limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupFacts {
    /// The delegated v1 dirs the user config names (none: not configured).
    pub v1: Vec<DelegatedDir>,
    /// The user config names v1 dirs (`[cgroups] v1`).
    pub configured: bool,
    /// On a host whose only hierarchy is cgroup2: what it offers this user.
    pub v2: Option<v2::V2Facts>,
    /// The host's v1 hierarchies (where v1 is configured), each as its mount options name
    /// it: `memory`, `cpu,cpuacct`.
    pub v1_hierarchies: Vec<String>,
}

/// What the sandbox sees at /sys/fs/cgroup, read-only, rooted at its own cgroup (pid 1 enters
/// its cgroups, then unshares a cgroup namespace): toolchains size themselves by what they
/// find there (a JVM's heap, Go's GOMAXPROCS, a build's job count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CgroupView {
    /// cgroup2, the sandbox's cgroup (or systemd scope) as its root.
    Unified,
    /// A tmpfs holding these v1 hierarchies (`cpu,cpuacct`, with a link for each controller
    /// of a shared one), as on the host: those the sandbox has a cgroup in, and those a JVM
    /// reads, since it uses its cgroup limits only when it finds all of memory, cpu, cpuacct
    /// and cpuset.
    Hierarchies(Vec<String>),
    /// No cgroup of the sandbox's own: an empty read-only tmpfs, so nothing of the host's
    /// cgroups shows through.
    #[default]
    Empty,
}

/// The v1 hierarchies `/proc/cgroups` lists: the enabled controllers grouped by hierarchy id
/// (0: not mounted on v1), each group named by its controllers joined with `,`.
pub fn v1_hierarchies(proc_cgroups: &str) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for line in proc_cgroups.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, hierarchy, _, enabled] = fields[..] {
            match (hierarchy.parse::<u32>(), enabled) {
                (Ok(id), "1") if id > 0 => groups.entry(id).or_default().push(name),
                _ => {}
            }
        }
    }
    groups.into_values().map(|names| names.join(",")).collect()
}

impl CgroupFacts {
    /// Looks at each dir the user config names (`{controller}` in a template is replaced).
    pub fn gather(v1: &[(Controller, PathBuf)]) -> Self {
        let v1: Vec<DelegatedDir> = v1
            .iter()
            .map(|(controller, path)| DelegatedDir {
                controller: *controller,
                path: path.clone(),
                writable: sys::cpath(path).is_ok_and(|c| sys::is_writable_dir_by_us(&c)),
                swap_accounting: *controller == Controller::Memory
                    && path.join("memory.memsw.limit_in_bytes").exists(),
            })
            .collect();
        let v1_hierarchies = if v1.is_empty() {
            Vec::new()
        } else {
            v1_hierarchies(&fs_err::read_to_string("/proc/cgroups").unwrap_or_default())
        };
        Self {
            configured: !v1.is_empty(),
            v1_hierarchies,
            v2: if v1.is_empty() {
                v2::V2Facts::of_this_host()
            } else {
                None
            },
            v1,
        }
    }
}
