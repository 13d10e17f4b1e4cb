//! What a run cost: from the sandbox's cgroups when there are any (everything that ran in it),
//! else from what the kernel gives anyway (the rusage of pid 1's children, the network
//! namespace's counters).

use serde::{Deserialize, Serialize};

/// Resource use of a command and what it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    /// Bytes.
    pub peak_memory: u64,
    /// Not known without a pids cgroup.
    pub peak_pids: Option<u64>,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub net_in: u64,
    pub net_out: u64,
}

/// A run's usage, its wall time and where the figures come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub wall_us: u64,
    #[serde(flatten)]
    pub usage: Usage,
    /// `cgroup` or `rusage`.
    pub source: &'static str,
}

/// The rusage of this process's waited-for children (pid 1's: the command and what it left).
pub fn children_usage() -> Usage {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return Usage::default();
    };
    let micros = |t: nix::sys::time::TimeVal| {
        (t.tv_sec() as u64).saturating_mul(1_000_000) + t.tv_usec() as u64
    };
    Usage {
        cpu_user_us: micros(usage.user_time()),
        cpu_system_us: micros(usage.system_time()),
        // ru_maxrss is in KiB: the largest child's peak.
        peak_memory: (usage.max_rss() as u64).saturating_mul(1024),
        peak_pids: None,
        // In 512-byte blocks.
        read_bytes: (usage.block_reads() as u64).saturating_mul(512),
        written_bytes: (usage.block_writes() as u64).saturating_mul(512),
        net_in: 0,
        net_out: 0,
    }
}

/// The kernel's counts (in, out) with what the network keeper's own relays carried added:
/// the relay's and the forwarder's traffic crosses only the sandbox's loopback, which
/// `net_totals` leaves out.
pub fn with_keepers(kernel: (u64, u64), keeper: (u64, u64)) -> (u64, u64) {
    (
        kernel.0.saturating_add(keeper.0),
        kernel.1.saturating_add(keeper.1),
    )
}

/// Bytes received and sent on every interface but `lo`, from a `/proc/net/dev` text.
pub fn net_totals(dev: &str) -> (u64, u64) {
    dev.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            Some((*fields.first()?, *fields.get(8)?))
        })
        .fold((0, 0), |(rx, tx), (r, t)| (rx + r, tx + t))
}

#[cfg(test)]
mod tests {
    use super::net_totals;

    #[test]
    fn net_totals_skip_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  tap0:    5000      10    0    0    0     0          0         0     7000      12    0    0    0     0       0          0\n";
        assert_eq!(net_totals(dev), (5000, 7000));
    }
}

/// A running sandbox's use at one moment, for `sandbox stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// CPU time used so far, user and system.
    pub cpu_us: u64,
    pub memory: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub net_in: u64,
    pub net_out: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// `cgroup` or `proc`.
    pub source: &'static str,
}

fn number(path: &std::path::Path) -> Option<u64> {
    fs_err::read_to_string(path).ok()?.trim().parse().ok()
}

/// Samples `container` now: from its cgroups under the `delegated` dirs when there are
/// (cpuacct and memory at least), else from /proc of its processes. Network counters come
/// from its network namespace (through one of its processes).
pub fn sample(
    container: &crate::runtime::state::ContainerState,
    delegated: &[(crate::settings::limits::Controller, std::path::PathBuf)],
) -> Sample {
    use crate::settings::limits::Controller;
    let own = |controller: Controller| {
        delegated
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, parent)| crate::runtime::cgroups::facts::v1_dir_of(container, parent))
            .filter(|dir| dir.is_dir())
    };
    let members = container.members();
    // /proc first; each cgroup the sandbox has replaces its part (memory limits need a
    // memory cgroup, and a cgroup counts processes that already ended too).
    let mut sample = proc_sample(&members);
    if let Some(dir) = container.cgroup.as_deref().filter(|d| d.is_dir()) {
        let (cpu_us, memory, limit, pids, io) = crate::runtime::cgroups::v2::now(dir);
        sample.cpu_us = cpu_us;
        // Without the memory controller there is no memory.current: /proc's figure stays.
        if memory > 0 {
            sample.memory = memory;
        }
        sample.memory_limit = limit;
        sample.pids = pids.unwrap_or(sample.pids);
        (sample.read_bytes, sample.written_bytes) = io;
        sample.source = "cgroup";
    }
    if let Some(cpu) = own(Controller::Cpuacct) {
        sample.cpu_us = number(&cpu.join("cpuacct.usage")).unwrap_or(0) / 1000;
        sample.source = "cgroup";
    }
    if let Some(memory) = own(Controller::Memory) {
        sample.memory = number(&memory.join("memory.usage_in_bytes")).unwrap_or(0);
        // An unset v1 limit reads as a page-rounded i64::MAX.
        sample.memory_limit =
            number(&memory.join("memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
        sample.source = "cgroup";
    }
    if let Some(pids) = own(Controller::Pids).and_then(|d| number(&d.join("pids.current"))) {
        sample.pids = pids;
    }
    if let Some(text) = own(Controller::Blkio)
        .and_then(|d| fs_err::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok())
    {
        (sample.read_bytes, sample.written_bytes) = crate::runtime::cgroups::io_totals(&text);
    }
    if let Some(member) = members.first() {
        let dev = fs_err::read_to_string(format!("/proc/{member}/net/dev")).unwrap_or_default();
        (sample.net_in, sample.net_out) = net_totals(&dev);
    }
    (sample.net_in, sample.net_out) = with_keepers(
        (sample.net_in, sample.net_out),
        crate::runtime::net::egress::traffic::read(&container.dir),
    );
    sample
}

/// CPU time and resident memory summed over the sandbox's processes (pid 1 is not readable
/// to us and does nearly nothing).
fn proc_sample(members: &[i32]) -> Sample {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64);
    let mut sample = Sample {
        pids: members.len() as u64 + 1,
        source: "proc",
        ..Sample::default()
    };
    for pid in members {
        if let Ok(stat) = fs_err::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rfind(')')
                .map(|end| stat[end + 2..].split(' ').collect())
                .unwrap_or_default();
            // utime and stime are fields 14 and 15; after the name, indices 11 and 12.
            let time: u64 = [11, 12]
                .iter()
                .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
                .sum();
            sample.cpu_us += time * 1_000_000 / ticks;
        }
        if let Ok(statm) = fs_err::read_to_string(format!("/proc/{pid}/statm")) {
            let resident: u64 = statm
                .split_whitespace()
                .nth(1)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            sample.memory += resident * page;
        }
    }
    sample
}
