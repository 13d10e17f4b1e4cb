//! The runtime layer: namespaces, identity, mounts, the pty and the init process.

pub mod cgroups;
pub mod confinement;
pub mod environment;
pub mod error;
pub mod identity;
pub mod net;
pub mod plan;
pub mod probe;
pub mod process;
pub mod rootfs;
pub mod state;
pub mod stdio;

pub use error::RuntimeError;
pub use identity::idmap::IdMapping;

/// How the runtime tells its caller what it chose; it never prints.
pub trait RunReporter {
    /// Detail for `-v`.
    fn verbose(&self, _message: &str) {}
    /// Output of a command whose stdio is `Stdio::Capture`, as it comes.
    fn output(&self, _bytes: &[u8]) {}
    /// The memory limit killed a process of the sandbox: the limit and the peak, in bytes.
    fn out_of_memory(&self, _limit: u64, _peak: u64) {}
    /// What the run cost (`--stats`).
    fn stats(&self, _stats: &cgroups::metering::Stats) {}
    /// The egress allow-list blocked a connection or lookup (once per target and run).
    fn egress_blocked(&self, _target: &str, _reason: &str) {}
}

/// Blanks this process's command line after argv[0] (see `sys::hide_arguments`).
pub fn hide_command_line() {
    sys::hide_arguments();
}
