//! Forward-secure Ed25519 keys: signing (`ed25519-dalek`) and verification (`ring`).
//!
//! Why two crates: a seal key must be *erased* when its epoch ends. `ring`'s
//! `Ed25519KeyPair` keeps its secret in memory it never zeroizes; `ed25519-dalek`'s
//! `SigningKey` implements `ZeroizeOnDrop`, so dropping a [`SecretKey`] wipes the
//! expanded secret. Verification holds no secrets, so it uses `ring` like the rest
//! of the hashing, and the verifier does not depend on the signing crate at all.
//!
//! Key evolution: every seal at epoch `j` is signed with `sk_j` and names `pk_{j+1}`,
//! a *freshly generated* key (not derived from `sk_j`), so holding `sk_{j+1}` says
//! nothing about `sk_j`.

use ed25519_dalek::{Signer, SigningKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Domain separation prefix of every seal signature.
pub const SEAL_DOMAIN: &[u8] = b"logseal/seal/v1\0";

/// The bytes a seal signature covers: [`SEAL_DOMAIN`] followed by the encoded seal
/// record without its final 64 signature bytes.
pub fn seal_message(encoded_seal_without_signature: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SEAL_DOMAIN.len() + encoded_seal_without_signature.len());
    m.extend_from_slice(SEAL_DOMAIN);
    m.extend_from_slice(encoded_seal_without_signature);
    m
}

/// An Ed25519 secret key that is wiped from memory when dropped.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<SecretKey, ring::error::Unspecified> {
        let mut seed = Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(seed.as_mut())?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// A key from a 32-byte seed (state files, test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for writing the state file. The copy is zeroized on drop.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(pk={})", crate::hex::encode(&self.public()))
    }
}

/// Checks an Ed25519 signature with `ring`.
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk)
        .verify(msg, sig)
        .is_ok()
}
