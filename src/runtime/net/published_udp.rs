//! Published UDP ports, relayed by sandbox itself (in its network keeper), as podman's rootlessport does: the
//! helpers' own UDP forwarding sends replies to the host's address inside, which is exactly
//! what "no host loopback" blocks (slirp4netns) or what does not come back at all (Debian 12's
//! pasta). The relay binds the host port, and a thread of it enters the container's network
//! namespace (setns of a network namespace is per thread) to talk to `127.0.0.1:PORT` there,
//! one inner socket per client, so replies find their way back.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::runtime::error::RuntimeError;
use crate::runtime::net::egress::traffic::TRAFFIC;
use crate::settings::network::PortMapping;
use crate::settings::network::Protocol;

const IDLE_FLOW: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_millis(100);

/// The running relays; stopped (and joined) on drop.
pub struct UdpRelay {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts one relay per published UDP port, into the network namespace `netns`.
pub fn start(netns: &OwnedFd, ports: &[PortMapping]) -> Result<Option<UdpRelay>, RuntimeError> {
    let udp: Vec<&PortMapping> = ports
        .iter()
        .filter(|p| p.protocol == Protocol::Udp)
        .collect();
    if udp.is_empty() {
        return Ok(None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for port in udp {
        let host =
            UdpSocket::bind(SocketAddr::new(port.host_ip, port.host_port)).map_err(|source| {
                RuntimeError::PortUnavailable {
                    port: port.to_string(),
                    source,
                }
            })?;
        host.set_read_timeout(Some(TICK))?;
        let ns = netns.try_clone()?;
        let (stop, target) = (stop.clone(), port.container_port);
        threads.push(std::thread::spawn(move || relay(host, ns, target, stop)));
    }
    Ok(Some(UdpRelay { stop, threads }))
}

struct Flow {
    inner: Arc<UdpSocket>,
    last: Instant,
}

fn relay(host: UdpSocket, netns: OwnedFd, target: u16, stop: Arc<AtomicBool>) {
    // From here on, sockets this thread makes live in the container's network namespace.
    if sys::setns(netns.as_fd(), libc::CLONE_NEWNET).is_err() {
        return;
    }
    let host = Arc::new(host);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut repliers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        flows.retain(|_, f| f.last.elapsed() < IDLE_FLOW);
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            continue;
        };
        let flow = match flows.get_mut(&client) {
            Some(flow) => flow,
            None => {
                let Ok(inner) = UdpSocket::bind("127.0.0.1:0") else {
                    continue;
                };
                if inner.connect(("127.0.0.1", target)).is_err()
                    || inner.set_read_timeout(Some(TICK)).is_err()
                {
                    continue;
                }
                let inner = Arc::new(inner);
                let (reply_inner, reply_host, reply_stop) =
                    (inner.clone(), host.clone(), stop.clone());
                repliers.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    let mut quiet = Instant::now();
                    while !reply_stop.load(Ordering::SeqCst) && quiet.elapsed() < IDLE_FLOW {
                        if let Ok(n) = reply_inner.recv(&mut buf) {
                            if reply_host.send_to(&buf[..n], client).is_ok() {
                                TRAFFIC.went_out(n);
                            }
                            quiet = Instant::now();
                        }
                    }
                }));
                flows.entry(client).or_insert(Flow {
                    inner,
                    last: Instant::now(),
                })
            }
        };
        flow.last = Instant::now();
        if flow.inner.send(&buf[..n]).is_ok() {
            TRAFFIC.came_in(n);
        }
    }
    for r in repliers {
        let _ = r.join();
    }
}
