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
