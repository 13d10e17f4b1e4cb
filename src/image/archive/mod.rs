//! Images as files: a project's prepared image written as an OCI archive or layout
//! (`export`), and an archive read back into the store (`load`).

pub mod export;
pub mod load;
