//! The image layer: references, registries, manifests, blobs, unpacking and the store.

pub mod archive;
pub mod blob_stream;
pub mod copy_layer;
pub mod digest;
pub mod error;
pub mod gc;
pub mod gzip_parallel;
pub mod hashing;
pub mod layer_lookup;
pub mod layer_tar;
pub mod manifest;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod reporter;
pub mod runnable;
pub mod setup_layer;
pub mod store;
pub mod trust;
pub mod unpack;

pub use digest::Digest;
pub use error::ImageError;
pub use reference::Reference;
