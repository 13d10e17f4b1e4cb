//! sandbox.toml's vocabulary, shared by `config` (which reads it) and `runtime` (which acts on
//! it): network modes and published ports, limits, the egress allow-list, capabilities. A leaf:
//! it imports nothing else of the crate.

pub mod allow_list;
pub mod capabilities;
pub mod limits;
pub mod network;
