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
//! Peers witness each other the same way (§7.4): `logseal verify STORE
//! --witnessed-by PEER_STORE` requires every seal of this store's log that
//! the peer's log recorded. The block's format is [`crate::transport::block`]'s.

use super::verify_files::InputError;
use crate::chain::verify::{ChainReport, Unattributed, Verdict};
use crate::chain::ChainId;
use std::path::{Path, PathBuf};

pub use crate::transport::block::{chain_id, Unbelieved, Witness, MAX_WITNESS};

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
    /// A witness's store (`--witnessed-by`) whose checkpoint log cannot be
    /// believed, or is not pinned.
    #[error("{}: its checkpoint log cannot be believed as a witness: {reason}", store.display())]
    NotAWitness {
        /// The witness's store.
        store: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Input(#[from] InputError),
}

impl Witness {
    /// Reads a block from `path` (at most [`MAX_WITNESS`] bytes, a regular
    /// file) and checks it.
    pub fn read(path: &Path) -> Result<Witness, WitnessError> {
        let bad = |reason: String| WitnessError::Bad {
            path: path.to_path_buf(),
            reason,
        };
        let text = crate::storage::fsutil::read_bounded_text(path, MAX_WITNESS)
            .map_err(|e| bad(e.to_string()))?;
        Witness::parse_block(&text).map_err(|e| bad(e.0))
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
