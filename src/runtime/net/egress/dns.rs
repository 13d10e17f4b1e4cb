//! The little of DNS the forwarder's resolver needs: read one question from a query and write
//! the answer (IPv4 addresses, no data, or no such name). Queries come from inside the
//! sandbox, so every length is checked and a query that is not plainly one question is
//! answered with a format error or dropped, never trusted.

use std::net::Ipv4Addr;

/// Record types.
pub const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const HEADER: usize = 12;

/// The question of a query.
#[derive(Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// The query's flags (opcode and RD are echoed).
    pub flags: u16,
    /// Lower case, without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question's bytes as sent (name, type and class), echoed in the answer.
    raw: Vec<u8>,
}

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// These addresses (for an A question), or none (another type of a known name).
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN.
    NoSuchName,
    /// SERVFAIL: the name is allowed but could not be resolved.
    Failed,
}

/// Reads the one question of `packet`; `None` for anything else (dropped).
pub fn parse_query(packet: &[u8]) -> Option<Question> {
    if packet.len() < HEADER {
        return None;
    }
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
    };
    let id = word(0)?;
    let flags = word(2)?;
    // A response, or not exactly one question: not a query we answer.
    if flags & 0x8000 != 0 || word(4)? != 1 {
        return None;
    }
    let mut at = HEADER;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xC0) and the reserved kinds have no place in a question.
        if len > 63 {
            return None;
        }
        let label = packet.get(at..at + len)?;
        // No host name has other bytes; read lossily, two names could become one.
        if !label
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b'.')
        {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
        if at - HEADER > 255 {
            return None;
        }
    }
    let qtype = word(at)?;
    let qclass = word(at + 2)?;
    Some(Question {
        id,
        flags,
        name: labels.join("."),
        qtype,
        qclass,
        raw: packet.get(HEADER..at + 4)?.to_vec(),
    })
}

/// The response to `question`.
pub fn response(question: &Question, answer: &Answer) -> Vec<u8> {
    // QR, the query's opcode and RD, RA.
    let mut flags = 0x8000 | (question.flags & 0x7900) | 0x0080;
    let addresses: &[Ipv4Addr] = match answer {
        Answer::Addresses(a) if question.qtype == TYPE_A && question.qclass == CLASS_IN => a,
        Answer::Addresses(_) => &[],
        Answer::NoSuchName => {
            flags |= 3;
            &[]
        }
        Answer::Failed => {
            flags |= 2;
            &[]
        }
    };
    let count = u16::try_from(addresses.len().min(32)).unwrap_or(0);
    let mut out = Vec::with_capacity(HEADER + question.raw.len() + 16 * usize::from(count));
    out.extend_from_slice(&question.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for n in [1, count, 0, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&question.raw);
    for address in addresses.iter().take(usize::from(count)) {
        // The name as a pointer to the question's, type A, class IN, a minute's TTL.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&address.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn a_question_is_read_and_answered() {
        let q = parse_query(&query("PyPI.org", TYPE_A)).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "pypi.org", 1));
        let r = response(&q, &Answer::Addresses(vec![Ipv4Addr::new(10, 0, 0, 7)]));
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&r[6..8], &[0, 1], "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 7]);
        let aaaa = parse_query(&query("pypi.org", 28)).unwrap();
        let r = response(&aaaa, &Answer::Addresses(vec![Ipv4Addr::LOCALHOST]));
        assert_eq!(&r[6..8], &[0, 0], "no AAAA data");
        let r = response(&q, &Answer::NoSuchName);
        assert_eq!(r[3] & 0x0f, 3);
    }

    #[test]
    fn hostile_queries_are_dropped_not_trusted() {
        assert!(parse_query(&[]).is_none());
        assert!(parse_query(&[0; 11]).is_none());
        let mut pointer = query("a.b", TYPE_A);
        pointer[12] = 0xc0;
        assert!(parse_query(&pointer).is_none());
        let mut truncated = query("example.org", TYPE_A);
        truncated.truncate(20);
        assert!(parse_query(&truncated).is_none());
        let mut two = query("a.b", TYPE_A);
        two[5] = 2;
        assert!(parse_query(&two).is_none());
        let mut long = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..300 {
            long.extend_from_slice(&[1, b'a']);
        }
        assert!(parse_query(&long).is_none());
        // A label with a byte no host name has (found by the fuzz target: read lossily, the
        // name grew past what DNS allows), or a dot inside a label.
        for odd in [&b"a\xffb"[..], b"a b", b"a\nb", b"a.b"] {
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, odd.len() as u8];
            q.extend_from_slice(odd);
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            assert!(parse_query(&q).is_none(), "{odd:?}");
        }
    }
}
