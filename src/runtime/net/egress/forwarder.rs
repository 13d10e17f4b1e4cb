//! The forwarder: runs in the network keeper (in the host's network namespace) with listeners
//! and a DNS socket made in the sandbox's, and lets through only what the allow-list names.
//! A thread per connection: a sandbox opens tens of connections, not thousands.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runtime::net::egress::dns;
use crate::runtime::net::egress::dns::Answer;
use crate::runtime::net::egress::host_itself;
use crate::runtime::net::egress::log::NetworkLog;
use crate::runtime::net::egress::names;
use crate::runtime::net::egress::refusals::Refusals;
use crate::runtime::net::egress::sniff;
use crate::runtime::net::egress::sniff::Opening;
use crate::runtime::net::egress::traffic::TRAFFIC;
use crate::runtime::net::egress::Policy;
use crate::runtime::net::egress::PROXY_PORT;

/// How long a connection may take to say which name it is for before it is judged by its
/// address (a protocol where the server speaks first says nothing).
const FIRST_BYTES: Duration = Duration::from_millis(800);
/// How long its whole opening (a ClientHello, an HTTP head) may take.
const OPENING: Duration = Duration::from_secs(10);
const DIAL: Duration = Duration::from_secs(15);
/// The most connections in flight at once (a thread each): more are closed at once.
const CONNECTIONS_MAX: usize = 512;
/// The most lookups on the host at once.
const LOOKUPS_MAX: usize = 32;
/// The most addresses remembered with their names (lookups of endless names under an allowed
/// wildcard must not grow the keeper without bound).
const RESOLVED_MAX: usize = 4096;

struct Shared {
    policy: Policy,
    /// Addresses the resolver gave out, and for which names.
    resolved: Mutex<HashMap<IpAddr, Vec<String>>>,
    refusals: Refusals,
    log: Option<NetworkLog>,
    /// The host's own proxy (`https_proxy`), which dials for us when set.
    upstream_proxy: Option<String>,
    /// Connections in flight.
    open: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn log(&self, kind: &str, target: &str, allowed: bool, reason: Option<&str>) {
        if let Some(log) = &self.log {
            log.write(kind, target, allowed, reason);
        }
    }

    /// Logs a blocked attempt and tells the monitor, once per target and run.
    fn block(&self, kind: &str, target: &str, reason: &str) {
        self.log(kind, target, false, Some(reason));
        self.refusals.say(target, reason);
    }

    fn not_listed(&self) -> String {
        format!("not in {}", self.policy.source)
    }
}

/// What the sandbox's namespace holds for the forwarder.
struct Sockets {
    listeners: Vec<TcpListener>,
    dns: UdpSocket,
    openings: sys::Queue,
}

/// Makes the sandbox's network namespace route every address to itself and opens the
/// listeners there, on a thread that enters it (the rest of the keeper stays in the host's).
/// A connection's opening to any other port waits in the queue (the relay's rules, without
/// its diversion), to be refused at once and named.
fn open_in_namespace(netns: &OwnedFd, ports: &[u16]) -> std::io::Result<Sockets> {
    let netns = netns.try_clone()?;
    let ports = ports.to_vec();
    std::thread::spawn(move || -> std::io::Result<Sockets> {
        sys::setns(netns.as_fd(), libc::CLONE_NEWNET)?;
        sys::loopback_up()?;
        sys::route_everything_to_loopback()?;
        let listeners = ports
            .iter()
            .map(|p| TcpListener::bind((Ipv4Addr::UNSPECIFIED, *p)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let dns = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 53))?;
        let openings = sys::Queue::bind(sys::SYN_QUEUE)?;
        sys::install_relay_rules(None)?;
        Ok(Sockets {
            listeners,
            dns,
            openings,
        })
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread entering the sandbox's network panicked"))?
}

/// Lets on each queued opening for a port the forwarder listens on (its name is judged once
/// it says it); resets the others, naming them.
fn judge_openings(shared: &Shared, queue: &sys::Queue, ports: &[u16]) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let Ok(openings) = queue.receive(&mut buffer) else {
            // Never a busy loop on an error that stays.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        for opening in openings {
            let verdict = match opening.flow {
                Some((_, to)) if !ports.contains(&to.port()) => {
                    let name = shared.resolved.lock().ok().and_then(|r| {
                        r.get(&IpAddr::V4(*to.ip()))
                            .and_then(|names| names.first().cloned())
                    });
                    let target = match name {
                        Some(name) => format!("{name}:{}", to.port()),
                        None => to.to_string(),
                    };
                    shared.block("connection", &target, &shared.not_listed());
                    sys::Verdict::Reset
                }
                _ => sys::Verdict::Accept,
            };
            let _ = queue.verdict(opening.id, verdict);
        }
    }
}

/// Starts forwarding for the sandbox whose network namespace is `netns`; blocked attempts
/// are reported on `notices`. Runs on threads until the keeper exits.
pub fn start(policy: &Policy, netns: &OwnedFd, notices: OwnedFd) -> std::io::Result<()> {
    let mut ports = policy.allow.ports();
    ports.push(PROXY_PORT);
    ports.sort_unstable();
    ports.dedup();
    let sockets = open_in_namespace(netns, &ports)?;
    let log = NetworkLog::open(policy.log.as_ref())?;
    let upstream_proxy = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()))
        .and_then(|p| proxy_address(&p));
    let shared = Arc::new(Shared {
        policy: policy.clone(),
        resolved: Mutex::new(HashMap::new()),
        refusals: Refusals::new(notices),
        log,
        upstream_proxy,
        open: std::sync::atomic::AtomicUsize::new(0),
    });
    {
        let shared = Arc::clone(&shared);
        let socket = sockets.dns;
        std::thread::spawn(move || serve_dns(&shared, socket));
    }
    {
        let shared = Arc::clone(&shared);
        let queue = sockets.openings;
        std::thread::spawn(move || judge_openings(&shared, &queue, &ports));
    }
    for listener in sockets.listeners {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            for client in listener.incoming().flatten() {
                // A flood of connections from inside costs it its own connections, not the
                // keeper's memory.
                if shared.open.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                    shared.log(
                        "connection",
                        "",
                        false,
                        Some("too many connections at once"),
                    );
                    continue;
                }
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    handle(&shared, client);
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    Ok(())
}

/// `host:port` of an `http://` proxy URL (user info is not supported: dropped as unusable).
fn proxy_address(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next()?;
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    Some(if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

fn serve_dns(shared: &Arc<Shared>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let lookups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut packet = [0u8; 512];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut packet) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Some(question) = dns::parse_query(&packet[..n]) else {
            continue;
        };
        if !shared.policy.allow.allows_name(&question.name) {
            shared.block("dns", &question.name, &shared.not_listed());
            let _ = socket.send_to(&dns::response(&question, &Answer::NoSuchName), from);
            continue;
        }
        // A lookup on the host may take seconds: on a thread of its own, so one slow name
        // does not hold the others (at most LOOKUPS_MAX at once; more wait for a retry).
        use std::sync::atomic::Ordering;
        if lookups.fetch_add(1, Ordering::SeqCst) >= LOOKUPS_MAX {
            lookups.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (shared, socket, lookups) = (
            Arc::clone(shared),
            Arc::clone(&socket),
            Arc::clone(&lookups),
        );
        // An allowed lookup is the sandbox's traffic, as the query and answer would be through
        // a helper; a blocked one never leaves.
        TRAFFIC.went_out(n);
        std::thread::spawn(move || {
            let answer = resolve(&shared, &question.name);
            if question.qtype == dns::TYPE_A {
                shared.log("dns", &question.name, true, None);
            }
            if let Ok(sent) = socket.send_to(&dns::response(&question, &answer), from) {
                TRAFFIC.came_in(sent);
            }
            lookups.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The IPv4 addresses of an allowed name, remembered so a connection to one of them without
/// a name of its own is known to be for that name.
fn resolve(shared: &Shared, name: &str) -> Answer {
    let Ok(found) = (name, 0u16).to_socket_addrs_v4() else {
        return Answer::Failed;
    };
    if found.is_empty() {
        return Answer::NoSuchName;
    }
    if let Ok(mut resolved) = shared.resolved.lock() {
        if resolved.len() >= RESOLVED_MAX {
            resolved.clear();
        }
        for address in &found {
            let names = resolved.entry(IpAddr::V4(*address)).or_default();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    Answer::Addresses(found)
}

trait ResolveV4 {
    fn to_socket_addrs_v4(&self) -> std::io::Result<Vec<Ipv4Addr>>;
}

impl ResolveV4 for (&str, u16) {
    fn to_socket_addrs_v4(&self) -> std::io::Result<Vec<Ipv4Addr>> {
        use std::net::ToSocketAddrs as _;
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for address in self.to_socket_addrs()? {
            if let SocketAddr::V4(v4) = address {
                if !out.contains(v4.ip()) {
                    out.push(*v4.ip());
                }
            }
        }
        Ok(out)
    }
}

/// Reads a connection's opening after `bytes` (what came already): until `sniff` (what it may
/// be) says which name it is for or that it names none, it ends, or time is up; then
/// `NeedMore` says it stayed undecided.
fn read_opening(
    client: &mut TcpStream,
    mut bytes: Vec<u8>,
    sniff: fn(&[u8]) -> Opening,
) -> (Vec<u8>, Opening) {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        match sniff(&bytes) {
            Opening::NeedMore if bytes.len() < sniff::OPENING_MAX => {}
            decided => return (bytes, decided),
        }
        let limit = if bytes.is_empty() {
            FIRST_BYTES
        } else {
            OPENING
        };
        let Some(left) = limit
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
        else {
            return (bytes, Opening::NeedMore);
        };
        if client.set_read_timeout(Some(left)).is_err() {
            return (bytes, Opening::NeedMore);
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return (bytes, Opening::NeedMore),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

fn is_address(name: &str) -> bool {
    name.parse::<IpAddr>().is_ok()
}

/// Refuses a plain HTTP request in words the client shows.
fn forbid(client: &mut TcpStream, message: &str) {
    let body = format!("sandbox: {message}\n");
    let _ = write!(
        client,
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn handle(shared: &Shared, mut client: TcpStream) {
    let Ok(local) = client.local_addr() else {
        return;
    };
    let (mut opening_bytes, opening) = read_opening(&mut client, Vec::new(), sniff::opening);
    let mut via_proxy = false;
    let (name, port, kind) = match opening {
        Opening::Tls(Some(sni)) => (Some(sni), local.port(), "tls"),
        Opening::Http {
            host,
            port,
            connect,
            head_len,
        } if connect => {
            // The head is for the forwarder; what follows goes on.
            opening_bytes.drain(..head_len.min(opening_bytes.len()));
            via_proxy = true;
            (Some(host), port.unwrap_or(443), "connect")
        }
        Opening::Http {
            host,
            port,
            head_len,
            ..
        } if local.port() == PROXY_PORT => {
            // Origin servers need not understand a proxy's absolute URL.
            match sniff::origin_form(&opening_bytes, head_len) {
                Some(rewritten) => opening_bytes = rewritten,
                None => return,
            }
            (Some(host), port.unwrap_or(80), "http-proxy")
        }
        Opening::Http { host, .. } => (Some(host), local.port(), "http"),
        Opening::Tls(None) | Opening::Other | Opening::NeedMore => (
            shared
                .resolved
                .lock()
                .ok()
                .and_then(|r| r.get(&local.ip()).and_then(|names| names.first().cloned())),
            local.port(),
            "address",
        ),
    };
    // Code inside wrote the name: it is checked before it is matched, logged or dialed.
    let name = match name.map(|raw| names::checked(&raw).map_err(|why| (raw, why))) {
        Some(Ok(name)) => Some(name),
        Some(Err((raw, why))) => {
            let target = format!("malformed name {}", names::shown(&raw));
            shared.block(kind, &target, &format!("a malformed name: {why}"));
            return;
        }
        None => None,
    };
    let Some(name) = name.filter(|n| !is_address(n)) else {
        let target = format!("{}:{}", local.ip(), port);
        shared.block(
            kind,
            &target,
            "an address, not a name the sandbox looked up (the list names hosts)",
        );
        return;
    };
    let target = format!("{name}:{port}");
    if !shared.policy.allow.allows(&name, port) {
        shared.block(kind, &target, &shared.not_listed());
        if kind.starts_with("http") || kind == "connect" {
            forbid(
                &mut client,
                &format!("blocked egress to {target} ({})", shared.not_listed()),
            );
        }
        return;
    }
    let upstream = match dial(shared, &name, port) {
        Ok(upstream) => upstream,
        Err(reason) => {
            shared.block(kind, &target, &reason);
            if via_proxy {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
            return;
        }
    };
    if via_proxy {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        // What is tunnelled must be for the name CONNECT gave: a TLS server name other than
        // it would ride an allowed tunnel to another host behind the same address. A hello
        // that never ends (cut short, or split to slip past) is refused too.
        let (bytes, tunnelled) = read_opening(&mut client, opening_bytes, sniff::tunnel_opening);
        opening_bytes = bytes;
        let refused = match tunnelled {
            Opening::Tls(Some(sni)) if names::checked(&sni).as_deref() != Ok(name.as_str()) => {
                let sni = names::checked(&sni).unwrap_or_else(|_| names::shown(&sni));
                Some((
                    format!("{sni}:{port}"),
                    format!("a TLS server name other than the CONNECT target {target}"),
                ))
            }
            Opening::NeedMore if !opening_bytes.is_empty() => {
                Some((target.clone(), "a TLS hello that never ended".to_owned()))
            }
            _ => None,
        };
        if let Some((shown, reason)) = refused {
            shared.block("connect", &shown, &reason);
            return;
        }
    }
    shared.log(kind, &target, true, None);
    splice(client, upstream, &opening_bytes);
}

/// Connects to `name:port` from the host's side (through the host's proxy when it has one).
///
/// The host itself (`host_itself`) is judged on the addresses the name resolves to here,
/// before any proxy is asked: a name resolving to the host is refused, and a proxy never gets
/// its CONNECT (a local proxy would dial the host's loopback for us). A name the host cannot
/// resolve goes to the proxy as it is (a company's hosts often resolve nothing outside); the
/// proxy's own resolution is then its own (see the README's security model).
fn dial(shared: &Shared, name: &str, port: u16) -> Result<TcpStream, String> {
    use std::net::ToSocketAddrs as _;
    let resolved: Result<Vec<SocketAddr>, _> =
        (name, port).to_socket_addrs().map(Iterator::collect);
    let open_to_host = shared.policy.host_loopback;
    let local = if open_to_host {
        Vec::new()
    } else {
        host_itself::local_addresses()
    };
    let is_host = |a: &SocketAddr| !open_to_host && host_itself::is_host_itself(a.ip(), &local);
    if let Some(proxy) = &shared.upstream_proxy {
        if resolved.as_ref().is_ok_and(|all| all.iter().any(is_host)) {
            return Err(host_itself::REFUSED.into());
        }
        let mut stream = TcpStream::connect(proxy.as_str())
            .map_err(|e| format!("the host's proxy {proxy}: {e}"))?;
        let _ = stream.set_read_timeout(Some(DIAL));
        write!(
            stream,
            "CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n"
        )
        .map_err(|e| format!("the host's proxy {proxy}: {e}"))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return Err(format!("the host's proxy {proxy} did not answer")),
            }
        }
        let ok = head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200");
        let _ = stream.set_read_timeout(None);
        return ok
            .then_some(stream)
            .ok_or_else(|| format!("the host's proxy {proxy} refused it"));
    }
    let addresses: Vec<SocketAddr> = resolved
        .map_err(|e| format!("cannot resolve it on the host: {e}"))?
        .into_iter()
        .filter(|a| !is_host(a))
        .collect();
    if addresses.is_empty() {
        return Err(host_itself::REFUSED.into());
    }
    let mut last = String::new();
    for address in addresses {
        match TcpStream::connect_timeout(&address, DIAL) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(last)
}

/// Copies both ways between the sandbox's end (`inside`) and the host's (`outside`) until both
/// are done, counting the bytes in `TRAFFIC`; `first` (what was read while judging the
/// connection) goes out first.
///
/// Both sockets are TCP_NODELAY: the ends already chose when to send (Nagle or not), and a
/// relay that applies Nagle again holds the second half of a message until the first is
/// acknowledged, which a peer waiting for the whole message delays by 40 ms.
pub(crate) fn splice(mut inside: TcpStream, mut outside: TcpStream, first: &[u8]) {
    for end in [&inside, &outside] {
        let _ = end.set_read_timeout(None);
        let _ = end.set_nodelay(true);
    }
    if !first.is_empty() {
        if outside.write_all(first).is_err() {
            return;
        }
        TRAFFIC.went_out(first.len());
    }
    // While messages are small (a request, its reply), one thread carries both ways: the
    // side that sent a request is the one waiting for the reply, so the thread that relayed
    // the one is the one woken for the other, on the same core. A full buffer hands the
    // connection to two threads that splice (bulk: a download, an upload).
    if !conversation(&inside, &outside) {
        return;
    }
    let (Ok(mut inside_back), Ok(mut outside_back)) = (inside.try_clone(), outside.try_clone())
    else {
        return;
    };
    let down = std::thread::spawn(move || {
        copy(&mut outside_back, &mut inside_back, |n| TRAFFIC.came_in(n));
    });
    copy(&mut inside, &mut outside, |n| TRAFFIC.went_out(n));
    let _ = down.join();
}

/// The most a read takes in a conversation; a read this big hands over to splicing.
const MESSAGE: usize = 16 * 1024;

/// Carries small messages both ways on this one thread. `false` when the connection ended
/// here; `true` when a direction filled the buffer and the rest goes to two threads.
fn conversation(inside: &TcpStream, outside: &TcpStream) -> bool {
    use std::os::fd::AsFd as _;
    let mut buffer = vec![0u8; MESSAGE];
    // inside -> outside, outside -> inside: whether each is still open.
    let mut open = [true, true];
    let ends = [(inside, outside), (outside, inside)];
    while open.iter().any(|o| *o) {
        // Only the open directions are watched: a closed one would report its end forever.
        let watched: Vec<usize> = (0..2).filter(|d| open[*d]).collect();
        let mut polls: Vec<sys::PollFd<'_>> = watched
            .iter()
            .map(|d| sys::PollFd::new(ends[*d].0.as_fd(), sys::PollFlags::POLLIN))
            .collect();
        if sys::poll(&mut polls, -1) == 0 {
            continue;
        }
        let ready: Vec<usize> = watched
            .iter()
            .zip(&polls)
            .filter(|(_, p)| p.any().unwrap_or(false))
            .map(|(d, _)| *d)
            .collect();
        drop(polls);
        for direction in ready {
            let (mut from, mut to) = ends[direction];
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown(Shutdown::Write);
                    let _ = from.shutdown(Shutdown::Read);
                    open[direction] = false;
                }
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        return false;
                    }
                    if direction == 0 {
                        TRAFFIC.went_out(n);
                    } else {
                        TRAFFIC.came_in(n);
                    }
                    // Bulk while both ways are open: to the splicing threads. With one
                    // way left, this thread carries it to the end.
                    if n == MESSAGE && open.iter().all(|o| *o) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// One direction of a splice: zero-copy through a pipe, then each side told it is over.
fn copy(from: &mut TcpStream, to: &mut TcpStream, moved: impl FnMut(usize)) {
    let _ = sys::splice_through(from, to, moved);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_proxy_is_read_from_its_url() {
        assert_eq!(
            proxy_address("http://proxy:3128/").as_deref(),
            Some("proxy:3128")
        );
        assert_eq!(proxy_address("http://proxy").as_deref(), Some("proxy:80"));
        assert_eq!(proxy_address("http://user:pw@proxy:3128"), None);
    }
}
