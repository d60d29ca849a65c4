//! The seal rule: one function, used by the verifier and by the receiver's
//! [`Tip`](super::tip::Tip), so that the collector and `logseal verify` accept
//! exactly the same seals (docs/FORMAT.md §4.5).
//!
//! A seal at position `(key, epoch)` of a key chain is accepted iff, in this
//! order: its epoch is `epoch` (and below 2^64 - 1), its signer field is `key`, its signature
//! verifies strictly under `key` (see [`keys::verify`]), and the next key it
//! names was never used before in the chain (not its own signer, not the key of
//! any earlier epoch). The head it covers is checked by the caller, because
//! after damage the caller may not know the head and re-anchors on the seal.

use super::keys;

/// The key chain's expectation for the next seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPosition {
    /// The key that must sign the next seal.
    pub key: [u8; 32],
    /// The epoch the next seal must carry.
    pub epoch: u64,
}

/// The fields of a seal record the rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct SealFields<'a> {
    /// Claimed epoch.
    pub epoch: u64,
    /// Claimed signer.
    pub signer: &'a [u8; 32],
    /// Next key.
    pub next_pk: &'a [u8; 32],
    /// Signature.
    pub signature: &'a [u8; 64],
    /// The chain head it covers (compared with the chain, not by the rule).
    pub covers_head: &'a [u8; 32],
    /// The encoded seal record without its last 64 bytes (what is signed,
    /// after the domain prefix).
    pub signed: &'a [u8],
}

impl<'a> SealFields<'a> {
    /// The fields of `body`, a seal's, whose encoding is `encoded`; `None`
    /// for another kind. (A decoded seal's encoding ends with its 64-byte
    /// signature; were it shorter, nothing would be signed and the check
    /// would fail.)
    pub fn of(body: &'a crate::record::Body<'_>, encoded: &'a [u8]) -> Option<SealFields<'a>> {
        match body {
            crate::record::Body::Seal {
                epoch,
                signer,
                next_pk,
                signature,
                covers_head,
            } => Some(SealFields {
                epoch: *epoch,
                signer,
                next_pk,
                signature,
                covers_head,
                signed: &encoded[..encoded.len().saturating_sub(64)],
            }),
            _ => None,
        }
    }
}

/// Why a seal is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealFault {
    /// The seal's epoch is not the expected one.
    EpochMismatch {
        /// Epoch the key chain expects.
        expected: u64,
    },
    /// The seal names a signer other than the key chain's key.
    KeyNotInChain,
    /// The signature does not verify (strictly) under the key chain's key.
    BadSignature,
    /// The next key was used before: by this seal's signer, or as the key of
    /// `first_epoch`.
    KeyReused {
        /// The epoch whose key the next key repeats.
        first_epoch: u64,
    },
}

/// Applies the seal rule. `epoch_of(key)` returns the epoch whose key `key` was,
/// for keys of earlier epochs of this chain that the caller remembers.
pub fn check(
    at: KeyPosition,
    seal: &SealFields<'_>,
    epoch_of: impl Fn(&[u8; 32]) -> Option<u64>,
) -> Result<(), SealFault> {
    // A seal at epoch 2^64 - 1 would leave its successor no epoch.
    if seal.epoch != at.epoch || seal.epoch == u64::MAX {
        return Err(SealFault::EpochMismatch { expected: at.epoch });
    }
    if *seal.signer != at.key {
        return Err(SealFault::KeyNotInChain);
    }
    if !keys::verify(&at.key, &keys::seal_message(seal.signed), seal.signature) {
        return Err(SealFault::BadSignature);
    }
    if *seal.next_pk == at.key {
        return Err(SealFault::KeyReused {
            first_epoch: at.epoch,
        });
    }
    if let Some(first_epoch) = epoch_of(seal.next_pk) {
        return Err(SealFault::KeyReused { first_epoch });
    }
    Ok(())
}
