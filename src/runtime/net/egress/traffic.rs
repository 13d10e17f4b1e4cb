//! A sandbox's bytes in and out through sandbox's own network code: the relay, the forwarder
//! and the keeper's relays of published ports. Their traffic crosses the sandbox's loopback to
//! the keeper's sockets, so the kernel's counters (`/proc/net/dev`, which give pasta's and
//! slirp4netns's figures) see none of it: the keeper counts what it copies instead.
//!
//! The keeper publishes its counts in `<container dir>/traffic`, made once when it starts and
//! then overwritten in place (never replaced, so a reader's open file stays current and no new
//! entry can appear while the container dir is being removed). Its text is two fixed-width
//! numbers, the bytes into the sandbox and out of it.

use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The file's name in the container dir.
pub const FILE: &str = "traffic";
/// How often the keeper writes its counts, when they changed.
const EVERY: Duration = Duration::from_millis(100);
/// `into out\n`, each number 20 digits (`u64::MAX` has 20).
const WIDTH: usize = 20 * 2 + 2;

/// The keeper's counters: one keeper serves one sandbox, so one set per process.
pub static TRAFFIC: Traffic = Traffic::new();

/// Bytes into the sandbox and out of it (payload: without the TCP, UDP and IP headers that
/// the kernel's interface counters include).
#[derive(Debug, Default)]
pub struct Traffic {
    into: AtomicU64,
    out: AtomicU64,
}

impl Traffic {
    pub const fn new() -> Self {
        Self {
            into: AtomicU64::new(0),
            out: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` that went into the sandbox.
    pub fn came_in(&self, bytes: usize) {
        self.into.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `bytes` that left the sandbox.
    pub fn went_out(&self, bytes: usize) {
        self.out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (into, out) so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.into.load(Ordering::Relaxed),
            self.out.load(Ordering::Relaxed),
        )
    }
}

fn encode((into, out): (u64, u64)) -> String {
    format!("{into:020} {out:020}\n")
}

fn decode(bytes: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(bytes.get(..WIDTH)?).ok()?;
    let (into, out) = text.trim_end().split_once(' ')?;
    Some((into.parse().ok()?, out.parse().ok()?))
}

/// Where the keeper publishes `TRAFFIC` (made by `Publisher::create`).
pub struct Publisher {
    file: std::fs::File,
}

impl Publisher {
    /// Makes `dir/traffic` (never through a link: the container dir is the user's, but the
    /// name must not be followed anywhere) and writes zeros.
    pub fn create(dir: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir.join(FILE))?;
        let publisher = Self { file };
        publisher.write(TRAFFIC.totals());
        Ok(publisher)
    }

    fn write(&self, totals: (u64, u64)) {
        let _ = self.file.write_all_at(encode(totals).as_bytes(), 0);
    }

    /// Writes the counts whenever they changed, on a thread of its own, until the process
    /// exits; `finish` writes the last ones.
    pub fn keep_writing(self: &std::sync::Arc<Self>) {
        let publisher = std::sync::Arc::clone(self);
        std::thread::spawn(move || {
            let mut written = TRAFFIC.totals();
            loop {
                std::thread::sleep(EVERY);
                let now = TRAFFIC.totals();
                if now != written {
                    publisher.write(now);
                    written = now;
                }
            }
        });
    }

    /// Writes the counts as they are now.
    pub fn finish(&self) {
        self.write(TRAFFIC.totals());
    }
}

/// Reads counts from an open `traffic` file; (0, 0) when it says nothing readable. Read
/// twice until two reads agree: the keeper may be overwriting it.
pub fn read_from(file: &std::fs::File) -> (u64, u64) {
    let mut buffer = [0u8; WIDTH];
    let mut last = None;
    for _ in 0..4 {
        let now = file
            .read_exact_at(&mut buffer, 0)
            .ok()
            .and_then(|()| decode(&buffer));
        if now.is_some() && now == last {
            break;
        }
        last = now;
    }
    last.unwrap_or((0, 0))
}

/// Opens `dir/traffic` for `read_from`, when the sandbox's network has a keeper that counts.
pub fn open(dir: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(dir.join(FILE))
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
}

/// The counts in `dir`, (0, 0) where the network has no counting keeper (pasta, slirp4netns:
/// their figures are the kernel's).
pub fn read(dir: &Path) -> (u64, u64) {
    open(dir).map_or((0, 0), |f| read_from(&f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_the_file_text() {
        for totals in [(0, 0), (1, 2), (u64::MAX, 12_345_678_901)] {
            let text = encode(totals);
            assert_eq!(text.len(), WIDTH);
            assert_eq!(decode(text.as_bytes()), Some(totals));
        }
        assert_eq!(decode(b"12 34\n"), None);
        assert_eq!(decode(&[b'x'; WIDTH]), None);
    }

    #[test]
    fn a_published_file_reads_back_what_was_counted() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::create(dir.path()).unwrap();
        // Another keeper's file is never taken over, nor a planted link followed.
        assert!(Publisher::create(dir.path()).is_err());
        let reader = open(dir.path()).unwrap();
        TRAFFIC.came_in(1000);
        TRAFFIC.went_out(24);
        publisher.finish();
        let (into, out) = read_from(&reader);
        assert!(into >= 1000 && out >= 24, "{into} {out}");
        assert_eq!(read(&dir.path().join("missing")), (0, 0));
    }
}
