//! Moving this process into a new user namespace with the keep-id map.
//!
//! The store's layers are unpacked, and removed, inside the same mapping the containers use, so
//! ownership in layers is right (design: "Rootless identity"). The map is written from outside
//! the namespace by the setuid helpers newuidmap/newgidmap, so the order is:
//! 1. check we are single-threaded (unshare(CLONE_NEWUSER) requires it) and find the helpers;
//! 2. fork a helper child, still in the host namespace, that waits on a pipe;
//! 3. unshare(CLONE_NEWUSER) here, then release the child;
//! 4. the child runs newgidmap and newuidmap on our pid and reports their status and stderr;
//! 5. we keep our uid (now mapped to itself) and hold every capability inside the namespace,
//!    which is what lets extraction chown files and create whiteouts.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, pipe};

use crate::runtime::error::RuntimeError;
use crate::runtime::identity::idmap::IdMapping;
use crate::runtime::identity::idmap::IdRange;

/// Enters the user namespace mapped as `mapping` says (no-op for real root): the one the pause
/// process at `pause_file` holds, else a fresh one, which a new pause process then holds.
pub fn enter(
    mapping: &IdMapping,
    pause_file: Option<&std::path::Path>,
) -> Result<(), RuntimeError> {
    if let (IdMapping::KeepId { uids, gids, .. }, Some(file)) = (mapping, pause_file) {
        if crate::runtime::process::pause::join(file, uids, gids) {
            return Ok(());
        }
        enter_with_helpers(uids, gids)?;
        crate::runtime::process::pause::spawn(file);
        return Ok(());
    }
    match mapping {
        IdMapping::HostRoot => Ok(()),
        IdMapping::Single { uid, gid } => {
            unshare_user()?;
            write_self_map("/proc/self/setgroups", "deny")?;
            write_self_map("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
            write_self_map("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))
        }
        IdMapping::KeepId { uids, gids, .. } => enter_with_helpers(uids, gids),
    }
}

fn unshare_user() -> Result<(), RuntimeError> {
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| RuntimeError::UserNamespace {
        source: std::io::Error::from(e),
    })
}

fn write_self_map(path: &'static str, text: &str) -> Result<(), RuntimeError> {
    fs_err::write(path, text).map_err(|source| RuntimeError::SelfMap { path, source })
}

fn map_args(pid: i32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec![pid.to_string()];
    for r in ranges {
        args.extend([
            r.inside.to_string(),
            r.outside.to_string(),
            r.count.to_string(),
        ]);
    }
    args
}

fn enter_with_helpers(uids: &[IdRange], gids: &[IdRange]) -> Result<(), RuntimeError> {
    let Some(single) = sys::SingleThreaded::check() else {
        return Err(RuntimeError::Internal(
            "internal error: the user namespace must be entered before any thread starts".into(),
        ));
    };
    let newuidmap =
        which::which("newuidmap").map_err(|_| RuntimeError::MissingIdTool { tool: "newuidmap" })?;
    let newgidmap =
        which::which("newgidmap").map_err(|_| RuntimeError::MissingIdTool { tool: "newgidmap" })?;
    let me = getpid().as_raw();
    let (go_read, go_write) = pipe().map_err(|e| RuntimeError::Io(e.into()))?;
    let (result_read, result_write) = pipe().map_err(|e| RuntimeError::Io(e.into()))?;

    // The child may run anything (allocate, spawn) before it _exits: we are single-threaded.
    match sys::fork(&single)? {
        sys::Forked::Child(_) => {
            drop(go_write);
            drop(result_read);
            let code = map_from_child(
                go_read,
                result_write,
                me,
                &newuidmap,
                &newgidmap,
                uids,
                gids,
            );
            // Ends the child at once, without running the parent's destructors twice.
            sys::exit_now(code)
        }
        sys::Forked::Parent(child) => {
            drop(go_read);
            drop(result_write);
            let unshared = unshare_user();
            let mut go = std::fs::File::from(go_write);
            if unshared.is_ok() {
                let _ = go.write_all(b"g");
            }
            drop(go);
            let mut report = String::new();
            let _ = std::fs::File::from(result_read).read_to_string(&mut report);
            let _ = waitpid(nix::unistd::Pid::from_raw(child), None);
            unshared?;
            if report.is_empty() {
                return Err(RuntimeError::Internal(
                    "the id-map helper died without a report".into(),
                ));
            }
            if report == "ok" {
                return Ok(());
            }
            let mut parts = report.splitn(3, '\0');
            let tool = if parts.next() == Some("newgidmap") {
                "newgidmap"
            } else {
                "newuidmap"
            };
            Err(RuntimeError::IdMapTool {
                tool,
                status: parts.next().unwrap_or("?").to_owned(),
                stderr: parts.next().unwrap_or("").trim().to_owned(),
            })
        }
    }
}

/// Runs in the forked child: waits for the parent's unshare, then writes its maps.
fn map_from_child(
    go: OwnedFd,
    result: OwnedFd,
    pid: i32,
    newuidmap: &std::path::Path,
    newgidmap: &std::path::Path,
    uids: &[IdRange],
    gids: &[IdRange],
) -> i32 {
    let mut byte = [0u8; 1];
    let mut result = std::fs::File::from(result);
    if std::fs::File::from(go).read_exact(&mut byte).is_err() {
        return 1;
    }
    // Both helpers at once: each is a setuid exec, and this is on every command's path.
    let spawned: Vec<_> = [
        ("newgidmap", newgidmap, gids),
        ("newuidmap", newuidmap, uids),
    ]
    .into_iter()
    .map(|(name, tool, ranges)| {
        let child = Command::new(tool)
            .args(map_args(pid, ranges))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        (name, child)
    })
    .collect();
    for (name, child) in spawned {
        match child.and_then(std::process::Child::wait_with_output) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let _ = write!(result, "{name}\0{}\0{stderr}", out.status);
                return 1;
            }
            Err(e) => {
                let _ = write!(result, "{name}\0not run\0{e}");
                return 1;
            }
        }
    }
    let _ = result.write_all(b"ok");
    0
}
