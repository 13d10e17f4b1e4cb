//! Who the user is inside: the keep-id map over the subordinate ranges, and entering the
//! store's user namespace with it.

pub mod idmap;
pub mod userns;
