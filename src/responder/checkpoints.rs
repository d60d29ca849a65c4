//! A collector store's checkpoint log, read for `logseal verify STORE`
//! (docs/FORMAT.md §7).
//!
//! The log (`STORE/checkpoints/log/`) is verified on its own first, with the
//! same options (trust anchors pin it like any chain). Only if it is intact
//! (or pending) are its checkpoints believed, and only those its accepted
//! seals cover; then every chain of the store must still match the latest
//! checkpoint of it. A store without the log is a finding unless the caller
//! says the store predates checkpoints.

use super::verify_files::{self, InputError, SkipReason, Skipped};
use crate::chain::checkpoint;
use crate::chain::record::{Body, Payload, Source};
use crate::chain::verify::{ChainReport, Checkpoints, Options, Report, Unattributed, Verdict};
use crate::storage::segment::{Item, SegmentReader};
use std::path::{Path, PathBuf};

/// What the checkpoint log of a store says, and its own verdict.
pub struct StoreLog {
    /// Its chain's report (none: the store has no checkpoint log).
    pub report: Option<ChainReport>,
    /// The checkpoints to check the store's chains against (none: the log is
    /// missing or not intact, so nothing in it is believed).
    pub checkpoints: Option<Checkpoints>,
}

/// For `logseal verify PATHS`: if the paths are a collector store, reads its
/// checkpoint log (unless `require` is false: a store from before
/// checkpoints) and sets the checkpoints the store's chains are checked
/// against; give the result to [`add_to_report`] after the verification.
pub fn prepare(
    paths: &[PathBuf],
    options: &mut Options,
    require: bool,
) -> Result<Option<(PathBuf, StoreLog)>, InputError> {
    let Some(root) = store_root(paths).filter(|_| require) else {
        return Ok(None);
    };
    let log = read(root, options)?;
    options.checkpoints = log.checkpoints.clone();
    Ok(Some((root.to_path_buf(), log)))
}

/// `expand(paths)`, except that a store whose `hosts/` holds no segment is
/// not an error when it has a checkpoint log: the log says what it should
/// hold.
pub fn expand(
    paths: &[PathBuf],
    log: Option<&(PathBuf, StoreLog)>,
) -> Result<(Vec<PathBuf>, Vec<Skipped>), InputError> {
    let has_log = log.is_some_and(|(_, l)| l.report.is_some());
    verify_files::expand_or_empty(paths, has_log)
}

/// The store root among `paths`, if exactly one path is given and it is a
/// collector store (a directory holding `hosts/`).
pub fn store_root(paths: &[PathBuf]) -> Option<&Path> {
    match paths {
        [p] if p.join("hosts").is_dir() => Some(p),
        _ => None,
    }
}

/// The checkpoint log's directory of segments in a store.
pub fn log_dir(store: &Path) -> PathBuf {
    store.join(crate::collector::checkpoints::DIR).join("log")
}

/// Verifies the checkpoint log of `store` and reads the checkpoints its
/// accepted seals cover.
pub fn read(store: &Path, options: &Options) -> Result<StoreLog, InputError> {
    let dir = log_dir(store);
    if !dir.is_dir() {
        return Ok(StoreLog {
            report: None,
            checkpoints: None,
        });
    }
    let (files, _) = verify_files::expand(&[dir])?;
    let mut alone = options.clone();
    alone.checkpoints = None;
    let report = verify_files::verify(&files, alone, |_, _| {})?;
    // A log of more than one chain (or of none) is not a checkpoint log.
    let Ok([log]) = <[ChainReport; 1]>::try_from(report.chains) else {
        return Ok(StoreLog {
            report: None,
            checkpoints: None,
        });
    };
    let believed =
        matches!(log.verdict, Verdict::Intact | Verdict::Pending) && report.unattributed.is_empty();
    let checkpoints = match (believed, log.last_seal_seq) {
        (true, Some(sealed)) => {
            let limit = options
                .memory_limit
                .unwrap_or(crate::chain::verify::DEFAULT_MEMORY_LIMIT);
            Some(collect(&files, sealed, limit)?)
        }
        _ => None,
    };
    Ok(StoreLog {
        report: Some(log),
        checkpoints,
    })
}

/// Memory counted per checkpointed chain: its entry in the map, its host name
/// counted apart.
const ENTRY_COST: u64 = 160;

/// The checkpoints of records up to `sealed` (covered by an accepted seal).
/// They take memory per chain named: past `limit` bytes, verification stops
/// (exit 2), as for the verifier's own state.
fn collect(files: &[PathBuf], sealed: u64, limit: u64) -> Result<Checkpoints, InputError> {
    let mut k = Checkpoints::default();
    let mut held = 0u64;
    for path in files {
        let io = |source| InputError::Io {
            path: path.clone(),
            source,
        };
        let mut r = SegmentReader::open(path).map_err(io)?;
        while let Some(item) = r.next_item().map_err(io)? {
            let Item::Frame { payload, .. } = item else {
                continue;
            };
            let Ok(rec) = crate::chain::Record::decode(payload) else {
                continue;
            };
            k.log = Some(rec.chain_id);
            if rec.seq > sealed {
                continue;
            }
            if let Body::Event {
                source: Source::Checkpoint,
                payload: Payload::Raw(p),
                ..
            } = &rec.body
            {
                // A sealed checkpoint that does not decode was sealed so: the
                // collector wrote it; it names nothing.
                if let Ok(entries) = checkpoint::decode(p) {
                    let (chains, bytes) = k.add(rec.seq, entries);
                    held += chains * ENTRY_COST + bytes;
                    if held > limit {
                        return Err(InputError::MemoryLimit {
                            path: path.clone(),
                            offset: r.position(),
                            limit: limit >> 20,
                        });
                    }
                }
            }
        }
    }
    Ok(k)
}

/// Adds what the checkpoint log says to the store's report: the log's own
/// verdict (its files appended to `files`, its findings pointing at them), a
/// missing log, and where a missing chain was found in quarantine.
pub fn add_to_report(
    report: &mut Report,
    files: &mut Vec<PathBuf>,
    skipped: &[Skipped],
    (store, log): (PathBuf, StoreLog),
) -> Result<(), InputError> {
    match log.report {
        None => report.unattributed.push(Unattributed::NoCheckpointLog),
        Some(mut c) => {
            let (log_files, _) = verify_files::expand(&[log_dir(&store)])?;
            for f in &mut c.problems {
                if let Some(at) = &mut f.at {
                    at.file += files.len();
                }
            }
            files.extend(log_files);
            report.checkpoint_log = Some(c);
        }
    }
    for u in &mut report.unattributed {
        if let Unattributed::MissingChain {
            chain, quarantined, ..
        } = u
        {
            *quarantined = skipped
                .iter()
                .filter(|s| s.why == SkipReason::Quarantined)
                .find(|s| s.path.to_string_lossy().contains(chain.as_str()))
                .map(|s| s.path.display().to_string());
        }
    }
    Ok(())
}
