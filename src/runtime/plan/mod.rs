//! The launch plan: everything a container is started from, decided up front as plain data.
//!
//! `resolve` turns the inputs (the project's settings, the command line, the stored image and
//! facts about the host) into a `LaunchPlan`; the monitor and pid 1 then execute it step by
//! step and decide nothing themselves. So every decision (which mounts, which /etc files,
//! which identity, environment and network) is unit-tested here without root or namespaces,
//! and a new mount, namespace option or limit is an edit of the plan and its executor only.
//!
//! A setup container is the same plan with another process (the setup script, its output
//! captured), no project dir, and its upper dir kept as the setup layer.

mod host;
pub mod launch;
mod mounts;
mod resolve;
pub mod steps;
#[cfg(test)]
mod tests;

pub use host::{FdKind, HostFacts};
pub use launch::*;
pub use mounts::{CgroupView, Kind, MountOp};
pub use resolve::{
    resolve, resolve_join, Forwarded, Inputs, LaunchKind, ProjectInputs, Request, SSH_AGENT_SOCKET,
};
