//! prctl(2), one typed function per option we use: the generic call takes pointers for some
//! options, so it is never exposed.

use std::io;

use super::{check, check_long};

/// prctl with an option whose arguments are integers only (the callers below).
fn prctl_integer(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: only called with options whose arguments are plain integers (no pointers).
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
    prctl_integer(libc::PR_SET_DUMPABLE, libc::c_ulong::from(dumpable))
}

/// setuid and file capabilities give nothing after exec, irrevocably.
pub fn set_no_new_privs() -> io::Result<()> {
    prctl_integer(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// The signal this process gets when its parent (thread) dies.
pub fn set_parent_death_signal(signal: nix::sys::signal::Signal) -> io::Result<()> {
    prctl_integer(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong)
}

/// The process's name as `ps` shows it (at most 15 bytes are kept).
pub fn set_name(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string that outlives the call.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            name.as_ptr(),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(|_| ())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability: bounding set, ambient, and the effective/permitted/inheritable sets.
pub fn drop_all_capabilities() -> io::Result<()> {
    let last = fs_err::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        match prctl_integer(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as capset with version 3 expects.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
    .map(|_| ())
}
