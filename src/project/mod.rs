//! A project's sandbox, between the command line and the engine: `cli` turns flags into an
//! `launch::Asked` and renders what comes back; this layer opens the project (sandbox.toml,
//! trusted or refused) and the store, chooses the image (the lock, the tag, or a prepared
//! sandbox), builds the setup layers, decides trust and egress, and hands the runtime its
//! plan's inputs. It never prints: it reports through `reporter::ProjectReporter`.

pub mod access;
pub mod caches;
pub mod egress;
pub mod error;
pub mod files;
pub mod image_choice;
pub mod inputs;
pub mod launch;
pub mod locations;
pub mod mobility;
pub mod reporter;
pub mod setup_steps;
pub mod sources;
pub mod trust;
