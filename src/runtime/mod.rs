//! The runtime layer: namespaces and identity. Containers themselves come with the runtime issue;
//! for now it provides the user namespace the store is unpacked in.

pub mod error;
pub mod idmap;
pub mod userns;

pub use error::RuntimeError;
pub use idmap::IdMapping;
