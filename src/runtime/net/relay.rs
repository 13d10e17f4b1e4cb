//! The `relay` network, sandbox's default: an open network without a helper process. As with
//! an allow-list, every IPv4 address is local inside the sandbox's network namespace; an
//! nftables TPROXY rule there hands every TCP connection and UDP datagram for an address
//! outside 127.0.0.0/8 to the keeper's sockets on one port, and the keeper, in the host's
//! namespace, makes the same connection (or sends the same datagram) from the host's side
//! and copies the bytes both ways. Nothing is judged; connections are logged with
//! `--network-log`.
//!
//! A TCP opening (SYN) waits in a netfilter queue while the keeper makes the connection
//! outside: it goes on to the keeper's listener once that is made, is reset when it was
//! refused, and is dropped (the sandbox's own retries and timeout then run as they would) when
//! it timed out. So connect() inside succeeds, fails or times out as the real one did.
//!
//! Why not a helper: pasta spends some 20 ms of CPU starting, on every run; this costs the
//! keeper a netlink batch and three sockets. What it does not do as pasta does: IPv6 (no route
//! inside: refused at once) and ICMP (a ping is refused).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runtime::net::egress::log::NetworkLog;
use crate::runtime::net::egress::refusals::Refusals;
use crate::runtime::net::egress::traffic::TRAFFIC;
use crate::runtime::net::egress::DNS_ADDRESS;

/// The port the keeper's sockets listen on inside (on 127.0.0.1): TPROXY hands them
/// everything, so its number only has to stay clear of the sandbox's own servers.
pub const RELAY_PORT: u16 = 1;
/// The address inside that stands for the host's loopback with `--host-loopback`
/// (`host.containers.internal`).
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 2);
/// How long a connection may take to be made on the host's side.
const DIAL: Duration = Duration::from_secs(30);
/// The most TCP connections in flight (threads): more are reset at once.
const CONNECTIONS_MAX: usize = 512;
/// The most UDP flows at once; a datagram that would start another is dropped.
const FLOWS_MAX: usize = 256;
/// A UDP flow without a reply for this long is forgotten.
const FLOW_IDLE: Duration = Duration::from_secs(60);
/// A connection made outside whose opening never reached the listener (the sandbox gave up)
/// is closed after this long.
const UNCLAIMED: Duration = Duration::from_secs(30);
/// How long a loop waits after its socket failed, before it reads again.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What the relay is set up with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Whether `HOST_ADDRESS` reaches the host's 127.0.0.1 (`--host-loopback`).
    pub host_loopback: bool,
    /// `--network-log FILE`: each connection and flow, as JSON lines.
    pub log: Option<crate::fsutil::beneath::GuardedPath>,
}

struct Shared {
    host_loopback: bool,
    /// The host's first name server, where DNS_ADDRESS:53 goes.
    name_server: Option<SocketAddr>,
    log: Option<NetworkLog>,
    connections: AtomicUsize,
    /// Connections being made outside for queued openings (client, destination inside).
    made: Mutex<HashMap<(SocketAddrV4, SocketAddrV4), Made>>,
    /// Asks the thread inside the sandbox's namespace for a socket to reply from.
    inside: Mutex<mpsc::Sender<ReplySocketRequest>>,
    /// Where refusals are told, to be said on stderr.
    refusals: Option<Refusals>,
}

type ReplySocketRequest = (SocketAddrV4, mpsc::Sender<std::io::Result<UdpSocket>>);

/// A connection being made outside, or made and waiting for the sandbox's side.
enum Made {
    Dialing,
    Ready(TcpStream, Instant),
}

/// What the inside thread opens for the relay.
struct Inside {
    listener: TcpListener,
    datagrams: UdpSocket,
    openings: sys::Queue,
}

impl Shared {
    /// Logs a connection or flow; `failed` says why it could not be made.
    fn log(&self, kind: &str, target: &str, failed: Option<&str>) {
        if let Some(log) = &self.log {
            log.write(kind, target, true, failed);
        }
    }

    /// Has a connection or flow refused before it was dialed said on stderr (the caller logs
    /// it).
    fn say_refused(&self, target: &str, reason: &str) {
        if let Some(refusals) = &self.refusals {
            refusals.say(target, reason);
        }
    }

    /// Where a connection or datagram for `to` (inside) goes on the host's side.
    fn target(&self, to: SocketAddrV4) -> Result<SocketAddr, &'static str> {
        let dns: Ipv4Addr = DNS_ADDRESS.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        if *to.ip() == dns && to.port() == 53 {
            return self
                .name_server
                .ok_or("the host names no name server in /etc/resolv.conf");
        }
        if *to.ip() == HOST_ADDRESS {
            return if self.host_loopback {
                Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, to.port())))
            } else {
                Err("the host's loopback is reached only with --host-loopback")
            };
        }
        let ip = *to.ip();
        if ip.is_multicast() {
            return Err("not an address on the network");
        }
        crate::runtime::net::egress::host_itself::check(IpAddr::V4(ip), self.host_loopback)?;
        Ok(SocketAddr::V4(to))
    }
}

/// The host's first name server, as pasta's `--dns-forward` uses it.
fn host_name_server() -> Option<SocketAddr> {
    let text = fs_err::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse::<IpAddr>().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Sets up the sandbox's namespace (whose fd is `netns`) and relays its traffic on threads
/// of this process until it exits.
pub fn start(netns: &OwnedFd, options: &Options, notices: OwnedFd) -> std::io::Result<()> {
    let log = NetworkLog::open(options.log.as_ref())?;
    let (requests, requested) = mpsc::channel::<ReplySocketRequest>();
    let (ready, sockets) = mpsc::channel::<std::io::Result<Inside>>();
    let netns = netns.try_clone()?;
    // The thread that enters the namespace stays there to make the sockets replies come from.
    std::thread::spawn(move || {
        let set_up = (|| {
            sys::setns(netns.as_fd(), libc::CLONE_NEWNET)?;
            sys::loopback_up()?;
            sys::route_everything_to_loopback()?;
            let at = SocketAddrV4::new(Ipv4Addr::LOCALHOST, RELAY_PORT);
            let inside = Inside {
                listener: sys::transparent_listener(at)?,
                datagrams: sys::transparent_udp(at)?,
                openings: sys::Queue::bind(sys::SYN_QUEUE)?,
            };
            sys::install_relay_rules(Some(RELAY_PORT))?;
            Ok(inside)
        })();
        let failed = set_up.is_err();
        let _ = ready.send(set_up);
        if failed {
            return;
        }
        for (address, answer) in requested {
            let _ = answer.send(sys::udp_reply_socket(address));
        }
    });
    let inside = sockets
        .recv()
        .map_err(|_| std::io::Error::other("the thread entering the sandbox's network ended"))??;
    let shared = Arc::new(Shared {
        host_loopback: options.host_loopback,
        name_server: host_name_server(),
        log,
        connections: AtomicUsize::new(0),
        made: Mutex::new(HashMap::new()),
        inside: Mutex::new(requests),
        refusals: Some(Refusals::new(notices)),
    });
    let Inside {
        listener,
        datagrams,
        openings,
    } = inside;
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || accept(&shared, &listener));
    }
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || judge_openings(&shared, Arc::new(openings)));
    }
    std::thread::spawn(move || relay_datagrams(&shared, &datagrams));
    Ok(())
}

/// Makes the connection each queued opening is for, then lets the opening on, resets it or
/// drops it as the connection went.
fn judge_openings(shared: &Arc<Shared>, queue: Arc<sys::Queue>) {
    let mut buffer = vec![0u8; 65536];
    loop {
        let Ok(openings) = queue.receive(&mut buffer) else {
            // ENOBUFS (openings lost: the sandbox sends them again) or a signal; never a
            // busy loop on an error that stays.
            std::thread::sleep(ERROR_PAUSE);
            continue;
        };
        for opening in openings {
            let Some(key) = opening.flow else {
                let _ = queue.verdict(opening.id, sys::Verdict::Accept);
                continue;
            };
            let state = shared
                .made
                .lock()
                .map(|made| made.get(&key).map(|m| matches!(m, Made::Ready(..))));
            match state {
                // Sent again after its connection was made (the answer was lost): on.
                Ok(Some(true)) => {
                    let _ = queue.verdict(opening.id, sys::Verdict::Accept);
                }
                // Sent again while it is being made: the first one is waiting.
                Ok(Some(false)) => {
                    let _ = queue.verdict(opening.id, sys::Verdict::Drop);
                }
                Ok(None) => dial_for(shared, &queue, opening.id, key),
                Err(_) => {
                    let _ = queue.verdict(opening.id, sys::Verdict::Reset);
                }
            }
        }
    }
}

/// Makes the connection for a queued opening on a thread of its own.
fn dial_for(
    shared: &Arc<Shared>,
    queue: &Arc<sys::Queue>,
    id: u32,
    key: (SocketAddrV4, SocketAddrV4),
) {
    if shared.connections.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
        shared.connections.fetch_sub(1, Ordering::SeqCst);
        let _ = queue.verdict(id, sys::Verdict::Reset);
        return;
    }
    let room = shared.made.lock().is_ok_and(|mut made| {
        made.retain(|_, m| !matches!(m, Made::Ready(_, at) if at.elapsed() > UNCLAIMED));
        made.len() < CONNECTIONS_MAX && made.insert(key, Made::Dialing).is_none()
    });
    if !room {
        shared.connections.fetch_sub(1, Ordering::SeqCst);
        let _ = queue.verdict(id, sys::Verdict::Reset);
        return;
    }
    let (shared, queue) = (Arc::clone(shared), Arc::clone(queue));
    std::thread::spawn(move || {
        let target = key.1.to_string();
        let dialed = shared
            .target(key.1)
            .map_err(|reason| {
                shared.say_refused(&target, reason);
                (None, reason.to_owned())
            })
            .and_then(|address| {
                TcpStream::connect_timeout(&address, DIAL)
                    .map_err(|e| (Some(e.kind()), e.to_string()))
            });
        let verdict = match dialed {
            Ok(stream) => {
                shared.log("tcp", &target, None);
                if let Ok(mut made) = shared.made.lock() {
                    made.insert(key, Made::Ready(stream, Instant::now()));
                }
                sys::Verdict::Accept
            }
            Err((kind, reason)) => {
                shared.log("tcp", &target, Some(&reason));
                if let Ok(mut made) = shared.made.lock() {
                    made.remove(&key);
                }
                if kind == Some(std::io::ErrorKind::TimedOut) {
                    sys::Verdict::Drop
                } else {
                    sys::Verdict::Reset
                }
            }
        };
        let _ = queue.verdict(id, verdict);
        shared.connections.fetch_sub(1, Ordering::SeqCst);
    });
}

fn accept(shared: &Arc<Shared>, listener: &TcpListener) {
    for client in listener.incoming().flatten() {
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            sys::reset_on_close(&client);
            continue;
        }
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            connect(&shared, client);
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Splices the client to the connection made for its opening (or, should there be none, makes
/// it now), else resets it saying why in the log.
fn connect(shared: &Shared, client: TcpStream) {
    let (Ok(SocketAddr::V4(to)), Ok(SocketAddr::V4(from))) =
        (client.local_addr(), client.peer_addr())
    else {
        return;
    };
    let made = shared
        .made
        .lock()
        .ok()
        .and_then(|mut made| match made.remove(&(from, to)) {
            Some(Made::Ready(stream, _)) => Some(stream),
            Some(dialing @ Made::Dialing) => {
                made.insert((from, to), dialing);
                None
            }
            None => None,
        });
    if let Some(upstream) = made {
        crate::runtime::net::egress::forwarder::splice(client, upstream, &[]);
        return;
    }
    let target = to.to_string();
    let upstream = shared
        .target(to)
        .map_err(|reason| {
            shared.say_refused(&target, reason);
            reason.to_owned()
        })
        .and_then(|address| TcpStream::connect_timeout(&address, DIAL).map_err(|e| e.to_string()));
    match upstream {
        Ok(upstream) => {
            shared.log("tcp", &target, None);
            crate::runtime::net::egress::forwarder::splice(client, upstream, &[]);
        }
        Err(reason) => {
            shared.log("tcp", &target, Some(&reason));
            sys::reset_on_close(&client);
        }
    }
}

/// A UDP flow: the host's socket for one (sender, destination) pair inside.
type Flows = Arc<Mutex<HashMap<(SocketAddrV4, SocketAddrV4), Arc<UdpSocket>>>>;

fn relay_datagrams(shared: &Arc<Shared>, socket: &UdpSocket) {
    let flows: Flows = Arc::default();
    let mut buffer = vec![0u8; 65536];
    loop {
        let (n, from, to) = match sys::recv_with_destination(socket, &mut buffer) {
            Ok((n, from, Some(to))) => (n, from, to),
            Ok(_) => continue,
            Err(_) => {
                std::thread::sleep(ERROR_PAUSE);
                continue;
            }
        };
        let known = flows.lock().ok().and_then(|f| f.get(&(from, to)).cloned());
        let outside = match known {
            Some(outside) => outside,
            None => match open_flow(shared, &flows, from, to) {
                Some(outside) => outside,
                None => continue,
            },
        };
        if outside.send(&buffer[..n]).is_ok() {
            TRAFFIC.went_out(n);
        }
    }
}

/// Opens the host's side of a new flow and the thread carrying its replies back.
fn open_flow(
    shared: &Arc<Shared>,
    flows: &Flows,
    from: SocketAddrV4,
    to: SocketAddrV4,
) -> Option<Arc<UdpSocket>> {
    if flows.lock().map_or(true, |f| f.len() >= FLOWS_MAX) {
        return None;
    }
    let target = match shared.target(to) {
        Ok(target) => target,
        Err(reason) => {
            shared.log("udp", &to.to_string(), Some(reason));
            shared.say_refused(&to.to_string(), reason);
            return None;
        }
    };
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let outside = UdpSocket::bind(local).ok()?;
    outside.connect(target).ok()?;
    outside.set_read_timeout(Some(FLOW_IDLE)).ok()?;
    // Replies must come from where the datagram was going: a socket bound there, inside.
    let (answer, reply_socket) = mpsc::channel();
    shared.inside.lock().ok()?.send((to, answer)).ok()?;
    let reply = reply_socket.recv().ok()?.ok()?;
    let outside = Arc::new(outside);
    flows.lock().ok()?.insert((from, to), Arc::clone(&outside));
    shared.log("udp", &to.to_string(), None);
    let (flows, back) = (Arc::clone(flows), Arc::clone(&outside));
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buffer) {
            if reply.send_to(&buffer[..n], from).is_err() {
                break;
            }
            TRAFFIC.came_in(n);
        }
        if let Ok(mut flows) = flows.lock() {
            flows.remove(&(from, to));
        }
    });
    Some(outside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(host_loopback: bool) -> Shared {
        let (requests, _) = mpsc::channel();
        Shared {
            host_loopback,
            name_server: Some("10.0.0.53:53".parse().unwrap()),
            log: None,
            connections: AtomicUsize::new(0),
            made: Mutex::new(HashMap::new()),
            inside: Mutex::new(requests),
            refusals: None,
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_refused_without_host_loopback() {
        let own: Vec<Ipv4Addr> = crate::runtime::net::egress::host_itself::local_addresses()
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
                _ => None,
            })
            .collect();
        for ip in own {
            let to = SocketAddrV4::new(ip, 8080);
            assert!(shared(false).target(to).is_err(), "{ip}");
            assert!(shared(true).target(to).is_ok(), "{ip}");
        }
    }

    #[test]
    fn destinations_map_to_the_host_side_only_where_they_should() {
        let s = shared(false);
        let v4 = |a: &str| a.parse::<SocketAddrV4>().unwrap();
        assert_eq!(
            s.target(v4("93.184.216.34:443")),
            Ok("93.184.216.34:443".parse().unwrap())
        );
        assert_eq!(
            s.target(v4("169.254.1.1:53")),
            Ok("10.0.0.53:53".parse().unwrap())
        );
        // The host's loopback only when asked for, and never by its own address.
        assert!(s.target(v4("169.254.1.2:8080")).is_err());
        assert!(s.target(v4("127.0.0.1:8080")).is_err());
        assert!(s.target(v4("0.0.0.0:80")).is_err());
        assert!(s.target(v4("224.0.0.251:5353")).is_err());
        assert_eq!(
            shared(true).target(v4("169.254.1.2:8080")),
            Ok("127.0.0.1:8080".parse().unwrap())
        );
    }
}
