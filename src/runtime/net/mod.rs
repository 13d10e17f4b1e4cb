//! A sandbox's network: the relay (the default: the keeper copies connections out, nothing
//! judged), the egress allow-list's forwarder and name server (`egress`), the helpers pasta
//! and slirp4netns, published UDP ports, the keeper process that holds them, and the pool of
//! warm pasta networks.

pub mod egress;
pub mod helpers;
pub mod keeper;
pub mod published_udp;
pub mod relay;
pub mod warm_pool;
