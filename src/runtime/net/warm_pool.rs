//! Warm networks: pasta prepared ahead of time, so `--network pasta` costs a sandbox what
//! `--network none` costs instead of pasta's start-up (20-40 ms).
//!
//! A pool process per store, forked by a monitor once (it lives in the store's user
//! namespace, with its capabilities), keeps one network namespace with pasta attached and
//! answers on `<store>/warm.sock`: a new sandbox takes the namespace (its fd, passed over the
//! socket), its pid 1 enters it instead of making one, and the monitor hands back pid 1's
//! pidfd; the pool ends that pasta when pid 1 exits (`kill -9` of sandbox included: pid 1 dies
//! with its monitor), and prepares the next. The pool ends the prepared one and leaves when
//! the pause process is gone (once no taken one is in use) or after 15 idle minutes; it throws
//! the prepared one away, instead of handing out stale addresses, when the host's routes or
//! resolv.conf changed since it was made (a VPN came up). Published ports, host loopback and
//! other modes start their own helper as before.

use std::hash::{Hash as _, Hasher as _};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runtime::net::helpers;

/// The pool's socket, in the store (0700: only its user reaches it).
pub const SOCKET: &str = "warm.sock";
/// How many prepared networks the pool holds now, as a number on a line: a pasta's readiness
/// shows nowhere else outside the pool.
pub const READY_FILE: &str = "warm.ready";
const IDLE: Duration = Duration::from_secs(15 * 60);
/// How long a taker may take to hand back pid 1 (it clones pid 1 in between).
const HANDBACK: Duration = Duration::from_secs(5);

/// A prepared network namespace, taken by a new container.
pub struct Taken {
    pub netns: OwnedFd,
    link: UnixStream,
}

impl Taken {
    /// Hands the pool pid 1's pidfd: it ends the helper when pid 1 exits.
    pub fn bind_to(self, pid1: &OwnedFd) -> std::io::Result<()> {
        sys::send_fd(self.link.as_fd(), pid1.as_fd())
    }
}

/// What the pool's answer to `take` was.
pub enum Answer {
    Taken(Taken),
    /// A pool answered but had none ready (another sandbox took it).
    NoneReady,
    /// No pool answers: the caller may start one.
    NoPool,
}

/// Asks the store's pool for its prepared network.
pub fn take(store: &Path) -> Answer {
    let Ok(mut link) = UnixStream::connect(store.join(SOCKET)) else {
        return Answer::NoPool;
    };
    let _ = link.set_read_timeout(Some(Duration::from_millis(500)));
    if link.write_all(b"t").is_err() {
        return Answer::NoPool;
    }
    match sys::recv_fd(link.as_fd()) {
        Ok(netns) => Answer::Taken(Taken { netns, link }),
        Err(_) => Answer::NoneReady,
    }
}

/// What pasta copies from the host when it starts: its resolver and routes.
const HOST_NETWORK: [&str; 3] = [
    "/etc/resolv.conf",
    "/proc/net/route",
    "/proc/net/ipv6_route",
];

/// The host's network as pasta copies it.
fn fingerprint() -> u64 {
    fingerprint_of(&HOST_NETWORK.map(Path::new))
}

fn fingerprint_of(files: &[&Path]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        fs_err::read(file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

/// argv[0] of the pool, re-executed.
const NAME: &str = "sandbox-warm";

/// What the pool needs of container root's capabilities: making network namespaces, starting
/// pasta as container root and ending it, and making and removing pasta's private pid dir
/// (container root's).
const POOL_CAPS: [caps::Capability; 7] = [
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_SYS_ADMIN,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FOWNER,
];

/// Starts the store's pool in the background (the caller is single-threaded and in the
/// store's user namespace); best effort. The pool re-executes itself, as the pause process
/// does, so the memory, argv and environment of the run that started it (`-e KEY=secret`)
/// do not stay readable for the minutes it lives; the capabilities it needs go along as
/// ambient ones.
pub fn spawn_pool(store: &Path, single: &sys::SingleThreaded) {
    // A socket's path holds at most 107 bytes: a store deeper than that gets no pool (rather
    // than one forked in vain by every run).
    let Ok(store) = std::path::absolute(store) else {
        return;
    };
    if store.join(SOCKET).as_os_str().len() > 100 {
        return;
    }
    if let Ok(sys::Forked::Child(child)) = sys::fork(single) {
        sys::setsid();
        sys::stdio_to_dev_null();
        sys::close_all_but(&child, &[]);
        sys::hide_arguments();
        if keep_across_exec(&POOL_CAPS).is_ok() {
            if let (Ok(exe), Ok(name), Ok(path)) = (
                sys::cstring("/proc/self/exe"),
                sys::cstring(NAME),
                sys::cpath(&store),
            ) {
                // Only where pasta is found and where its pid file goes.
                let env: Vec<_> = ["PATH", "TMPDIR"]
                    .iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
                    .filter_map(|pair| sys::cstring(&pair).ok())
                    .collect();
                let _ = sys::execve(&exe, &[name, path], &env);
            }
        }
        // The exec failed: serve as we are.
        pool_main(&store)
    }
}

/// Makes `wanted` ambient, so an exec keeps them (the uid inside stays the user's).
fn keep_across_exec(wanted: &[caps::Capability]) -> Result<(), caps::errors::CapsError> {
    let mut inheritable = caps::read(None, caps::CapSet::Inheritable)?;
    inheritable.extend(wanted.iter().copied());
    caps::set(None, caps::CapSet::Inheritable, &inheritable)?;
    for cap in wanted {
        caps::raise(None, caps::CapSet::Ambient, *cap)?;
    }
    Ok(())
}

/// The store, when this process is the pool re-executed (`sandbox-warm STORE`).
pub fn is_pool_exec() -> Option<PathBuf> {
    let mut args = std::env::args_os();
    if args.next()? != NAME {
        return None;
    }
    let store = args.next()?;
    args.next().is_none().then(|| store.into())
}

/// The pool's life.
pub fn pool_main(store: &Path) -> ! {
    let _ = sys::set_name(c"sandbox-warm");
    if let Ok(root) = sys::cstring("/") {
        let _ = sys::chdir(&root);
    }
    let code = Pool::open(store).map_or(0, |mut pool| {
        pool.serve();
        0
    });
    sys::exit_now(code)
}

/// How many networks are kept ready. One: an idle pasta holds some 30 MB, and a run typed
/// after the previous one finds it ready; a burst of runs starts the rest as before.
const READY: usize = 1;
/// How long after a take the pool waits before it starts the replacement: pasta's start-up
/// is some 20 ms of CPU, which would compete with the command that just took one.
const REFILL_AFTER: Duration = Duration::from_millis(200);
/// After this many helpers in a row failed to start, the pool stops trying (takers start
/// their own, which reports why).
const FAILURES_MAX: u32 = 3;

/// One network of the pool: pasta starting on it, or ready.
struct Slot {
    netns: OwnedFd,
    /// `None` once handed out.
    helper: Option<SlotState>,
    /// The host's network when it was made.
    fingerprint: u64,
}

enum SlotState {
    Starting(helpers::Starting),
    Ready(helpers::Running),
}

impl Drop for Slot {
    /// A ready helper nobody took is ended and reaped (a starting one ends itself).
    fn drop(&mut self) {
        if let Some(SlotState::Ready(running)) = &mut self.helper {
            running.end_in_place();
        }
    }
}

struct Pool {
    store: PathBuf,
    listener: UnixListener,
    /// Held for the pool's life: a second pool for the store finds it locked and leaves.
    _lock: nix::fcntl::Flock<std::fs::File>,
    pause: Option<OwnedFd>,
    slots: Vec<Slot>,
    taken: Vec<(OwnedFd, helpers::Running)>,
    made: u64,
    failures: u32,
    last_take: Instant,
    /// What `READY_FILE` says.
    shown_ready: Option<usize>,
}

impl Pool {
    fn open(store: &Path) -> Option<Pool> {
        let file = fs_err::File::create(store.join("warm.lock"))
            .ok()?
            .into_parts()
            .0;
        let lock =
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()?;
        let socket = store.join(SOCKET);
        let _ = fs_err::remove_file(&socket);
        let listener = UnixListener::bind(&socket).ok()?;
        Some(Pool {
            store: store.to_owned(),
            listener,
            _lock: lock,
            pause: pause_pidfd(store),
            slots: Vec::new(),
            taken: Vec::new(),
            made: 0,
            failures: 0,
            last_take: Instant::now(),
            shown_ready: None,
        })
    }

    fn serve(&mut self) {
        loop {
            let open = self.pause.is_some() && self.last_take.elapsed() < IDLE;
            if !open {
                // Nothing new is handed out; the taken ones are waited for.
                self.slots.clear();
                if self.taken.is_empty() {
                    break;
                }
            }
            let settled = self.last_take.elapsed() >= REFILL_AFTER || self.made == 0;
            while open && settled && self.slots.len() < READY && self.failures < FAILURES_MAX {
                match self.begin() {
                    Some(slot) => self.slots.push(slot),
                    None => self.failures += 1,
                }
            }
            let starting = self
                .slots
                .iter()
                .any(|s| matches!(s.helper, Some(SlotState::Starting(_))));
            let ended = {
                let mut polls = vec![sys::PollFd::new(
                    self.listener.as_fd(),
                    sys::PollFlags::POLLIN,
                )];
                if let Some(pause) = &self.pause {
                    polls.push(sys::PollFd::new(pause.as_fd(), sys::PollFlags::POLLIN));
                }
                for (pidfd, _) in &self.taken {
                    polls.push(sys::PollFd::new(pidfd.as_fd(), sys::PollFlags::POLLIN));
                }
                // While pasta starts, look again soon; with slots to refill, once settled.
                let refill = (open && self.slots.len() < READY && self.failures < FAILURES_MAX)
                    .then(|| REFILL_AFTER.saturating_sub(self.last_take.elapsed()));
                let timeout = match (starting, refill) {
                    (true, _) => 1,
                    (false, Some(wait)) => i32::try_from(wait.as_millis()).unwrap_or(0).max(1),
                    (false, None) => 60_000,
                };
                sys::poll(&mut polls, timeout);
                sys::ready(&polls)
            };
            let offset = if self.pause.is_some() { 2 } else { 1 };
            if self.pause.is_some() && ended.get(1) == Some(&true) {
                self.pause = None;
            }
            // Helpers whose pid 1 exited end now (from the back, so indexes stay right).
            for i in (0..self.taken.len()).rev() {
                if ended.get(offset + i) == Some(&true) {
                    let (_, helper) = self.taken.swap_remove(i);
                    helper.end();
                }
            }
            self.advance();
            if ended.first() == Some(&true) {
                if let Ok((link, _)) = self.listener.accept() {
                    self.answer(link);
                }
            }
            self.say_ready();
        }
        self.slots.clear();
        let _ = fs_err::remove_file(self.store.join(SOCKET));
        let _ = fs_err::remove_file(self.store.join(READY_FILE));
    }

    /// Writes how many networks are ready to `READY_FILE` when that changed (whole: written
    /// beside it, then renamed over it).
    fn say_ready(&mut self) {
        let ready = self
            .slots
            .iter()
            .filter(|s| matches!(s.helper, Some(SlotState::Ready(_))))
            .count();
        if self.shown_ready == Some(ready) {
            return;
        }
        let file = self.store.join(READY_FILE);
        let next = self.store.join(format!(".{READY_FILE}.new"));
        if fs_err::write(&next, format!("{ready}\n")).is_ok()
            && fs_err::rename(&next, &file).is_ok()
        {
            self.shown_ready = Some(ready);
        }
    }

    /// A network namespace of its own (made on a thread, so this process stays in the host's)
    /// with pasta starting on it.
    fn begin(&mut self) -> Option<Slot> {
        let netns = std::thread::spawn(|| -> std::io::Result<OwnedFd> {
            sys::unshare(libc::CLONE_NEWNET)?;
            Ok(OwnedFd::from(
                fs_err::File::open("/proc/thread-self/ns/net")?
                    .into_parts()
                    .0,
            ))
        })
        .join()
        .ok()?
        .ok()?;
        self.made += 1;
        let id = PathBuf::from(format!("warm-{}-{}", std::process::id(), self.made));
        let fingerprint = fingerprint();
        let starting = helpers::begin_pasta(&netns, &id).ok()?;
        Some(Slot {
            netns,
            helper: Some(SlotState::Starting(starting)),
            fingerprint,
        })
    }

    /// Moves started helpers to ready, and drops those that failed.
    fn advance(&mut self) {
        let mut i = 0;
        while i < self.slots.len() {
            let outcome = match &mut self.slots[i].helper {
                Some(SlotState::Starting(starting)) => starting.poll(),
                _ => {
                    i += 1;
                    continue;
                }
            };
            match outcome {
                Ok(Some(running)) => {
                    self.slots[i].helper = Some(SlotState::Ready(running));
                    self.failures = 0;
                    i += 1;
                }
                Ok(None) => i += 1,
                Err(_) => {
                    self.slots.swap_remove(i);
                    self.failures += 1;
                }
            }
        }
    }

    fn answer(&mut self, mut link: UnixStream) {
        let _ = link.set_read_timeout(Some(HANDBACK));
        let mut asked = [0u8; 1];
        let ours = nix::sys::socket::getsockopt(&link, nix::sys::socket::sockopt::PeerCredentials)
            .is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw());
        if !ours || link.read_exact(&mut asked).is_err() || asked != *b"t" {
            return;
        }
        // Stale ones (the host's network changed since they were made) are thrown away.
        let now = fingerprint();
        self.slots.retain(|slot| slot.fingerprint == now);
        let ready = self
            .slots
            .iter()
            .position(|s| matches!(s.helper, Some(SlotState::Ready(_))));
        let Some(at) = ready else {
            let _ = link.write_all(b"n");
            return;
        };
        let mut slot = self.slots.swap_remove(at);
        let Some(SlotState::Ready(helper)) = slot.helper.take() else {
            return;
        };
        if sys::send_fd(link.as_fd(), slot.netns.as_fd()).is_err() {
            helper.end();
            return;
        }
        self.last_take = Instant::now();
        match sys::recv_fd(link.as_fd()) {
            Ok(pid1) => self.taken.push((pid1, helper)),
            // The taker gave up before its pid 1 existed: nobody uses this one.
            Err(_) => helper.end(),
        }
    }
}

/// A pidfd of the store's pause process, when it is alive.
fn pause_pidfd(store: &Path) -> Option<OwnedFd> {
    let text = fs_err::read_to_string(store.join("pause.pid")).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start))) = (fields.next(), fields.next()) else {
        return None;
    };
    let pid = i32::try_from(pid).ok()?;
    let pidfd = sys::pidfd_open(pid).ok()?;
    // Opened first, then checked: a pid reused after the check could not be mistaken.
    (crate::runtime::state::process_start(pid) == Some(start)).then_some(pidfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_resolver_or_route_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (resolv, route) = (dir.path().join("resolv.conf"), dir.path().join("route"));
        fs_err::write(&resolv, "nameserver 10.0.0.1\n").unwrap();
        fs_err::write(&route, "eth0 00000000 0100000A\n").unwrap();
        let files = [resolv.as_path(), route.as_path()];
        let before = fingerprint_of(&files);
        assert_eq!(before, fingerprint_of(&files));
        // A VPN came up: another default route.
        fs_err::write(&route, "tun0 00000000 0100080A\n").unwrap();
        assert_ne!(before, fingerprint_of(&files));
    }
}
