//! File-system helpers every layer uses: cross-process locks and atomic writes.

pub mod atomic;
pub mod beneath;
pub mod lock;
pub mod shown;
pub mod tree;
pub mod unique;
