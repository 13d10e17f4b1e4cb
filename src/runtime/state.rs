//! Containers on disk: `containers/<id>/` holds the overlay's upper, work and mount dirs, a
//! `lock` held (flock) by the monitor and by pid 1 for as long as either lives, and
//! `state.json`. A directory whose lock nobody holds belongs to a container that is gone, and
//! is removed by the next command that looks.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic::write_file_replacing;
use crate::fsutil::lock::{FileLock, LockMode};
use crate::runtime::error::RuntimeError;

/// What `state.json` records; `sandbox ps` prints it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub project_dir: PathBuf,
    pub image: String,
    /// pid 1 of the container, as the host sees it.
    pub pid: i32,
    /// Its start time in clock ticks (from /proc/PID/stat), so a reused pid is not mistaken.
    pub pid_start: u64,
    /// The container's pid namespace (`pid:[N]`): pid 1 is not dumpable, so joiners and `stop`
    /// find the container's other processes by this.
    pub pid_ns: String,
    /// Seconds since the epoch.
    pub started: u64,
    pub hostname: String,
    /// Its network, as `plan::network_summary` words it.
    #[serde(default)]
    pub network: String,
    /// Its cgroup v2 dir, when it has one (v1 dirs are found from the user config).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// It has the host-trusting CA bundle (and the JVM needs its store named), so joined
    /// commands get the same variables.
    #[serde(default)]
    pub trusts_host_cas: bool,
    #[serde(default)]
    pub java_options: bool,
    /// What it was made from, with digests (sandbox.toml, sandbox.lock, copied files).
    #[serde(default)]
    pub sources: Vec<(String, String)>,
    /// Its first command (`run -- CMD`); empty for `enter`'s login shell. In the store, which
    /// is the user's alone, as podman keeps it.
    #[serde(default)]
    pub command: Vec<String>,
    /// Its published ports, as `-p` would give them (`127.0.0.1:8080:80/tcp`).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Its directory (`containers/<id>`), where it was read from.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ContainerState {
    /// The host pids of the container's processes other than pid 1.
    pub fn members(&self) -> Vec<i32> {
        let Ok(entries) = fs_err::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter(|pid| *pid != self.pid)
            .filter(|pid| {
                fs_err::read_link(format!("/proc/{pid}/ns/pid"))
                    .is_ok_and(|l| l.display().to_string() == self.pid_ns)
            })
            .collect()
    }

    /// Whether pid 1 of this container still runs.
    pub fn is_running(&self) -> bool {
        self.pid > 0 && process_start(self.pid) == Some(self.pid_start)
    }
}

/// A container's directory, with its lock held.
pub struct ContainerDir {
    pub path: PathBuf,
    _lock: FileLock,
}

/// Field 22 of /proc/PID/stat.
pub fn process_start(pid: i32) -> Option<u64> {
    let text = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// A fresh id: 12 hex digits from the time and our pid.
pub fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}-{}", std::process::id());
    crate::fsutil::unique::short_hash(seed.as_bytes(), 12)
}

/// Prefix of a container directory still being made; collection leaves it alone until it is
/// older than `STAGING_GRACE` (a start killed half-way).
const STAGING_PREFIX: &str = ".new-";
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Creates the container dir `dir` (`containers/<id>/`) with upper, work and merged dirs, and takes its lock.
///
/// The directory is made and locked under a staging name, then renamed into place: under its
/// final name it is always locked while its container lives, so another start's stale
/// collection can never take it for a dead one (it did, under load, between mkdir and flock).
pub fn create_dir(dir: &Path, id: &str) -> Result<ContainerDir, RuntimeError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let containers = dir.parent().unwrap_or(Path::new("."));
    let staging = containers.join(format!("{STAGING_PREFIX}{}", id));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    let create = |dir: &Path| {
        builder
            .create(dir)
            .map_err(|source| RuntimeError::ContainerDir {
                path: dir.to_owned(),
                source,
            })
    };
    create(&staging)?;
    let lock = FileLock::acquire(&staging.join("lock"), LockMode::Exclusive).map_err(|source| {
        RuntimeError::ContainerDir {
            path: staging.join("lock"),
            source,
        }
    })?;
    for name in ["upper", "work", "merged"] {
        create(&staging.join(name))?;
    }
    fs_err::rename(&staging, dir).map_err(|source| RuntimeError::ContainerDir {
        path: dir.to_owned(),
        source,
    })?;
    Ok(ContainerDir {
        path: dir.to_owned(),
        _lock: lock,
    })
}

pub fn write(dir: &ContainerDir, state: &ContainerState) -> Result<(), RuntimeError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(RuntimeError::EncodeState)?;
    write_file_replacing(&dir.path.join("state.json"), &bytes, 0o600)?;
    Ok(())
}

/// Removes a finished container's directory (its upper dir is the discarded changes).
pub fn remove(dir: &ContainerDir) {
    let _ = fs_err::remove_dir_all(&dir.path);
}

/// Every container whose pid 1 still runs.
pub fn running(containers: &Path) -> Vec<ContainerState> {
    let Ok(entries) = fs_err::read_dir(containers) else {
        return Vec::new();
    };
    let mut out: Vec<ContainerState> = entries
        .flatten()
        .filter_map(|e| {
            let bytes = fs_err::read(e.path().join("state.json")).ok()?;
            let state = serde_json::from_slice::<ContainerState>(&bytes).ok()?;
            Some(ContainerState {
                dir: e.path(),
                ..state
            })
        })
        .filter(ContainerState::is_running)
        .collect();
    out.sort_by_key(|s| s.started);
    out
}

/// Removes directories of containers that are gone (nobody holds their lock), and staging
/// directories that a killed start left behind.
pub fn collect_stale(containers: &Path) -> usize {
    let Ok(entries) = fs_err::read_dir(containers) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let staging = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if staging && !is_older_than(&path, STAGING_GRACE) {
            continue;
        }
        if let Ok(Some(_held)) = FileLock::try_acquire(&path.join("lock"), LockMode::Exclusive) {
            if fs_err::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The directories `collect_stale` would remove now: those of containers that are gone (a
/// `kill -9` leaves one behind until the next run) and old staging ones.
pub fn stale(containers: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs_err::read_dir(containers) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|path| {
            let staging = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(STAGING_PREFIX));
            (!staging || is_older_than(path, STAGING_GRACE))
                && matches!(
                    FileLock::try_acquire(&path.join("lock"), LockMode::Exclusive),
                    Ok(Some(_))
                )
        })
        .collect()
}

fn is_older_than(path: &Path, age: std::time::Duration) -> bool {
    fs_err::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// The running container of `project`, if any: one sandbox per project, whatever image it
/// was started from (a command joining it says when that differs).
pub fn find_for_project(containers: &Path, project: &Path) -> Option<ContainerState> {
    running(containers)
        .into_iter()
        .rev()
        .find(|s| s.project_dir == project)
}

/// What differs between the sources a container was made from and `now`: the names of the
/// changed, added or removed ones.
pub fn changed_sources(then: &[(String, String)], now: &[(String, String)]) -> Vec<String> {
    let mut changed: Vec<String> = now
        .iter()
        .filter(|(name, digest)| !then.iter().any(|(n, d)| n == name && d == digest))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(
        then.iter()
            .filter(|(name, _)| !now.iter().any(|(n, _)| n == name))
            .map(|(name, _)| name.clone()),
    );
    changed
}

/// Ends a container: SIGTERM to its processes, SIGKILL to pid 1 after `grace`. Must run inside
/// the container's user namespace (see `join::enter_user_namespace`), which gives the right to
/// signal processes running as any of its ids.
pub fn stop(state: &ContainerState, grace: std::time::Duration) -> bool {
    for pid in state.members() {
        sys::kill(pid, Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if !state.is_running() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // pid 1's death ends every process of its namespace.
    sys::kill(state.pid, Signal::SIGKILL);
    false
}
