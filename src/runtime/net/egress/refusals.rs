//! Refused connections, told to the monitor once per target and run (one JSON line each on
//! the keeper's notices pipe), which has the CLI say them on stderr.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A blocked attempt, as the keeper reports it to the monitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// `name:port`, `name` (a lookup) or `address:port`.
    pub target: String,
    /// Why, in words.
    pub reason: String,
}

/// The keeper's end of the notices pipe, and what it has said already.
pub struct Refusals {
    said: Mutex<HashSet<String>>,
    pipe: Mutex<std::fs::File>,
}

/// The most targets remembered (a loop over endless names must not grow the keeper).
const SAID_MAX: usize = 4096;

impl Refusals {
    pub fn new(pipe: OwnedFd) -> Self {
        Self {
            said: Mutex::new(HashSet::new()),
            pipe: Mutex::new(std::fs::File::from(pipe)),
        }
    }

    /// Tells the monitor that `target` was refused, unless it was told already.
    pub fn say(&self, target: &str, reason: &str) {
        let first = self
            .said
            .lock()
            .map(|mut said| said.len() < SAID_MAX && said.insert(target.to_owned()))
            .unwrap_or(false);
        if !first {
            return;
        }
        let notice = Blocked {
            target: target.to_owned(),
            reason: reason.to_owned(),
        };
        if let (Ok(mut text), Ok(mut pipe)) = (serde_json::to_vec(&notice), self.pipe.lock()) {
            text.push(b'\n');
            let _ = pipe.write_all(&text);
        }
    }
}
