//! The loopback interface, which nix has no call for.

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{socket, AddressFamily, MsgFlags, SockFlag, SockType};

use super::check;

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the ifreq's flags; the socket is ours.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the union holds flags after SIOCGIFFLAGS.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq; the socket is ours.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(|_| ())
}

/// Makes every IPv4 address local to the current network namespace (`ip route add local
/// 0.0.0.0/0 dev lo`): a connection to any address then reaches this namespace's listener on
/// its port, which reads the address it was for with getsockname, and one to a port nobody
/// listens on is refused at once.
pub fn route_everything_to_loopback() -> io::Result<()> {
    use nix::sys::socket::{recv, sendto, NetlinkAddr, SockProtocol};
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let lo = nix::net::if_::if_nametoindex("lo")?;
    // struct nlmsghdr, struct rtmsg, then RTA_OIF: built as bytes in the kernel's order.
    let mut message = Vec::with_capacity(36);
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    message.extend_from_slice(&36u32.to_ne_bytes());
    message.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
    message.extend_from_slice(&flags.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    message.extend_from_slice(&[
        libc::AF_INET as u8,
        0, // dst_len: 0.0.0.0/0
        0, // src_len
        0, // tos
        libc::RT_TABLE_LOCAL,
        libc::RTPROT_BOOT,
        libc::RT_SCOPE_HOST,
        libc::RTN_LOCAL,
    ]);
    message.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    message.extend_from_slice(&8u16.to_ne_bytes());
    message.extend_from_slice(&(libc::RTA_OIF).to_ne_bytes());
    message.extend_from_slice(&lo.to_ne_bytes());
    sendto(
        sock.as_raw_fd(),
        &message,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut answer = [0u8; 256];
    let n = recv(sock.as_raw_fd(), &mut answer, MsgFlags::empty())?;
    // An NLMSG_ERROR whose error is 0 is the acknowledgement.
    let field = |at: usize| -> Option<[u8; 4]> { answer.get(at..at + 4)?.try_into().ok() };
    let kind = answer.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    match (kind, field(16).map(i32::from_ne_bytes)) {
        (Some(k), Some(0)) if k == libc::NLMSG_ERROR as u16 && n >= 20 => Ok(()),
        (Some(k), Some(e)) if k == libc::NLMSG_ERROR as u16 && e < 0 => {
            Err(io::Error::from_raw_os_error(-e))
        }
        _ => Err(io::Error::other(
            "an unexpected answer from the kernel's routing",
        )),
    }
}

/// A socket of the relay's (`nftables::install_relay_rules`) in the current thread's network
/// namespace: transparent, so TPROXY may hand it packets meant for other addresses, bound to
/// `address`. Needs CAP_NET_ADMIN over the namespace.
fn transparent_socket(
    kind: SockType,
    address: std::net::SocketAddrV4,
) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{bind, setsockopt, sockopt, SockaddrIn};
    let sock = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&sock, sockopt::IpTransparent, &true)?;
    setsockopt(&sock, sockopt::ReuseAddr, &true)?;
    if kind == SockType::Datagram {
        setsockopt(&sock, sockopt::Ipv4OrigDstAddr, &true)?;
    }
    bind(sock.as_raw_fd(), &SockaddrIn::from(address))?;
    Ok(sock)
}

/// The relay's TCP listener: it accepts connections for any address, each socket's local
/// address being where the connection was going.
pub fn transparent_listener(address: std::net::SocketAddrV4) -> io::Result<std::net::TcpListener> {
    let sock = transparent_socket(SockType::Stream, address)?;
    nix::sys::socket::listen(&sock, nix::sys::socket::Backlog::MAXCONN)?;
    Ok(std::net::TcpListener::from(sock))
}

/// A transparent UDP socket: the relay's receiver (reading each datagram's original
/// destination with `recv_with_destination`), or a sender of replies from `address`.
pub fn transparent_udp(address: std::net::SocketAddrV4) -> io::Result<std::net::UdpSocket> {
    transparent_socket(SockType::Datagram, address).map(std::net::UdpSocket::from)
}

/// A socket the relay sends UDP replies from, bound to where the sandbox's datagram was going
/// and marked (`nftables::REPLY_MARK`) so the relay's rule lets its datagrams through.
pub fn udp_reply_socket(address: std::net::SocketAddrV4) -> io::Result<std::net::UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let socket = transparent_udp(address)?;
    setsockopt(&socket, sockopt::Mark, &super::REPLY_MARK)?;
    Ok(socket)
}

/// Receives a datagram on a socket from `transparent_udp`: its length, sender and where it
/// was going (`None` when the kernel gave no IP_ORIGDSTADDR).
pub fn recv_with_destination(
    socket: &std::net::UdpSocket,
    buffer: &mut [u8],
) -> io::Result<(
    usize,
    std::net::SocketAddrV4,
    Option<std::net::SocketAddrV4>,
)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, SockaddrIn};
    let mut space = nix::cmsg_space!(libc::sockaddr_in);
    let mut iov = [std::io::IoSliceMut::new(buffer)];
    let message = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    let from = message
        .address
        .map(|a| std::net::SocketAddrV4::new(a.ip(), a.port()))
        .ok_or_else(|| io::Error::other("a datagram without a sender"))?;
    let mut destination = None;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::Ipv4OrigDstAddr(a) = cmsg {
            destination = Some(std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ));
        }
    }
    Ok((message.bytes, from, destination))
}

/// Makes closing `stream` send a reset instead of a FIN (SO_LINGER 0): the relay's way of
/// saying a connection could not be made.
pub fn reset_on_close(stream: &std::net::TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(
        stream,
        sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
}

/// Copies from one socket to another until the first ends; `moved` is told each chunk's size
/// once it is sent on. Returns when `from` reached its end or either side failed.
///
/// Small chunks (a request, a reply, a TLS record) go through a buffer: one recv and one send
/// cost less than two splices through a pipe, and they are most of what a build's round trips
/// are. A chunk that fills the buffer means a stream: from then on the bytes go through a pipe
/// with splice(2) and never come up to this process, until a short one comes again.
///
/// No `SPLICE_F_MORE` (nor `MSG_MORE`): it holds a small chunk until more comes or a 200 ms
/// timer fires, whatever TCP_NODELAY says; a round trip through the relay took 416 ms with it.
/// Each chunk goes as soon as it was read, so the sender's own pacing (Nagle or not) is kept.
pub fn splice_through(
    from: &std::net::TcpStream,
    to: &std::net::TcpStream,
    mut moved: impl FnMut(usize),
) -> io::Result<()> {
    use nix::fcntl::{splice, FcntlArg, SpliceFFlags};
    use std::io::{Read as _, Write as _};
    /// The buffer for small chunks: a chunk this big switches to splicing.
    const SMALL: usize = 16 * 1024;
    /// The most moved per splice: the pipe is made this big where the system allows.
    const CHUNK: usize = 1 << 20;
    let mut buffer = vec![0u8; SMALL];
    // Made at the first stream, and kept for the next one.
    let mut pipe = None;
    let mut streaming = false;
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    loop {
        if !streaming {
            let read = match (&*from).read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            (&*to).write_all(&buffer[..read])?;
            moved(read);
            if read == SMALL {
                if pipe.is_none() {
                    let (pipe_out, pipe_in) = super::pipe()?;
                    // Ignored when over the user's pipe limit: the default 64 KiB still works.
                    let _ =
                        nix::fcntl::fcntl(&pipe_in, FcntlArg::F_SETPIPE_SZ(CHUNK as libc::c_int));
                    pipe = Some((pipe_out, pipe_in));
                }
                streaming = true;
            }
            continue;
        }
        let Some((pipe_out, pipe_in)) = &pipe else {
            streaming = false;
            continue;
        };
        let read = match splice(from, None, pipe_in, None, CHUNK, flags) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut left = read;
        while left > 0 {
            match splice(pipe_out, None, to, None, left, flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    moved(n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // A short chunk: small ones again, through the buffer.
        streaming = read >= SMALL;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};

    /// A connected pair on loopback.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn small_chunks_a_stream_and_small_chunks_again_arrive_whole_and_counted() {
        // writer -> (a, b) -> splice_through -> (c, d) -> reader
        let (mut writer, from) = pair();
        let (to, mut reader) = pair();
        let mut sent = Vec::new();
        for i in 0..50u8 {
            sent.extend_from_slice(&[i; 7]);
        }
        sent.extend((0..3_000_000u32).map(|i| (i % 251) as u8));
        for i in 0..50u8 {
            sent.extend_from_slice(&[i; 3]);
        }
        let expected = sent.clone();
        let writing = std::thread::spawn(move || {
            // Small writes, one big one, small ones again, then the end.
            let (head, rest) = sent.split_at(350);
            let (body, tail) = rest.split_at(3_000_000);
            for chunk in head.chunks(7).chain([body]).chain(tail.chunks(3)) {
                writer.write_all(chunk).unwrap();
            }
        });
        let copying = std::thread::spawn(move || {
            let mut counted = 0;
            super::splice_through(&from, &to, |n| counted += n).unwrap();
            drop(to);
            counted
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).unwrap();
        writing.join().unwrap();
        assert_eq!(copying.join().unwrap(), expected.len());
        assert!(received == expected, "the bytes changed on the way");
    }
}
