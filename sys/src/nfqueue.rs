//! The netfilter packet queue of the relay's TCP openings (`nftables::SYN_QUEUE`): the keeper
//! reads each queued SYN's addresses and, once it knows how the real connection went, lets it
//! on, drops it (the sandbox retries, as after a lost packet) or marks it to be reset.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::sys::socket::{recv, MsgFlags};

use super::nfnetlink::{self, Attributes, Head};

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
/// Enough of each packet for its IPv4 header (with options) and TCP ports.
const COPY_RANGE: u32 = 128;

/// A queued connection opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    /// The kernel's id for the verdict.
    pub id: u32,
    /// Who opens it and for where; `None` when the packet was not a readable IPv4 TCP one.
    pub flow: Option<(SocketAddrV4, SocketAddrV4)>,
}

/// What becomes of a queued opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On to the relay's listener.
    Accept,
    /// Gone, as if lost: the sandbox sends it again.
    Drop,
    /// Refused: reset at once (`nftables::RESET_MARK`).
    Reset,
}

/// The queue, bound in the network namespace of the thread that made it.
pub struct Queue {
    sock: OwnedFd,
}

impl Queue {
    /// Binds queue `number` of the current thread's network namespace, copying packets.
    pub fn bind(number: u16) -> io::Result<Queue> {
        let sock = nfnetlink::open()?;
        let mut config = Vec::new();
        let mut params = COPY_RANGE.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        nfnetlink::message(
            &mut config,
            &Head {
                kind: (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG,
                flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
                seq: 1,
                family: libc::AF_UNSPEC as u8,
                res_id: number,
            },
            &Attributes::default()
                .bytes(
                    NFQA_CFG_CMD,
                    &[
                        NFQNL_CFG_CMD_BIND,
                        0,
                        0,
                        libc::AF_INET as u8, // pf, big-endian
                    ],
                )
                .bytes(NFQA_CFG_PARAMS, &params),
        );
        nfnetlink::send(&sock, &config)?;
        nfnetlink::acknowledged(&sock, 1)?;
        Ok(Queue { sock })
    }

    /// Waits for the next openings.
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<Vec<Opening>> {
        let n = recv(self.sock.as_raw_fd(), buffer, MsgFlags::empty())?;
        Ok(parse_openings(&buffer[..n]))
    }

    pub fn verdict(&self, id: u32, verdict: Verdict) -> io::Result<()> {
        let code = match verdict {
            Verdict::Drop => libc::NF_DROP,
            Verdict::Accept | Verdict::Reset => libc::NF_ACCEPT,
        } as u32;
        let header = [code.to_be_bytes(), id.to_be_bytes()].concat();
        let mut attrs = Attributes::default().bytes(NFQA_VERDICT_HDR, &header);
        if verdict == Verdict::Reset {
            attrs = attrs.be32(NFQA_MARK, super::RESET_MARK);
        }
        let mut out = Vec::new();
        nfnetlink::message(
            &mut out,
            &Head {
                kind: (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT,
                flags: libc::NLM_F_REQUEST as u16,
                seq: 0,
                family: libc::AF_UNSPEC as u8,
                res_id: super::SYN_QUEUE,
            },
            &attrs,
        );
        nfnetlink::send(&self.sock, &out)
    }
}

/// The openings in what the kernel sent. Only lengths it gave are trusted, and the packet is
/// the sandbox's: every field is read with a bound. (Public for the fuzz target.)
pub fn parse_openings(bytes: &[u8]) -> Vec<Opening> {
    nfnetlink::messages(bytes)
        .filter(|(kind, _)| *kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)
        .filter_map(|(_, message)| {
            let body = message.get(nfnetlink::HEADER..)?;
            let mut id = None;
            let mut flow = None;
            for (kind, value) in nfnetlink::attributes(body) {
                match kind {
                    NFQA_PACKET_HDR => {
                        id = value
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .map(u32::from_be_bytes);
                    }
                    NFQA_PAYLOAD => flow = tcp_flow(value),
                    _ => {}
                }
            }
            Some(Opening { id: id?, flow })
        })
        .collect()
}

/// (source, destination) of an IPv4 TCP packet.
fn tcp_flow(packet: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let first = *packet.first()?;
    if first >> 4 != 4 || *packet.get(9)? != libc::IPPROTO_TCP as u8 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    if header < 20 {
        return None;
    }
    let address = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
    };
    Some((
        SocketAddrV4::new(address(12)?, port(header)?),
        SocketAddrV4::new(address(16)?, port(header + 2)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(from: [u8; 4], sport: u16, to: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&from);
        p.extend_from_slice(&to);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    fn queued(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = [id.to_be_bytes().to_vec(), vec![8, 0, 0]].concat();
        nfnetlink::message(
            &mut out,
            &Head {
                kind: (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET,
                flags: 0,
                seq: 0,
                family: 2,
                res_id: 0,
            },
            &Attributes::default()
                .bytes(NFQA_PACKET_HDR, &header)
                .bytes(NFQA_PAYLOAD, payload),
        );
        out
    }

    #[test]
    fn a_queued_opening_says_who_opens_it_and_for_where() {
        let bytes = [
            queued(7, &syn([1, 2, 3, 4], 40000, [93, 184, 216, 34], 443)),
            queued(8, &syn([1, 2, 3, 4], 40001, [10, 0, 0, 1], 80)),
        ]
        .concat();
        let openings = parse_openings(&bytes);
        assert_eq!(
            openings,
            vec![
                Opening {
                    id: 7,
                    flow: Some((
                        "1.2.3.4:40000".parse().unwrap(),
                        "93.184.216.34:443".parse().unwrap()
                    ))
                },
                Opening {
                    id: 8,
                    flow: Some((
                        "1.2.3.4:40001".parse().unwrap(),
                        "10.0.0.1:80".parse().unwrap()
                    ))
                }
            ]
        );
    }

    #[test]
    fn a_packet_that_is_not_readable_ipv4_tcp_keeps_its_id_and_no_flow() {
        let mut udp = syn([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
        udp[9] = 17;
        let mut short_header = syn([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
        short_header[0] = 0x44;
        for (id, payload) in [
            (1, udp),
            (2, short_header),
            (3, vec![0x45]),
            (4, vec![0x4f; 30]),
        ] {
            assert_eq!(
                parse_openings(&queued(id, &payload)),
                vec![Opening { id, flow: None }]
            );
        }
        // Truncated anywhere, a message yields nothing rather than reading past its end.
        let whole = queued(9, &syn([1, 2, 3, 4], 1, [5, 6, 7, 8], 2));
        for cut in 0..whole.len() {
            let _ = parse_openings(&whole[..cut]);
        }
    }
}
