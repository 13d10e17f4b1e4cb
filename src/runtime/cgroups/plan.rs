//! What to make and write for a container's limits, decided without I/O.

use std::path::PathBuf;

use crate::runtime::cgroups::facts::{CgroupFacts, CgroupView};
use crate::runtime::cgroups::scope::{ScopeRequest, Value};
use crate::runtime::cgroups::v2::{v2_name, Offer, V2Facts};
use crate::runtime::error::NotApplied;
use crate::settings::limits::Controller;
use crate::settings::limits::Limits;

/// The container's cgroups, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPlan {
    /// On cgroup v1, the container's own cgroup dir per controller, made in this order.
    pub dirs: Vec<(Controller, PathBuf)>,
    /// On cgroup v2, the container's own cgroup, in a delegated one.
    pub unified: Option<PathBuf>,
    /// On cgroup v2 with nothing delegated, the systemd user scope to ask for instead.
    pub scope: Option<ScopeRequest>,
    /// Files to write, in order, once the dirs exist.
    pub writes: Vec<(PathBuf, String)>,
    /// What was asked for and cannot be applied here.
    pub not_applied: Vec<NotApplied>,
    /// What the sandbox sees at /sys/fs/cgroup.
    pub view: CgroupView,
}

/// CFS period, as the kernel's default.
const PERIOD_US: u64 = 100_000;

fn size(bytes: u64) -> String {
    crate::settings::limits::human_size(bytes)
}

/// The plan for container `id` of the store tagged `store` with `limits` on a host with
/// `facts`; with `meter`, also the metering cgroups that are delegated (cpuacct, memory, pids,
/// blkio), with no limit written.
pub fn plan(
    limits: &Limits,
    facts: &CgroupFacts,
    store: &str,
    id: &str,
    meter: bool,
) -> CgroupPlan {
    let mut plan = without_view(limits, facts, store, id, meter);
    plan.view = if plan.unified.is_some() || plan.scope.is_some() {
        CgroupView::Unified
    } else if plan.dirs.is_empty() {
        CgroupView::Empty
    } else {
        // Those the sandbox has a cgroup in, and those a JVM reads (it uses its limits only
        // when it finds all four): each mount costs start-up time.
        let wanted: Vec<&str> = plan
            .dirs
            .iter()
            .map(|(c, _)| c.name())
            .chain(["memory", "cpu", "cpuacct", "cpuset"])
            .collect();
        CgroupView::Hierarchies(
            facts
                .v1_hierarchies
                .iter()
                .filter(|h| h.split(',').any(|c| wanted.contains(&c)))
                .cloned()
                .collect(),
        )
    };
    plan
}

fn without_view(
    limits: &Limits,
    facts: &CgroupFacts,
    store: &str,
    id: &str,
    meter: bool,
) -> CgroupPlan {
    let name = crate::runtime::cgroups::facts::cgroup_name(store, id);
    if let (Some(v2), false) = (&facts.v2, facts.configured) {
        return v2_plan(limits, v2, id, &name, meter);
    }
    let mut plan = limits_plan(limits, facts, &name);
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
                plan.dirs.push((controller, dir.path.join(&name)));
            }
        }
    }
    plan
}

/// The limits asked for, each with its controller and how it is named to the user.
fn wanted(limits: &Limits) -> Vec<(Controller, String)> {
    [
        limits
            .memory
            .map(|m| (Controller::Memory, format!("memory {}", size(m)))),
        limits.pids.map(|p| (Controller::Pids, format!("pids {p}"))),
        limits.cpus.map(|c| (Controller::Cpu, format!("cpus {c}"))),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The CFS quota per period for `cpus`, at least 1 ms as the kernel wants.
fn cpu_quota(cpus: f64) -> u64 {
    ((cpus * PERIOD_US as f64).round() as u64).max(1000)
}

fn limits_plan(limits: &Limits, facts: &CgroupFacts, name: &str) -> CgroupPlan {
    let mut plan = CgroupPlan::default();
    for (controller, limit) in wanted(limits) {
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
                        format!("no cgroup is delegated to you: name one with [cgroups] v1 = \"/sys/fs/cgroup/{{controller}}/sandbox/$USER\" in {}/sandbox/config.toml, after an administrator made each and chowned it to you", crate::fsutil::shown::config_dir())
                    },
                });
                continue;
            }
        };
        let own = parent.join(name);
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
                let quota = cpu_quota(limits.cpus.unwrap_or(1.0));
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

/// cgroup v2: a cgroup `sandbox-ID` in the delegated base, the controllers it needs enabled
/// there first; else a systemd user scope carrying the limits; else what cannot apply.
fn v2_plan(limits: &Limits, v2: &V2Facts, id: &str, name: &str, meter: bool) -> CgroupPlan {
    let mut plan = CgroupPlan::default();
    let wanted = wanted(limits);
    if wanted.is_empty() && !meter {
        return plan;
    }
    // A delegated cgroup that gives every controller asked for; else systemd's scope, which
    // gets what the user manager has; else the delegated cgroup for what it gives.
    let gives_all = |base: &crate::runtime::cgroups::v2::V2Base| {
        wanted
            .iter()
            .filter_map(|(c, _)| v2_name(*c))
            .all(|name| base.offers(name) != Offer::No)
    };
    let usable = v2
        .base
        .as_ref()
        .filter(|base| gives_all(base) || !v2.systemd_user);
    let Some(base) = usable else {
        if v2.systemd_user {
            let mut scope = ScopeRequest::new(id, &v2.mount);
            let mut set = |name: &str, value: u64| {
                scope.properties.push((name.to_owned(), Value::U64(value)));
            };
            if let Some(memory) = limits.memory {
                set("MemoryMax", memory);
                set("MemorySwapMax", 0);
            }
            if let Some(pids) = limits.pids {
                set("TasksMax", pids);
            }
            if let Some(cpus) = limits.cpus {
                // Per second, where the quota is per 100 ms period.
                set("CPUQuotaPerSecUSec", cpu_quota(cpus) * 10);
            }
            plan.scope = Some(scope);
        } else {
            for (_, limit) in wanted {
                plan.not_applied.push(NotApplied {
                    limit,
                    why: format!(
                        "cgroup v2: your cgroup {} is not delegated to you and no systemd user manager answers on the user bus; log in through systemd (or `loginctl enable-linger $USER`), or have an administrator delegate a cgroup to you",
                        v2.current
                    ),
                });
            }
        }
        return plan;
    };
    let own = base.path.join(name);
    let mut enable: Vec<&str> = Vec::new();
    let mut limit_writes = Vec::new();
    for (controller, limit) in wanted {
        let Some(name) = v2_name(controller) else {
            continue;
        };
        match base.offers(name) {
            Offer::Enabled => {}
            Offer::AfterEnabling => enable.push(name),
            Offer::No => {
                let why = if base.available.iter().any(|c| c == name) {
                    format!(
                        "{} holds processes, so cgroup v2 lets it give new cgroups no {name} controller; run sandbox from a leaf cgroup of it (`mkdir {0}/shell && echo $$ > {0}/shell/cgroup.procs`)",
                        base.path.display()
                    )
                } else {
                    format!(
                        "the delegated cgroup {} has no {name} controller; the cgroup above it must enable it (systemd: Delegate=yes)",
                        base.path.display()
                    )
                };
                plan.not_applied.push(NotApplied { limit, why });
                continue;
            }
        }
        match controller {
            Controller::Memory => {
                let bytes = limits.memory.unwrap_or_default().to_string();
                limit_writes.push((own.join("memory.max"), bytes));
                // Swap off inside the limit.
                if base.swap {
                    limit_writes.push((own.join("memory.swap.max"), "0".into()));
                }
            }
            Controller::Pids => {
                let max = limits.pids.unwrap_or_default().to_string();
                limit_writes.push((own.join("pids.max"), max));
            }
            Controller::Cpu => {
                let quota = cpu_quota(limits.cpus.unwrap_or(1.0));
                limit_writes.push((own.join("cpu.max"), format!("{quota} {PERIOD_US}")));
            }
            Controller::Cpuacct | Controller::Blkio => {}
        }
    }
    if meter {
        // CPU time is in every v2 cgroup; memory, pids and I/O need their controllers.
        for name in ["memory", "pids", "io"] {
            if base.offers(name) == Offer::AfterEnabling && !enable.contains(&name) {
                enable.push(name);
            }
        }
    }
    if limit_writes.is_empty() && !meter {
        return plan;
    }
    for name in enable {
        plan.writes
            .push((base.path.join("cgroup.subtree_control"), format!("+{name}")));
    }
    plan.writes.extend(limit_writes);
    plan.unified = Some(own);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cgroups::facts::DelegatedDir;

    fn facts(writable: bool, swap: bool) -> CgroupFacts {
        CgroupFacts {
            configured: true,
            v2: None,
            v1: Controller::ALL
                .iter()
                .map(|c| DelegatedDir {
                    controller: *c,
                    path: PathBuf::from(format!("/sys/fs/cgroup/{}/sandbox/dev", c.name())),
                    writable,
                    swap_accounting: swap && *c == Controller::Memory,
                })
                .collect(),
            v1_hierarchies: vec![
                "cpu,cpuacct".into(),
                "cpuset".into(),
                "memory".into(),
                "freezer".into(),
            ],
        }
    }

    #[test]
    fn the_sandbox_sees_its_own_cgroups_or_an_empty_dir() {
        let memory = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        let v1 = plan(&memory, &facts(true, false), "t", "abc", false);
        assert_eq!(
            v1.view,
            CgroupView::Hierarchies(vec!["cpu,cpuacct".into(), "cpuset".into(), "memory".into()])
        );
        // Nothing delegated: no cgroup of its own, nothing of the host's shown.
        let none = plan(&memory, &facts(false, false), "t", "abc", false);
        assert!(none.dirs.is_empty());
        assert_eq!(none.view, CgroupView::Empty);
        assert_eq!(
            plan(&Limits::default(), &facts(true, false), "t", "abc", false).view,
            CgroupView::Empty
        );
        assert_eq!(
            plan(
                &memory,
                &v2(Some(base(&["memory"], false)), false),
                "t",
                "abc",
                false
            )
            .view,
            CgroupView::Unified
        );
        let scope = plan(&memory, &v2(None, true), "t", "abc", false);
        assert!(scope.scope.is_some());
        assert_eq!(scope.view, CgroupView::Unified);
    }

    #[test]
    fn each_limit_gets_its_controllers_dir_and_files() {
        let limits = Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(32),
            ..Limits::default()
        };
        let plan = plan(&limits, &facts(true, true), "t", "abc", false);
        assert!(plan.not_applied.is_empty());
        let memory = PathBuf::from("/sys/fs/cgroup/memory/sandbox/dev/sandbox-t-abc");
        assert_eq!(plan.dirs[0], (Controller::Memory, memory.clone()));
        assert!(plan
            .writes
            .contains(&(memory.join("memory.limit_in_bytes"), "67108864".into())));
        assert!(plan.writes.contains(&(
            memory.join("memory.memsw.limit_in_bytes"),
            "67108864".into()
        )));
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu/sandbox/dev/sandbox-t-abc");
        assert!(plan
            .writes
            .contains(&(cpu.join("cpu.cfs_quota_us"), "50000".into())));
        let pids = PathBuf::from("/sys/fs/cgroup/pids/sandbox/dev/sandbox-t-abc");
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
        let plan = plan(&limits, &facts(true, false), "t", "abc", false);
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
        let none = plan(&limits, &CgroupFacts::default(), "t", "abc", false);
        assert!(none.dirs.is_empty());
        assert_eq!(none.not_applied.len(), 2);
        assert!(none.not_applied[0].limit.starts_with("memory 64 MiB"));
        assert!(none.not_applied[0].why.contains("[cgroups] v1"));
        let readonly = plan(&limits, &facts(false, false), "t", "abc", false);
        assert!(readonly.not_applied[1]
            .why
            .contains("not a directory you may write"));
        // No limit, no cgroup.
        assert_eq!(
            plan(&Limits::default(), &facts(true, true), "t", "abc", false),
            CgroupPlan::default()
        );
        // Metering alone makes the delegated metering cgroups, writing nothing.
        let meter = plan(&Limits::default(), &facts(true, true), "t", "abc", true);
        assert_eq!(meter.dirs.len(), 4);
        assert!(meter.writes.is_empty());
    }

    fn v2(base: Option<super::super::v2::V2Base>, systemd_user: bool) -> CgroupFacts {
        CgroupFacts {
            v2: Some(V2Facts {
                mount: PathBuf::from("/sys/fs/cgroup"),
                current: "/user.slice/user-1000.slice/session-2.scope".into(),
                base,
                systemd_user,
            }),
            ..CgroupFacts::default()
        }
    }

    fn base(enabled: &[&str], empty: bool) -> super::super::v2::V2Base {
        super::super::v2::V2Base {
            path: PathBuf::from("/sys/fs/cgroup/svc"),
            enabled: enabled.iter().map(|c| c.to_string()).collect(),
            available: ["cpu", "io", "memory", "pids"].map(str::to_owned).to_vec(),
            empty,
            swap: true,
        }
    }

    fn all_three() -> Limits {
        Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(32),
            ..Limits::default()
        }
    }

    #[test]
    fn v2_makes_one_cgroup_in_the_delegated_base_and_enables_what_it_needs_first() {
        let plan = super::plan(
            &all_three(),
            &v2(Some(base(&["memory", "pids"], true)), false),
            "t",
            "abc",
            false,
        );
        assert!(plan.not_applied.is_empty(), "{:?}", plan.not_applied);
        assert!(plan.dirs.is_empty());
        let own = PathBuf::from("/sys/fs/cgroup/svc/sandbox-t-abc");
        assert_eq!(plan.unified.as_ref(), Some(&own));
        let control = PathBuf::from("/sys/fs/cgroup/svc/cgroup.subtree_control");
        assert_eq!(plan.writes[0], (control, "+cpu".into()));
        for (file, value) in [
            ("memory.max", "67108864"),
            ("memory.swap.max", "0"),
            ("pids.max", "32"),
            ("cpu.max", "50000 100000"),
        ] {
            assert!(
                plan.writes.contains(&(own.join(file), value.into())),
                "{file} in {:?}",
                plan.writes
            );
        }
        assert_eq!(plan.scope, None);
    }

    #[test]
    fn v2_names_each_limit_a_base_holding_processes_cannot_give() {
        let plan = super::plan(
            &all_three(),
            &v2(Some(base(&["pids"], false)), false),
            "t",
            "abc",
            false,
        );
        let missing: Vec<&str> = plan.not_applied.iter().map(|n| n.limit.as_str()).collect();
        assert_eq!(missing, ["memory 64 MiB", "cpus 0.5"]);
        assert!(plan.not_applied[0].why.contains("holds processes"));
        assert!(plan.not_applied[0].why.contains("leaf cgroup"));
        // What it can give still applies; nothing is enabled in a cgroup holding processes.
        assert!(plan
            .writes
            .iter()
            .all(|(f, _)| !f.ends_with("cgroup.subtree_control")));
        assert!(plan.writes.iter().any(|(f, _)| f.ends_with("pids.max")));
    }

    #[test]
    fn v2_without_delegation_asks_systemd_for_a_scope_carrying_the_limits() {
        let plan = super::plan(&all_three(), &v2(None, true), "t", "abc", false);
        assert!(plan.not_applied.is_empty());
        assert!(plan.unified.is_none() && plan.writes.is_empty());
        let scope = plan.scope.unwrap();
        assert_eq!(scope.unit, "sandbox-abc.scope");
        for (name, value) in [
            ("MemoryMax", 64 << 20),
            ("MemorySwapMax", 0),
            ("TasksMax", 32),
            ("CPUQuotaPerSecUSec", 500_000),
        ] {
            assert!(
                scope.properties.contains(&(name.into(), Value::U64(value))),
                "{name}"
            );
        }
        assert!(scope
            .properties
            .contains(&("Delegate".into(), Value::Bool(true))));
        // Neither a delegated cgroup nor systemd: each limit is named with the way out.
        let none = super::plan(&all_three(), &v2(None, false), "t", "abc", false);
        assert_eq!(none.not_applied.len(), 3);
        assert!(none.not_applied[0]
            .why
            .contains("session-2.scope is not delegated"));
        assert!(none.not_applied[0].why.contains("enable-linger"));
        // No limit and no metering: no cgroup and no call.
        assert_eq!(
            super::plan(&Limits::default(), &v2(None, true), "t", "abc", false),
            CgroupPlan::default()
        );
    }

    #[test]
    fn v2_prefers_systemds_scope_to_a_delegated_cgroup_that_cannot_give_every_limit() {
        let partial = base(&["pids"], false);
        let plan = super::plan(
            &all_three(),
            &v2(Some(partial.clone()), true),
            "t",
            "abc",
            false,
        );
        assert!(plan.scope.is_some() && plan.unified.is_none());
        assert!(plan.not_applied.is_empty());
        // One that gives them all is used as it is.
        let full = base(&["memory", "pids", "cpu"], false);
        let plan = super::plan(&all_three(), &v2(Some(full), true), "t", "abc", false);
        assert!(plan.scope.is_none() && plan.unified.is_some());
        // Pids alone: the partial one does.
        let pids = Limits {
            pids: Some(8),
            ..Limits::default()
        };
        let plan = super::plan(&pids, &v2(Some(partial), true), "t", "abc", false);
        assert!(plan.unified.is_some());
    }

    #[test]
    fn v2_metering_alone_makes_the_cgroup_with_the_metering_controllers() {
        let plan = super::plan(
            &Limits::default(),
            &v2(Some(base(&["memory"], true)), false),
            "t",
            "abc",
            true,
        );
        assert!(plan.unified.is_some());
        let enabled: Vec<&str> = plan.writes.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(enabled, ["+pids", "+io"]);
    }

    #[test]
    fn v1_named_in_the_user_config_wins_over_v2() {
        let mut facts = facts(true, true);
        facts.v2 = v2(None, true).v2;
        let plan = super::plan(&all_three(), &facts, "t", "abc", false);
        assert_eq!(plan.dirs.len(), 3);
        assert!(plan.scope.is_none() && plan.unified.is_none());
    }
}
