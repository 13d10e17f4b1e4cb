//! Limits through cgroups, rootless: a cgroup per container beneath one the user may write.
//! On cgroup v1, a subtree per controller that an administrator delegated (chowned) to the
//! user, named in the user config (`[cgroups] v1`); on cgroup v2, the nearest delegated
//! cgroup from the current one up, else a systemd user scope (`v2`, `scope`).
//!
//! `plan` decides from facts gathered beforehand (which delegated dirs exist and are ours to
//! write) what to make, what to write and what cannot be applied, as plain data; `apply` makes
//! it, moves pid 1 in before the command starts, and removes it when the container ends.

mod apply;
pub mod facts;
pub mod metering;
mod plan;
pub mod scope;
pub mod v2;

pub use apply::{
    cleaner_main, collect_stale, container_task_files, enter_self, io_totals, is_cleaner_exec,
    Cgroup, CLEANER,
};
pub use facts::{
    cgroup_name, store_tag, v1_dir_of, v1_hierarchies, CgroupFacts, CgroupView, DelegatedDir,
};
pub use plan::{plan, CgroupPlan};

#[cfg(test)]
mod tests;
