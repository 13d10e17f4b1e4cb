//! Making a container's cgroups, moving pid 1 into them, reading what the kernel says of them,
//! and removing them (also those of a sandbox killed before it could).

use std::path::{Path, PathBuf};

use super::{CgroupPlan, Controller};
use crate::runtime::error::RuntimeError;

/// A container's cgroups, made.
#[derive(Debug, Default)]
pub struct Cgroup {
    dirs: Vec<(Controller, PathBuf)>,
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
        let mut made = Cgroup::default();
        for (controller, dir) in &plan.dirs {
            match fs_err::create_dir(dir) {
                Ok(()) => made.dirs.push((*controller, dir.clone())),
                // A killed sandbox's leftover of the same id is reused.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    made.dirs.push((*controller, dir.clone()))
                }
                Err(e) => {
                    made.remove();
                    return Err(cgroup_error(dir, e));
                }
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
        self.dirs.is_empty()
    }

    /// Moves `pid` (pid 1, before it starts the command) into every cgroup.
    pub fn enter(&self, pid: libc::pid_t) -> Result<(), RuntimeError> {
        for (_, dir) in &self.dirs {
            let procs = dir.join("cgroup.procs");
            fs_err::write(&procs, pid.to_string()).map_err(|e| cgroup_error(&procs, e))?;
        }
        Ok(())
    }

    fn dir(&self, controller: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// When the memory limit killed something: (limit, peak) in bytes.
    pub fn out_of_memory(&self) -> Option<(u64, u64)> {
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
    pub fn usage(&self) -> Option<crate::runtime::metering::Usage> {
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
        Some(crate::runtime::metering::Usage {
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
        let dirs = std::mem::take(&mut self.dirs);
        if dirs.is_empty() {
            return;
        }
        let Ok(pidfd) = crate::runtime::sys::pidfd_open(pid) else {
            self.dirs = dirs;
            return;
        };
        let spawned = std::process::Command::new("/proc/self/exe")
            .arg0(CLEANER)
            .args(dirs.iter().map(|(_, d)| d))
            .stdin(std::process::Stdio::from(pidfd))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        // Not waited for: when we end, it is reparented and reaped by the system.
        if spawned.is_err() {
            self.dirs = dirs;
        }
    }

    /// Removes the cgroups once nothing is in them (waiting briefly for exiting processes);
    /// what stays is collected by a later run.
    pub fn remove(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for (_, dir) in self.dirs.drain(..) {
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
        for (_, dir) in self.dirs.drain(..) {
            let _ = fs_err::remove_dir(dir);
        }
    }
}

/// argv[0] of the process that removes a container's cgroups after its pid 1 has ended.
pub const CLEANER: &str = "sandbox-cgroup-cleanup";

/// The cleaner's life (see `Cgroup::remove_when_gone`): stdin is pid 1's pidfd, the arguments
/// the cgroup dirs. Only ever removes empty cgroups, with the caller's own rights.
pub fn cleaner_main(dirs: Vec<PathBuf>) -> ! {
    use crate::runtime::sys;
    use std::os::fd::AsFd as _;
    sys::setsid();
    let stdin = std::io::stdin();
    // Until pid 1 has ended (at most a minute), then until its cgroups are empty.
    sys::readable(stdin.as_fd(), 60_000);
    let mut cgroup = Cgroup {
        dirs: dirs.into_iter().map(|d| (Controller::Memory, d)).collect(),
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

/// Removes the cgroups under `parents` (the delegated dirs) whose container has no dir under
/// `containers` any more: what sandboxes killed with -9 left. Cheap enough for every start (a
/// directory listing per controller, no state file read); a cgroup still in use is kept, as
/// the kernel refuses to remove it.
pub fn collect_stale(parents: &[PathBuf], containers: &Path) {
    for parent in parents {
        let Ok(entries) = fs_err::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if ours && !containers.join(&name).exists() && entry.path().is_dir() {
                let _ = fs_err::remove_dir(entry.path());
            }
        }
    }
}
