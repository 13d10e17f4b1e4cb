//! The container's file tree: the plan's mounts executed inside the new root, and the files
//! written into its /etc.

pub mod etc_files;
pub mod mounts;
