//! What a responder runs: `logseal verify` and `logseal inspect` over files,
//! directories, stores and bundles, and their reports (text and JSON).
//!
//! - [`verify_files`]: the verifier of [`crate::chain::verify`] over segment
//!   files, with the memory bound.
//! - [`report`]: the human-readable and JSON output.

pub mod checkpoints;
pub mod report;
pub mod verify_files;
pub mod witness;
