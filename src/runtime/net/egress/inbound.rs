//! Published ports of a sandbox with an allow-list, which has no helper to publish them: the
//! keeper listens on the host's port and, for each connection, a thread of its own enters the
//! sandbox's network namespace (setns of a network namespace is per thread) and connects to
//! `127.0.0.1:PORT` there, then splices the two. UDP ports go through `udp_relay` as before.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::Arc;

use crate::runtime::error::RuntimeError;
use crate::settings::network::PortMapping;
use crate::settings::network::Protocol;

/// Binds every published TCP port and serves it on threads until the keeper exits.
pub fn start(netns: &OwnedFd, ports: &[PortMapping]) -> Result<(), RuntimeError> {
    let netns = Arc::new(netns.try_clone()?);
    for port in ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
        let listener =
            TcpListener::bind(SocketAddr::new(port.host_ip, port.host_port)).map_err(|source| {
                RuntimeError::PortUnavailable {
                    port: port.to_string(),
                    source,
                }
            })?;
        let (netns, inside) = (Arc::clone(&netns), port.container_port);
        std::thread::spawn(move || {
            for outside in listener.incoming().flatten() {
                let netns = Arc::clone(&netns);
                std::thread::spawn(move || relay(&netns, outside, inside));
            }
        });
    }
    Ok(())
}

fn relay(netns: &OwnedFd, outside: TcpStream, port: u16) {
    // From here on this thread's sockets are the sandbox's.
    if sys::setns(netns.as_fd(), libc::CLONE_NEWNET).is_err() {
        return;
    }
    let Ok(inside) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return;
    };
    crate::runtime::net::egress::forwarder::splice(inside, outside, &[]);
}
