//! The loopback interface, which nix has no call for.

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

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
    use nix::sys::socket::{recv, sendto, MsgFlags, NetlinkAddr, SockProtocol};
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
