//! What to make and write for a container's limits, decided without I/O.

use std::path::PathBuf;

use super::{CgroupFacts, Controller};
use crate::runtime::plan::Limits;

/// A limit that cannot be applied, why, and what fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotApplied {
    pub limit: String,
    pub why: String,
}

/// The container's cgroups, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPlan {
    /// The container's own cgroup dir per controller, made in this order.
    pub dirs: Vec<(Controller, PathBuf)>,
    /// Files to write, in order, once the dirs exist.
    pub writes: Vec<(PathBuf, String)>,
    /// What was asked for and cannot be applied here.
    pub not_applied: Vec<NotApplied>,
}

/// CFS period, as the kernel's default.
const PERIOD_US: u64 = 100_000;

fn size(bytes: u64) -> String {
    crate::runtime::plan::human_size(bytes)
}

/// The plan for container `id` with `limits` on a host with `facts`; with `meter`, also the
/// metering cgroups that are delegated (cpuacct, memory, pids, blkio), with no limit written.
pub fn plan(limits: &Limits, facts: &CgroupFacts, id: &str, meter: bool) -> CgroupPlan {
    let mut plan = limits_plan(limits, facts, id);
    if meter {
        for controller in [
            Controller::Cpuacct,
            Controller::Memory,
            Controller::Pids,
            Controller::Blkio,
        ] {
            let delegated = facts
                .v1
                .iter()
                .find(|d| d.controller == controller && d.writable);
            let made = plan.dirs.iter().any(|(c, _)| *c == controller);
            if let (Some(dir), false) = (delegated, made) {
                plan.dirs.push((controller, dir.path.join(id)));
            }
        }
    }
    plan
}

fn limits_plan(limits: &Limits, facts: &CgroupFacts, id: &str) -> CgroupPlan {
    let mut plan = CgroupPlan::default();
    let wanted: Vec<(Controller, String)> = [
        limits
            .memory
            .map(|m| (Controller::Memory, format!("memory {}", size(m)))),
        limits.pids.map(|p| (Controller::Pids, format!("pids {p}"))),
        limits.cpus.map(|c| (Controller::Cpu, format!("cpus {c}"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (controller, limit) in wanted {
        let dir = facts.v1.iter().find(|d| d.controller == controller);
        let parent = match dir {
            Some(d) if d.writable => d.path.clone(),
            Some(d) => {
                plan.not_applied.push(NotApplied {
                    limit,
                    why: format!(
                        "{} is not a directory you may write; an administrator delegates it with `mkdir -p DIR && chown $USER DIR`",
                        d.path.display()
                    ),
                });
                continue;
            }
            None => {
                plan.not_applied.push(NotApplied {
                    limit,
                    why: if facts.configured {
                        format!("[cgroups] in your config names no {} cgroup", controller.name())
                    } else {
                        "no cgroup is delegated to you: name one with [cgroups] v1 = \"/sys/fs/cgroup/{controller}/sandbox/$USER\" in ~/.config/sandbox/config.toml, after an administrator made each and chowned it to you".into()
                    },
                });
                continue;
            }
        };
        let own = parent.join(id);
        plan.dirs.push((controller, own.clone()));
        match controller {
            Controller::Memory => {
                let bytes = limits.memory.unwrap_or_default().to_string();
                plan.writes
                    .push((own.join("memory.limit_in_bytes"), bytes.clone()));
                // Swap off inside the limit: memory plus swap may not pass it either.
                if dir.is_some_and(|d| d.swap_accounting) {
                    plan.writes
                        .push((own.join("memory.memsw.limit_in_bytes"), bytes));
                } else {
                    plan.writes
                        .push((own.join("memory.swappiness"), "0".into()));
                }
            }
            Controller::Pids => {
                let max = limits.pids.unwrap_or_default().to_string();
                plan.writes.push((own.join("pids.max"), max));
            }
            Controller::Cpu => {
                let cpus = limits.cpus.unwrap_or(1.0);
                let quota = ((cpus * PERIOD_US as f64).round() as u64).max(1000);
                plan.writes
                    .push((own.join("cpu.cfs_period_us"), PERIOD_US.to_string()));
                plan.writes
                    .push((own.join("cpu.cfs_quota_us"), quota.to_string()));
            }
            Controller::Cpuacct | Controller::Blkio => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cgroups::DelegatedDir;

    fn facts(writable: bool, swap: bool) -> CgroupFacts {
        CgroupFacts {
            configured: true,
            v1: Controller::ALL
                .iter()
                .map(|c| DelegatedDir {
                    controller: *c,
                    path: PathBuf::from(format!("/sys/fs/cgroup/{}/sandbox/dev", c.name())),
                    writable,
                    swap_accounting: swap && *c == Controller::Memory,
                })
                .collect(),
        }
    }

    #[test]
    fn each_limit_gets_its_controllers_dir_and_files() {
        let limits = Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(32),
            ..Limits::default()
        };
        let plan = plan(&limits, &facts(true, true), "abc", false);
        assert!(plan.not_applied.is_empty());
        let memory = PathBuf::from("/sys/fs/cgroup/memory/sandbox/dev/abc");
        assert_eq!(plan.dirs[0], (Controller::Memory, memory.clone()));
        assert!(plan
            .writes
            .contains(&(memory.join("memory.limit_in_bytes"), "67108864".into())));
        assert!(plan.writes.contains(&(
            memory.join("memory.memsw.limit_in_bytes"),
            "67108864".into()
        )));
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu/sandbox/dev/abc");
        assert!(plan
            .writes
            .contains(&(cpu.join("cpu.cfs_quota_us"), "50000".into())));
        let pids = PathBuf::from("/sys/fs/cgroup/pids/sandbox/dev/abc");
        assert!(plan.writes.contains(&(pids.join("pids.max"), "32".into())));
        // The limit on memory comes before memory plus swap, which may not be below it.
        let at = |f: &str| {
            plan.writes
                .iter()
                .position(|(p, _)| p.ends_with(f))
                .unwrap()
        };
        assert!(at("memory.limit_in_bytes") < at("memory.memsw.limit_in_bytes"));
    }

    #[test]
    fn without_swap_accounting_swappiness_is_zero() {
        let limits = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        let plan = plan(&limits, &facts(true, false), "abc", false);
        assert!(plan
            .writes
            .iter()
            .any(|(p, v)| p.ends_with("memory.swappiness") && v == "0"));
    }

    #[test]
    fn what_cannot_apply_is_named_with_the_reason() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(32),
            ..Limits::default()
        };
        let none = plan(&limits, &CgroupFacts::default(), "abc", false);
        assert!(none.dirs.is_empty());
        assert_eq!(none.not_applied.len(), 2);
        assert!(none.not_applied[0].limit.starts_with("memory 64 MiB"));
        assert!(none.not_applied[0].why.contains("[cgroups] v1"));
        let readonly = plan(&limits, &facts(false, false), "abc", false);
        assert!(readonly.not_applied[1]
            .why
            .contains("not a directory you may write"));
        // No limit, no cgroup.
        assert_eq!(
            plan(&Limits::default(), &facts(true, true), "abc", false),
            CgroupPlan::default()
        );
        // Metering alone makes the delegated metering cgroups, writing nothing.
        let meter = plan(&Limits::default(), &facts(true, true), "abc", true);
        assert_eq!(meter.dirs.len(), 4);
        assert!(meter.writes.is_empty());
    }
}
