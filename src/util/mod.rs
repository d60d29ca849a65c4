//! Small helpers shared by the stages.

pub mod config;
pub mod host;
pub mod stop;
pub mod timefmt;
pub mod units;
