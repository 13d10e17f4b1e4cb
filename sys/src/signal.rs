//! Signals as fds: the monitor and pid 1 block the signals they handle and read them from a
//! signalfd in their poll loops; a command starts with every signal as it would from a shell.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SfdFlags;
pub use nix::sys::signalfd::SignalFd;

/// Blocks `signals` and returns a non-blocking signalfd that reads them.
pub fn signal_fd(signals: &[Signal]) -> io::Result<SignalFd> {
    let mut set = SigSet::empty();
    for signal in signals {
        set.add(*signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )?)
}

/// Every signal pending on a non-blocking signalfd.
pub fn read_signals(fd: &SignalFd) -> Vec<Signal> {
    let mut out = Vec::new();
    while let Ok(Some(info)) = fd.read_signal() {
        if let Ok(signal) = Signal::try_from(info.ssi_signo as libc::c_int) {
            out.push(signal);
        }
    }
    out
}

/// Unblocks every signal and resets every disposition to its default (Rust ignores SIGPIPE,
/// which a command must not inherit).
pub fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler of ours, so no Rust code can run in a signal
        // context; this runs in the single-threaded child just before exec.
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
    }
}
