//! What the command may ask of the kernel: its seccomp filter. (Its capabilities are chosen
//! in `settings::capabilities` and dropped by `sys`.)

pub mod seccomp;
