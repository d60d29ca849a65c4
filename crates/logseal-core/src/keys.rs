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

#[cfg(feature = "signing")]
use ed25519_dalek::{Signer, SigningKey};
#[cfg(feature = "signing")]
use ring::rand::{SecureRandom, SystemRandom};
#[cfg(feature = "signing")]
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

/// An Ed25519 secret key that is wiped from memory when dropped (feature
/// `signing`).
#[cfg(feature = "signing")]
pub struct SecretKey(SigningKey);

#[cfg(feature = "signing")]
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

#[cfg(feature = "signing")]
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(pk={})", crate::hex::encode(&self.public()))
    }
}

/// The eight canonical encodings of the points of small order (1, 2, 4 and 8)
/// on edwards25519. A key or a signature's `R` equal to one of them is refused:
/// with a small-order key the cofactorless equation holds for forged
/// signatures, so such a key proves nothing.
const SMALL_ORDER: [[u8; 32]; 8] = [
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
];

/// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const ORDER_L: [u8; 32] = hex32("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// `a < b` for 32-byte little-endian integers.
fn less_le(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

/// True if `p` is the canonical encoding of a point: its y coordinate (the low
/// 255 bits, little-endian) is below 2^255 - 19, and the sign bit is clear when
/// x = 0 (y = 1 or y = p - 1).
fn canonical_point(p: &[u8; 32]) -> bool {
    let mut y = *p;
    y[31] &= 0x7f;
    const FIELD_P: [u8; 32] =
        hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    if !less_le(&y, &FIELD_P) {
        return false;
    }
    let sign = p[31] & 0x80 != 0;
    let x_is_zero = y == SMALL_ORDER[2] || y == SMALL_ORDER[3];
    !(sign && x_is_zero)
}

/// True if `pk` can serve as a seal key: a canonical encoding of a point that is
/// not of small order (whether it is on the curve at all is checked with the
/// signature).
pub fn acceptable_key(pk: &[u8; 32]) -> bool {
    canonical_point(pk) && !SMALL_ORDER.contains(pk)
}

/// Checks an Ed25519 signature strictly (docs/FORMAT.md, "Signatures"): the key
/// and the signature's `R` are canonical encodings of points not of small order,
/// `S` is below the group order, and `[S]B = R + [k]A` holds (checked by `ring`,
/// which compares the encoding of the computed `R` with the signature's bytes).
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    if !acceptable_key(pk) || !acceptable_key(&r) || !less_le(&s, &ORDER_L) {
        return false;
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk)
        .verify(msg, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strict_rules() {
        let sk = SecretKey::from_seed(&[9; 32]);
        let pk = sk.public();
        let sig = sk.sign(b"m");
        assert!(verify(&pk, b"m", &sig));
        assert!(!verify(&pk, b"n", &sig));
        // S + L: the same signature with a non-reduced scalar.
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig[32..]);
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s[i] as u16 + ORDER_L[i] as u16 + carry;
            s[i] = v as u8;
            carry = v >> 8;
        }
        if carry == 0 && s[31] < 0x20 {
            let mut bad = sig;
            bad[32..].copy_from_slice(&s);
            assert!(!verify(&pk, b"m", &bad));
        }
        // With the identity as key and R = [S]B, the cofactorless equation holds
        // for every message; the strict check refuses the key.
        let any = SecretKey::from_seed(&[3; 32]);
        let forged = any.sign(b"x"); // any R, S; not valid, but the key is refused first
        for k in SMALL_ORDER {
            assert!(!acceptable_key(&k));
            assert!(!verify(&k, b"x", &forged));
        }
        // Non-canonical: y = p (encodes 0), and x = 0 with the sign bit set.
        let y_p = hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert!(!acceptable_key(&y_p));
        let mut one_neg = SMALL_ORDER[2];
        one_neg[31] |= 0x80;
        assert!(!canonical_point(&one_neg));
        assert!(acceptable_key(&pk));
    }
}
