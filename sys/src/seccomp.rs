//! Installing a seccomp filter built by `runtime::seccomp`.

use std::io;

/// Installs `program` on this thread (and everything it starts). Sets no_new_privs first, as
/// the kernel requires of a process without CAP_SYS_ADMIN.
pub fn install_seccomp(program: &seccompiler::BpfProgram) -> io::Result<()> {
    seccompiler::apply_filter(program).map_err(|e| match e {
        seccompiler::Error::Seccomp(io) | seccompiler::Error::Prctl(io) => io,
        other => io::Error::other(other.to_string()),
    })
}
