//! A command's stdio: the ends it gets and the monitor keeps (`ends`), the pipes relayed to
//! the caller's (`pipes`), and what a terminal types (`typeahead`).

pub mod ends;
pub mod pipes;
pub mod typeahead;
