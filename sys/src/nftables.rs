//! The one nftables ruleset sandbox installs: in a sandbox's own network namespace (its
//! `relay` network), every TCP and UDP packet the sandbox sends to an address outside
//! 127.0.0.0/8 is handed by TPROXY to the keeper's socket on one port, which reads where it
//! was going (getsockname, IP_ORIGDSTADDR); a TCP opening first waits in a queue until the
//! keeper has made that connection outside (or failed to: then it is reset). Written as
//! nf_tables netlink messages, so no `nft` binary runs at start-up; `nft list ruleset` inside
//! shows it as
//!
//! ```text
//! table ip sandbox {
//!   chain queue { type filter hook prerouting priority raw; policy accept;
//!     ip daddr != 127.0.0.0/8 tcp flags syn / fin,syn,rst,ack queue num 0
//!   }
//!   chain relay { type filter hook prerouting priority mangle; policy accept;
//!     meta l4proto tcp meta mark 0x0000005b reject with tcp reset
//!     ip daddr != 127.0.0.0/8 tcp flags syn / fin,syn,rst,ack tproxy to :PORT
//!     ip daddr != 127.0.0.0/8 meta l4proto udp meta mark != 0x0000005c tproxy to :PORT
//!     ip daddr != 127.0.0.0/8 icmp type echo-request reject with icmp host-prohibited
//!   }
//! }
//! ```
//!
//! The packets pass `prerouting` because every address is local there (see
//! `route_everything_to_loopback`): they loop through `lo`. Nothing uses conntrack, which would
//! cost every packet.

use std::io;

use super::nfnetlink::{self, Attributes, Head};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_IPV4: u8 = 2;
/// nf_tables' first 16-byte register.
const REG_1: u32 = 1;
const TABLE: &str = "sandbox";
/// The chain that queues connection openings (`priority raw`, before the relay's).
const QUEUE_CHAIN: &str = "queue";
const RELAY_CHAIN: &str = "relay";
const PRIORITY_RAW: i32 = -300;
const PRIORITY_MANGLE: i32 = -150;
/// The mark the keeper's verdict gives an opening it could not make: reset at once.
pub const RESET_MARK: u32 = 0x5b;
/// The mark of the keeper's UDP replies, which the relay rule leaves alone.
pub const REPLY_MARK: u32 = 0x5c;
/// The queue connection openings wait in.
pub const SYN_QUEUE: u16 = 0;

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

/// `meta load KEY => reg 1`.
fn meta_load(key: libc::c_int) -> Attributes {
    expression(
        "meta",
        Attributes::default().be32(1, REG_1).be32(2, key as u32),
    )
}

/// `meta l4proto == protocol`.
fn protocol_is(protocol: u8) -> [Attributes; 2] {
    [meta_load(libc::NFT_META_L4PROTO), cmp(CMP_EQ, &[protocol])]
}

fn list(expressions: impl IntoIterator<Item = Attributes>) -> Attributes {
    expressions
        .into_iter()
        .fold(Attributes::default(), |list, e| list.nested(1, e))
}

/// `payload load 1b @ transport header + offset => reg 1`.
fn transport_byte(offset: u32) -> Attributes {
    expression(
        "payload",
        Attributes::default()
            .be32(1, REG_1)
            .be32(2, 2)
            .be32(3, offset)
            .be32(4, 1),
    )
}

/// `tcp flags & (fin|syn|rst|ack) == syn`: payload load 1b @ transport header + 13, masked,
/// compared.
fn is_tcp_opening() -> Vec<Attributes> {
    let mut expressions: Vec<Attributes> = protocol_is(libc::IPPROTO_TCP as u8).into();
    expressions.extend([
        transport_byte(13),
        expression(
            "bitwise",
            Attributes::default()
                .be32(1, REG_1)
                .be32(2, REG_1)
                .be32(3, 1)
                .data(4, &[0x17])
                .data(5, &[0]),
        ),
        cmp(CMP_EQ, &[0x02]),
    ]);
    expressions
}

/// `tproxy ip to :port`.
fn tproxy_to(port: u16) -> [Attributes; 2] {
    [
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
    ]
}

/// A TCP opening for anywhere but loopback goes to the listener on `port`. Only the opening:
/// every address being local, the rest of the connection finds its accepted socket by itself.
fn tcp_relay_rule(port: u16) -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend(is_tcp_opening());
    expressions.extend(tproxy_to(port));
    list(expressions)
}

/// Every UDP datagram for anywhere but loopback goes to the socket on `port`, but for the
/// keeper's replies (sent with `REPLY_MARK`), which go to the sandbox's own socket.
fn udp_relay_rule(port: u16) -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend(protocol_is(libc::IPPROTO_UDP as u8));
    expressions.extend([
        meta_load(libc::NFT_META_MARK),
        cmp(CMP_NEQ, &REPLY_MARK.to_ne_bytes()),
    ]);
    expressions.extend(tproxy_to(port));
    list(expressions)
}

/// A ping of any address but the sandbox's own loopback is refused (host prohibited) rather
/// than answered by that loopback, where every address is local.
fn no_ping_rule() -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend(protocol_is(libc::IPPROTO_ICMP as u8));
    expressions.extend([
        // the ICMP type == echo request
        transport_byte(0),
        cmp(CMP_EQ, &[8]),
        // reject type icmp code host-prohibited (10)
        expression("reject", Attributes::default().be32(1, 0).bytes(2, &[10])),
    ]);
    list(expressions)
}

/// `tcp flags & (fin|syn|rst|ack) == syn`, a connection's opening: queued for the keeper,
/// which lets it on once it has made the connection outside (else marks it to be reset), so
/// the sandbox's connect() fails or succeeds as the real one did. NFQUEUE is the iptables
/// target through nft's compat layer: some kernels build nft's own `queue` out.
fn queue_rule() -> Attributes {
    let mut expressions: Vec<Attributes> = not_loopback().into();
    expressions.extend(is_tcp_opening());
    expressions.extend([
        // struct xt_NFQ_info_v3 { u16 queuenum, queues_total, flags }, in the machine's order.
        expression(
            "target",
            Attributes::default().text(1, "NFQUEUE").be32(2, 3).bytes(
                3,
                &[
                    SYN_QUEUE.to_ne_bytes(),
                    1u16.to_ne_bytes(),
                    0u16.to_ne_bytes(),
                    0u16.to_ne_bytes(),
                ]
                .concat(),
            ),
        ),
    ]);
    list(expressions)
}

/// `meta mark RESET_MARK reject with tcp reset`: an opening the keeper could not make.
fn reset_rule() -> Attributes {
    let mut expressions: Vec<Attributes> = protocol_is(libc::IPPROTO_TCP as u8).into();
    expressions.extend([
        meta_load(libc::NFT_META_MARK),
        cmp(CMP_EQ, &RESET_MARK.to_ne_bytes()),
        // NFT_REJECT_TCP_RST
        expression("reject", Attributes::default().be32(1, 1)),
    ]);
    list(expressions)
}

/// The whole batch (begin, table, two chains and their rules, end) and how many
/// acknowledgements it asks for.
fn relay_batch(relay_port: Option<u16>) -> (Vec<u8>, usize) {
    let request = libc::NLM_F_REQUEST as u16;
    let create = request | (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16;
    let mut out = Vec::with_capacity(2048);
    let mut seq = 0;
    let mut acks = 0;
    let mut push = |kind: u16, flags: u16, family: u8, attrs: Attributes| {
        let batch = kind >> 8 == 0;
        let head = Head {
            kind,
            flags,
            seq,
            family,
            res_id: if batch { NFNL_SUBSYS_NFTABLES } else { 0 },
        };
        nfnetlink::message(&mut out, &head, &attrs);
        seq += 1;
        if flags & libc::NLM_F_ACK as u16 != 0 {
            acks += 1;
        }
    };
    let kind = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
    push(
        libc::NLMSG_MIN_TYPE as u16,
        request,
        0,
        Attributes::default(),
    );
    push(
        kind(NFT_MSG_NEWTABLE),
        create,
        NFPROTO_IPV4,
        Attributes::default().text(1, TABLE),
    );
    let chains = [
        (QUEUE_CHAIN, PRIORITY_RAW, vec![queue_rule()]),
        (
            RELAY_CHAIN,
            PRIORITY_MANGLE,
            [
                Some(reset_rule()),
                relay_port.map(tcp_relay_rule),
                relay_port.map(udp_relay_rule),
                Some(no_ping_rule()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
        ),
    ];
    for (chain, priority, rules) in chains {
        let hook = Attributes::default()
            .be32(1, libc::NF_INET_PRE_ROUTING as u32)
            .be32(2, priority as u32);
        push(
            kind(NFT_MSG_NEWCHAIN),
            create,
            NFPROTO_IPV4,
            Attributes::default()
                .text(1, TABLE)
                .text(3, chain)
                .nested(4, hook)
                .be32(5, libc::NF_ACCEPT as u32)
                .text(7, "filter"),
        );
        for rule in rules {
            push(
                kind(NFT_MSG_NEWRULE),
                create | libc::NLM_F_APPEND as u16,
                NFPROTO_IPV4,
                Attributes::default()
                    .text(1, TABLE)
                    .text(2, chain)
                    .nested(4, rule),
            );
        }
    }
    push(
        libc::NLMSG_MIN_TYPE as u16 + 1,
        request,
        0,
        Attributes::default(),
    );
    (out, acks)
}

/// Installs the relay's rules in the current thread's network namespace (needs CAP_NET_ADMIN
/// over it): connection openings wait in `SYN_QUEUE`, and with `relay_port` the sandbox's TCP
/// and UDP then go to that port on its loopback. An allow-list's forwarder passes `None`: its
/// listeners hold the listed ports themselves, and the queue only refuses (and names) the
/// openings for the others.
pub fn install_relay_rules(relay_port: Option<u16>) -> io::Result<()> {
    let sock = nfnetlink::open()?;
    let (batch, acks) = relay_batch(relay_port);
    nfnetlink::send(&sock, &batch)?;
    nfnetlink::acknowledged(&sock, acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_whole_messages_from_begin_to_end() {
        let (batch, acks) = relay_batch(Some(1));
        let kinds: Vec<u16> = nfnetlink::messages(&batch).map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            vec![0x10, 0xa00, 0xa03, 0xa06, 0xa03, 0xa06, 0xa06, 0xa06, 0xa06, 0x11]
        );
        assert_eq!(acks, kinds.len() - 2);
        let (queue_only, _) = relay_batch(None);
        assert_eq!(nfnetlink::messages(&queue_only).count(), kinds.len() - 2);
        let total: usize = nfnetlink::messages(&batch).map(|(_, m)| m.len()).sum();
        assert_eq!(total, batch.len());
    }
}
