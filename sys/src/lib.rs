//! sandbox's syscall layer: safe wrappers with typed arguments (borrowed and owned fds, typed
//! signals and flags) over nix, and over libc only where nix has no call. Every unsafe block
//! of sandbox is in this crate, each with its reason: the main crate forbids unsafe code, so
//! the compiler refuses it anywhere else.

pub mod at;
mod fd;
mod fd_io;
mod fs;
mod fs_context;
mod mount;
mod net;
mod nfnetlink;
mod nfqueue;
mod nftables;
mod ns;
mod prctl;
mod process;
mod seccomp;
mod signal;
mod term;

pub use fd::*;
pub use fd_io::*;
pub use fs::*;
pub use fs_context::*;
pub use mount::*;
pub use net::*;
pub use nfqueue::{parse_openings, Opening, Queue, Verdict};
pub use nftables::{install_relay_rules, REPLY_MARK, RESET_MARK, SYN_QUEUE};
pub use ns::*;
pub use prctl::*;
pub use process::*;
pub use seccomp::*;
pub use signal::*;
pub use term::*;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn check_long(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

pub fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "text contains a NUL byte"))
}
