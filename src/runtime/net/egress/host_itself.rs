//! One rule for "the host itself", applied to every address code inside the sandbox makes the
//! keeper dial (the relay and the allow-list's forwarder; published ports dial only the
//! sandbox's own 127.0.0.1): loopback, unspecified, broadcast, and every address of the host's
//! own interfaces, which are read at each dial because a laptop's addresses change. The
//! address counts in whichever form it comes: IPv4, IPv4-mapped or IPv4-compatible IPv6, or
//! NAT64 (`64:ff9b::/96`) embedding one. Such a connection would arrive as local traffic, past
//! a firewall that drops incoming traffic; it is made only with `--host-loopback`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a destination is refused, for the log and the notice on stderr.
pub const REFUSED: &str =
    "it is the host itself, which the sandbox reaches only with --host-loopback";

/// The IPv4 address an IPv6 one stands for: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`, not `::` or `::1`) or NAT64 (`64:ff9b::a.b.c.d`).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6].iter().all(|x| *x == 0) && u32::from(tail) > 1;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(tail)
}

/// The address as the rule compares it: an IPv6 address standing for an IPv4 one becomes it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is the host itself, given the host's own addresses (`local`).
pub fn is_host_itself(ip: IpAddr, local: &[IpAddr]) -> bool {
    let ip = canonical(ip);
    let special = match ip {
        // 0.0.0.0/8 and 127.0.0.0/8 both reach the host's own sockets.
        IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0 || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
    };
    special || local.iter().any(|l| canonical(*l) == ip)
}

/// The host's own addresses now: every interface's, and IPv4 broadcast addresses (a datagram
/// to the subnet's broadcast reaches the host's own sockets too).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for interface in interfaces {
        for address in [interface.address, interface.broadcast]
            .into_iter()
            .flatten()
        {
            if let Some(v4) = address.as_sockaddr_in() {
                found.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = address.as_sockaddr_in6() {
                found.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    found
}

/// `Err(REFUSED)` when `ip` is the host itself and the host is not to be reached.
pub fn check(ip: IpAddr, host_loopback: bool) -> Result<(), &'static str> {
    if host_loopback || !is_host_itself(ip, &local_addresses()) {
        Ok(())
    } else {
        Err(REFUSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_unspecified_and_broadcast_are_the_host_in_every_form() {
        for s in [
            "127.0.0.1",
            "127.3.2.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::127.0.0.1",
        ] {
            assert!(is_host_itself(ip(s), &[]), "{s}");
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_the_host_however_written() {
        let local = [ip("192.168.1.20"), ip("2001:db8::20"), ip("192.168.1.255")];
        for s in [
            "192.168.1.20",
            "::ffff:192.168.1.20",
            "::192.168.1.20",
            "64:ff9b::c0a8:114",
            "2001:db8::20",
            "192.168.1.255",
        ] {
            assert!(is_host_itself(ip(s), &local), "{s}");
        }
        for s in [
            "192.168.1.21",
            "93.184.216.34",
            "::ffff:93.184.216.34",
            "2001:db8::21",
        ] {
            assert!(!is_host_itself(ip(s), &local), "{s}");
        }
    }

    #[test]
    fn the_machines_own_interfaces_are_read() {
        let local = local_addresses();
        assert!(local.contains(&ip("127.0.0.1")), "{local:?}");
        assert!(check(ip("::ffff:127.0.0.1"), false).is_err());
        assert!(check(ip("::ffff:127.0.0.1"), true).is_ok());
    }
}
