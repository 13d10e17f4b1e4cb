//! `--network-log FILE`: one JSON line per connection, flow or lookup, for the allow-list's
//! forwarder and the relay alike.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::fsutil::beneath::{self, GuardedPath};

/// One line.
#[derive(Serialize)]
struct Line<'a> {
    time: f64,
    kind: &'a str,
    target: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// The log file, appended to by every thread of the keeper.
pub struct NetworkLog(Mutex<std::fs::File>);

impl NetworkLog {
    /// Opens `path` for appending, when there is one: a regular file reached without a link
    /// below the project dir (code inside may plant `net.jsonl -> ~/.bashrc`).
    pub fn open(path: Option<&GuardedPath>) -> std::io::Result<Option<NetworkLog>> {
        path.map(|path| {
            let (dir, name) = path.open_parent()?;
            beneath::append_at(dir.as_fd(), &name, 0o644)
                .map(|file| NetworkLog(Mutex::new(file)))
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.shown().display()))
                })
        })
        .transpose()
    }

    /// Appends one line, whole (a failed write is dropped: the log never stops the network).
    pub fn write(&self, kind: &str, target: &str, allowed: bool, reason: Option<&str>) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = Line {
            time,
            kind,
            target,
            allowed,
            reason,
        };
        if let (Ok(mut text), Ok(mut file)) = (serde_json::to_vec(&line), self.0.lock()) {
            text.push(b'\n');
            let _ = file.write_all(&text);
        }
    }
}
