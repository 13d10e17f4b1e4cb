//! The runtime layer: namespaces, identity, mounts, the pty and the init process.

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod control;
pub mod egress;
pub mod environment;
pub mod error;
pub mod etc_files;
pub mod exec;
pub mod exit_code;
pub mod idmap;
pub mod init;
pub mod join;
pub mod metering;
pub mod monitor;
pub mod mounts;
pub mod nest;
pub mod net_keeper;
pub mod network;
pub mod pause;
pub mod plan;
pub mod probe;
pub mod relay;
pub mod seccomp;
pub mod state;
pub mod stdio;
pub mod typeahead;
pub mod udp_relay;
pub mod userns;
pub mod warm;

pub use error::RuntimeError;
pub use idmap::IdMapping;

/// How the runtime tells its caller what it chose; it never prints.
pub trait RunReporter {
    /// Detail for `-v`.
    fn verbose(&self, _message: &str) {}
    /// Output of a command whose stdio is `Stdio::Capture`, as it comes.
    fn output(&self, _bytes: &[u8]) {}
    /// The memory limit killed a process of the sandbox: the limit and the peak, in bytes.
    fn out_of_memory(&self, _limit: u64, _peak: u64) {}
    /// What the run cost (`--stats`).
    fn stats(&self, _stats: &metering::Stats) {}
    /// The egress allow-list blocked a connection or lookup (once per target and run).
    fn egress_blocked(&self, _target: &str, _reason: &str) {}
}

/// Blanks this process's command line after argv[0] (see `sys::hide_arguments`).
pub fn hide_command_line() {
    sys::hide_arguments();
}
