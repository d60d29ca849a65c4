//! Signed receipts (docs/FORMAT.md §7.2): a collector's signed statement that
//! it held a host's chain durably up to a seq, with the head after it.
//!
//! ```text
//! receipt := "logseal/receipt/v1" 0x00 | collector:str | log_chain:[16]
//!            | log_epoch:u64 | log_key:[32] | log_next_seq:u64
//!            | host:str | chain:[16] | seq:u64 | head:[32] | signature:[64]
//! ```
//! The signature is Ed25519 by the secret key of epoch `log_epoch` of the
//! collector's checkpoint log (`log_chain`), whose public key is `log_key`,
//! over every byte before it. The key is the one the log's key chain names
//! for that epoch, and it is erased at the log's next seal: a receipt cannot
//! be made for an epoch the collector has left, not even by whoever takes the
//! collector later.
//!
//! What holds a receipt to the collector is the log's key chain: the verifier
//! of a receipt alone learns only that its bytes are what `log_key` signed.

use crate::codec::{Dec, DecodeError, Enc};
use crate::record::ChainId;

/// The receipt's first bytes (and the signature's domain).
pub const MAGIC: &[u8] = b"logseal/receipt/v1\0";

/// The longest receipt: two host names of at most 253 bytes and the fixed fields.
pub const MAX_LEN: usize = MAGIC.len() + 2 * (4 + 253) + 16 + 8 + 32 + 8 + 16 + 8 + 32 + 64;

/// What a receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The collector: its checkpoint log's Genesis host.
    pub collector: String,
    /// The collector's checkpoint log.
    pub log_chain: ChainId,
    /// The log's epoch whose key signed.
    pub log_epoch: u64,
    /// That epoch's public key.
    pub log_key: [u8; 32],
    /// The seq of the log's record after the seal that made the signing key
    /// current (informational: how far the log had come).
    pub log_next_seq: u64,
    /// The host whose chain it is.
    pub host: String,
    /// The chain.
    pub chain: ChainId,
    /// The last record the collector held durably.
    pub seq: u64,
    /// The chain's head after it.
    pub head: [u8; 32],
}

/// Why receipt bytes are not a valid receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The bytes do not decode as a receipt.
    #[error("not a receipt: {0}")]
    Malformed(DecodeError),
    /// The signature is not `log_key`'s over the receipt.
    #[error("the signature does not verify under the key it names")]
    BadSignature,
}

impl Receipt {
    /// The signed bytes (everything but the signature).
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_LEN);
        out.extend_from_slice(MAGIC);
        let mut e = Enc(&mut out);
        e.str(&self.collector);
        e.fixed(&self.log_chain.0);
        e.u64(self.log_epoch);
        e.fixed(&self.log_key);
        e.u64(self.log_next_seq);
        e.str(&self.host);
        e.fixed(&self.chain.0);
        e.u64(self.seq);
        e.fixed(&self.head);
        out
    }

    /// The encoded receipt signed with `key`, the log's key of `log_epoch`
    /// (feature `signing`).
    #[cfg(feature = "signing")]
    pub fn sign(&self, key: &crate::keys::SecretKey) -> Vec<u8> {
        let mut out = self.message();
        let sig = key.sign(&out);
        out.extend_from_slice(&sig);
        out
    }

    /// Decodes a receipt and checks its signature under the key it names
    /// (strictly, as seals are: docs/FORMAT.md §4.10).
    pub fn decode_verified(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let malformed = ReceiptError::Malformed;
        if bytes.len() > MAX_LEN {
            return Err(malformed(DecodeError {
                at: MAX_LEN,
                reason: "longer than any receipt",
            }));
        }
        let body = bytes.strip_prefix(MAGIC).ok_or(malformed(DecodeError {
            at: 0,
            reason: "not a receipt (bad magic)",
        }))?;
        let mut d = Dec::new(body);
        let r = (|| {
            Ok::<_, DecodeError>(Receipt {
                collector: d.str()?.to_string(),
                log_chain: ChainId(d.array()?),
                log_epoch: d.u64()?,
                log_key: d.array()?,
                log_next_seq: d.u64()?,
                host: d.str()?.to_string(),
                chain: ChainId(d.array()?),
                seq: d.u64()?,
                head: d.array()?,
            })
        })()
        .map_err(malformed)?;
        let sig: [u8; 64] = d.array().map_err(malformed)?;
        d.finish().map_err(malformed)?;
        let signed = &bytes[..bytes.len() - 64];
        if !crate::keys::verify(&r.log_key, signed, &sig) {
            return Err(ReceiptError::BadSignature);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::SecretKey;

    fn receipt(key: &SecretKey) -> Receipt {
        Receipt {
            collector: "collector-1".into(),
            log_chain: ChainId([7; 16]),
            log_epoch: 12,
            log_key: key.public(),
            log_next_seq: 40,
            host: "web-1".into(),
            chain: ChainId([9; 16]),
            seq: 1234,
            head: [5; 32],
        }
    }

    #[test]
    fn a_signed_receipt_round_trips_and_any_change_is_refused() {
        let key = SecretKey::from_seed(&[3; 32]);
        let r = receipt(&key);
        let b = r.sign(&key);
        assert_eq!(Receipt::decode_verified(&b).unwrap(), r);
        // Every byte flipped: refused (bad magic, malformed or bad signature),
        // never accepted as another receipt.
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x01;
            assert!(Receipt::decode_verified(&x).is_err(), "byte {i}");
        }
        // Every truncation, and a byte more.
        for n in 0..b.len() {
            assert!(Receipt::decode_verified(&b[..n]).is_err(), "cut at {n}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(Receipt::decode_verified(&longer).is_err());
    }

    #[test]
    fn a_receipt_signed_by_another_key_than_it_names_is_refused() {
        let key = SecretKey::from_seed(&[3; 32]);
        let other = SecretKey::from_seed(&[4; 32]);
        let b = receipt(&key).sign(&other);
        assert_eq!(
            Receipt::decode_verified(&b),
            Err(ReceiptError::BadSignature)
        );
    }
}
