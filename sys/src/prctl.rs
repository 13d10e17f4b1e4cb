//! prctl(2) and capabilities, one typed function per operation (nix's where it has one): the
//! generic prctl takes pointers for some options, so it is never exposed.

use std::io;

use super::check;

/// prctl with an option whose arguments are integers only (the one caller below, for an
/// option nix does not wrap).
fn prctl_integer(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: only called with PR_CAPBSET_DROP, whose arguments are plain integers.
    check(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(|_| ())
}

/// Whether this process may be ptraced or have its /proc files opened by its user.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    Ok(nix::sys::prctl::set_dumpable(dumpable)?)
}

/// setuid and file capabilities give nothing after exec, irrevocably.
pub fn set_no_new_privs() -> io::Result<()> {
    Ok(nix::sys::prctl::set_no_new_privs()?)
}

/// The signal this process gets when its parent (thread) dies.
pub fn set_parent_death_signal(signal: nix::sys::signal::Signal) -> io::Result<()> {
    Ok(nix::sys::prctl::set_pdeathsig(signal)?)
}

/// The process's name as `ps` shows it (at most 15 bytes are kept).
pub fn set_name(name: &std::ffi::CStr) -> io::Result<()> {
    Ok(nix::sys::prctl::set_name(name)?)
}

fn caps_error(e: caps::errors::CapsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Drops every capability: the bounding set (every capability this kernel has, not only the
/// ones a library knows), the ambient set, then the inheritable, effective and permitted sets.
pub fn drop_all_capabilities() -> io::Result<()> {
    let last = fs_err::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        match prctl_integer(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    use caps::CapSet;
    caps::clear(None, CapSet::Ambient).map_err(caps_error)?;
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(caps_error)?;
    }
    Ok(())
}

/// Leaves this process exactly the capabilities in `keep`, in the bounding, permitted and
/// effective sets (inheritable and ambient empty), so an exec as uid 0 gets those and no more.
pub fn limit_capabilities(keep: &[caps::Capability]) -> io::Result<()> {
    let last = fs_err::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    let kept: Vec<libc::c_ulong> = keep.iter().map(|c| c.index().into()).collect();
    for cap in (0..=last).filter(|c| !kept.contains(c)) {
        match prctl_integer(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    use caps::CapSet;
    let set: caps::CapsHashSet = keep.iter().copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(caps_error)?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_error)?;
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, &set).map_err(caps_error)?;
    caps::set(None, CapSet::Permitted, &set).map_err(caps_error)?;
    Ok(())
}
