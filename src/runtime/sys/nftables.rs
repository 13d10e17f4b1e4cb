//! The one nftables ruleset sandbox installs: in a sandbox's own network namespace (its
//! `relay` network), every TCP and UDP packet the sandbox sends to an address outside
//! 127.0.0.0/8 is handed by TPROXY to the keeper's socket on one port, which reads where it
//! was going (getsockname, IP_ORIGDSTADDR). Written as nf_tables netlink messages, so no
//! `nft` binary runs at start-up; `nft list ruleset` inside shows it as
//!
//! ```text
//! table ip sandbox {
//!   chain relay { type filter hook prerouting priority mangle; policy accept;
//!     ip daddr & 255.0.0.0 != 127.0.0.0 ct direction original meta l4proto tcp tproxy to :PORT
//!     ip daddr & 255.0.0.0 != 127.0.0.0 ct direction original meta l4proto udp tproxy to :PORT
//!     ip daddr & 255.0.0.0 != 127.0.0.0 icmp type echo-request reject with icmp host-prohibited
//!   }
//! }
//! ```
//!
//! The packets pass `prerouting` because every address is local there (see
//! `route_everything_to_loopback`): they loop through `lo`. `ct direction original` leaves the
//! keeper's own replies alone.

use std::io;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

const NLA_F_NESTED: u16 = 0x8000;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_IPV4: u8 = 2;
/// nf_tables' first 16-byte register.
const REG_1: u32 = 1;
const TABLE: &str = "sandbox";
const CHAIN: &str = "relay";
/// `priority mangle`.
const PRIORITY_MANGLE: i32 = -150;

/// Netlink attributes, written in the kernel's layout (length, type, value, padded to 4).
#[derive(Default)]
struct Attributes(Vec<u8>);

impl Attributes {
    fn bytes(mut self, kind: u16, value: &[u8]) -> Self {
        let length = 4 + value.len();
        self.0.extend_from_slice(&(length as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    /// A string, NUL-terminated as nf_tables wants.
    fn text(self, kind: u16, value: &str) -> Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.bytes(kind, &bytes)
    }

    /// nf_tables' numbers are big-endian.
    fn be32(self, kind: u16, value: u32) -> Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    fn nested(self, kind: u16, inner: Attributes) -> Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }

    /// `NFTA_DATA_VALUE` nested under `kind`.
    fn data(self, kind: u16, value: &[u8]) -> Self {
        self.nested(kind, Attributes::default().bytes(1, value))
    }
}

/// One expression of a rule: `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }`.
fn expression(name: &str, data: Attributes) -> Attributes {
    Attributes::default().text(1, name).nested(2, data)
}

fn cmp(op: u32, value: &[u8]) -> Attributes {
    expression(
        "cmp",
        Attributes::default()
            .be32(1, REG_1)
            .be32(2, op)
            .data(3, value),
    )
}

const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;

/// `ip daddr & 255.0.0.0 != 127.0.0.0`: payload load 4b @ network header + 16 => reg 1,
/// masked, compared.
fn not_loopback() -> [Attributes; 3] {
    [
        expression(
            "payload",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, 1)
                .be32(3, 16)
                .be32(4, 4),
        ),
        // reg 1 = reg 1 & 255.0.0.0 ^ 0
        expression(
            "bitwise",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, REG_1)
                .be32(3, 4)
                .data(4, &[255, 0, 0, 0])
                .data(5, &[0, 0, 0, 0]),
        ),
        cmp(CMP_NEQ, &[127, 0, 0, 0]),
    ]
}

/// `meta l4proto == protocol`.
fn protocol_is(protocol: u8) -> [Attributes; 2] {
    [
        expression(
            "meta",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, libc::NFT_META_L4PROTO as u32),
        ),
        cmp(CMP_EQ, &[protocol]),
    ]
}

fn list(expressions: impl IntoIterator<Item = Attributes>) -> Attributes {
    expressions
        .into_iter()
        .fold(Attributes::default(), |list, e| list.nested(1, e))
}

/// The expressions of one rule: not loopback, original direction, `protocol`, to `port`.
fn relay_rule(protocol: u8, port: u16) -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend([
        // ct load direction => reg 1; == original
        expression(
            "ct",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, libc::NFT_CT_DIRECTION as u32),
        ),
        cmp(CMP_EQ, &[0]),
    ]);
    expressions.extend(protocol_is(protocol));
    expressions.extend([
        // immediate reg 1 port; tproxy ip port reg 1
        expression(
            "immediate",
            Attributes::default()
                .be32(1, REG_1)
                .data(2, &port.to_be_bytes()),
        ),
        expression(
            "tproxy",
            Attributes::default()
                .be32(1, u32::from(NFPROTO_IPV4))
                .be32(3, REG_1),
        ),
    ]);
    list(expressions)
}

/// A ping of any address but the sandbox's own loopback is refused (host prohibited) rather
/// than answered by that loopback, where every address is local.
fn no_ping_rule() -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend(protocol_is(libc::IPPROTO_ICMP as u8));
    expressions.extend([
        // payload load 1b @ transport header + 0 (the ICMP type) => reg 1; == echo request
        expression(
            "payload",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, 2)
                .be32(3, 0)
                .be32(4, 1),
        ),
        cmp(CMP_EQ, &[8]),
        // reject type icmp code host-prohibited (10)
        expression("reject", Attributes::default().be32(1, 0).bytes(2, &[10])),
    ]);
    list(expressions)
}

/// One netlink message: header, `nfgenmsg`, attributes.
fn message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, attrs: &Attributes) {
    let length = 16 + 4 + attrs.0.len();
    out.extend_from_slice(&(length as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    let res_id: u16 = if kind < 0x100 {
        NFNL_SUBSYS_NFTABLES
    } else {
        0
    };
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(&attrs.0);
}

/// The whole batch (begin, table, chain, two rules, end) and how many acknowledgements it asks for.
fn relay_batch(port: u16) -> (Vec<u8>, usize) {
    let request = libc::NLM_F_REQUEST as u16;
    let create = request | (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16;
    let kind = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
    let mut out = Vec::with_capacity(1024);
    let none = Attributes::default();
    message(&mut out, libc::NLMSG_MIN_TYPE as u16, request, 0, 0, &none);
    message(
        &mut out,
        kind(NFT_MSG_NEWTABLE),
        create,
        1,
        NFPROTO_IPV4,
        &Attributes::default().text(1, TABLE),
    );
    let hook = Attributes::default()
        .be32(1, libc::NF_INET_PRE_ROUTING as u32)
        .be32(2, PRIORITY_MANGLE as u32);
    message(
        &mut out,
        kind(NFT_MSG_NEWCHAIN),
        create,
        2,
        NFPROTO_IPV4,
        &Attributes::default()
            .text(1, TABLE)
            .text(3, CHAIN)
            .nested(4, hook)
            .be32(5, libc::NF_ACCEPT as u32)
            .text(7, "filter"),
    );
    let rules = [
        relay_rule(libc::IPPROTO_TCP as u8, port),
        relay_rule(libc::IPPROTO_UDP as u8, port),
        no_ping_rule(),
    ];
    let count = rules.len();
    for (seq, rule) in (3..).zip(rules) {
        message(
            &mut out,
            kind(NFT_MSG_NEWRULE),
            create | libc::NLM_F_APPEND as u16,
            seq,
            NFPROTO_IPV4,
            &Attributes::default()
                .text(1, TABLE)
                .text(2, CHAIN)
                .nested(4, rule),
        );
    }
    message(
        &mut out,
        libc::NLMSG_MIN_TYPE as u16 + 1,
        request,
        3 + count as u32,
        0,
        &none,
    );
    (out, 2 + count)
}

/// Installs the relay's rules in the current thread's network namespace, diverting the
/// sandbox's TCP and UDP to `port` on its loopback (needs CAP_NET_ADMIN over it).
pub fn install_relay_rules(port: u16) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    let (batch, mut acks) = relay_batch(port);
    sendto(
        sock.as_raw_fd(),
        &batch,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut answer = vec![0u8; 8192];
    while acks > 0 {
        let n = recv(sock.as_raw_fd(), &mut answer, MsgFlags::empty())?;
        let mut at = 0;
        while at + 20 <= n {
            let word = |i: usize| -> u32 {
                answer
                    .get(i..i + 4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_ne_bytes)
            };
            let length = word(at) as usize;
            let kind = word(at + 4) & 0xffff;
            if length < 16 {
                return Err(io::Error::other("a malformed answer from nf_tables"));
            }
            if kind == libc::NLMSG_ERROR as u32 {
                let error = word(at + 16) as i32;
                if error < 0 {
                    return Err(io::Error::from_raw_os_error(-error));
                }
                acks = acks.saturating_sub(1);
            }
            at += length.next_multiple_of(4);
        }
        if n == 0 {
            return Err(io::Error::other("nf_tables closed the socket"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested_as_the_kernel_reads_them() {
        let a = Attributes::default().text(1, "abc").be32(2, 7);
        // "abc\0" fits 4 bytes: 8; a be32: 8.
        assert_eq!(a.0.len(), 16);
        assert_eq!(&a.0[..8], &[8, 0, 1, 0, b'a', b'b', b'c', 0]);
        assert_eq!(&a.0[8..], &[8, 0, 2, 0, 0, 0, 0, 7]);
        let odd = Attributes::default().bytes(3, &[1]);
        assert_eq!(odd.0, vec![5, 0, 3, 0, 1, 0, 0, 0]);
        let nested = Attributes::default().nested(4, odd);
        assert_eq!(&nested.0[..4], &[12, 0, 4, 0x80]);
    }

    #[test]
    fn the_batch_is_whole_messages_from_begin_to_end() {
        let (batch, acks) = relay_batch(1);
        assert_eq!(acks, 5);
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < batch.len() {
            let length = u32::from_ne_bytes(batch[at..at + 4].try_into().unwrap()) as usize;
            kinds.push(u16::from_ne_bytes(
                batch[at + 4..at + 6].try_into().unwrap(),
            ));
            assert_eq!(length % 4, 0);
            at += length;
        }
        assert_eq!(at, batch.len());
        assert_eq!(kinds, vec![0x10, 0xa00, 0xa03, 0xa06, 0xa06, 0xa06, 0x11]);
    }
}
