//! A small process that holds the store's user namespace between commands, as podman's pause
//! process does: entering an existing namespace is one setns, while making one runs the setuid
//! helpers newuidmap and newgidmap (about 2-3 ms, most of `sandbox run`'s start-up).
//!
//! The pid file holds `PID START` (start time from /proc/PID/stat), so a reused pid is never
//! mistaken for it, and the namespace's maps are compared with what /etc/subuid says now before
//! it is reused. It keeps no fds and exits once its pid file has not been touched for `IDLE`.
//! It must stay dumpable, or we could not open its namespace; processes in containers cannot
//! reach it anyway, as they live in pid namespaces of their own and never see a host pid.

use std::os::fd::AsFd as _;
use std::path::Path;
use std::time::Duration;

use crate::runtime::identity::idmap::IdRange;
use crate::runtime::state::process_start;

const IDLE: Duration = Duration::from_secs(15 * 60);
const CHECK_EVERY: Duration = Duration::from_secs(60);

fn map_text(ranges: &[IdRange]) -> Vec<(u32, u32, u32)> {
    let mut v: Vec<_> = ranges
        .iter()
        .map(|r| (r.inside, r.outside, r.count))
        .collect();
    v.sort_unstable();
    v
}

fn read_map(path: &str) -> Vec<(u32, u32, u32)> {
    let mut v: Vec<(u32, u32, u32)> = fs_err::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|x| x.parse::<u32>().ok());
            Some((f.next()??, f.next()??, f.next()??))
        })
        .collect();
    v.sort_unstable();
    v
}

/// Joins the pause process's namespace when it is alive and mapped as wanted. `false` when the
/// caller must make a namespace (and then call `spawn`).
pub fn join(file: &Path, uids: &[IdRange], gids: &[IdRange]) -> bool {
    let Ok(text) = fs_err::read_to_string(file) else {
        return false;
    };
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start))) = (fields.next(), fields.next()) else {
        return false;
    };
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if process_start(pid) != Some(start) {
        return false;
    }
    let Ok(ns) = fs_err::File::open(format!("/proc/{pid}/ns/user")) else {
        return false;
    };
    if read_map(&format!("/proc/{pid}/uid_map")) != map_text(uids)
        || read_map(&format!("/proc/{pid}/gid_map")) != map_text(gids)
    {
        // /etc/subuid changed: this namespace is stale.
        // It is our pause process (verified above).
        sys::kill(pid, nix::sys::signal::Signal::SIGKILL);
        return false;
    }
    if sys::setns(ns.as_fd(), libc::CLONE_NEWUSER).is_err() {
        return false;
    }
    // Touch the file: the pause process stays while it is used.
    let _ = fs_err::File::options()
        .append(true)
        .open(file)
        .map(|f| f.set_modified(std::time::SystemTime::now()));
    true
}

/// Starts the pause process in our (new) namespace and records it. Best effort: without it,
/// the next command just makes its own namespace again.
pub fn spawn(file: &Path) {
    // Called right after the namespace was made, while single-threaded.
    let Some(proof) = sys::SingleThreaded::check() else {
        return;
    };
    match sys::fork(&proof) {
        Ok(sys::Forked::Child(child)) => become_pause(&child, file),
        Ok(sys::Forked::Parent(pid)) => {
            let start = process_start(pid).unwrap_or(0);
            let _ = crate::fsutil::atomic::write_file_replacing(
                file,
                format!("{pid} {start}\n").as_bytes(),
                0o600,
            );
        }
        _ => {}
    }
}

/// argv[0] of the pause process.
const NAME: &str = "sandbox-pause";

/// The pid file, when this process is the pause process re-executed (`sandbox-pause FILE`).
pub fn is_pause_exec() -> Option<std::path::PathBuf> {
    let mut args = std::env::args_os();
    if args.next()? != NAME {
        return None;
    }
    let file = args.next()?;
    args.next().is_none().then(|| file.into())
}

/// Execs ourselves as `sandbox-pause FILE` with an empty environment (the namespace stays):
/// the first command's argv (`-e API_KEY=...`) and environment do not stay readable in a
/// process that lives for minutes. If the exec fails, hold on as we are.
fn become_pause(child: &sys::ForkedChild, file: &Path) -> ! {
    sys::setsid();
    sys::close_from(child, 0);
    if let (Ok(exe), Ok(name), Ok(path)) = (
        sys::cstring("/proc/self/exe"),
        sys::cstring(NAME),
        sys::cpath(file),
    ) {
        let _ = sys::execve(&exe, &[name, path], &[]);
    }
    hold(file)
}

/// The pause process's life: hold the namespace until the pid file is stale or not ours.
pub fn hold(file: &Path) -> ! {
    // The pause process leaves the caller's session.
    sys::setsid();
    let _ = sys::set_name(c"sandbox-pause");
    if let Ok(root) = sys::cstring("/") {
        let _ = sys::chdir(&root);
    }
    // No fd is open here: `become_pause` closed them all before it exec'd us (or before it
    // fell back to holding on as it is).
    let file = file.to_owned();
    loop {
        std::thread::sleep(CHECK_EVERY);
        let fresh = fs_err::metadata(&file)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < IDLE);
        let ours = fs_err::read_to_string(&file)
            .is_ok_and(|t| t.split_whitespace().next() == Some(&std::process::id().to_string()));
        if !fresh || !ours {
            sys::exit_now(0);
        }
    }
}
