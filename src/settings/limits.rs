//! Resource limits as `--memory`, `--cpus`, `--pids`, `--tmp-size` and sandbox.toml's
//! `[limits]` ask for them, and how sizes are printed.

/// Resource limits asked for: the cgroup ones (memory, cpus, pids) and the size of the tmpfs
/// /tmp and /dev/shm, which needs no cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Bytes; swap is off inside the limit.
    pub memory: Option<u64>,
    /// CPUs' worth of time per period.
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// Bytes of /tmp and of /dev/shm each.
    pub tmp: Option<u64>,
    /// Fail (125) instead of warning when a limit cannot be applied.
    pub required: bool,
}

impl Limits {
    /// Whether a limit that needs a cgroup is asked for.
    pub fn needs_cgroup(&self) -> bool {
        self.memory.is_some() || self.cpus.is_some() || self.pids.is_some()
    }

    /// `self` with what `over` sets in its place (flags over sandbox.toml).
    pub fn overridden_by(&self, over: &Limits) -> Limits {
        Limits {
            memory: over.memory.or(self.memory),
            cpus: over.cpus.or(self.cpus),
            pids: over.pids.or(self.pids),
            tmp: over.tmp.or(self.tmp),
            required: self.required || over.required,
        }
    }

    /// The size of /tmp and /dev/shm: as asked, else half the memory limit, else none of ours
    /// (the kernel's default, half the machine's memory, for /tmp; 64 MiB for /dev/shm).
    pub fn tmp_size(&self) -> Option<u64> {
        self.tmp.or(self.memory.map(|m| m / 2))
    }
}

/// A byte count as `64 MiB` / `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The v1 controllers sandbox uses: three to limit, all five to meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    Cpuacct,
    Blkio,
}

impl Controller {
    pub const ALL: [Controller; 5] = [
        Controller::Memory,
        Controller::Pids,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Blkio,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Blkio => "blkio",
        }
    }
}
