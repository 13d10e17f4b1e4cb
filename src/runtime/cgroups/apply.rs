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

    /// Removes the cgroups once nothing is in them (waiting briefly for exiting processes);
    /// what stays is collected by a later run.
    pub fn remove(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
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

/// Bytes read and written, summed over devices, from `blkio.throttle.io_service_bytes`.
fn io_totals(text: &str) -> (u64, u64) {
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

/// Removes the cgroups under `parents` (the delegated dirs) whose container is not among
/// `running` (ids): what sandboxes killed with -9 left. A cgroup still in use is kept.
pub fn collect_stale(parents: &[PathBuf], running: &[String]) {
    for parent in parents {
        let Ok(entries) = fs_err::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if ours && !running.contains(&name) && entry.path().is_dir() {
                let _ = fs_err::remove_dir(entry.path());
            }
        }
    }
}
