//! One file per subcommand (or per small family of them).

pub mod containers;
pub mod images;
pub mod login;
pub mod pull;
pub mod run;
pub mod store_admin;
