//! The signer state file: the current forward-secure key and where the chain resumes.
//!
//! ```text
//! DIR/signer.state  (mode 0600, replaced only with fsutil::write_secret)
//!   "LSEALKEY" | version:u16 = 1
//!   chain_id:[16] | host:str
//!   epoch:u64                      key epoch j of `current`
//!   current:[32]                   seed of sk_j
//!   pending:u8 (0|1) [+ seed:[32]] sk_{j+1}, generated before seal j is written
//!   resume_seq:u64 | resume_head:[32] | resume_offset:u64
//!                                  the record at resume_offset in the log has seq
//!                                  resume_seq and follows head resume_head
//!   genesis:bytes                  while resume_seq = 0: the encoded Genesis to
//!                                  write if a crash kept it out of the log
//!   crc32c:u32                     over everything before it
//! ```
//! (`str` = u32 length + UTF-8, integers big-endian.)
//!
//! The seal protocol and what a crash at each step leaves (see `writer.rs`):
//!
//! | step | state file | log | on restart |
//! |---|---|---|---|
//! | 1. write state with `pending = sk_{j+1}` | old or new | no seal j | seal j absent: pending discarded, `sk_j` seals again |
//! | 2. append seal j (signed by `sk_j`, names `pk_{j+1}`), fsync log | has pending | seal j maybe torn/complete | complete seal j: roll forward to `sk_{j+1}`; torn: cut, as step 1 |
//! | 3. write state `epoch j+1, current = sk_{j+1}`, no pending; scrub the old file | new | seal j durable | nothing to do |
//!
//! A key never signs two durable seals: `sk_j` signs again only if its first
//! seal never reached the log. After step 3 no file in DIR holds `sk_j`.

use crate::chain::hash::Digest;
use crate::chain::{ChainId, SecretKey};
use crate::storage::fsutil;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"LSEALKEY";
const VERSION: u16 = 1;
/// File name of the signer state inside the state directory.
pub const FILE: &str = "signer.state";

/// The most a signer state file may hold: a key, counters and the Genesis
/// record (itself at most 1 MiB).
pub const MAX_STATE_FILE: u64 = 2 << 20;

/// Where the chain resumes in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Seq of the next record expected at `offset`.
    pub seq: u64,
    /// Head of the chain before that record.
    pub head: Digest,
    /// Log offset of that record.
    pub offset: u64,
}

/// The decoded signer state.
pub struct SignerState {
    /// Chain.
    pub chain_id: ChainId,
    /// Host the chain belongs to.
    pub host: String,
    /// Epoch of `current`.
    pub epoch: u64,
    /// `sk_epoch`.
    pub current: SecretKey,
    /// `sk_{epoch+1}` while seal `epoch` is being written.
    pub pending: Option<SecretKey>,
    /// Resume point.
    pub resume: Resume,
    /// The encoded Genesis record, kept until it is known to be in the log.
    pub genesis: Vec<u8>,
}

/// What is wrong with a state file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not this file type.
    #[error("not a logseal signer state file (bad magic)")]
    Magic,
    /// The checksum does not match.
    #[error("signer state checksum mismatch (file damaged)")]
    Checksum,
    /// A version this build does not read.
    #[error("unsupported signer state version {0}")]
    Version(u16),
    /// Shorter than its fields say.
    #[error("signer state ends early")]
    Short,
    /// The host name is not UTF-8.
    #[error("host name is not UTF-8")]
    Host,
    /// The pending-key flag is neither 0 nor 1.
    #[error("bad pending flag {0}")]
    PendingFlag(u8),
    /// Bytes after the last field.
    #[error("trailing bytes in signer state")]
    Trailing,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// No state file.
    #[error("no signer state at {0}")]
    Missing(PathBuf),
    /// Reading failed.
    #[error("{path}: {cause}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause (shown in the message, not chained again after it).
        cause: io::Error,
    },
    /// The Genesis copy is not a Genesis record.
    #[error("{0}: not a Genesis record")]
    NotGenesis(PathBuf),
    /// Neither the Genesis copy nor the signer state holds the Genesis.
    #[error("{path}: {cause} (and the signer state no longer holds the Genesis)")]
    NoGenesis {
        /// The Genesis copy.
        path: PathBuf,
        /// Why it could not be read.
        cause: io::Error,
    },
    /// The content is not a valid state file.
    #[error("{path}: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: DecodeError,
    },
}

impl SignerState {
    /// The path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Encodes the state. The buffer is zeroized on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        // Allocated at its exact size: a Vec that grew would leave a copy of
        // the seeds in a freed allocation that `Zeroizing` never wipes.
        let len = self.encoded_len();
        let mut v = Zeroizing::new(Vec::with_capacity(len));
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&VERSION.to_be_bytes());
        v.extend_from_slice(&self.chain_id.0);
        v.extend_from_slice(&(self.host.len() as u32).to_be_bytes());
        v.extend_from_slice(self.host.as_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(self.current.seed().as_ref());
        match &self.pending {
            None => v.push(0),
            Some(k) => {
                v.push(1);
                v.extend_from_slice(k.seed().as_ref());
            }
        }
        v.extend_from_slice(&self.resume.seq.to_be_bytes());
        v.extend_from_slice(&self.resume.head);
        v.extend_from_slice(&self.resume.offset.to_be_bytes());
        v.extend_from_slice(&(self.genesis.len() as u32).to_be_bytes());
        v.extend_from_slice(&self.genesis);
        let crc = crc32c::crc32c(&v);
        v.extend_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(v.len(), len);
        v
    }

    /// The length of [`encode`](Self::encode)'s output.
    fn encoded_len(&self) -> usize {
        MAGIC.len()
            + 2 // version
            + 16 // chain id
            + 4
            + self.host.len()
            + 8 // epoch
            + 32 // current seed
            + 1
            + if self.pending.is_some() { 32 } else { 0 }
            + 8 // resume seq
            + 32 // resume head
            + 8 // resume offset
            + 4
            + self.genesis.len()
            + 4 // crc
    }

    /// Decodes a state file's bytes.
    pub fn decode(b: &[u8]) -> Result<SignerState, DecodeError> {
        if b.len() < 14 || &b[..8] != MAGIC {
            return Err(DecodeError::Magic);
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(DecodeError::Checksum);
        }
        let mut p = 8usize;
        let mut take = |n: usize| -> Result<&[u8], DecodeError> {
            let s = body
                .get(p..p.checked_add(n).ok_or(DecodeError::Short)?)
                .ok_or(DecodeError::Short)?;
            p += n;
            Ok(s)
        };
        let u32_at = |s: &[u8]| u32::from_be_bytes(s.try_into().unwrap_or([0; 4]));
        let version = u16::from_be_bytes([take(1)?[0], take(1)?[0]]);
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let arr32 = |s: &[u8]| -> [u8; 32] {
            let mut a = [0u8; 32];
            a.copy_from_slice(s);
            a
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(take(16)?);
        let hl = u32_at(take(4)?) as usize;
        let host = std::str::from_utf8(take(hl)?)
            .map_err(|_| DecodeError::Host)?
            .to_string();
        let u64_at = |s: &[u8]| u64::from_be_bytes(s.try_into().unwrap_or([0; 8]));
        let epoch = u64_at(take(8)?);
        let seed = Zeroizing::new(arr32(take(32)?));
        let current = SecretKey::from_seed(&seed);
        let pending = match take(1)?[0] {
            0 => None,
            1 => {
                let s = Zeroizing::new(arr32(take(32)?));
                Some(SecretKey::from_seed(&s))
            }
            f => return Err(DecodeError::PendingFlag(f)),
        };
        let seq = u64_at(take(8)?);
        let head = arr32(take(32)?);
        let offset = u64_at(take(8)?);
        let gl = u32_at(take(4)?) as usize;
        let genesis = take(gl)?.to_vec();
        if p != body.len() {
            return Err(DecodeError::Trailing);
        }
        Ok(SignerState {
            chain_id: ChainId(id),
            host,
            epoch,
            current,
            pending,
            resume: Resume { seq, head, offset },
            genesis,
        })
    }

    /// Loads the state from `dir`.
    pub fn load(dir: &Path) -> Result<SignerState, StateError> {
        let path = Self::path(dir);
        let bytes = match fsutil::read_bounded(&path, MAX_STATE_FILE) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::Missing(path)),
            Err(cause) => return Err(StateError::Io { path, cause }),
        };
        SignerState::decode(&bytes).map_err(|reason| StateError::Invalid { path, reason })
    }

    /// Writes the state atomically, scrubbing the file it replaces. `step` names
    /// the crash points.
    pub fn store(&self, dir: &Path, step: &str) -> io::Result<()> {
        fsutil::write_secret(&Self::path(dir), &self.encode(), step)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encoding_is_allocated_once_at_its_exact_size() {
        for (pending, genesis) in [(false, 0usize), (true, 0), (false, 300), (true, 5000)] {
            let st = SignerState {
                chain_id: ChainId([3; 16]),
                host: "a-host-name".into(),
                epoch: 7,
                current: SecretKey::from_seed(&[1; 32]),
                pending: pending.then(|| SecretKey::from_seed(&[2; 32])),
                resume: Resume {
                    seq: 9,
                    head: [4; 32],
                    offset: 1234,
                },
                genesis: vec![5; genesis],
            };
            let v = st.encode();
            // Had the Vec grown, a freed allocation would still hold the seeds.
            assert_eq!(
                v.capacity(),
                v.len(),
                "pending {pending}, genesis {genesis}"
            );
            let back = SignerState::decode(&v).unwrap();
            assert_eq!(back.epoch, 7);
            assert_eq!(back.pending.is_some(), pending);
        }
    }
}
