//! File-system helpers every layer uses: cross-process locks, atomic writes and bounded reads.

pub mod atomic;
pub mod beneath;
pub mod lock;
pub mod shown;
pub mod small_file;
pub mod tree;
pub mod unique;
