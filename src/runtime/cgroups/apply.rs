//! Making a container's cgroups, moving pid 1 into them, reading what the kernel says of them,
//! and removing them (also those of a sandbox killed before it could).

use std::path::{Path, PathBuf};

use crate::runtime::cgroups::scope::ScopeRequest;
use crate::runtime::cgroups::{plan::CgroupPlan, v2};
use crate::runtime::error::RuntimeError;
use crate::settings::limits::Controller;

/// A container's cgroups, made.
#[derive(Debug, Default)]
pub struct Cgroup {
    /// v1: a dir per controller.
    dirs: Vec<(Controller, PathBuf)>,
    /// v2: its one dir.
    unified: Option<PathBuf>,
    /// v2 without delegation: the systemd scope to ask for when pid 1 exists. systemd then
    /// owns the dir and removes it.
    scope: Option<ScopeRequest>,
}

fn cgroup_error(path: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Cgroup {
        path: path.to_owned(),
        source,
    }
}

impl Cgroup {
    /// Makes the plan's dirs and writes its limits; on a failure removes what it made.
    pub fn create(plan: &CgroupPlan) -> Result<Self, RuntimeError> {
        let mut made = Cgroup {
            dirs: Vec::new(),
            unified: None,
            scope: plan.scope.clone(),
        };
        let unified = plan.unified.iter().map(|d| (Controller::Memory, d));
        for (controller, dir) in plan.dirs.iter().map(|(c, d)| (*c, d)).chain(unified) {
            match fs_err::create_dir(dir) {
                // A killed sandbox's leftover of the same id is reused.
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    made.remove();
                    return Err(cgroup_error(dir, e));
                }
            }
            if plan.unified.as_ref() == Some(dir) {
                made.unified = Some(dir.clone());
            } else {
                made.dirs.push((controller, dir.clone()));
            }
        }
        for (file, value) in &plan.writes {
            if let Err(e) = fs_err::write(file, value) {
                made.remove();
                return Err(cgroup_error(file, e));
            }
        }
        Ok(made)
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.unified.is_none() && self.scope.is_none()
    }

    /// The v2 cgroup, once made (or once systemd made the scope).
    pub fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The v1 cgroups' `tasks` files, open for writing, for pid 1 to enter them itself with
    /// `enter_self`. Moving another process takes the kernel's threadgroup lock for writing,
    /// which waits for an RCU grace period: 5-20 ms on every start. A single thread moving
    /// itself through `tasks` skips that lock.
    pub fn task_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, RuntimeError> {
        self.dirs
            .iter()
            .map(|(_, dir)| {
                let tasks = dir.join("tasks");
                fs_err::OpenOptions::new()
                    .write(true)
                    .open(&tasks)
                    .map(|f| f.into_parts().0.into())
                    .map_err(|e| cgroup_error(&tasks, e))
            })
            .collect()
    }

    /// Moves `pid` (pid 1, before it starts the command) into the v2 cgroup; without
    /// delegation asks systemd for the scope with `pid` in it. (pid 1 enters v1 cgroups itself.)
    pub fn enter(&mut self, pid: libc::pid_t) -> Result<(), RuntimeError> {
        if let Some(dir) = &self.unified {
            let procs = dir.join("cgroup.procs");
            fs_err::write(&procs, pid.to_string()).map_err(|e| cgroup_error(&procs, e))?;
        }
        if let Some(scope) = self.scope.take() {
            self.unified = Some(scope.start(pid)?);
            // systemd's: it goes when its processes have, without us.
            self.scope = Some(scope);
        }
        Ok(())
    }

    /// The dirs that are ours to remove.
    fn ours(&mut self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.dirs.drain(..).map(|(_, d)| d).collect();
        if self.scope.is_none() {
            dirs.extend(self.unified.take());
        }
        dirs
    }

    fn dir(&self, controller: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// When the memory limit killed something: (limit, peak) in bytes.
    pub fn out_of_memory(&self) -> Option<(u64, u64)> {
        if let Some(dir) = &self.unified {
            return v2::out_of_memory(dir);
        }
        let dir = self.dir(Controller::Memory)?;
        let read = |name: &str| fs_err::read_to_string(dir.join(name)).ok();
        let killed = read("memory.oom_control")?
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let number = |name: &str| read(name).and_then(|t| t.trim().parse::<u64>().ok());
        (killed > 0).then(|| {
            (
                number("memory.limit_in_bytes").unwrap_or(0),
                number("memory.max_usage_in_bytes").unwrap_or(0),
            )
        })
    }

    /// What everything that ran in the sandbox used, when it has cgroups to meter with
    /// (cpuacct, memory; pids and blkio when delegated too). Network counters are not there.
    pub fn usage(&self) -> Option<crate::runtime::cgroups::metering::Usage> {
        if let Some(dir) = &self.unified {
            return Some(v2::usage(dir));
        }
        let cpu = self.dir(Controller::Cpuacct)?;
        let number = |dir: &Path, name: &str| {
            fs_err::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        let (read_bytes, written_bytes) = self
            .dir(Controller::Blkio)
            .and_then(|d| fs_err::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok())
            .map_or((0, 0), |text| io_totals(&text));
        Some(crate::runtime::cgroups::metering::Usage {
            cpu_user_us: number(cpu, "cpuacct.usage_user").unwrap_or(0) / 1000,
            cpu_system_us: number(cpu, "cpuacct.usage_sys").unwrap_or(0) / 1000,
            peak_memory: self
                .dir(Controller::Memory)
                .and_then(|d| number(d, "memory.max_usage_in_bytes"))
                .unwrap_or(0),
            peak_pids: self
                .dir(Controller::Pids)
                .and_then(|d| number(d, "pids.peak")),
            read_bytes,
            written_bytes,
            net_in: 0,
            net_out: 0,
        })
    }

    /// Removes the cgroups once `pid` (pid 1, just told nothing else runs) has ended, without
    /// making the caller wait for it: the namespaces' teardown and the memory cgroup's going
    /// offline take milliseconds the user need not spend. A process of ours waits for pid 1
    /// to end (its pidfd, as the cleaner's stdin), then removes them; what it cannot, a later
    /// run collects. It is a fresh exec (`/proc/self/exe` as `sandbox-cgroup-cleanup DIR...`),
    /// not a fork, which would make every page we touch until we exit a copy.
    pub fn remove_when_gone(mut self, pid: libc::pid_t) {
        use std::os::unix::process::CommandExt as _;
        let dirs = self.ours();
        if dirs.is_empty() {
            return;
        }
        let keep = |cgroup: &mut Self, dirs: Vec<PathBuf>| {
            cgroup.dirs = dirs.into_iter().map(|d| (Controller::Memory, d)).collect();
        };
        let Ok(pidfd) = sys::pidfd_open(pid) else {
            keep(&mut self, dirs);
            return;
        };
        let spawned = std::process::Command::new("/proc/self/exe")
            .arg0(CLEANER)
            .args(&dirs)
            .stdin(std::process::Stdio::from(pidfd))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        // Not waited for: when we end, it is reparented and reaped by the system.
        if spawned.is_err() {
            keep(&mut self, dirs);
        }
    }

    /// Removes the cgroups once nothing is in them (waiting briefly for exiting processes);
    /// what stays is collected by a later run.
    pub fn remove(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for dir in self.ours() {
            loop {
                match fs_err::remove_dir(&dir) {
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    _ => break,
                }
            }
        }
    }
}

impl Drop for Cgroup {
    /// What was not removed on purpose goes if it is already empty (a start that failed); one
    /// still in use (joined sessions) stays for a later run to collect.
    fn drop(&mut self) {
        for dir in self.ours() {
            let _ = fs_err::remove_dir(dir);
        }
    }
}

/// Moves the calling single-threaded process into the cgroup whose `tasks` (or v2
/// `cgroup.procs`) file this is: "0" names the writer itself.
pub fn enter_self(tasks: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    std::io::Write::write_all(&mut std::fs::File::from(tasks.try_clone_to_owned()?), b"0")
}

/// The files through which a command joining the running `container` enters its cgroups: the
/// `tasks` of its dir under each delegated v1 dir (`v1_parents`), its v2 dir's `cgroup.procs`.
pub fn container_task_files(
    container: &crate::runtime::state::ContainerState,
    v1_parents: &[PathBuf],
) -> Result<Vec<std::os::fd::OwnedFd>, RuntimeError> {
    let v1 = v1_parents
        .iter()
        .map(|parent| crate::runtime::cgroups::facts::v1_dir_of(container, parent).join("tasks"));
    let v2 = container.cgroup.iter().map(|dir| dir.join("cgroup.procs"));
    v1.chain(v2)
        .filter(|file| file.exists())
        .map(|file| {
            fs_err::OpenOptions::new()
                .write(true)
                .open(&file)
                .map(|f| f.into_parts().0.into())
                .map_err(|e| cgroup_error(&file, e))
        })
        .collect()
}

/// argv[0] of the process that removes a container's cgroups after its pid 1 has ended.
pub const CLEANER: &str = "sandbox-cgroup-cleanup";

/// The cleaner's life (see `Cgroup::remove_when_gone`): stdin is pid 1's pidfd, the arguments
/// the cgroup dirs. Only ever removes empty cgroups, with the caller's own rights.
pub fn cleaner_main(dirs: Vec<PathBuf>) -> ! {
    use std::os::fd::AsFd as _;
    sys::setsid();
    let stdin = std::io::stdin();
    // Until pid 1 has ended (at most a minute), then until its cgroups are empty.
    sys::readable(stdin.as_fd(), 60_000);
    let mut cgroup = Cgroup {
        dirs: dirs.into_iter().map(|d| (Controller::Memory, d)).collect(),
        unified: None,
        scope: None,
    };
    cgroup.remove();
    sys::exit_now(0)
}

/// The cgroup dirs, when this process is the cleaner (`sandbox-cgroup-cleanup DIR...`).
pub fn is_cleaner_exec() -> Option<Vec<PathBuf>> {
    let mut args = std::env::args_os();
    if args.next()? != CLEANER {
        return None;
    }
    Some(args.map(PathBuf::from).collect())
}

/// Bytes read and written, summed over devices, from `blkio.throttle.io_service_bytes`.
pub fn io_totals(text: &str) -> (u64, u64) {
    text.lines().fold((0, 0), |(read, written), line| {
        let mut fields = line.split_whitespace();
        let (_device, op, bytes) = (fields.next(), fields.next(), fields.next());
        let bytes = bytes.and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
        match op {
            Some("Read") => (read + bytes, written),
            Some("Write") => (read, written + bytes),
            _ => (read, written),
        }
    })
}

/// The container id a cgroup name stands for, when this store (tagged `own`) made it: today's
/// `sandbox-TAG-ID` with our tag, or the names before tags (`sandbox-ID` on v2, `ID` on v1),
/// which only the store that made them ever used in practice.
fn own_id<'n>(name: &'n str, own: &str) -> Option<&'n str> {
    let is_id = |id: &str| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let rest = name.strip_prefix("sandbox-").unwrap_or(name);
    match rest.split_once('-') {
        Some((tag, id)) => (tag == own && is_id(id)).then_some(id),
        None => is_id(rest).then_some(rest),
    }
}

/// Removes the cgroups under `parents` (the delegated dirs) that this store made and whose
/// container has no dir under `containers` any more: what sandboxes killed with -9 left. Cheap
/// enough for every start (a directory listing per controller, no state file read); a cgroup
/// still in use is kept, as the kernel refuses to remove it. Another store's are never
/// touched, even empty: its container may be starting.
pub fn collect_stale(parents: &[PathBuf], containers: &Path) {
    let own = crate::runtime::cgroups::facts::store_tag(containers);
    for parent in parents {
        let Ok(entries) = fs_err::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = own_id(&name, &own) else {
                continue;
            };
            if !containers.join(id).exists() && entry.path().is_dir() {
                let _ = fs_err::remove_dir(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cgroups::facts::CgroupFacts;
    use crate::runtime::cgroups::v2::{fake_tree, V2Facts};
    use crate::settings::limits::Limits;

    #[test]
    fn a_v2_plan_is_made_entered_metered_and_removed_in_a_fake_tree() {
        let root = fake_tree(&[
            ("svc", "cpu memory pids", "memory pids", ""),
            ("svc/main", "memory pids", "", "7\n"),
        ]);
        let uid = nix::unistd::getuid().as_raw();
        let facts = CgroupFacts {
            v2: Some(V2Facts::gather(root.path(), "/svc/main", uid)),
            ..CgroupFacts::default()
        };
        let limits = Limits {
            memory: Some(64 << 20),
            cpus: Some(1.5),
            ..Limits::default()
        };
        let containers = tempfile::tempdir().unwrap();
        let tag = crate::runtime::cgroups::facts::store_tag(containers.path());
        let plan = crate::runtime::cgroups::plan(&limits, &facts, &tag, "0123456789ab", false);
        assert!(plan.not_applied.is_empty(), "{:?}", plan.not_applied);
        let mut cgroup = Cgroup::create(&plan).unwrap();
        let own = root.path().join(format!("svc/sandbox-{tag}-0123456789ab"));
        assert_eq!(cgroup.unified(), Some(own.as_path()));
        let read = |p: &Path| fs_err::read_to_string(p).unwrap();
        assert_eq!(
            read(&root.path().join("svc/cgroup.subtree_control")),
            "+cpu"
        );
        assert_eq!(read(&own.join("memory.max")), "67108864");
        assert_eq!(read(&own.join("cpu.max")), "150000 100000");
        cgroup.enter(4242).unwrap();
        assert_eq!(read(&own.join("cgroup.procs")), "4242");
        fs_err::write(
            own.join("cpu.stat"),
            "usage_usec 9\nuser_usec 5\nsystem_usec 4\n",
        )
        .unwrap();
        fs_err::write(own.join("memory.peak"), "1000\n").unwrap();
        let usage = cgroup.usage().unwrap();
        assert_eq!(
            (usage.cpu_user_us, usage.cpu_system_us, usage.peak_memory),
            (5, 4, 1000)
        );
        assert_eq!(cgroup.out_of_memory(), None);
        // A killed sandbox's leftover with the same id is taken over, not an error.
        drop(Cgroup::create(&plan).unwrap());
        // Collecting stale cgroups keeps those whose container still exists, and another
        // store's, even empty (its container may be starting); it takes this store's empty
        // ones and those named before stores had tags.
        fs_err::create_dir(containers.path().join("0123456789ab")).unwrap();
        let empty_stale = root.path().join(format!("svc/sandbox-{tag}-ba9876543210"));
        let untagged = root.path().join("svc/sandbox-ba9876543211");
        let others = root.path().join("svc/sandbox-0badc0de-ba9876543212");
        let stranger = root.path().join("svc/other");
        for dir in [&empty_stale, &untagged, &others, &stranger] {
            fs_err::create_dir(dir).unwrap();
        }
        collect_stale(&[root.path().join("svc")], containers.path());
        assert!(!empty_stale.exists() && !untagged.exists());
        assert!(others.exists() && stranger.exists() && own.exists());
    }

    #[test]
    fn a_cgroup_name_is_ours_only_with_our_tag_or_none() {
        assert_eq!(
            own_id("sandbox-abcd1234-0123456789ab", "abcd1234"),
            Some("0123456789ab")
        );
        assert_eq!(
            own_id("sandbox-0123456789ab", "abcd1234"),
            Some("0123456789ab")
        );
        assert_eq!(own_id("0123456789ab", "abcd1234"), Some("0123456789ab"));
        assert_eq!(own_id("sandbox-ffff0000-0123456789ab", "abcd1234"), None);
        assert_eq!(own_id("sandbox-abcd1234-xyz", "abcd1234"), None);
        assert_eq!(own_id("user.slice", "abcd1234"), None);
    }
}
