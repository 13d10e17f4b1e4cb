//! How the image layer tells its caller what it is doing; it never prints. The CLI renders this
//! with indicatif, tests use the silent default.

use crate::image::digest::Digest;
use crate::image::reference::Reference;

/// Progress of a pull. Ids returned by `layer_started` come back in the other calls.
pub trait PullReporter: Send + Sync {
    /// The reference resolved to a manifest with `layers` layers.
    fn resolved(&self, _reference: &Reference, _manifest: &Digest, _layers: usize) {}
    /// A layer download begins; `size` is the compressed size.
    fn layer_started(&self, _blob: &Digest, _size: u64) -> usize {
        0
    }
    fn layer_progress(&self, _id: usize, _bytes: u64) {}
    /// The layer's size grew to `size` (an upload of a blob still being made).
    fn layer_length(&self, _id: usize, _size: u64) {}
    /// Done; `reused` when the layer was already in the store.
    fn layer_finished(&self, _id: usize, _reused: bool) {}
    /// Something the user should know that is not an error.
    fn notice(&self, _message: &str) {}
}
