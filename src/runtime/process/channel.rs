//! Messages from inside the container to the monitor, one JSON object per line on a pipe.
//! Structured, so a failure inside keeps its step, path and errno (not just a string).

use std::os::fd::BorrowedFd;

use serde::{Deserialize, Serialize};

/// What pid 1 knows about why set-up failed, decided where it failed, so the monitor attaches
/// the right hint without reading the text.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum FailureKind {
    Other,
    /// The image has a symlink (or a non-directory) where sandbox mounts or writes.
    SymlinkInImage,
    /// Kernel overlayfs was forced and the kernel refused it.
    KernelOverlay,
    /// Neither kernel overlayfs nor fuse-overlayfs could mount the root.
    NoOverlay,
}

impl FailureKind {
    pub fn hint(self) -> Option<&'static str> {
        match self {
            FailureKind::Other => None,
            FailureKind::SymlinkInImage => Some("the image has a symlink where sandbox mounts or writes; this is refused so nothing can reach the host"),
            FailureKind::KernelOverlay => Some("kernel overlayfs inside a user namespace needs Linux 5.11 or later; check that `unshare -Urm` works for your user, or drop SANDBOX_OVERLAY=kernel"),
            FailureKind::NoOverlay => Some("install fuse-overlayfs (Debian: `sudo apt-get install fuse-overlayfs`) and make /dev/fuse usable by your user, or use a kernel that allows overlayfs in a user namespace (Linux 5.11+)"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Message {
    /// pid 1 is dumpable and in its namespaces: the network helper may attach now, while pid 1
    /// goes on mounting.
    Attachable,
    /// The kernel refused overlayfs (`why`): pid 1 waits while the monitor mounts
    /// fuse-overlayfs on the new root from outside the container's pid namespace.
    MountFuse { why: String },
    /// pid 1 set the container up: its pid namespace (as `readlink /proc/self/ns/pid` says),
    /// and which overlay it mounted.
    Started { pid_ns: String, overlay: String },
    /// pid 1 could not set the container up: the step, the path, the errno when there is one,
    /// the text, and what is known about the cause.
    SetupFailed {
        step: String,
        path: String,
        errno: Option<i32>,
        detail: String,
        kind: FailureKind,
    },
    /// The command could not be executed.
    ExecFailed { program: String, errno: i32 },
    /// The command ended with `code`; `last` when nothing else runs in the container any more.
    Exited {
        code: i32,
        last: bool,
        /// What the command and what it left used (with `--stats`).
        #[serde(default)]
        usage: Option<crate::runtime::cgroups::metering::Usage>,
    },
}

/// Writes one message; a short line is atomic on a pipe, so several writers do not interleave.
/// The fd stays the caller's.
pub fn send(fd: BorrowedFd<'_>, message: &Message) {
    if let Ok(mut line) = serde_json::to_vec(message) {
        line.push(b'\n');
        let _ = sys::write_all(fd, &line);
    }
}

/// Splits what was read so far into messages, keeping an unfinished line in `buffer`.
pub fn parse(buffer: &mut Vec<u8>) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(message) = parse_one(buffer) {
        out.push(message);
    }
    out
}

/// Takes the first whole message out of `buffer`, leaving the rest for later.
pub fn parse_one(buffer: &mut Vec<u8>) -> Option<Message> {
    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        if let Ok(message) = serde_json::from_slice(&line[..line.len() - 1]) {
            return Some(message);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_lines_only() {
        let mut buffer = br#"{"Exited":{"code":7,"last":true}}
{"ExecF"#
            .to_vec();
        assert_eq!(
            parse(&mut buffer),
            vec![Message::Exited {
                usage: None,
                code: 7,
                last: true
            }]
        );
        assert_eq!(buffer, br#"{"ExecF"#.to_vec());
    }
}
