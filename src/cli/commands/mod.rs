//! One file per subcommand (or per small family of them).

pub mod cache;
pub mod completions;
pub mod containers;
pub mod doctor;
pub mod export;
pub mod home;
pub mod images;
pub mod init;
pub mod kube;
pub mod lock;
pub mod login;
pub mod pull;
pub mod push;
pub mod run;
pub mod setup;
pub mod stats;
pub mod store_admin;
