//! The chain writer: appends records to a segment log, seals them under the
//! forward-secure key, and recovers after a crash.
//!
//! One writer owns one chain. The log is a segment file (see `segment.rs`); the
//! key and the resume point live in the signer state (see `signer.rs`, which
//! also tabulates what a crash at each step of a seal leaves behind).
//!
//! Opening:
//! - state and log agree: resume at the end of the log. A complete seal for the
//!   state's epoch found after the resume point means a crash hit between the
//!   seal's fsync and the state update: roll forward to the pending key. A torn
//!   tail is cut (its bytes saved beside the log). A Lifecycle record says whether
//!   the previous run ended cleanly (`start`) or not (`recovered`).
//! - state missing, unreadable or not matching the log: a **new chain**, whose
//!   Genesis says `state-lost`, why, and the last known position of the old chain.
//!   Never a silent restart.

use crate::chain::hash::{self, Digest, ZERO_HEAD};
use crate::chain::record::{
    Body, ChainId, LifecycleEvent, Origin, Payload, Predecessor, Record, Source,
};
use crate::chain::{seal_message, SecretKey};
use crate::storage::faults;
use crate::storage::segment::{OpenError, SegmentWriter};
use crate::storage::signer::{Resume, SignerState, StateError};
use crate::util::host::system_host;
use crate::util::timefmt::now_ns;
use std::io;
use std::path::{Path, PathBuf};

/// Writer name and version recorded in Genesis and Lifecycle records.
pub const AGENT: &str = concat!("logseal ", env!("CARGO_PKG_VERSION"));

/// File in the state directory holding a copy of the chain's Genesis record
/// (public data).
pub const GENESIS_FILE: &str = "genesis.record";

/// Reads the current chain's Genesis record from a state directory: the
/// copy in `genesis.record`, or else the one the signer state holds.
pub fn read_genesis(state_dir: &Path) -> Result<Vec<u8>, StateError> {
    let path = state_dir.join(GENESIS_FILE);
    match crate::storage::fsutil::read_bounded(&path, MAX_GENESIS_FILE) {
        Ok(b) => Ok(b),
        Err(cause) => match SignerState::load(state_dir)? {
            st if !st.genesis.is_empty() => Ok(st.genesis.clone()),
            // An old state without the Genesis: the file's error is the one to show.
            _ => Err(StateError::NoGenesis { path, cause }),
        },
    }
}

/// The trust anchor of the chain in a state directory: its chain id, host
/// and genesis key, from its Genesis record.
pub fn read_anchor(state_dir: &Path) -> Result<(ChainId, String, [u8; 32]), StateError> {
    let bytes = read_genesis(state_dir)?;
    match crate::chain::Record::decode(&bytes) {
        Ok(crate::chain::Record {
            chain_id,
            body: Body::Genesis { pk0, host, .. },
            ..
        }) => Ok((chain_id, host.to_string(), pk0)),
        _ => Err(StateError::NotGenesis(state_dir.join(GENESIS_FILE))),
    }
}

/// Errors of the writer.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The log could not be opened.
    #[error(transparent)]
    Log(#[from] OpenError),
    /// The state belongs to another host.
    #[error("signer state in {dir} belongs to host {state_host:?}, not {asked:?}; use another --state directory")]
    HostMismatch {
        /// State directory.
        dir: PathBuf,
        /// Host in the state.
        state_host: String,
        /// Host asked for.
        asked: String,
    },
    /// I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// No randomness.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The host name for a new chain is not a host name in canonical form.
    #[error("{0}; give a host name with --host or `host =`")]
    BadHost(crate::chain::hostname::HostNameError),
    /// The log is not the state's: it holds no record of the state's chain.
    #[error("{log} holds no record of chain {chain} of the signer state in {dir}: it is another chain's log (a wrong --out?); nothing was written. Give the state's own log, or another --state directory")]
    WrongLog {
        /// The log.
        log: String,
        /// The state directory.
        dir: PathBuf,
        /// The state's chain.
        chain: ChainId,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WriterError {
    let what = what.into();
    move |source| WriterError::Io { what, source }
}

/// How the writer found its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A new chain was started.
    New {
        /// Why.
        origin: Origin,
        /// The Genesis note.
        note: String,
    },
    /// An existing chain continues.
    Resumed {
        /// Last seq found in the log.
        after_seq: u64,
        /// True if the previous run ended with a clean shutdown.
        clean: bool,
        /// Bytes of a torn tail that were cut off.
        torn_bytes: u64,
        /// True if an interrupted seal was completed (key rolled forward).
        rolled_forward: bool,
    },
}

/// A seal found in the log after the resume point.
struct FoundSeal {
    epoch: u64,
    signer: [u8; 32],
    next_pk: [u8; 32],
    /// Log offset just after the seal's frame.
    offset_after: u64,
    /// Head after the seal.
    head_after: Digest,
    seq: u64,
}

/// What the log holds after the resume point, read once at open.
#[derive(Default)]
struct Scan {
    /// Last record of any chain in the log: (chain, seq, head after it).
    /// (The head is unknown if the chain's start is no longer in the log and no
    /// seal has been seen since.)
    last: Option<(ChainId, u64, Option<Digest>)>,
    /// Records from the resume point on.
    next_seq: u64,
    head: Digest,
    mismatch: Option<String>,
    /// Seal found after the resume point.
    seal: Option<FoundSeal>,
    genesis_pk: Option<[u8; 32]>,
    /// The log ends with a Lifecycle shutdown followed by a seal.
    shutdown_then_seal: bool,
    last_was_shutdown: bool,
    records_after_resume: u64,
    /// Record frames in the log.
    frames: u64,
    /// Record frames that start before the resume point.
    frames_before_resume: u64,
    /// The frame that ends exactly at the resume point: `Ok` if it is the
    /// state's chain at seq `resume.seq - 1` with head `resume.head`.
    boundary: Option<Result<(), String>>,
    /// The log holds at least one record of the state's chain.
    state_chain_seen: bool,
    /// The state's chain's Genesis record, if still in the log.
    genesis_record: Option<Vec<u8>>,
}

/// Where a chain's records go: one segment file (`stamp`) or a spool.
/// Positions are global byte positions (for one file, file offsets).
pub trait RecordLog {
    /// Appends a record frame whose payload `encode` writes; returns its
    /// position and the record's leaf (hashed in place).
    fn append_record_leaf(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<(u64, Digest)>;
    /// Appends a complete record frame, verbatim; returns its position.
    fn append_frame(&mut self, frame: &[u8]) -> io::Result<u64>;
    /// Writes buffered frames (no fsync).
    fn flush(&mut self) -> io::Result<()>;
    /// Writes only `n` buffered bytes (crash tests).
    #[cfg(feature = "fault-injection")]
    fn flush_partial(&mut self, n: usize) -> io::Result<()>;
    /// Bytes buffered.
    fn buffered(&self) -> usize;
    /// Flush and fsync.
    fn sync(&mut self) -> io::Result<()>;
    /// Position of the next frame.
    fn position(&self) -> u64;
}

/// A seal appended to the log but not yet durable and promoted.
#[derive(Debug, Clone, Copy)]
struct PendingSeal {
    seq: u64,
    head_after: Digest,
    offset_after: u64,
}

/// Appends records to one chain and seals them.
pub struct ChainWriter<L: RecordLog = SegmentWriter> {
    dir: PathBuf,
    log: L,
    pending_seal: Option<PendingSeal>,
    /// The last seal appended, encoded.
    last_seal: Option<Vec<u8>>,
    state: SignerState,
    next_seq: u64,
    head: Digest,
}

impl ChainWriter<SegmentWriter> {
    /// Opens (or starts) the chain kept in `state_dir`, logging to the segment
    /// file `log_path`. `host` defaults to the state's host, or the system host
    /// name for a new chain.
    pub fn open(
        state_dir: &Path,
        log_path: &Path,
        host: Option<&str>,
    ) -> Result<(ChainWriter, Opened), WriterError> {
        let what = log_path.display().to_string();
        ChainWriter::open_log(state_dir, host, &what, |each| {
            SegmentWriter::open_append(log_path, each)
        })
    }
}

/// Where a log disagrees with the signer state that claims it, if it does:
/// it ends before the resume point, no record ends there, its Genesis key is
/// not the state's, or a seal after the resume point is not the one the
/// state was making.
fn disagreement(scan: &mut Scan, state: &SignerState, end: u64, log_name: &str) -> Option<String> {
    let boundary = match &scan.boundary {
        _ if state.resume.seq == 0 || scan.frames_before_resume == 0 => None,
        Some(Ok(())) => None,
        Some(Err(m)) => Some(m.clone()),
        None => Some(format!(
            "no record of log {log_name} ends at the resume point {} recorded in the signer state",
            state.resume.offset
        )),
    };
    let mismatch = if end < state.resume.offset {
        Some(format!(
            "log {log_name} ends at position {end}, before the resume point {} recorded in the signer state",
            state.resume.offset
        ))
    } else if let Some(m) = boundary {
        Some(m)
    } else if let Some(m) = scan.mismatch.take() {
        Some(m)
    } else {
        scan.genesis_pk
            .filter(|pk| *pk != state.current.public() || state.epoch != 0)
            .map(|pk| {
                format!(
                    "genesis key {} in the log is not the state's key",
                    hash::fingerprint(&pk)
                )
            })
    };
    mismatch.or_else(|| match (&scan.seal, &state.pending) {
        (Some(f), _) if f.epoch != state.epoch => Some(format!(
            "log has a seal for epoch {} after the resume point, state is at epoch {}",
            f.epoch, state.epoch
        )),
        (Some(f), Some(p)) if f.signer == state.current.public() && f.next_pk == p.public() => None,
        (Some(_), _) => {
            Some("log has a seal after the resume point that the signer state did not make".into())
        }
        (None, _) => None,
    })
}

/// A seal interrupted by a crash: if it reached the log, the state moves on
/// to its next key (true); if it did not, its next key is forgotten (it was
/// never published).
fn settle_pending_seal(
    state: &mut SignerState,
    seal: Option<&FoundSeal>,
    state_dir: &Path,
) -> Result<bool, WriterError> {
    if let Some(f) = seal {
        // The seal reached the log; the crash came before the state update.
        state.epoch += 1;
        state.current = state.pending.take().ok_or(WriterError::Random)?;
        state.resume = Resume {
            seq: f.seq + 1,
            head: f.head_after,
            offset: f.offset_after,
        };
        state.genesis.clear();
        state
            .store(state_dir, "recover-promote")
            .map_err(io_err("writing signer state"))?;
        return Ok(true);
    } else if state.pending.is_some() {
        // The seal never reached the log: its next key was never published.
        state.pending = None;
        state
            .store(state_dir, "recover-discard")
            .map_err(io_err("writing signer state"))?;
    }
    Ok(false)
}

impl<L: RecordLog> ChainWriter<L> {
    /// Opens (or starts) the chain kept in `state_dir` on the log that `open_log`
    /// opens; `open_log` must call its argument for every frame in order.
    pub fn open_log(
        state_dir: &Path,
        host: Option<&str>,
        log_name: &str,
        open_log: impl FnOnce(
            &mut dyn FnMut(u64, u8, &[u8]),
        ) -> Result<(L, crate::storage::segment::Repair), OpenError>,
    ) -> Result<(ChainWriter<L>, Opened), WriterError> {
        create_private_dir(state_dir)?;
        crate::storage::fsutil::remove_stale_temps(state_dir)
            .map_err(io_err(format!("cleaning {}", state_dir.display())))?;
        let loaded = SignerState::load(state_dir);
        if let (Ok(st), Some(h)) = (&loaded, host) {
            if st.host != h {
                return Err(WriterError::HostMismatch {
                    dir: state_dir.to_path_buf(),
                    state_host: st.host.clone(),
                    asked: h.to_string(),
                });
            }
        }
        let resume = loaded.as_ref().ok().map(|s| (s.chain_id, s.resume));
        let mut scan = Scan::default();
        let mut running: Option<(ChainId, u64, Option<Digest>)> = None;
        let (log, repair) = open_log(&mut |offset, ftype, payload| {
            scan_frame(&mut scan, &mut running, resume, offset, ftype, payload)
        })?;
        scan.last = running;

        let default_host = || host.map(str::to_string).unwrap_or_else(system_host);
        let state = match loaded {
            Ok(st) => st,
            Err(e) => return Self::without_state(state_dir, log, default_host(), &e, scan.last),
        };

        // State loaded: is this its log at all? A log that holds records but
        // none of the state's chain is simply the wrong file: refuse it rather
        // than start a `state-lost` chain in it.
        if scan.frames > 0 && !scan.state_chain_seen && state.resume.seq > 0 {
            return Err(WriterError::WrongLog {
                log: log_name.to_string(),
                dir: state_dir.to_path_buf(),
                chain: state.chain_id,
            });
        }
        // Does the log agree with it?
        let mismatch = disagreement(&mut scan, &state, log.position(), log_name);
        if let Some(note) = mismatch {
            let pred = if state.resume.seq > 0 {
                Some(Predecessor {
                    chain_id: state.chain_id,
                    last_seq: state.resume.seq - 1,
                    head: state.resume.head,
                })
            } else {
                None
            };
            let host = state.host.clone();
            drop(state);
            return Self::create(state_dir, log, host, Origin::StateLost, pred, note);
        }

        let mut state = state;
        let rolled_forward = settle_pending_seal(&mut state, scan.seal.as_ref(), state_dir)?;
        Self::resume(state_dir, log, state, &scan, &repair, rolled_forward)
    }

    /// Opens the log without a usable signer state: a fresh chain if the log
    /// is empty, else a `state-lost` chain naming what it follows.
    fn without_state(
        state_dir: &Path,
        log: L,
        host: String,
        e: &StateError,
        last: Option<(ChainId, u64, Option<Digest>)>,
    ) -> Result<(ChainWriter<L>, Opened), WriterError> {
        let (note, predecessor) = match e {
            StateError::Missing(_) if last.is_none() => {
                return Self::create(state_dir, log, host, Origin::Fresh, None, String::new());
            }
            StateError::Missing(p) => (
                format!(
                    "signer state {} is missing but the log holds an earlier chain",
                    p.display()
                ),
                last,
            ),
            other => (other.to_string(), last),
        };
        let (note, pred) = match predecessor {
            Some((chain_id, last_seq, Some(head))) => (
                note,
                Some(Predecessor {
                    chain_id,
                    last_seq,
                    head,
                }),
            ),
            Some((chain_id, last_seq, None)) => (
                format!("{note}; the earlier chain {chain_id} ended at seq {last_seq} (its head is unknown)"),
                None,
            ),
            None => (note, None),
        };
        Self::create(state_dir, log, host, Origin::StateLost, pred, note)
    }

    /// Continues the chain the state and the log agree on: the Genesis copy
    /// checked, the position taken from the log, and a `start` (after a clean
    /// stop) or `recovered` record appended.
    fn resume(
        state_dir: &Path,
        log: L,
        state: SignerState,
        scan: &Scan,
        repair: &crate::storage::segment::Repair,
        rolled_forward: bool,
    ) -> Result<(ChainWriter<L>, Opened), WriterError> {
        ensure_genesis_copy(
            state_dir,
            state.chain_id,
            &state.genesis,
            scan.genesis_record.as_deref(),
        )?;
        let mut w = ChainWriter {
            dir: state_dir.to_path_buf(),
            log,
            pending_seal: None,
            last_seal: None,
            next_seq: if scan.records_after_resume > 0 {
                scan.next_seq
            } else {
                state.resume.seq
            },
            head: if scan.records_after_resume > 0 {
                scan.head
            } else {
                state.resume.head
            },
            state,
        };
        if w.next_seq == 0 {
            // Crash between writing the state and the Genesis: write it now.
            let g = w.state.genesis.clone();
            w.append_encoded(&g).map_err(io_err("writing genesis"))?;
            w.log.sync().map_err(io_err("syncing log"))?;
            return Ok((
                w,
                Opened::New {
                    origin: Origin::Fresh,
                    note: "genesis written after an interrupted start".into(),
                },
            ));
        }
        let clean = scan.shutdown_then_seal && repair.torn_bytes == 0;
        let after_seq = w.next_seq - 1;
        let mut detail = format!("resumed after seq {after_seq}");
        if repair.torn_bytes > 0 {
            detail.push_str(&format!("; cut a torn tail of {} bytes", repair.torn_bytes));
            if let Some(p) = &repair.saved_to {
                detail.push_str(&format!(" (saved to {})", p.display()));
            }
        }
        if rolled_forward {
            detail.push_str("; completed an interrupted seal");
        }
        w.append(Body::Lifecycle {
            event: if clean {
                LifecycleEvent::Start
            } else {
                LifecycleEvent::Recovered
            },
            agent: AGENT,
            dropped_bytes: repair.torn_bytes,
            detail: &detail,
        })
        .map_err(io_err("writing lifecycle record"))?;
        Ok((
            w,
            Opened::Resumed {
                after_seq,
                clean,
                torn_bytes: repair.torn_bytes,
                rolled_forward,
            },
        ))
    }

    fn create(
        state_dir: &Path,
        log: L,
        host: String,
        origin: Origin,
        predecessor: Option<Predecessor>,
        note: String,
    ) -> Result<(ChainWriter<L>, Opened), WriterError> {
        crate::chain::hostname::check(&host).map_err(WriterError::BadHost)?;
        let key = SecretKey::generate().map_err(|_| WriterError::Random)?;
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| WriterError::Random)?;
        let chain_id = ChainId(id);
        let genesis = Record {
            chain_id,
            seq: 0,
            time_ns: now_ns(),
            body: Body::Genesis {
                host: &host,
                agent: AGENT,
                pk0: key.public(),
                origin,
                predecessor,
                note: &note,
            },
        }
        .encode();
        let state = SignerState {
            chain_id,
            host: host.clone(),
            epoch: 0,
            current: key,
            pending: None,
            resume: Resume {
                seq: 0,
                head: ZERO_HEAD,
                offset: log.position(),
            },
            genesis: genesis.clone(),
        };
        state
            .store(state_dir, "genesis")
            .map_err(io_err("writing signer state"))?;
        faults::point("genesis.state-durable");
        let mut w = ChainWriter {
            dir: state_dir.to_path_buf(),
            log,
            pending_seal: None,
            last_seal: None,
            state,
            next_seq: 0,
            head: ZERO_HEAD,
        };
        w.append_encoded(&genesis)
            .map_err(io_err("writing genesis"))?;
        w.log.sync().map_err(io_err("syncing log"))?;
        // A public copy of the Genesis (the signer state drops it after the
        // first seal): `logseal agent --print-genesis` reads it for enrollment.
        crate::storage::fsutil::write_atomic(
            &state_dir.join(GENESIS_FILE),
            &genesis,
            "genesis-copy",
        )
        .map_err(io_err("writing the genesis copy"))?;
        Ok((w, Opened::New { origin, note }))
    }

    /// Appends the record `encode` writes (it must carry `self.next_seq`) and
    /// advances the chain; returns the frame's position. The one path every
    /// record takes into the log.
    fn push(&mut self, kind: u8, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<u64> {
        let (offset, leaf) = self.log.append_record_leaf(encode)?;
        self.head = hash::head(&self.head, kind, &leaf);
        self.next_seq += 1;
        Ok(offset)
    }

    fn append_encoded(&mut self, encoded: &[u8]) -> io::Result<()> {
        self.push(hash::kind_of(encoded), |b| b.extend_from_slice(encoded))
            .map(|_| ())
    }

    /// Appends a record with the given body; returns its seq.
    pub fn append(&mut self, body: Body<'_>) -> io::Result<u64> {
        self.append_at(now_ns(), body)
    }

    /// Appends a record with an explicit time; returns its seq.
    pub fn append_at(&mut self, time_ns: i64, body: Body<'_>) -> io::Result<u64> {
        let seq = self.next_seq;
        let rec = Record {
            chain_id: self.state.chain_id,
            seq,
            time_ns,
            body,
        };
        self.push(rec.kind() as u8, |b| rec.encode_into(b))?;
        Ok(seq)
    }

    /// Appends a record framed and hashed elsewhere ([`crate::agent::stage`]):
    /// `frame` is the segment frame of the record with this chain's id and
    /// seq `seq`, `leaf` its leaf. Only the head step is done here. Returns
    /// false, appending nothing, if `seq` is not the next seq (a record was
    /// chained in between: encode it again).
    pub fn append_staged(&mut self, seq: u64, frame: &[u8], leaf: &Digest) -> io::Result<bool> {
        if seq != self.next_seq {
            return Ok(false);
        }
        self.log.append_frame(frame)?;
        let kind = crate::chain::frame::frame_record(frame).map_or(0, hash::kind_of);
        self.head = hash::head(&self.head, kind, leaf);
        self.next_seq += 1;
        Ok(true)
    }

    /// Appends an Event with raw bytes.
    pub fn append_event(
        &mut self,
        time_ns: i64,
        source: Source,
        peer: &str,
        raw: &[u8],
    ) -> io::Result<u64> {
        self.append_at(
            time_ns,
            Body::Event {
                source,
                flags: 0,
                peer,
                original_len: None,
                payload: Payload::Raw(raw),
            },
        )
    }

    /// The chain id.
    pub fn chain_id(&self) -> ChainId {
        self.state.chain_id
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.state.host
    }

    /// Seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Log position of the signer state's resume point (just after the last
    /// seal, or the Genesis). Recovery after a crash reads the log from here,
    /// so nothing at or after it may be removed from the log.
    pub fn resume_position(&self) -> u64 {
        self.state.resume.offset
    }

    /// Current key epoch (number of seals made).
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// A copy of the current epoch's secret key with its epoch, for a
    /// collector's receipts (docs/FORMAT.md §7.2). The holder drops it when
    /// the epoch ends (after the next [`seal`](Self::seal)): dropping erases it.
    pub fn epoch_key(&self) -> (u64, SecretKey) {
        (
            self.state.epoch,
            SecretKey::from_seed(&self.state.current.seed()),
        )
    }

    /// The current head.
    pub fn head(&self) -> Digest {
        self.head
    }

    /// Writes buffered records to the log file (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }

    /// Seals everything appended so far and evolves the key (see `signer.rs`
    /// for the protocol). Returns the seal's seq.
    pub fn seal(&mut self) -> Result<u64, WriterError> {
        self.seal_then(|| {})
    }

    /// [`seal`](Self::seal), calling `at_promote` once the seal is durable,
    /// right before the current key is replaced and erased (a holder of a
    /// copy of it drops the copy there).
    pub fn seal_then(&mut self, at_promote: impl FnOnce()) -> Result<u64, WriterError> {
        let p = match self.pending_seal {
            // A seal whose write or fsync failed (e.g. disk full) is retried, not redone.
            Some(p) => p,
            None => self.begin_seal()?,
        };
        self.log.flush().map_err(io_err("writing log"))?;
        faults::point("seal.record-written");
        self.log.sync().map_err(io_err("syncing log"))?;
        faults::point("seal.record-durable");

        // 3. Promote the next key; the old one is dropped (zeroized) and its file scrubbed.
        at_promote();
        let next = self.state.pending.take().ok_or(WriterError::Random)?;
        let old = std::mem::replace(&mut self.state.current, next);
        self.state.epoch += 1;
        self.state.resume = Resume {
            seq: p.seq + 1,
            head: p.head_after,
            offset: p.offset_after,
        };
        self.state.genesis.clear();
        if let Err(e) = self.state.store(&self.dir, "seal-promote") {
            // Undo in memory so that a retry promotes again.
            let next = std::mem::replace(&mut self.state.current, old);
            self.state.pending = Some(next);
            self.state.epoch -= 1;
            return Err(io_err("writing signer state")(e));
        }
        drop(old);
        self.pending_seal = None;
        faults::point("seal.done");
        Ok(p.seq)
    }

    /// Steps 1 and 2a of a seal: the next key made durable, the seal appended.
    fn begin_seal(&mut self) -> Result<PendingSeal, WriterError> {
        faults::point("seal.begin");
        // 1. The next key, durable before anything names it.
        let next = SecretKey::generate().map_err(|_| WriterError::Random)?;
        let next_pk = next.public();
        self.state.pending = Some(next);
        if let Err(e) = self.state.store(&self.dir, "seal-pending") {
            self.state.pending = None;
            return Err(io_err("writing signer state")(e));
        }
        faults::point("seal.pending-durable");

        // 2. The seal, signed by the current key, appended to the log.
        let seq = self.next_seq;
        let rec = Record {
            chain_id: self.state.chain_id,
            seq,
            time_ns: now_ns(),
            body: Body::Seal {
                epoch: self.state.epoch,
                covers_head: self.head,
                signer: self.state.current.public(),
                next_pk,
                signature: [0u8; 64],
            },
        };
        // One seal per interval: encoding it apart from the log buffer costs nothing.
        let mut enc = rec.encode();
        let n = enc.len();
        let sig = self.state.current.sign(&seal_message(&enc[..n - 64]));
        enc[n - 64..].copy_from_slice(&sig);
        let _offset = self
            .push(rec.kind() as u8, |b| b.extend_from_slice(&enc))
            .map_err(io_err("appending seal"))?;
        let offset_after = self.log.position();
        self.last_seal = Some(enc);
        #[cfg(feature = "fault-injection")]
        if faults::armed("seal.record-torn") {
            let frame_len = (offset_after - _offset) as usize;
            let keep = self.log.buffered() - frame_len / 2;
            let _ = self.log.flush_partial(keep);
            faults::die();
        }
        let p = PendingSeal {
            seq,
            head_after: self.head,
            offset_after,
        };
        self.pending_seal = Some(p);
        Ok(p)
    }

    /// The last seal this writer appended, encoded (durable once
    /// [`seal`](Self::seal) returned it).
    pub fn last_seal(&self) -> Option<&[u8]> {
        self.last_seal.as_deref()
    }

    /// Flushes and fsyncs the log: every record appended so far is durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.log.sync()
    }

    /// The record log, for changes outside the chain (the spool's acknowledged position).
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// The record log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// True if a seal was appended but is not yet durable (retry [`seal`](Self::seal)).
    pub fn seal_pending(&self) -> bool {
        self.pending_seal.is_some()
    }

    /// Clean shutdown: a Lifecycle `shutdown` record, then a final seal.
    pub fn shutdown(mut self, detail: &str) -> Result<u64, WriterError> {
        self.append(Body::Lifecycle {
            event: LifecycleEvent::Shutdown,
            agent: AGENT,
            dropped_bytes: 0,
            detail,
        })
        .map_err(io_err("writing lifecycle record"))?;
        self.seal()
    }
}

fn scan_frame(
    scan: &mut Scan,
    running: &mut Option<(ChainId, u64, Option<Digest>)>,
    resume: Option<(ChainId, Resume)>,
    offset: u64,
    ftype: u8,
    payload: &[u8],
) {
    if ftype != crate::chain::frame::FRAME_RECORD {
        return;
    }
    let Ok(rec) = Record::decode(payload) else {
        if resume.is_some_and(|(_, r)| offset >= r.offset) && scan.mismatch.is_none() {
            scan.mismatch = Some(format!("undecodable record at log offset {offset}"));
        }
        return;
    };
    scan.frames += 1;
    let leaf = hash::leaf(payload);
    let prev = match (running.as_ref(), &rec.body) {
        // A seal names the head before it: this re-anchors a chain whose start
        // was already removed from the spool.
        (_, Body::Seal { covers_head, .. }) => Some(*covers_head),
        (Some((id, _, h)), _) if *id == rec.chain_id => *h,
        (_, Body::Genesis { .. }) if rec.seq == 0 => Some(ZERO_HEAD),
        _ => None,
    };
    let kind = rec.kind() as u8;
    *running = Some((
        rec.chain_id,
        rec.seq,
        prev.map(|p| hash::head(&p, kind, &leaf)),
    ));

    // Does the log end with Lifecycle(shutdown) + Seal? (A clean stop.)
    scan.shutdown_then_seal = matches!(rec.body, Body::Seal { .. }) && scan.last_was_shutdown;
    scan.last_was_shutdown = matches!(
        rec.body,
        Body::Lifecycle {
            event: LifecycleEvent::Shutdown,
            ..
        }
    );

    let Some((chain_id, r)) = resume else { return };
    if rec.chain_id == chain_id {
        scan.state_chain_seen = true;
        if rec.seq == 0 && matches!(rec.body, Body::Genesis { .. }) {
            scan.genesis_record = Some(payload.to_vec());
        }
    }
    if offset < r.offset {
        scan.frames_before_resume += 1;
        // `offset + frame` is where the next record starts.
        if offset + 8 + 1 + payload.len() as u64 == r.offset {
            let head = running.as_ref().and_then(|(_, _, h)| *h);
            scan.boundary = Some(
                if rec.chain_id == chain_id
                    && rec.seq.checked_add(1) == Some(r.seq)
                    && head == Some(r.head)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "the record that ends at the resume point {} is seq {} of chain {}, not seq {} of chain {} with the head the signer state recorded",
                        r.offset,
                        rec.seq,
                        rec.chain_id,
                        r.seq.saturating_sub(1),
                        chain_id
                    ))
                },
            );
        }
    }
    if offset < r.offset || scan.mismatch.is_some() {
        return;
    }
    if scan.records_after_resume == 0 {
        scan.next_seq = r.seq;
        scan.head = r.head;
    }
    if rec.chain_id != chain_id || rec.seq != scan.next_seq {
        scan.mismatch = Some(format!(
            "log offset {offset} holds seq {} of chain {}, the signer state expects seq {} of chain {}",
            rec.seq, rec.chain_id, scan.next_seq, chain_id
        ));
        return;
    }
    scan.records_after_resume += 1;
    scan.head = hash::head(&scan.head, rec.kind() as u8, &leaf);
    scan.next_seq += 1;
    match rec.body {
        Body::Seal {
            epoch,
            signer,
            next_pk,
            ..
        } => {
            if scan.seal.is_some() {
                scan.mismatch = Some("two seals after the resume point".into());
            }
            // `offset + frame` is where the next record starts.
            let after = offset + 8 + 1 + payload.len() as u64;
            scan.seal = Some(FoundSeal {
                epoch,
                signer,
                next_pk,
                offset_after: after,
                head_after: scan.head,
                seq: rec.seq,
            });
        }
        Body::Genesis { pk0, .. } => scan.genesis_pk = Some(pk0),
        _ => {}
    }
}

/// Longest genesis copy read back (a Genesis record is a few hundred bytes).
const MAX_GENESIS_FILE: u64 = 1 << 20;

/// Makes sure `genesis.record` holds the chain's Genesis: a crash while it was
/// written (or its loss) would otherwise leave `--print-genesis` failing once
/// the signer state drops its copy at the first seal.
fn ensure_genesis_copy(
    state_dir: &Path,
    chain_id: ChainId,
    from_state: &[u8],
    from_log: Option<&[u8]>,
) -> Result<(), WriterError> {
    let path = state_dir.join(GENESIS_FILE);
    let good = |b: &[u8]| {
        Record::decode(b)
            .is_ok_and(|r| r.chain_id == chain_id && matches!(r.body, Body::Genesis { .. }))
    };
    if crate::storage::fsutil::read_bounded(&path, MAX_GENESIS_FILE).is_ok_and(|b| good(&b)) {
        return Ok(());
    }
    let source = [Some(from_state), from_log]
        .into_iter()
        .flatten()
        .find(|b| good(b));
    match source {
        Some(g) => crate::storage::fsutil::write_atomic(&path, g, "genesis-copy")
            .map_err(io_err("writing the genesis copy")),
        None => {
            tracing::warn!(
                path = %path.display(),
                "the genesis copy is missing and the Genesis is neither in the signer state nor in the log: `--print-genesis` cannot print it; take it from the collector's store"
            );
            Ok(())
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), WriterError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(WriterError::Io {
            what: format!("creating state directory {}", dir.display()),
            source: e,
        }),
    }
}
