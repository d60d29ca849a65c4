//! Witnessed checkpoints (docs/FORMAT.md §7.1).
//!
//! `logseal checkpoint --store STORE` prints the newest accepted seal of the
//! store's checkpoint log as a small text block, to be kept where the
//! collector's host cannot reach it (a ticket, another team, a publication).
//! `logseal verify STORE --checkpoint FILE` then requires that seal, byte for
//! byte, among the log's accepted seals: everything the log had checkpointed
//! up to it is still there to check every chain against. Whoever holds the
//! collector's current key can cut the log after an earlier seal, together
//! with the chains it names, and still verify intact; a witnessed seal past
//! the cut shows it.
//!
//! The block is text, one field per line:
//!
//! ```text
//! logseal checkpoint v1
//! collector HOST
//! genesis SHA256:…          (the log chain's genesis key fingerprint)
//! seal CHAIN SEQ            (the log chain's id, hex, and the seal's seq)
//! time RFC3339              (the seal's time, for people)
//! record HEX                (the encoded seal record, §2)
//! ```
//!
//! A block is believed only if its record decodes as a seal of that chain
//! and seq, signed by the key it names (§4.5, §4.10).

use super::verify_files::InputError;
use crate::chain::record::{Body, Record};
use crate::chain::verify::{ChainReport, Unattributed, Verdict};
use crate::chain::{hex, keys, ChainId};
use std::path::{Path, PathBuf};

/// The largest witness file read (a block is about 600 bytes).
pub const MAX_WITNESS: u64 = 16 << 10;

const FIRST_LINE: &str = "logseal checkpoint v1";

/// A seal of a checkpoint log, witnessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The collector (the log chain's Genesis host).
    pub host: String,
    /// Its genesis key's fingerprint.
    pub genesis: String,
    /// The log's chain.
    pub chain: ChainId,
    /// The seal's seq.
    pub seq: u64,
    /// The seal's time, ns.
    pub time_ns: i64,
    /// The encoded seal record.
    pub record: Vec<u8>,
}

/// Why a block's text is not a witnessed checkpoint.
#[derive(Debug)]
struct Unbelieved(String);

impl From<String> for Unbelieved {
    fn from(s: String) -> Unbelieved {
        Unbelieved(s)
    }
}

impl From<&str> for Unbelieved {
    fn from(s: &str) -> Unbelieved {
        Unbelieved(s.to_string())
    }
}

/// Why a witness cannot be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The file is not a witnessed checkpoint.
    #[error("{}: not a witnessed checkpoint: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store's checkpoint log cannot be witnessed.
    #[error("{}: the checkpoint log cannot be witnessed: {reason}", store.display())]
    NotBelieved {
        /// The store.
        store: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Input(#[from] InputError),
}

impl Witness {
    /// The text block.
    pub fn text(&self) -> String {
        format!(
            "{FIRST_LINE}\ncollector {}\ngenesis {}\nseal {} {}\ntime {}\nrecord {}\n",
            self.host,
            self.genesis,
            self.chain,
            self.seq,
            crate::util::timefmt::rfc3339(self.time_ns),
            hex::encode(&self.record)
        )
    }

    /// Reads a block from `path` (at most [`MAX_WITNESS`] bytes, a regular
    /// file) and checks it.
    pub fn read(path: &Path) -> Result<Witness, WitnessError> {
        let bad = |reason: String| WitnessError::Bad {
            path: path.to_path_buf(),
            reason,
        };
        let text = crate::storage::fsutil::read_bounded_text(path, MAX_WITNESS)
            .map_err(|e| bad(e.to_string()))?;
        Witness::parse(&text).map_err(|e| bad(e.0))
    }

    /// A block's text, checked: every field, the record a seal of the named
    /// chain and seq, its signature valid under the key it names.
    fn parse(text: &str) -> Result<Witness, Unbelieved> {
        if text.contains('\r') {
            return Err("lines end with LF alone".into());
        }
        let mut lines = text.split('\n');
        if lines.next() != Some(FIRST_LINE) {
            return Err(format!("the first line is not {FIRST_LINE:?}").into());
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .filter(|v| !v.is_empty() && v.trim() == *v && !v.contains(char::is_control))
                .map(str::to_string)
                .ok_or_else(|| format!("expected a line `{name} VALUE`, one space between"))
        };
        let host = field("collector")?;
        let genesis = field("genesis")?;
        let seal = field("seal")?;
        let _time = field("time")?;
        let record = field("record")?;
        if !lower_hex(&record) {
            return Err("record: not lowercase hex digits".into());
        }
        let record = hex::decode(&record).ok_or("record: not hex digits")?;
        if lines.any(|l| !l.is_empty()) {
            return Err("text after the record line".into());
        }
        let (chain, seq) = seal
            .split_once(' ')
            .filter(|(c, s)| lower_hex(c) && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(c, s)| Some((chain_id(c)?, s.parse::<u64>().ok()?)))
            .ok_or("seal: expected CHAIN (32 lowercase hex digits) and SEQ (decimal)")?;
        let rec = Record::decode(&record).map_err(|e| format!("record: {e}"))?;
        let Body::Seal {
            signer, signature, ..
        } = &rec.body
        else {
            return Err(format!("record: a {}, not a seal", rec.kind().name()).into());
        };
        if (rec.chain_id, rec.seq) != (chain, seq) {
            return Err(format!(
                "record: seal {} {} where the block says {chain} {seq}",
                rec.chain_id, rec.seq
            )
            .into());
        }
        let signed = keys::seal_message(&record[..record.len() - 64]);
        if !keys::verify(signer, &signed, signature) {
            return Err("record: the seal's signature is not valid under its signer".into());
        }
        Ok(Witness {
            host,
            genesis,
            chain,
            seq,
            time_ns: rec.time_ns,
            record,
        })
    }

    /// What is wrong if a store's checkpoint log does not hold this seal
    /// among its accepted ones, byte for byte, under the same genesis key:
    /// `reports` are the log's chains, `record_at` reads one of its records.
    pub fn missing_from(
        &self,
        reports: &[ChainReport],
        record_at: impl FnOnce(ChainId, u64) -> Result<Option<Vec<u8>>, InputError>,
    ) -> Result<Option<Unattributed>, InputError> {
        let missing = |reason: String| {
            Some(Unattributed::WitnessedCheckpointMissing {
                chain: self.chain.to_string(),
                seq: self.seq,
                reason,
            })
        };
        let Some(c) = reports.iter().find(|c| c.chain == self.chain.to_string()) else {
            return Ok(missing(format!("the log holds no chain {}", self.chain)));
        };
        if c.host.as_deref() != Some(self.host.as_str()) {
            return Ok(missing(format!(
                "its chain is of collector {:?}, not of the witnessed {:?}",
                c.host.as_deref().unwrap_or(""),
                self.host
            )));
        }
        if !matches!(c.verdict, Verdict::Intact | Verdict::Pending) {
            return Ok(missing(format!("its chain is {}", c.verdict.name())));
        }
        let fingerprint = c.genesis_fingerprint.clone();
        if fingerprint.as_deref() != Some(self.genesis.as_str()) {
            return Ok(missing(format!(
                "its chain starts from another genesis key ({}) than the witnessed one ({})",
                fingerprint.unwrap_or_else(|| "none".into()),
                self.genesis
            )));
        }
        match c.last_seal_seq {
            Some(s) if s >= self.seq => {}
            last => {
                return Ok(missing(format!(
                    "its accepted seals end at seq {}: the log was cut after an earlier seal",
                    last.map_or("none".into(), |s| s.to_string())
                )))
            }
        }
        Ok(match record_at(self.chain, self.seq)? {
            Some(r) if r == self.record => None,
            Some(_) => missing(format!("it holds another record at seq {}", self.seq)),
            None => missing(format!("it holds no record at seq {}", self.seq)),
        })
    }
}

/// A chain id written as 32 hex digits.
pub fn chain_id(hex_id: &str) -> Option<ChainId> {
    Some(ChainId(hex::decode(hex_id)?.try_into().ok()?))
}

/// True for a non-empty string of lowercase hex digits.
fn lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
