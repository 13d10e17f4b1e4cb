//! A project's sandbox elsewhere: its prepared image (the base and the setup layers, with the
//! config it runs with) made for export (`parts`), pushed to a registry (`publish`), and run
//! on Kubernetes from what sandbox.lock pins (`kube`).

pub mod kube;
pub mod parts;
pub mod publish;
