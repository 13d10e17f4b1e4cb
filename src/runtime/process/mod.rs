//! The container's processes: the monitor that starts and watches it, pid 1 (`init`) that sets
//! it up and runs the command (`exec`), commands joining a running one (`join`, `nest`), the
//! words between them (`channel`, `control`), the pause process that keeps the store's user
//! namespace, and exit codes as podman gives them.

pub mod channel;
pub mod control;
pub mod exec;
pub mod exit_code;
pub mod init;
pub mod join;
pub mod monitor;
pub mod nest;
pub mod pause;
