//! The agent's receipts (docs/FORMAT.md §7.2): what a collector signed it
//! holds of this host's chain, checked against what the agent sent and kept.
//!
//! ```text
//! STATE/receipts/<chain id>.receipt   the latest receipt of that chain
//! ```
//! A receipt file is `"LSEALRCT" ‖ position:u64 ‖ len:u32 ‖ receipt ‖
//! CRC32C(everything before)`, where `position` is the spool position just
//! after the record the receipt names. It is written atomically (temp, fsync,
//! rename, fsync of the directory), at most every [`FLUSH_EVERY`] while acks
//! arrive and whenever the shipper goes idle or its session ends.
//!
//! Invariants: a receipt is kept only after it verified under the key it
//! names, named the collector of the session, the chain of the batch, the
//! seq the Ack acknowledges and, where the shipper knows it, the head after
//! that record as the agent computed it from the bytes it sent. A receipt
//! that does not is an error: the batch is not taken as acknowledged, so no
//! spool segment is deleted on its strength.

use crate::chain::hash::{self, Digest, ZERO_HEAD};
use crate::chain::receipt::{self, Receipt};
use crate::chain::{ChainId, Kind};
use crate::storage::fsutil;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A receipt file's first bytes.
pub const FILE_MAGIC: &[u8; 8] = b"LSEALRCT";
/// The largest receipt file.
pub const MAX_FILE: u64 = (8 + 8 + 4 + receipt::MAX_LEN + 4) as u64;
/// While acks arrive, the latest receipt is written at most this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The directory of the receipts in an agent's state directory.
pub fn dir(state: &Path) -> PathBuf {
    state.join("receipts")
}

/// The file of `chain`'s latest receipt.
pub fn path(dir: &Path, chain: ChainId) -> PathBuf {
    dir.join(format!("{chain}.receipt"))
}

/// Encodes a receipt file.
pub fn encode_file(position: u64, receipt: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(receipt.len() + 24);
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(&position.to_be_bytes());
    out.extend_from_slice(&(receipt.len() as u32).to_be_bytes());
    out.extend_from_slice(receipt);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Why a receipt file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading it failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// Its bytes are not a receipt file (nor a bare receipt).
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads a receipt file, or a bare receipt (a file holding only the
/// receipt's bytes): the spool position (if the file says one) and the
/// receipt, verified under the key it names.
pub fn read_file(path: &Path) -> Result<(Option<u64>, Receipt), FileError> {
    let b = fsutil::read_bounded(path, MAX_FILE).map_err(|cause| FileError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let invalid = |why: String| FileError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let (position, bytes) = if b.starts_with(receipt::MAGIC) {
        (None, &b[..])
    } else {
        let Some(body) = b.strip_prefix(FILE_MAGIC) else {
            return Err(invalid(
                "not a receipt file (it starts with neither LSEALRCT nor logseal/receipt/v1)"
                    .into(),
            ));
        };
        if body.len() < 16 {
            return Err(invalid("the file ends early".into()));
        }
        let n = b.len();
        let crc = u32::from_be_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        if crc32c::crc32c(&b[..n - 4]) != crc {
            return Err(invalid("checksum mismatch (the file is damaged)".into()));
        }
        let position = u64::from_be_bytes(body[..8].try_into().unwrap_or([0; 8]));
        let len = u32::from_be_bytes(body[8..12].try_into().unwrap_or([0; 4])) as usize;
        let rest = &body[12..body.len() - 4];
        if rest.len() != len {
            return Err(invalid(format!(
                "the receipt is {} bytes, the file says {len}",
                rest.len()
            )));
        }
        (Some(position), rest)
    };
    let r = Receipt::decode_verified(bytes).map_err(|e| invalid(e.to_string()))?;
    Ok((position, r))
}

/// The head after the last record the shipper read, where it can know it:
/// from a Genesis (its head follows from the zero head), from a seal (it
/// names the head before it), or from the head after the record before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heads {
    /// Chain, seq and head after that record; `None`: not known.
    pub at: Option<(ChainId, u64, Digest)>,
}

impl Heads {
    /// Steps over one record `rec` of `chain` at `seq`, as read from the spool.
    pub fn step(&mut self, chain: ChainId, seq: u64, rec: &[u8]) {
        let kind = hash::kind_of(rec);
        let before = match self.at {
            Some((c, s, h)) if c == chain && s.checked_add(1) == Some(seq) => Some(h),
            _ if seq == 0 && kind == Kind::Genesis as u8 => Some(ZERO_HEAD),
            // A seal names the head before it (its record: 34 bytes of
            // header, the epoch, then `covers_head`).
            _ if kind == Kind::Seal as u8 && rec.len() >= 74 => rec[42..74].try_into().ok(),
            _ => None,
        };
        self.at = before.map(|h| (chain, seq, hash::head(&h, kind, &hash::leaf(rec))));
    }
}

/// The latest receipt of the chain being shipped, written at most every
/// [`FLUSH_EVERY`].
#[derive(Debug)]
pub struct Book {
    dir: PathBuf,
    pending: Option<(ChainId, u64, Vec<u8>)>,
    written: Option<Instant>,
}

impl Book {
    /// The receipts kept in `dir` (created if missing).
    pub fn open(dir: &Path) -> io::Result<Book> {
        std::fs::create_dir_all(dir)?;
        let _ = fsutil::remove_stale_temps(dir);
        Ok(Book {
            dir: dir.to_path_buf(),
            pending: None,
            written: None,
        })
    }

    /// The head at spool position `position`, if a kept receipt names the
    /// record just before it (so shipping resumes knowing the head).
    pub fn head_at(&self, position: u64) -> Heads {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Heads::default();
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "receipt") {
                if let Ok((Some(at), r)) = read_file(&p) {
                    if at == position {
                        return Heads {
                            at: Some((r.chain, r.seq, r.head)),
                        };
                    }
                }
            }
        }
        Heads::default()
    }

    /// Keeps `receipt`, which names the record of `chain` ending at spool
    /// position `position`; writes it if the last write is old enough.
    pub fn keep(&mut self, chain: ChainId, position: u64, receipt: Vec<u8>) -> io::Result<()> {
        self.pending = Some((chain, position, receipt));
        if self.written.map_or(true, |t| t.elapsed() >= FLUSH_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the receipt kept last, if it is not written yet.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((chain, position, r)) = self.pending.take() {
            let file = path(&self.dir, chain);
            if let Err(e) = fsutil::write_atomic(&file, &encode_file(position, &r), "receipt") {
                self.pending = Some((chain, position, r));
                return Err(e);
            }
            self.written = Some(Instant::now());
        }
        Ok(())
    }
}

/// What a receipt from the collector is checked against.
#[derive(Debug)]
pub struct Expected<'a> {
    /// The collector's name (its Welcome).
    pub collector: &'a str,
    /// This host.
    pub host: &'a str,
    /// The batch's chain.
    pub chain: ChainId,
    /// The seq the Ack acknowledges up to (exclusive).
    pub next_seq: u64,
    /// The batch's last record and the head after it, if known.
    pub last: (u64, Option<Digest>),
    /// The collector's log chain and epoch of the previous receipt of the session.
    pub previous: Option<(ChainId, u64)>,
}

/// Checks a receipt's bytes against what the agent sent; the receipt, or why
/// it does not match.
pub fn check(bytes: &[u8], x: &Expected<'_>) -> Result<Receipt, String> {
    let r = Receipt::decode_verified(bytes).map_err(|e| e.to_string())?;
    let hex = crate::chain::hex::encode;
    if r.collector != x.collector {
        return Err(format!(
            "it is signed for collector {:?}, the session's collector is {:?}",
            r.collector, x.collector
        ));
    }
    if r.host != x.host || r.chain != x.chain {
        return Err(format!(
            "it names chain {} of host {:?}, the batch was of chain {} of host {:?}",
            r.chain, r.host, x.chain, x.host
        ));
    }
    if r.seq.checked_add(1) != Some(x.next_seq) {
        return Err(format!(
            "it names seq {}, the Ack acknowledges up to seq {}",
            r.seq,
            x.next_seq.saturating_sub(1)
        ));
    }
    if let (seq, Some(head)) = x.last {
        if seq == r.seq && head != r.head {
            return Err(format!(
                "it names head {} after seq {}, the records this agent sent end in head {}",
                hex(&r.head),
                r.seq,
                hex(&head)
            ));
        }
    }
    if let Some((log, epoch)) = x.previous {
        if r.log_chain != log || r.log_epoch < epoch {
            return Err(format!(
                "it is signed in epoch {} of log {}, after a receipt of epoch {epoch} of log {log}",
                r.log_epoch, r.log_chain
            ));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn a_receipt_file_round_trips_and_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("logseal-receipts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = crate::chain::SecretKey::from_seed(&[1; 32]);
        let r = Receipt {
            collector: "c".into(),
            log_chain: ChainId([1; 16]),
            log_epoch: 3,
            log_key: key.public(),
            log_next_seq: 9,
            host: "h".into(),
            chain: ChainId([2; 16]),
            seq: 10,
            head: [4; 32],
        };
        let mut book = Book::open(&dir).unwrap();
        book.keep(r.chain, 777, r.sign(&key)).unwrap();
        let file = path(&dir, r.chain);
        assert_eq!(read_file(&file).unwrap(), (Some(777), r.clone()));
        assert_eq!(book.head_at(777).at, Some((r.chain, 10, [4; 32])));
        assert_eq!(book.head_at(778).at, None);
        let mut b = std::fs::read(&file).unwrap();
        b[30] ^= 1;
        std::fs::write(&file, &b).unwrap();
        let e = read_file(&file).unwrap_err().to_string();
        assert!(e.contains("checksum") && e.contains(".receipt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
