//! nfnetlink, the netlink family of netfilter: messages built as bytes in the kernel's layout
//! (nf_tables rules, the packet queue), sent and acknowledged. No unsafe code: nix sends them.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

const NLA_F_NESTED: u16 = 0x8000;
/// The size of `struct nlmsghdr` and of `struct nfgenmsg` after it.
pub(super) const HEADER: usize = 16 + 4;

/// Netlink attributes, written in the kernel's layout (length, type, value, padded to 4).
#[derive(Default)]
pub(super) struct Attributes(pub(super) Vec<u8>);

impl Attributes {
    pub(super) fn bytes(mut self, kind: u16, value: &[u8]) -> Self {
        let length = 4 + value.len();
        self.0.extend_from_slice(&(length as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    /// A string, NUL-terminated as nf_tables wants.
    pub(super) fn text(self, kind: u16, value: &str) -> Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.bytes(kind, &bytes)
    }

    /// netfilter's numbers are big-endian.
    pub(super) fn be32(self, kind: u16, value: u32) -> Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    pub(super) fn nested(self, kind: u16, inner: Attributes) -> Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }

    /// `NFTA_DATA_VALUE` nested under `kind`.
    pub(super) fn data(self, kind: u16, value: &[u8]) -> Self {
        self.nested(kind, Attributes::default().bytes(1, value))
    }
}

/// What precedes a message's attributes.
pub(super) struct Head {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub family: u8,
    /// `nfgenmsg.res_id`: the subsystem of a batch, a queue's number.
    pub res_id: u16,
}

/// Appends one message: `nlmsghdr`, `nfgenmsg`, attributes.
pub(super) fn message(out: &mut Vec<u8>, head: &Head, attrs: &Attributes) {
    let length = HEADER + attrs.0.len();
    out.extend_from_slice(&(length as u32).to_ne_bytes());
    out.extend_from_slice(&head.kind.to_ne_bytes());
    out.extend_from_slice(&head.flags.to_ne_bytes());
    out.extend_from_slice(&head.seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(head.family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&head.res_id.to_be_bytes());
    out.extend_from_slice(&attrs.0);
}

/// A netfilter netlink socket in the current thread's network namespace.
pub(super) fn open() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?)
}

pub(super) fn send(sock: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    sendto(
        sock.as_raw_fd(),
        bytes,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    Ok(())
}

/// The 32-bit word at `at`, in the machine's order (0 past the end).
pub(super) fn word(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// Each message in `bytes`: (type, the whole message).
pub(super) fn messages(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let length = word(bytes, at) as usize;
        if at + 16 > bytes.len() || length < 16 || at + length > bytes.len() {
            return None;
        }
        let message = &bytes[at..at + length];
        at += length.next_multiple_of(4);
        Some(((word(message, 4) & 0xffff) as u16, message))
    })
}

/// Each attribute of a message's body: (type without its flags, value).
pub(super) fn attributes(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = body.get(at..at + 4)?;
        let length = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & 0x3fff;
        let value = body.get(at + 4..at + length.max(4))?;
        at += length.max(4).next_multiple_of(4);
        Some((kind, value))
    })
}

/// Waits for `acks` acknowledgements; the first error the kernel reports is returned.
pub(super) fn acknowledged(sock: &OwnedFd, mut acks: usize) -> io::Result<()> {
    let mut answer = vec![0u8; 8192];
    while acks > 0 {
        let n = recv(sock.as_raw_fd(), &mut answer, MsgFlags::empty())?;
        if n == 0 {
            return Err(io::Error::other("netfilter closed the socket"));
        }
        for (kind, message) in messages(&answer[..n]) {
            if kind == libc::NLMSG_ERROR as u16 {
                let error = word(message, 16) as i32;
                if error < 0 {
                    return Err(io::Error::from_raw_os_error(-error));
                }
                acks = acks.saturating_sub(1);
            }
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
        let read: Vec<(u16, Vec<u8>)> = attributes(&nested.0)
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(read, vec![(4, vec![5, 0, 3, 0, 1, 0, 0, 0])]);
    }

    #[test]
    fn a_short_or_lying_length_ends_the_reading_instead_of_overrunning() {
        // An attribute claiming 200 bytes in 8.
        assert_eq!(attributes(&[200, 0, 1, 0, 1, 2, 3, 4]).count(), 0);
        // A message claiming 64 bytes in 20.
        let mut m = vec![0u8; 20];
        m[0] = 64;
        assert_eq!(messages(&m).count(), 0);
    }
}
