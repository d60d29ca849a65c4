//! logseal's core: what a verdict rests on, and nothing else.
//!
//! The record model and its canonical encoding, hashing, forward-secure keys
//! and the seal check, the segment and frame format, the verifier and the
//! receiver's [`tip::Tip`]. The byte format is specified in `docs/FORMAT.md`;
//! an auditor reads this crate and that document.
//!
//! No tokio, no network, no file system, no clock: every input is a byte slice
//! or a value, time included. Signing (and the test vectors, which sign) is
//! behind the `signing` feature; without it the crate can only verify.
//!
//! - [`record`], [`codec`]: records and their canonical encoding.
//! - [`hash`]: leaves and the head step; [`hex`]: hex for reports.
//! - [`keys`], [`seal`]: Ed25519 keys, strict signature checks, the seal rule.
//! - [`frame`]: the segment file header and the frames records travel in.
//! - [`checkpoint`]: a collector's checkpoints of the chains it holds;
//!   [`receipt`]: its signed receipts for what a host sent.
//! - [`verify`]: the chain verifier, [`describe`]: its sentences; [`tip`]: a receiver's view of a chain's
//!   end; [`trust`]: pinned Genesis fingerprints; [`hostname`]: host names.
//! - [`vectors`] (feature `signing`): the format's test vectors.

#![forbid(unsafe_code)]

#[macro_use]
mod wire_enum;

pub mod checkpoint;
pub mod codec;
pub mod describe;
pub mod frame;
pub mod hash;
pub mod hex;
pub mod hostname;
pub mod keys;
pub mod receipt;
pub mod record;
pub mod seal;
pub mod tip;
pub mod trust;
#[cfg(feature = "signing")]
pub mod vectors;
pub mod verify;

pub use codec::DecodeError;
pub use hash::{Digest, ZERO_HEAD};
pub use keys::seal_message;
#[cfg(feature = "signing")]
pub use keys::SecretKey;
pub use record::{Body, ChainId, Kind, Record};
