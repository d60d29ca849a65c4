//! Subcommands with logic of their own beyond a library call (the rest are
//! dispatched by `main.rs`).

pub mod pki;
pub mod quickstart;
