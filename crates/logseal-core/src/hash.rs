//! Leaf and head hashing (SHA-256, domain-separated), from `ring`.
//!
//! ```text
//! leaf_i = SHA-256(0x00 || record_i)
//! head_i = SHA-256(0x01 || head_{i-1} || kind_i || leaf_i)     head_{-1} = 32 zero bytes
//! ```
//!
//! Chaining digests rather than contents lets a record be redacted later (keep
//! its kind byte and leaf, drop its bytes) without breaking the chain; the kind
//! byte enters the head so that a redacted frame cannot claim another kind.

use ring::digest::{Context, SHA256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The head before the first record.
pub const ZERO_HEAD: Digest = [0u8; 32];

/// `SHA-256(0x00 || record)`.
pub fn leaf(record: &[u8]) -> Digest {
    let mut c = Context::new(&SHA256);
    c.update(&[0x00]);
    c.update(record);
    to_array(c.finish())
}

/// `SHA-256(0x01 || prev_head || kind || leaf)`: `kind` is the record's kind
/// byte (its second byte; a redacted frame's kind field).
pub fn head(prev: &Digest, kind: u8, leaf: &Digest) -> Digest {
    let mut buf = [0u8; 66];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(prev);
    buf[33] = kind;
    buf[34..].copy_from_slice(leaf);
    to_array(ring::digest::digest(&SHA256, &buf))
}

/// The kind byte of an encoded record (0 if it is too short to have one).
pub fn kind_of(record: &[u8]) -> u8 {
    record.get(1).copied().unwrap_or(0)
}

/// Plain SHA-256, for fingerprints.
pub fn sha256(data: &[u8]) -> Digest {
    to_array(ring::digest::digest(&SHA256, data))
}

fn to_array(d: ring::digest::Digest) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Fingerprint of a public key as shown to people: `SHA256:` and the first
/// 16 bytes of `SHA-256(pk)` in hex.
pub fn fingerprint(pk: &[u8; 32]) -> String {
    format!("SHA256:{}", crate::hex::encode(&sha256(pk)[..16]))
}
