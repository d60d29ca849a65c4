//! The agent's receipts (docs/FORMAT.md §7.2): what a collector signed it
//! holds of this host's chain, checked against what the agent sent and kept.
//!
//! ```text
//! STATE/receipts/<chain id>-<collector log chain id>.receipt
//!                                     the latest receipt of that chain from that collector
//! ```
//! A receipt file is `"LSEALRCT" ‖ position:u64 ‖ checked:u8 ‖ len:u32 ‖
//! receipt ‖ CRC32C(everything before)`, where `position` is the spool
//! position just after the record the receipt names and `checked` is 1 if the
//! agent compared the head it names with the head it computed itself (only
//! then does shipping resume from it knowing the head). It is written
//! atomically (temp, fsync, rename, fsync of the directory), at most every
//! [`FLUSH_EVERY`] while acks arrive and whenever the shipper goes idle or its
//! session ends.
//!
//! Invariants: a receipt is kept only after it verified under the key it
//! names, named the collector of the session, the chain of the batch, the
//! batch's last seq and, where the shipper knows it (a batch ending at a
//! seal or a Genesis, see [`Heads`]), the head after that record as the
//! agent computed it from its own records. A receipt
//! that does not is an error: the batch is not taken as acknowledged, so no
//! spool segment is deleted on its strength.

use crate::chain::hash::{self, Digest, ZERO_HEAD};
use crate::chain::receipt::{self, Receipt};
use crate::chain::seal::SealFields;
use crate::chain::{ChainId, Kind};
use crate::storage::fsutil;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A receipt file's first bytes.
pub const FILE_MAGIC: &[u8; 8] = b"LSEALRCT";
/// The largest receipt file.
pub const MAX_FILE: u64 = (8 + 8 + 1 + 4 + receipt::MAX_LEN + 4) as u64;
/// While acks arrive, the latest receipt is written at most this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The directory of the receipts in an agent's state directory.
pub fn dir(state: &Path) -> PathBuf {
    state.join("receipts")
}

/// The file of `chain`'s latest receipt from the collector whose log is `log`.
pub fn path(dir: &Path, chain: ChainId, log: ChainId) -> PathBuf {
    dir.join(format!("{chain}-{log}.receipt"))
}

/// True for the name of a receipt file (in a `receipts` directory).
pub fn is_receipt_name(name: &str) -> bool {
    name.strip_suffix(".receipt").is_some_and(|stem| {
        stem.len() == 65
            && stem.as_bytes()[32] == b'-'
            && stem
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 32 || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A receipt kept in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The spool position just after the record it names (`None`: a bare
    /// receipt, not an agent's file).
    pub position: Option<u64>,
    /// The agent compared the head it names with its own.
    pub checked: bool,
    /// The receipt, its signature verified under the key it names.
    pub receipt: Receipt,
}

/// Encodes a receipt file.
pub fn encode_file(position: u64, checked: bool, receipt: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(receipt.len() + 25);
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(&position.to_be_bytes());
    out.push(u8::from(checked));
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
/// receipt's bytes), its signature verified under the key it names.
pub fn read_file(path: &Path) -> Result<Kept, FileError> {
    let b = fsutil::read_bounded(path, MAX_FILE).map_err(|cause| FileError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let invalid = |why: String| FileError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let (position, checked, bytes) = if b.starts_with(receipt::MAGIC) {
        (None, false, &b[..])
    } else {
        let Some(body) = b.strip_prefix(FILE_MAGIC) else {
            return Err(invalid(
                "not a receipt file (it starts with neither LSEALRCT nor logseal/receipt/v1)"
                    .into(),
            ));
        };
        if body.len() < 8 + 1 + 4 + 4 {
            return Err(invalid("the file ends early".into()));
        }
        let n = b.len();
        let crc = u32::from_be_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        if crc32c::crc32c(&b[..n - 4]) != crc {
            return Err(invalid("checksum mismatch (the file is damaged)".into()));
        }
        let position = u64::from_be_bytes(body[..8].try_into().unwrap_or([0; 8]));
        let checked = match body[8] {
            0 => false,
            1 => true,
            other => return Err(invalid(format!("checked flag {other}, not 0 or 1"))),
        };
        let len = u32::from_be_bytes(body[9..13].try_into().unwrap_or([0; 4])) as usize;
        let rest = &body[13..body.len() - 4];
        if rest.len() != len {
            return Err(invalid(format!(
                "the receipt is {} bytes, the file says {len}",
                rest.len()
            )));
        }
        (Some(position), checked, rest)
    };
    let receipt = Receipt::decode_verified(bytes).map_err(|e| invalid(e.to_string()))?;
    Ok(Kept {
        position,
        checked,
        receipt,
    })
}

/// The head after the last record the shipper read, where it knows it
/// without hashing every record: after a Genesis (it follows from the zero
/// head) and after a seal (it names the head before it). Batches end at
/// seals, so the receipt for every batch that carries one is checked against
/// the agent's own head; other receipts are checked on everything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heads {
    /// Chain, seq and head after that record; `None`: not known.
    pub at: Option<(ChainId, u64, Digest)>,
}

impl Heads {
    /// Steps over one record `rec` of `chain` at `seq`, as read from the spool.
    pub fn step(&mut self, chain: ChainId, seq: u64, rec: &[u8]) {
        let kind = hash::kind_of(rec);
        let before = if seq == 0 && kind == Kind::Genesis as u8 {
            Some(ZERO_HEAD)
        } else if kind == Kind::Seal as u8 {
            // A seal names the head before it; if that is not the head known
            // before it, neither is believed.
            let record = crate::chain::Record::decode(rec).ok();
            let covers = record
                .as_ref()
                .and_then(|r| SealFields::of(&r.body, rec))
                .map(|f| *f.covers_head);
            match (self.at, covers) {
                (Some((c, s, h)), Some(k)) if c == chain && s.checked_add(1) == Some(seq) => {
                    (h == k).then_some(k)
                }
                (_, k) => k,
            }
        } else {
            None
        };
        self.at = before.map(|h| (chain, seq, hash::head(&h, kind, &hash::leaf(rec))));
    }

    /// The head after `seq` of `chain`, if that is the record last read.
    pub fn after(&self, chain: ChainId, seq: u64) -> Option<Digest> {
        match self.at {
            Some((c, s, h)) if c == chain && s == seq => Some(h),
            _ => None,
        }
    }
}

/// The latest receipt of the chain being shipped, written at most every
/// [`FLUSH_EVERY`].
#[derive(Debug)]
pub struct Book {
    dir: PathBuf,
    pending: Option<Pending>,
    written: Option<Instant>,
}

#[derive(Debug)]
struct Pending {
    chain: ChainId,
    log: ChainId,
    position: u64,
    checked: bool,
    bytes: Vec<u8>,
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

    /// The head at spool position `position`, if a kept receipt whose head
    /// the agent checked names the record just before it (so shipping
    /// resumes knowing the head).
    pub fn head_at(&self, position: u64) -> Heads {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Heads::default();
        };
        for e in entries.flatten() {
            if !is_receipt_name(&e.file_name().to_string_lossy()) {
                continue;
            }
            if let Ok(k) = read_file(&e.path()) {
                if k.checked && k.position == Some(position) {
                    let r = k.receipt;
                    return Heads {
                        at: Some((r.chain, r.seq, r.head)),
                    };
                }
            }
        }
        Heads::default()
    }

    /// Keeps `receipt` (`r`, its bytes `bytes`), which names the record
    /// ending at spool position `position`; `checked`: its head was compared
    /// with the agent's. Writes it if the last write is old enough.
    pub fn keep(
        &mut self,
        r: &Receipt,
        position: u64,
        checked: bool,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        // Another chain or collector: the receipt kept before is written first.
        if self
            .pending
            .as_ref()
            .is_some_and(|p| (p.chain, p.log) != (r.chain, r.log_chain))
        {
            self.flush()?;
        }
        self.pending = Some(Pending {
            chain: r.chain,
            log: r.log_chain,
            position,
            checked,
            bytes,
        });
        if self.written.map_or(true, |t| t.elapsed() >= FLUSH_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the receipt kept last, if it is not written yet.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(p) = self.pending.take() {
            let file = path(&self.dir, p.chain, p.log);
            let bytes = encode_file(p.position, p.checked, &p.bytes);
            if let Err(e) = fsutil::write_atomic(&file, &bytes, "receipt") {
                self.pending = Some(p);
                return Err(e);
            }
            self.written = Some(Instant::now());
        }
        Ok(())
    }
}

/// Why a receipt from the collector is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

/// What a receipt from the collector is checked against.
#[derive(Debug)]
pub struct Expected<'a> {
    /// The collector's name (its Welcome).
    pub collector: &'a str,
    /// This host.
    pub host: &'a str,
    /// The batch's chain.
    pub chain: ChainId,
    /// The seq the receipt must name: the last record the batch carried
    /// (or, for a Resume, the one before the collector's next seq).
    pub seq: u64,
    /// The head after it, if the agent knows it.
    pub head: Option<Digest>,
    /// The collector's log chain and epoch of the previous receipt of the session.
    pub previous: Option<(ChainId, u64)>,
}

/// Checks a receipt's bytes against what the agent sent; the receipt, or why
/// it does not match.
pub fn check(bytes: &[u8], x: &Expected<'_>) -> Result<Receipt, Mismatch> {
    let r = Receipt::decode_verified(bytes).map_err(|e| Mismatch(e.to_string()))?;
    check_decoded(&r, x)?;
    Ok(r)
}

/// [`check`] of a decoded receipt.
fn check_decoded(r: &Receipt, x: &Expected<'_>) -> Result<(), Mismatch> {
    let no = |m: String| Err(Mismatch(m));
    let hex = crate::chain::hex::encode;
    if r.collector != x.collector {
        return no(format!(
            "it is signed for collector {:?}, the session's collector is {:?}",
            r.collector, x.collector
        ));
    }
    if r.host != x.host || r.chain != x.chain {
        return no(format!(
            "it names chain {} of host {:?}, the records sent were of chain {} of host {:?}",
            r.chain, r.host, x.chain, x.host
        ));
    }
    if r.seq != x.seq {
        return no(format!(
            "it names seq {}, the last record sent was seq {}",
            r.seq, x.seq
        ));
    }
    if let Some(head) = x.head.filter(|h| *h != r.head) {
        return no(format!(
            "it names head {} after seq {}, the records this agent holds give head {}",
            hex(&r.head),
            r.seq,
            hex(&head)
        ));
    }
    if let Some((log, epoch)) = x.previous {
        if r.log_chain != log || r.log_epoch < epoch {
            return no(format!(
                "it is signed in epoch {} of log {}, after a receipt of epoch {epoch} of log {log}",
                r.log_epoch, r.log_chain
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::*;

    /// A receipt of collector `c` for seq 10 of host `h`'s chain.
    fn receipt(key: &crate::chain::SecretKey) -> Receipt {
        Receipt {
            collector: "c".into(),
            log_chain: ChainId([1; 16]),
            log_epoch: 3,
            log_key: key.public(),
            log_next_seq: 9,
            host: "h".into(),
            chain: ChainId([2; 16]),
            seq: 10,
            head: [4; 32],
        }
    }

    #[test]
    fn a_receipt_file_round_trips_and_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("logseal-receipts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = crate::chain::SecretKey::from_seed(&[1; 32]);
        let r = receipt(&key);
        let mut book = Book::open(&dir).unwrap();
        book.keep(&r, 777, true, r.sign(&key)).unwrap();
        let file = path(&dir, r.chain, r.log_chain);
        assert!(is_receipt_name(
            &file.file_name().unwrap().to_string_lossy()
        ));
        let k = read_file(&file).unwrap();
        assert_eq!((k.position, k.checked, &k.receipt), (Some(777), true, &r));
        assert_eq!(book.head_at(777).at, Some((r.chain, 10, [4; 32])));
        assert_eq!(book.head_at(778).at, None);
        // A receipt whose head the agent could not compare does not seed it.
        book.keep(&r, 777, false, r.sign(&key)).unwrap();
        book.flush().unwrap();
        assert_eq!(book.head_at(777).at, None);
        let mut b = std::fs::read(&file).unwrap();
        b[30] ^= 1;
        std::fs::write(&file, &b).unwrap();
        let e = read_file(&file).unwrap_err().to_string();
        assert!(e.contains("checksum") && e.contains(".receipt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_receipt_that_differs_from_what_was_sent_is_refused_saying_how() {
        let key = crate::chain::SecretKey::from_seed(&[1; 32]);
        let good = receipt(&key);
        let x = Expected {
            collector: "c",
            host: "h",
            chain: good.chain,
            seq: 10,
            head: Some([4; 32]),
            previous: Some((good.log_chain, 3)),
        };
        assert_eq!(check(&good.sign(&key), &x).unwrap(), good);
        type Lie = fn(&mut Receipt);
        let lies: [(Lie, &str); 6] = [
            (|r| r.head[0] ^= 1, "the records this agent holds give head"),
            (|r| r.seq = 9, "the last record sent was seq 10"),
            (
                |r| r.chain = ChainId([3; 16]),
                "the records sent were of chain",
            ),
            (|r| r.host = "g".into(), "the records sent were of chain"),
            (|r| r.collector = "d".into(), "the session's collector is"),
            (|r| r.log_epoch = 2, "after a receipt of epoch 3"),
        ];
        for (lie, says) in lies {
            let mut r = good.clone();
            lie(&mut r);
            let e = check(&r.sign(&key), &x).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let mut sig = good.sign(&key);
        let n = sig.len();
        sig[n - 1] ^= 1;
        assert!(check(&sig, &x)
            .unwrap_err()
            .to_string()
            .contains("signature"));
        // Without the agent's head, the head is not compared.
        let mut r = good.clone();
        r.head = [0; 32];
        let unknown = Expected { head: None, ..x };
        assert!(check(&r.sign(&key), &unknown).is_ok());
    }
}
