//! The chain core: record model, canonical encoding, hashing, seals, key
//! evolution and the verifier. No tokio, no network, no filesystem.

pub(crate) mod codec;
pub mod frame;
pub mod hash;
pub mod hex;
pub mod hostname;
pub mod keys;
pub mod record;
pub mod seal;
pub mod tip;
pub mod trust;
pub mod verify;

pub use codec::DecodeError;
pub use hash::{Digest, ZERO_HEAD};
pub use keys::{seal_message, SecretKey};
pub use record::{Body, ChainId, Kind, Record};
