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
use crate::chain::hash::{leaf, Digest};
use crate::chain::verify::{ChainReport, Unattributed, Verdict};
use crate::chain::ChainId;
use std::collections::{BTreeMap, HashMap};
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
}

/// Memory counted per witnessed seal kept (its seq, digest and map entry).
pub const SEAL_COST: u64 = 96;

/// Seals of collectors' checkpoint logs that were witnessed (§7.1, §7.4),
/// kept small: per collector, genesis key and log chain, every witnessed
/// seq with the digest ([`leaf`](crate::chain::hash::leaf)) of each seal
/// record witnessed there (two at one seq: a peer that showed two).
#[derive(Debug, Default, Clone)]
pub struct WitnessedSeals {
    groups: BTreeMap<LogChain, BTreeMap<u64, Vec<Digest>>>,
}

/// A witnessed log chain: its collector, genesis key fingerprint and id.
type LogChain = (String, String, ChainId);

/// The seals of one log chain that a store's log lacks.
struct Lacking {
    /// The lowest one, and what the log holds instead.
    first: (u64, String),
    /// How many in all.
    count: u64,
}

impl Lacking {
    fn add(this: &mut Option<Lacking>, seq: u64, reason: String) {
        match this {
            Some(l) => {
                l.count += 1;
                if seq < l.first.0 {
                    l.first = (seq, reason);
                }
            }
            None => {
                *this = Some(Lacking {
                    first: (seq, reason),
                    count: 1,
                })
            }
        }
    }
}

impl WitnessedSeals {
    /// Adds a witnessed block; the memory it took (0: known already).
    pub fn add(&mut self, w: &Witness) -> u64 {
        let key = (w.host.clone(), w.genesis.clone(), w.chain);
        let group_cost = match self.groups.contains_key(&key) {
            true => 0,
            false => SEAL_COST + (w.host.len() + w.genesis.len()) as u64,
        };
        let at = self
            .groups
            .entry(key)
            .or_default()
            .entry(w.seq)
            .or_default();
        let digest = leaf(&w.record);
        if at.contains(&digest) {
            return group_cost;
        }
        at.push(digest);
        group_cost + SEAL_COST
    }

    /// True if it holds no seal.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Those of collectors named in `hosts` only.
    pub fn of(&self, hosts: &[String]) -> WitnessedSeals {
        WitnessedSeals {
            groups: self
                .groups
                .iter()
                .filter(|((h, _, _), _)| hosts.contains(h))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Adds every seal of `other`.
    pub fn extend(&mut self, other: &WitnessedSeals) {
        for (k, seqs) in &other.groups {
            let mine = self.groups.entry(k.clone()).or_default();
            for (seq, digests) in seqs {
                let at = mine.entry(*seq).or_default();
                for d in digests {
                    if !at.contains(d) {
                        at.push(*d);
                    }
                }
            }
        }
    }

    /// What is wrong if a store's checkpoint log does not hold every one of
    /// these seals among its accepted ones, byte for byte, under the same
    /// genesis key: `reports` are the log's chains, `files` its segments
    /// (read once). One finding per witnessed log chain: its lowest seal
    /// missing, and how many are.
    pub fn missing_from(
        &self,
        reports: &[ChainReport],
        files: &[PathBuf],
    ) -> Result<Vec<Unattributed>, InputError> {
        let mut lacking: BTreeMap<&LogChain, Option<Lacking>> = BTreeMap::new();
        // The (chain, seq) whose records must be read, and which group wants them.
        let mut wanted: HashMap<(ChainId, u64), Vec<&LogChain>> = HashMap::new();
        for (key, seqs) in &self.groups {
            let chain = &key.2;
            let l = lacking.entry(key).or_default();
            let c = match chain_held(reports, key) {
                Ok(c) => c,
                Err(NotHeld(reason)) => {
                    for s in seqs.keys() {
                        Lacking::add(l, *s, reason.clone());
                    }
                    continue;
                }
            };
            for s in seqs.keys() {
                match c.last_seal_seq {
                    Some(last) if last >= *s => wanted.entry((*chain, *s)).or_default().push(key),
                    last => Lacking::add(
                        l,
                        *s,
                        format!(
                            "its accepted seals end at seq {}: the log was cut after an earlier seal",
                            last.map_or("none".into(), |x| x.to_string())
                        ),
                    ),
                }
            }
        }
        // One read of the log: the digests of the records at the seqs wanted.
        let mut held: HashMap<(ChainId, u64), Vec<Digest>> = HashMap::new();
        if !wanted.is_empty() {
            super::verify_files::each_record(files, |payload, _, _| {
                if let Ok(h) = crate::chain::record::decode_header_only(payload) {
                    if wanted.contains_key(&(h.chain_id, h.seq)) {
                        held.entry((h.chain_id, h.seq))
                            .or_default()
                            .push(leaf(payload));
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            })?;
        }
        for ((chain, seq), keys) in &wanted {
            let there = held.get(&(*chain, *seq));
            for key in keys {
                let digests = &self.groups[*key][seq];
                for d in digests {
                    let reason = match there {
                        Some(t) if t.contains(d) => continue,
                        Some(_) => format!("it holds another record at seq {seq}"),
                        None => format!("it holds no record at seq {seq}"),
                    };
                    if let Some(l) = lacking.get_mut(*key) {
                        Lacking::add(l, *seq, reason);
                    }
                }
            }
        }
        Ok(lacking
            .into_iter()
            .filter_map(|((_, _, chain), l)| {
                let l = l?;
                let more = match l.count {
                    1 => String::new(),
                    n => format!(" ({} more witnessed seals of it are missing too)", n - 1),
                };
                Some(Unattributed::WitnessedCheckpointMissing {
                    chain: chain.to_string(),
                    seq: l.first.0,
                    reason: format!("{}{more}", l.first.1),
                })
            })
            .collect())
    }
}

/// Why a log chain cannot hold the seals witnessed of it.
struct NotHeld(String);

/// The log's report of a witnessed log chain, if it can hold the seals
/// witnessed of it: there, of the witnessed collector, intact (or pending),
/// from the witnessed genesis key; else why not.
fn chain_held<'a>(
    reports: &'a [ChainReport],
    (host, genesis, chain): &LogChain,
) -> Result<&'a ChainReport, NotHeld> {
    let Some(c) = reports.iter().find(|c| c.chain == chain.to_string()) else {
        return Err(NotHeld(format!("the log holds no chain {chain}")));
    };
    if c.host.as_deref() != Some(host.as_str()) {
        return Err(NotHeld(format!(
            "its chain is of collector {:?}, not of the witnessed {host:?}",
            c.host.as_deref().unwrap_or("")
        )));
    }
    if !matches!(c.verdict, Verdict::Intact | Verdict::Pending) {
        return Err(NotHeld(format!("its chain is {}", c.verdict.name())));
    }
    if c.genesis_fingerprint.as_deref() != Some(genesis.as_str()) {
        return Err(NotHeld(format!(
            "its chain starts from another genesis key ({}) than the witnessed one ({genesis})",
            c.genesis_fingerprint.as_deref().unwrap_or("none")
        )));
    }
    Ok(c)
}
