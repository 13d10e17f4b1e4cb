//! Egress by allow-list: the sandbox reaches only the names its `[network] allow` lists.
//!
//! No helper connects the sandbox's network namespace to the outside. Instead every IPv4
//! address is made local inside it, and sandbox's network keeper, which lives in the host's
//! namespace, holds listeners created in the sandbox's: a connection to any address lands on
//! the listener of its port (one to another port waits in a netfilter queue until the keeper
//! refuses it, naming it), a DNS query on the
//! keeper's resolver (which answers listed names only: NXDOMAIN at once for the rest). The
//! keeper reads which name each connection is for (the TLS server name, the HTTP Host, a
//! proxy's CONNECT target, else the name its resolver gave that address for), checks it
//! against the list, dials the name itself from the host's side and splices the bytes
//! through, never terminating TLS.

pub mod dns;
pub mod forwarder;
pub mod host_itself;
pub mod inbound;
pub mod log;
pub mod names;
pub mod refusals;
pub mod sniff;
pub mod traffic;

use crate::settings::allow_list::AllowList;

/// Where proxy-aware tools are pointed inside (any address would do: all are local there).
pub const PROXY_ADDRESS: &str = "127.0.0.1";
pub const PROXY_PORT: u16 = 3128;
/// The name server the sandbox's resolv.conf names, with the relay, the forwarder and pasta
/// (which forwards queries to it to the host's first resolver) alike.
pub const DNS_ADDRESS: &str = "169.254.1.1";

/// What the keeper enforces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: AllowList,
    /// Where the list is written, for the message naming a blocked connection
    /// (`[network].allow in sandbox.toml:7`).
    pub source: String,
    /// `--network-log FILE`: every connection and lookup, allowed or blocked (JSON lines).
    pub log: Option<crate::fsutil::beneath::GuardedPath>,
    /// Whether names resolving to the host's loopback may be dialed (`--host-loopback`).
    pub host_loopback: bool,
}
