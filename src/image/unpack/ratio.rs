//! How much file data a layer may unpack per byte of its size (a bound on decompression
//! bombs), and the variable that raises it.

/// The variable that raises the most file data a layer may unpack per byte of its size.
pub const RATIO_VARIABLE: &str = "SANDBOX_UNPACK_RATIO";
/// gzip cannot pass about 1000:1; real layers are 2-10:1.
pub const DEFAULT_RATIO: u64 = 256;
