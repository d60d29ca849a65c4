//! The collector's store: per host, per chain, append-only segment files, and
//! the tip of every chain in memory.
//!
//! ```text
//! STORE/hosts/<host>/<chain id>/<base>.seg   the chain's records (spool layout)
//! STORE/tips.json                             every chain's tip and the store
//!                                             position it describes, saved every
//!                                             10 s and at a clean stop
//! STORE/hosts/<host>/<chain id>/tip.json     its tip at a clean stop (written by
//!                                             earlier versions; still read)
//! STORE/quarantine/<time>-<chain>-b<batch>.seg   refused batches, as received
//! STORE/quarantine/<same>.json                         why each was refused
//! STORE/checkpoints/                                    the collector's own chain of
//!                                                       checkpoints (checkpoints.rs)
//! STORE/alerts.jsonl                                    one JSON object per alert
//! STORE/status.json                                     hosts, chains, last seals
//! ```
//!
//! Invariants:
//! - Only records that continue a chain's tip are appended ([`Tip::apply`]:
//!   decoded, next seq, linked, every seal checked), so every chain on disk
//!   verifies from its Genesis. A batch that does not is refused whole; what
//!   it held is kept in `quarantine/` (within the configured bytes), never
//!   mixed into a chain.
//! - A chain belongs to the host that wrote its Genesis (the certificate's
//!   name); no other host may extend it.
//! - A batch is acknowledged only once its records are fsynced
//!   ([`Slot::synced`] reaches [`Stored::end`]): what an agent deletes on the
//!   strength of an Ack is durable here.
//! - Files are only appended to (segments) or replaced atomically (`tip.json`,
//!   `status.json`, quarantine notes); nothing in a chain's directory is
//!   rewritten or deleted.
//!
//! Crash semantics:
//! - `kill -9` or power loss: the records after the last fsync may be lost or
//!   torn; none of them was acknowledged, so the agent sends them again. At
//!   the next start a torn tail is cut off (and kept beside the segment), and
//!   the records after the chain's saved tip are read back through the same
//!   tip check, record by record.
//! - Tips are saved (`tips.json`, one atomic write) every
//!   [`TIPS_EVERY`](crate::collector::checkpoints::TIPS_EVERY) and at a clean
//!   stop, each only for a chain whose records are all durable, with the
//!   store position it describes. A start reads a chain from there on: after
//!   a clean stop nothing, after a crash at most what came in since the last
//!   save, whatever the store's size. Nothing is cut on the word of a saved
//!   tip: damage after it (a torn tail) makes the start read the chain from
//!   its Genesis, which repairs; so does a chain without a saved tip. Files
//!   that end before the saved position, or records after it that do not
//!   follow it, also raise a `stored-chain-damaged` alert: records this
//!   collector stored (and acknowledged) are gone or changed.
//! - What lies before a saved tip is what this collector checked, wrote and
//!   synced; it is not read again at start. Damage found at start-up (after
//!   the saved tip) stops the chain from being extended ([`Slot`]'s
//!   `broken`): an alert is raised and its batches are refused with the
//!   reason. Damage to older records at rest is found by `logseal verify`,
//!   which reads everything, not by the collector's start.

use crate::chain::checkpoint;
use crate::chain::hash::{self, Digest};
use crate::chain::tip::{Refusal, Tip};
use crate::chain::ChainId;
use crate::storage::fsutil;
use crate::storage::segment::SegmentWriter;
use crate::storage::segment_log::{LogOptions, SegmentLog};
use crate::storage::writer::RecordLog;
use crate::transport::proto::{Batch, Code};
use crate::util::in_doing;
use crate::util::timefmt::now_ns;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod stream;

/// Recent leaves kept per chain to recognise a re-sent record (and prove a
/// fork of a recent one): 40 KiB a chain at most, so that a fleet's chains
/// fit in memory (10 000 chains: 400 MiB at most). An agent resends only what
/// it sent since its last acknowledgement, and asks where the collector
/// stands first; an older record sent again is refused with the seq to
/// resume from.
const RECENT: usize = 1024;

/// How hosts are admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrollment {
    /// A host's first chain is accepted and its genesis key pinned; a later new
    /// chain is accepted and raises an alert (the host lost its state).
    FirstUse,
    /// Only chains whose genesis key is a trust anchor of the host.
    Strict(crate::chain::trust::TrustAnchors),
}

/// Where a chain's records are kept.
enum Backing {
    /// Segment files in the store's directory.
    Files(SegmentLog),
    /// A subject of the JetStream stream; `last` is the stream sequence of
    /// the chain's last message the tip was read from (0: none yet).
    Stream {
        /// That sequence.
        last: u64,
    },
}

/// One chain held by the collector.
pub struct Slot {
    /// Its tip.
    pub tip: Tip,
    log: Backing,
    recent: VecDeque<(u64, Digest)>,
    /// Why the stored chain cannot be extended (damage found at start-up).
    broken: Option<String>,
}

impl Slot {
    /// fsyncs appended records and waits for it.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Backing::Files(log) = &mut self.log {
            if log.synced()? < log.position() {
                log.sync()?;
            }
        }
        Ok(())
    }

    /// Calls `waker` after every fdatasync of the chain's files (or failure):
    /// a session waiting to acknowledge.
    pub fn watch(&mut self, waker: &crate::storage::writebehind::Waker) {
        if let Backing::Files(log) = &mut self.log {
            log.add_waker(waker);
        }
    }

    /// No longer calls `waker`.
    pub fn unwatch(&mut self, waker: &crate::storage::writebehind::Waker) {
        if let Backing::Files(log) = &mut self.log {
            log.remove_waker(waker);
        }
    }

    /// Position after the last record appended: bytes of the files, or the
    /// next seq on a stream (where what is appended is replicated already).
    fn position(&self) -> u64 {
        match &self.log {
            Backing::Files(log) => log.position(),
            Backing::Stream { .. } => self.tip.next_seq,
        }
    }

    /// Starts fsyncing appended records without waiting ([`synced`](Self::synced)
    /// tells when it is done).
    pub fn sync_begin(&mut self) -> io::Result<()> {
        match &mut self.log {
            Backing::Files(log) => log.sync_begin(),
            Backing::Stream { .. } => Ok(()),
        }
    }

    /// Store position up to which the chain is durable, or the error that
    /// stopped writing it.
    pub fn synced(&self) -> io::Result<u64> {
        match &self.log {
            Backing::Files(log) => log.synced(),
            Backing::Stream { .. } => Ok(self.tip.next_seq),
        }
    }
}

/// A refusal to send back: code and message.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Error code.
    pub code: Code,
    /// What was wrong.
    pub message: String,
}

fn refused(code: Code, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// What a stored batch left to acknowledge once synced.
pub struct Stored {
    /// The chain's slot (sync it before acknowledging).
    pub slot: Arc<Mutex<Slot>>,
    /// Everything below this seq is held.
    pub next_seq: u64,
    /// The chain's head after seq `next_seq - 1`.
    pub head: Digest,
    /// Records newly stored.
    pub new_records: usize,
    /// Store position after the batch: acknowledge once synced to here.
    pub end: u64,
}

struct HostInfo {
    chains: Vec<ChainId>,
    silent_reported: bool,
    /// When this collector last stored a batch of the host (this run).
    last_batch_ns: Option<i64>,
    /// When this collector first knew the host (store opened, or its first
    /// chain arrived): a host that has not sealed yet is silent only once
    /// `silent_after` has passed since then.
    since_ns: i64,
}

impl HostInfo {
    fn new() -> HostInfo {
        HostInfo {
            chains: Vec::new(),
            silent_reported: false,
            last_batch_ns: None,
            since_ns: now_ns(),
        }
    }
}

/// The same alert (kind, host, chain, message) is written at most once per
/// this interval; repeats in between are counted in the next line written.
const ALERT_REPEAT_NS: i64 = 60 * 1_000_000_000;
/// Distinct alerts remembered for that; beyond it the oldest are forgotten.
const ALERT_KEYS: usize = 4096;

/// An alert's identity: kind, host, chain, message.
type AlertKey = (String, String, Option<ChainId>, String);

/// `alerts.jsonl` and the recent alerts, for de-duplication: when each was
/// last written, and how many repeats were held back since.
struct Alerts {
    file: std::fs::File,
    recent: HashMap<AlertKey, (i64, u64)>,
    /// Per kind: the window's start, alerts written in it, and those not
    /// written (counted) since the last one written.
    budget: HashMap<String, (i64, u32, u64)>,
}

/// Alerts of one kind written per window ([`ALERT_REPEAT_NS`]); more are
/// counted, and the next one written says how many were not: a client that
/// varies what it sends cannot fill the disk or the log with alerts.
const ALERT_BUDGET: u32 = 30;
/// Longest alert message written (longer ones are cut, and say so).
const ALERT_MESSAGE_MAX: usize = 1024;

/// `s` cut to at most `max` bytes on a character boundary, marked if cut.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len()).into()
}

/// The store.
pub struct Store {
    /// The store's lock, held while the store is open.
    _lock: fsutil::DirLock,
    root: PathBuf,
    enrollment: Enrollment,
    segment_bytes: u64,
    chains: Mutex<HashMap<ChainId, Arc<Mutex<Slot>>>>,
    hosts: Mutex<HashMap<String, HostInfo>>,
    /// When each chain's files were last read for a fork's proof: at most
    /// once per [`FORK_SCAN_EVERY`] (a host may send conflicting batches
    /// with seals it signed itself as often as it reconnects).
    fork_scans: Mutex<HashMap<ChainId, std::time::Instant>>,
    /// Statements for the checkpoint log besides checkpoints (a fork's
    /// proof, a peer's witnessed checkpoint), written with its next one.
    notes: Mutex<Vec<Vec<u8>>>,
    /// The forks recorded since the start, by chain and epoch: an agent
    /// that sends its other history again is not recorded again.
    forks_noted: Mutex<std::collections::HashSet<(ChainId, u64)>>,
    /// The JetStream stream holding the chains (`[jetstream]`); `None`: the
    /// store's own files.
    jet: Option<crate::storage::jetstream::JetStream>,
    /// Held while a chain evicted after a storage error is read back.
    reloading: Mutex<()>,
    /// The tips last saved in `tips.json`, by chain: where a chain is read
    /// back from after a crash.
    saved: Mutex<HashMap<ChainId, SavedTip>>,
    alerts: Mutex<Alerts>,
    quarantine: Mutex<Quarantine>,
}

/// Limits of the quarantine (refused batches kept as evidence): an agent
/// holding a certificate must not fill the collector's disk with batches it
/// knows will be refused.
#[derive(Debug, Clone, Copy)]
pub struct QuarantineLimits {
    /// Bytes kept per host.
    pub per_host: u64,
    /// Bytes kept in all.
    pub total: u64,
}

/// What the quarantine holds, by host.
struct Quarantine {
    limits: QuarantineLimits,
    total: u64,
    /// Batches kept since the start.
    kept: u64,
    by_host: HashMap<String, u64>,
}

/// What a quarantined batch of `bytes` counts against the quotas: its bytes
/// and a block for each of its two files.
fn charge_of(bytes: u64) -> u64 {
    bytes.saturating_add(2 * 4096)
}

/// Largest quarantine `.json` read back at start.
const MAX_QUARANTINE_JSON: u64 = 64 << 10;

/// The bytes held in quarantine per host, from the `.json` beside each batch.
fn quarantine_usage(dir: &Path) -> io::Result<HashMap<String, u64>> {
    let mut by_host: HashMap<String, u64> = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(in_doing(format_args!("{}", dir.display())))?;
    for e in entries {
        let name = e?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let seg = dir.join(format!("{stem}.seg"));
        let bytes = charge_of(std::fs::symlink_metadata(&seg).map_or(0, |m| m.len()));
        let host = fsutil::read_bounded(&dir.join(&name), MAX_QUARANTINE_JSON)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["host"].as_str().map(str::to_string))
            .unwrap_or_default();
        *by_host.entry(host).or_default() += bytes;
    }
    Ok(by_host)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Statements waiting for the checkpoint log, at most.
pub const MAX_NOTES: usize = 1024;

/// A chain's files are read for a fork's proof at most this often.
const FORK_SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Chains whose last fork scan is remembered, at most (older ones forgotten).
const FORK_SCANS_REMEMBERED: usize = 10_000;

impl Store {
    /// Opens (creating) the store at `root` and reads every chain back.
    pub fn open(
        root: &Path,
        enrollment: Enrollment,
        segment_bytes: u64,
        quarantine: QuarantineLimits,
        jet: Option<crate::storage::jetstream::JetStream>,
    ) -> io::Result<Store> {
        // One collector per store: a second is refused, naming the first.
        let store_lock = fsutil::lock_dir(root, "store")?;
        for d in [root.join("hosts"), root.join("quarantine")] {
            std::fs::create_dir_all(&d)
                .map_err(in_doing(format_args!("creating {}", d.display())))?;
        }
        let alerts = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("alerts.jsonl"))
            .map_err(in_doing(format_args!(
                "{}",
                root.join("alerts.jsonl").display()
            )))?;
        let by_host = quarantine_usage(&root.join("quarantine"))?;
        let store = Store {
            quarantine: Mutex::new(Quarantine {
                limits: quarantine,
                total: by_host.values().sum(),
                kept: 0,
                by_host,
            }),
            _lock: store_lock,
            root: root.to_path_buf(),
            enrollment,
            segment_bytes,
            chains: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            fork_scans: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
            forks_noted: Mutex::new(std::collections::HashSet::new()),
            jet,
            reloading: Mutex::new(()),
            saved: Mutex::new(read_tips(root)),
            alerts: Mutex::new(Alerts {
                file: alerts,
                recent: HashMap::new(),
                budget: HashMap::new(),
            }),
        };
        if let Some(jet) = &store.jet {
            // Chains of a file store would be ignored: refused, not hidden.
            if let Some(h) = read_dir_names(&root.join("hosts"))?.first() {
                return Err(io::Error::other(format!(
                    "{} holds chains of a file store (host {h}, …), which a collector with \
                     [jetstream] would not serve: keep that store, and give this collector \
                     another store directory",
                    root.join("hosts").display()
                )));
            }
            // Chains are read from the stream when a host sends one, and by
            // the refresh thread.
            let n = store.know_listed(jet).map_err(io::Error::other)?;
            tracing::info!(chains = n, stream = jet.name(), "store opened on JetStream");
            return Ok(store);
        }
        let mut n = 0;
        for host in read_dir_names(&root.join("hosts"))? {
            for chain in read_dir_names(&root.join("hosts").join(&host))? {
                let Some(id) = crate::chain::hex::decode(&chain)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(ChainId)
                else {
                    tracing::warn!(host, dir = chain, "not a chain directory; ignored");
                    continue;
                };
                let slot = store.load(&host, id)?;
                if let Some(why) = &slot.broken {
                    store.alert("stored-chain-damaged", &host, Some(id), why);
                }
                lock(&store.hosts)
                    .entry(host.clone())
                    .or_insert_with(HostInfo::new)
                    .chains
                    .push(id);
                lock(&store.chains).insert(id, Arc::new(Mutex::new(slot)));
                n += 1;
            }
        }
        tracing::info!(chains = n, store = %root.display(), "store opened");
        Ok(store)
    }

    /// Chains are written and fsynced on a thread of their own, so that a
    /// connection keeps verifying batches while the last ones are synced.
    fn spool_options(&self) -> LogOptions {
        LogOptions {
            segment_bytes: self.segment_bytes,
            write_behind: true,
        }
    }

    fn chain_dir(&self, host: &str, id: ChainId) -> PathBuf {
        self.root.join("hosts").join(host).join(id.to_string())
    }

    /// Reads a chain back from disk: from the newest tip saved for it (at a
    /// clean stop, or in `tips.json` while running) on, reading only the
    /// records after it through the tip check; without a saved tip, or if the
    /// files no longer reach it, the whole chain from its Genesis.
    fn load(&self, host: &str, id: ChainId) -> io::Result<Slot> {
        let dir = self.chain_dir(host, id);
        let saved = [read_saved_tip(&dir), lock(&self.saved).get(&id).cloned()]
            .into_iter()
            .flatten()
            .filter(|s| s.tip.chain_id == id && s.tip.host == host)
            .max_by_key(|s| s.position);
        let Some(saved) = saved else {
            return self.replay(host, id, &dir);
        };
        let (position, next_seq) = (saved.position, saved.tip.next_seq);
        {
            match self.replay_from(&dir, saved.tip, saved.position) {
                // Records after it that do not follow it: the tip is not
                // believed over the files (the chain is read whole, below).
                Ok(slot) if slot.broken.is_some() => {
                    let m = "the records after the chain's saved tip do not follow it: reading the chain back from its Genesis";
                    tracing::warn!(chain = %id, host, "{m}");
                    self.alert("stored-chain-damaged", host, Some(id), m);
                }
                Ok(slot) => {
                    tracing::info!(chain = %id, host, next_seq = slot.tip.next_seq, from = saved.position, "chain resumed from its saved tip");
                    return Ok(slot);
                }
                Err(e) => {
                    tracing::warn!(chain = %id, host, error = %e, "the chain's saved tip does not fit its files: reading the chain back from its Genesis");
                }
            }
        }
        let slot = self.replay(host, id, &dir)?;
        if slot.broken.is_none() && (slot.position() < position || slot.tip.next_seq < next_seq) {
            // Records this collector synced (and acknowledged) are gone.
            let m = format!(
                "the chain's files end at seq {} (position {}), before its saved tip (seq {next_seq}, position {position}): records this collector stored are missing",
                slot.tip.next_seq,
                slot.position()
            );
            tracing::error!(chain = %id, host, "{m}");
            self.alert("stored-chain-damaged", host, Some(id), &m);
        }
        Ok(slot)
    }

    fn replay(&self, host: &str, id: ChainId, dir: &Path) -> io::Result<Slot> {
        self.replay_from(dir, Tip::before_genesis(id, host), 0)
    }

    /// Opens the chain in `dir` whose tip at store position `from` is `tip`,
    /// reading the records from there on through the tip check.
    fn replay_from(&self, dir: &Path, tip: Tip, from: u64) -> io::Result<Slot> {
        let (id, host) = (tip.chain_id, tip.host.clone());
        let mut tip = tip;
        let mut broken: Option<String> = None;
        let mut recent = VecDeque::new();
        let each = |pos, ty, payload: &[u8]| {
            if broken.is_some() {
                return;
            }
            if ty != crate::chain::frame::FRAME_RECORD {
                broken = Some(format!("frame at position {pos} is not a full record"));
                return;
            }
            let leaf = hash::leaf(payload);
            match tip.apply(payload, &leaf) {
                Ok(()) => {
                    if recent.len() == RECENT {
                        recent.pop_front();
                    }
                    recent.push_back((tip.next_seq - 1, leaf));
                }
                Err(e) => broken = Some(format!("at position {pos}: {e}")),
            }
        };
        let (log, repair) = SegmentLog::open_from(dir, self.spool_options(), from, each)
            .map_err(|e| io::Error::other(format!("store chain {}: {e}", dir.display())))?;
        let host = host.as_str();
        if repair.torn_bytes > 0 {
            tracing::warn!(chain = %id, host, bytes = repair.torn_bytes, "cut a torn tail in the store (a crash before fsync; those records were never acknowledged)");
        }
        if tip.next_seq == 0 && broken.is_none() {
            // Created, but the Genesis never became durable: still empty.
            tracing::info!(chain = %id, host, "empty chain directory in the store");
        }
        Ok(Slot {
            tip,
            log: Backing::Files(log),
            recent,
            broken,
        })
    }

    /// Where this collector stands on `chain` for `host` (the next seq and
    /// the head before it, made durable first): `Ok(None)` if unknown.
    pub fn position(&self, host: &str, chain: ChainId) -> Result<Option<(u64, Digest)>, Refused> {
        let Some(slot) = self.slot(host, chain)? else {
            return Ok(None);
        };
        let mut s = lock(&slot);
        if s.tip.host != host {
            return Err(self.not_yours(host, chain, &s.tip.host));
        }
        // Other collectors may have moved a chain on the stream since.
        if self.jet.is_some() && s.broken.is_none() {
            self.catch_up(&mut s)?;
        }
        // What the answer (and its receipt) says is held must be durable,
        // whichever session stored it.
        if let Err(e) = s.sync() {
            return Err(refused(
                Code::Storage,
                format!("syncing the chain before answering where it stands: {e}"),
            ));
        }
        Ok(Some((s.tip.next_seq, s.tip.head)))
    }

    fn not_yours(&self, host: &str, chain: ChainId, owner: &str) -> Refused {
        let msg = format!(
            "chain {chain} belongs to host {owner}; the certificate of {host} may not write it"
        );
        self.alert("foreign-chain", host, Some(chain), &msg);
        refused(Code::NotYourChain, msg)
    }

    /// Verifies a batch against the chain's tip and appends what is new (not
    /// yet fsynced: acknowledge once [`Slot::synced`] reaches [`Stored::end`]).
    /// `leaves` are the batch's records' leaves, in order. On a stream, what
    /// is new is published (and replicated) before this returns; if another
    /// collector moved the chain meanwhile, its records are read back through
    /// the tip check and the batch is checked again.
    pub fn apply(
        &self,
        host: &str,
        batch: &Batch<'_>,
        leaves: &[Digest],
    ) -> Result<Stored, Refused> {
        if leaves.len() != batch.records.len() {
            return Err(refused(
                Code::Protocol,
                format!(
                    "{} leaves for a batch of {} records",
                    leaves.len(),
                    batch.records.len()
                ),
            ));
        }
        let slot = match self.slot(host, batch.chain)? {
            Some(s) => s,
            None => self.create(host, batch)?,
        };
        let mut s = lock(&slot);
        if s.tip.host != host {
            return Err(self.not_yours(host, batch.chain, &s.tip.host));
        }
        let mut caught_up = false;
        let mut new_records = 0;
        for attempt in 0.. {
            if let Some(why) = &s.broken {
                return Err(refused(
                    Code::Storage,
                    format!("the stored chain is damaged and cannot be extended: {why}"),
                ));
            }
            let chunk = self.jet.as_ref().map_or(usize::MAX, |j| j.chunk());
            let checked = match check_batch(&s, batch, leaves, chunk) {
                Ok(c) => c,
                // On a stream, the tip may be behind what other collectors
                // stored: the batch is refused only against the latest.
                Err(_) if self.jet.is_some() && !caught_up => {
                    caught_up = true;
                    self.catch_up(&mut s)?;
                    continue;
                }
                Err(fault) => {
                    drop(s);
                    return Err(self.refuse(host, batch, fault));
                }
            };
            let Some(jet) = &self.jet else {
                new_records = checked.new.len();
                if let Err(e) = append_files(&mut s, checked) {
                    // The slot's lock is released first: eviction takes it.
                    drop(s);
                    self.evict(batch.chain);
                    return Err(refused(
                        Code::Storage,
                        format!("appending to the store: {e}"),
                    ));
                }
                break;
            };
            let published = self.publish(jet, &mut s, host, batch.chain, checked);
            new_records += published.as_ref().map_or(0, |p| p.1);
            match published.map(|p| p.0) {
                Ok(true) => break,
                Ok(false) if attempt < 8 => {
                    caught_up = true;
                    self.catch_up(&mut s)?;
                }
                Ok(false) => {
                    return Err(refused(
                        Code::Storage,
                        "the chain kept moving on the stream (other collectors appending); retry",
                    ))
                }
                Err(e) => {
                    return Err(refused(
                        Code::Storage,
                        format!("appending to the stream: {e}"),
                    ))
                }
            }
        }
        let (next_seq, head) = (s.tip.next_seq, s.tip.head);
        let end = s.position();
        drop(s);
        if let Some(h) = lock(&self.hosts).get_mut(host) {
            h.last_batch_ns = Some(now_ns());
        }
        Ok(Stored {
            slot,
            next_seq,
            head,
            new_records,
            end,
        })
    }

    /// A batch refused: quarantined, or recorded as a fork, with the answer.
    fn refuse(&self, host: &str, batch: &Batch<'_>, fault: BatchFault) -> Refused {
        match fault {
            BatchFault::Conflict { message, keep } => {
                self.refuse_fork(host, batch, &message, keep);
                refused(Code::Conflict, message)
            }
            BatchFault::Rejected(message) => {
                self.quarantine(host, batch, &message);
                refused(Code::Rejected, message)
            }
        }
    }

    /// Forgets a chain's in-memory state after a storage error: stops its
    /// write-behind thread (so nothing more reaches its files), and the chain is
    /// read back from disk on its next use ([`slot`](Self::slot)).
    pub fn evict(&self, chain: ChainId) {
        let Some(slot) = lock(&self.chains).get(&chain).cloned() else {
            return;
        };
        {
            let mut s = lock(&slot);
            if let Backing::Files(log) = &mut s.log {
                log.close_writer();
            }
            s.broken = Some("it was closed after a storage error; retry".into());
        }
        let mut chains = lock(&self.chains);
        if chains.get(&chain).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            chains.remove(&chain);
        }
    }

    /// A chain's slot: in memory, or read back from disk if it was evicted
    /// after a storage error. `None` if the store has never held the chain.
    fn slot(&self, host: &str, chain: ChainId) -> Result<Option<Arc<Mutex<Slot>>>, Refused> {
        if let Some(s) = lock(&self.chains).get(&chain).cloned() {
            return Ok(Some(s));
        }
        if let Some(jet) = &self.jet {
            // A chain id is one host's, on a stream as in files.
            let owner = lock(&self.hosts)
                .iter()
                .find(|(name, h)| *name != host && h.chains.contains(&chain))
                .map(|(name, _)| name.clone());
            if let Some(owner) = owner {
                return Err(self.not_yours(host, chain, &owner));
            }
            return self.stream_slot(jet, host, chain);
        }
        let owner = lock(&self.hosts)
            .iter()
            .find(|(_, h)| h.chains.contains(&chain))
            .map(|(name, _)| name.clone());
        let Some(owner) = owner else {
            return Ok(None);
        };
        let _one_at_a_time = lock(&self.reloading);
        if let Some(s) = lock(&self.chains).get(&chain).cloned() {
            return Ok(Some(s)); // read back by another connection meanwhile
        }
        let slot = self.load(&owner, chain).map_err(|e| {
            refused(
                Code::Storage,
                format!("reading chain {chain} back from the store: {e:#}"),
            )
        })?;
        if let Some(why) = &slot.broken {
            self.alert("stored-chain-damaged", &owner, Some(chain), why);
        }
        tracing::info!(host = owner, chain = %chain, next_seq = slot.tip.next_seq, "chain read back from the store after a storage error");
        let slot = Arc::new(Mutex::new(slot));
        lock(&self.chains).insert(chain, slot.clone());
        Ok(Some(slot))
    }

    /// Starts a chain from a batch that begins with its Genesis.
    fn create(&self, host: &str, batch: &Batch<'_>) -> Result<Arc<Mutex<Slot>>, Refused> {
        let Some(first) = batch.records.first() else {
            return Err(refused(
                Code::UnknownChain,
                format!("this collector holds nothing of chain {}", batch.chain),
            ));
        };
        let header = crate::chain::record::decode_header_only(first).ok();
        if header.is_some_and(|h| h.seq != 0) {
            return Err(refused(
                Code::UnknownChain,
                format!(
                    "this collector holds nothing of chain {}; send it from its Genesis (seq 0), not from seq {}",
                    batch.chain,
                    header.map_or(0, |h| h.seq)
                ),
            ));
        }
        let tip = match Tip::from_genesis(first, &hash::leaf(first)) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("record 0 of the batch: {e}");
                self.quarantine(host, batch, &msg);
                return Err(refused(Code::Rejected, msg));
            }
        };
        if tip.chain_id != batch.chain {
            let msg = format!(
                "Genesis of chain {} in a batch for chain {}",
                tip.chain_id, batch.chain
            );
            self.quarantine(host, batch, &msg);
            return Err(refused(Code::Rejected, msg));
        }
        if tip.host != host {
            let msg = format!(
                "chain {} was started by host {:?}; the certificate of {host} may not write it",
                tip.chain_id, tip.host
            );
            self.alert("foreign-chain", host, Some(tip.chain_id), &msg);
            return Err(refused(Code::NotYourChain, msg));
        }
        let fp = hash::fingerprint(&tip.pk0);
        if let Enrollment::Strict(enrolled) = &self.enrollment {
            if !enrolled.trusts(host, &tip.pk0) {
                let msg = format!("host {host} chain {} genesis key {fp} is not enrolled (strict enrollment: add it to the enrolled file)", tip.chain_id);
                self.alert("not-enrolled", host, Some(tip.chain_id), &msg);
                return Err(refused(Code::NotEnrolled, msg));
            }
        }
        let mut chains = lock(&self.chains);
        if let Some(s) = chains.get(&batch.chain) {
            return Ok(s.clone()); // another connection created it meanwhile
        }
        let known_host = lock(&self.hosts)
            .get(host)
            .is_some_and(|h| !h.chains.is_empty());
        let log = match &self.jet {
            // Nothing to create: the Genesis's message creates the subject.
            Some(_) => Backing::Stream { last: 0 },
            None => {
                let dir = self.chain_dir(host, tip.chain_id);
                let (log, _) =
                    SegmentLog::open(&dir, self.spool_options(), |_, _, _| {}).map_err(|e| {
                        refused(Code::Storage, format!("creating {}: {e}", dir.display()))
                    })?;
                let _ = fsutil::fsync_dir(&self.root.join("hosts").join(host));
                let _ = fsutil::fsync_dir(&self.root.join("hosts"));
                Backing::Files(log)
            }
        };
        // The Genesis itself goes through `apply` like any record: the slot
        // starts *before* it.
        let slot = Arc::new(Mutex::new(Slot {
            tip: Tip::before_genesis(tip.chain_id, host),
            log,
            recent: VecDeque::new(),
            broken: None,
        }));
        chains.insert(tip.chain_id, slot.clone());
        drop(chains);
        lock(&self.hosts)
            .entry(host.to_string())
            .or_insert_with(HostInfo::new)
            .chains
            .push(tip.chain_id);
        if known_host {
            self.alert("new-chain-for-known-host", host, Some(tip.chain_id), &format!("host {host} started a new chain {} with genesis key {fp}: it lost its chain state, or someone else holds a certificate for it", tip.chain_id));
        } else {
            tracing::info!(host, chain = %tip.chain_id, genesis = %fp, "new host: genesis key pinned");
        }
        Ok(slot)
    }

    /// A batch that conflicts with the stored chain: quarantined (always if
    /// `keep`, else only with a proof), with the proof of a fork when it holds
    /// one — a seal of an epoch the store holds a seal of, by the same key,
    /// both signatures valid: that key signed two histories (the host's
    /// state was restored from a copy, or its key was stolen) — and an alert.
    fn refuse_fork(&self, host: &str, batch: &Batch<'_>, reason: &str, keep: bool) {
        let (proof, statement) = self.fork_proof(host, batch).unzip();
        if let (Some(s), Some(p)) = (statement, &proof) {
            let mut noted = lock(&self.forks_noted);
            if noted.len() >= FORK_SCANS_REMEMBERED {
                noted.clear();
            }
            if noted.insert((batch.chain, p["epoch"].as_u64().unwrap_or(u64::MAX))) {
                self.note(s);
            }
        }
        let kept = match keep || proof.is_some() {
            true => self.quarantine_with(host, batch, reason, proof.clone()),
            false => None,
        };
        if let Some(p) = &proof {
            let r#where = match kept {
                Some(seg) => format!(
                    "the proof is kept in {}",
                    seg.with_extension("json").display()
                ),
                None => "the proof could not be kept (see the quarantine alert)".to_string(),
            };
            self.alert(
                "fork",
                host,
                Some(batch.chain),
                &format!(
                    "two seals of epoch {} signed by one key (seqs {} stored, {} received): the host's key signed two histories (its state restored from a copy, or the key stolen); {where}",
                    p["epoch"], p["stored_seq"], p["received_seq"]
                ),
            );
        }
    }

    /// The proof of a fork in `batch` (see [`Store::refuse_fork`]).
    /// Also the proof as the checkpoint log records it (docs/FORMAT.md §7.3).
    fn fork_proof(&self, host: &str, batch: &Batch<'_>) -> Option<(serde_json::Value, Vec<u8>)> {
        use crate::chain::record::Record;
        use crate::chain::seal::{self, KeyPosition, SealFields};
        // A seal whose signature verifies under the key it names, by the seal
        // rule (its key and epoch taken from the seal itself).
        let valid = |encoded: &[u8]| -> Option<(u64, u64, [u8; 32])> {
            let r = Record::decode(encoded).ok()?;
            let f = SealFields::of(&r.body, encoded)?;
            let at = KeyPosition {
                key: *f.signer,
                epoch: f.epoch,
            };
            seal::check(at, &f, |_| None).ok()?;
            Some((r.seq, f.epoch, *f.signer))
        };
        // The batch's valid seals, by epoch.
        let received: HashMap<u64, (u64, [u8; 32], &[u8])> = batch
            .records
            .iter()
            .filter_map(|rec| valid(rec).map(|(seq, epoch, k)| (epoch, (seq, k, *rec))))
            .collect();
        let last_epoch = received.keys().max().copied()?;
        let mut proof = None;
        self.stored_seals(host, batch.chain, last_epoch, |stored_seq, stored| {
            let Some((_, epoch, key)) = valid(stored) else {
                return false;
            };
            let Some(&(seq, signer, rec)) = received.get(&epoch) else {
                return false;
            };
            if key != signer || stored == rec {
                return false;
            }
            let hex = crate::chain::hex::encode;
            let Some(statement) = crate::chain::checkpoint::encode_fork(host, stored, rec) else {
                return false;
            };
            proof = Some((
                serde_json::json!({
                    "epoch": epoch,
                    "key": hex(&signer),
                    "stored_seq": stored_seq,
                    "stored_seal": hex(stored),
                    "received_seq": seq,
                    "received_seal": hex(rec),
                }),
                statement,
            ));
            true
        });
        proof
    }

    /// Gives `found` the stored seals of a chain, in order, up to epoch
    /// `last_epoch`, until it says stop (true). The files are read without
    /// the chain's lock (a conflict is rare), and at most once per
    /// [`FORK_SCAN_EVERY`] per chain.
    fn stored_seals(
        &self,
        host: &str,
        chain: ChainId,
        last_epoch: u64,
        mut found: impl FnMut(u64, &[u8]) -> bool,
    ) {
        use crate::storage::segment::{Item, SegmentReader};
        {
            let mut scans = lock(&self.fork_scans);
            let now = std::time::Instant::now();
            if scans
                .get(&chain)
                .is_some_and(|t| now.duration_since(*t) < FORK_SCAN_EVERY)
            {
                return;
            }
            if scans.len() >= FORK_SCANS_REMEMBERED {
                scans.retain(|_, t| now.duration_since(*t) < FORK_SCAN_EVERY);
                if scans.len() >= FORK_SCANS_REMEMBERED {
                    return;
                }
            }
            scans.insert(chain, now);
        }
        if let Some(jet) = &self.jet {
            return stream::each_seal(jet, host, chain, last_epoch, found);
        }
        let dir = self.chain_dir(host, chain);
        let Ok(bases) = crate::storage::segment_log::segment_bases(&dir) else {
            return;
        };
        for base in bases {
            let Ok(mut r) = SegmentReader::open(&dir.join(format!("{base:020}.seg"))) else {
                return;
            };
            while let Ok(Some(item)) = r.next_item() {
                let Item::Frame { payload, .. } = item else {
                    continue;
                };
                if visit_seal(chain, last_epoch, &mut found, payload) {
                    return;
                }
            }
        }
    }

    /// Writes a refused batch, as received, into quarantine with its reason.
    fn quarantine(&self, host: &str, batch: &Batch<'_>, reason: &str) {
        self.quarantine_with(host, batch, reason, None);
    }

    /// [`quarantine`](Self::quarantine), with a fork's proof in the `.json`;
    /// the segment file kept, if it was.
    fn quarantine_with(
        &self,
        host: &str,
        batch: &Batch<'_>,
        reason: &str,
        fork: Option<serde_json::Value>,
    ) -> Option<PathBuf> {
        // Its size in a segment file (header, and per record a frame header),
        // and what its two files take at least on disk: a batch of one byte
        // costs a block for each file, not 26 bytes.
        let bytes = batch
            .records
            .iter()
            .fold(crate::chain::frame::HEADER_LEN, |n, r| {
                n.saturating_add(9 + r.len() as u64)
            });
        let charge = charge_of(bytes);
        {
            let mut q = lock(&self.quarantine);
            let held = q.by_host.get(host).copied().unwrap_or(0);
            let full = if held.saturating_add(charge) > q.limits.per_host {
                Some(format!(
                    "host {host} has {held} bytes in quarantine (limits.quarantine_per_host = {})",
                    q.limits.per_host
                ))
            } else if q.total.saturating_add(charge) > q.limits.total {
                Some(format!(
                    "the quarantine holds {} bytes (limits.quarantine_total = {})",
                    q.total, q.limits.total
                ))
            } else {
                None
            };
            if let Some(why) = full {
                drop(q);
                self.alert(
                    "quarantine-full",
                    host,
                    Some(batch.chain),
                    &format!("{reason}; the batch was refused but not kept: {why}"),
                );
                return None;
            }
            q.total += charge;
            q.kept += 1;
            *q.by_host.entry(host.to_string()).or_default() += charge;
        }
        // The host is in the .json, not in the name: a long host name would make
        // a file name too long.
        let name = format!("{}-{}-b{}", now_ns(), batch.chain, batch.id);
        let dir = self.root.join("quarantine");
        let seg = dir.join(format!("{name}.seg"));
        let res = (|| -> io::Result<()> {
            let (mut w, _) = SegmentWriter::open_append(&seg, |_, _, _| {})
                .map_err(|e| io::Error::other(e.to_string()))?;
            for r in &batch.records {
                w.append_record_with(|b| b.extend_from_slice(r))?;
            }
            w.sync()?;
            let mut info = serde_json::json!({
                "host": host,
                "chain": batch.chain.to_string(),
                "batch": batch.id,
                "records": batch.records.len(),
                "bytes": bytes,
                "reason": reason,
                "time": crate::util::timefmt::rfc3339(now_ns()),
            });
            if let Some(f) = &fork {
                info["fork"] = f.clone();
            }
            fsutil::write_atomic(
                &dir.join(format!("{name}.json")),
                format!("{info:#}\n").as_bytes(),
                "quarantine",
            )?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                self.alert(
                    "quarantined",
                    host,
                    Some(batch.chain),
                    &format!("{reason}; batch kept in {}", seg.display()),
                );
                Some(seg)
            }
            Err(e) => {
                // Nothing kept: nothing counted (what was written is removed).
                let _ = std::fs::remove_file(&seg);
                {
                    let mut q = lock(&self.quarantine);
                    q.total = q.total.saturating_sub(charge);
                    if let Some(h) = q.by_host.get_mut(host) {
                        *h = h.saturating_sub(charge);
                    }
                }
                self.alert(
                    "quarantine-failed",
                    host,
                    Some(batch.chain),
                    &format!("{reason}; could not write {}: {e}", seg.display()),
                );
                None
            }
        }
    }

    /// Whether its calls wait on the network (a JetStream stream), not only
    /// on memory and the write-behind pool (the file store).
    pub fn waits_on_network(&self) -> bool {
        self.jet.is_some()
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Logs an alert and appends it to `alerts.jsonl`.
    ///
    /// Gives the checkpoint log a statement to record with its next
    /// checkpoint (at most [`MAX_NOTES`] wait; more are dropped, said in the
    /// log: forks are found at most once a minute per chain and peers are
    /// few, so only a log that cannot write loses them).
    /// False if it was dropped.
    pub fn note(&self, statement: Vec<u8>) -> bool {
        let mut n = lock(&self.notes);
        if n.len() >= MAX_NOTES {
            tracing::error!(
                "the checkpoint log has {MAX_NOTES} statements waiting: one more is dropped"
            );
            return false;
        }
        n.push(statement);
        true
    }

    /// The statements waiting for the checkpoint log (taken).
    pub fn take_notes(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.notes))
    }

    /// The same alert repeated within a minute (an agent retrying a refused
    /// batch) is counted, not written again: the next line written for it says
    /// how many were held back (`repeated`).
    pub fn alert(&self, kind: &str, host: &str, chain: Option<ChainId>, message: &str) {
        let now = now_ns();
        let message = clip(message, ALERT_MESSAGE_MAX);
        let host = clip(host, crate::chain::hostname::MAX_LEN);
        let (message, host) = (message.as_ref(), host.as_ref());
        let mut a = lock(&self.alerts);
        let key = (
            kind.to_string(),
            host.to_string(),
            chain,
            message.to_string(),
        );
        let repeated = match a.recent.get_mut(&key) {
            Some((last, held)) if now.saturating_sub(*last) < ALERT_REPEAT_NS => {
                *held += 1;
                tracing::debug!(alert = kind, host, "alert repeated (held back)");
                return;
            }
            Some((_, held)) => std::mem::take(held),
            None => 0,
        };
        if a.recent.len() >= ALERT_KEYS {
            a.recent
                .retain(|_, (t, held)| now.saturating_sub(*t) < ALERT_REPEAT_NS || *held > 0);
            if a.recent.len() >= ALERT_KEYS {
                a.recent.clear();
            }
        }
        a.recent.insert(key, (now, 0));
        let b = a.budget.entry(kind.to_string()).or_insert((now, 0, 0));
        if now.saturating_sub(b.0) >= ALERT_REPEAT_NS {
            b.0 = now;
            b.1 = 0;
        }
        if b.1 >= ALERT_BUDGET {
            b.2 += 1;
            return;
        }
        b.1 += 1;
        let not_written = std::mem::take(&mut b.2);
        tracing::error!(alert = kind, host, chain = ?chain.map(|c| c.to_string()), repeated, not_written, "{message}");
        let mut line = serde_json::json!({
            "time": crate::util::timefmt::rfc3339(now),
            "alert": kind,
            "host": host,
            "chain": chain.map(|c| c.to_string()),
            "message": message,
        });
        if repeated > 0 {
            line["repeated"] = repeated.into();
        }
        if not_written > 0 {
            // Alerts of this kind over the budget since the last one written.
            line["not_written"] = not_written.into();
        }
        let _ = writeln!(a.file, "{line}");
        let _ = a.file.sync_data();
    }

    /// What the store holds durably of each chain that moved (`moved(chain,
    /// next seq)` says which): every chain named is fsynced first, so a
    /// checkpoint names only records an agent may have been told are durable.
    /// A chain found damaged, or whose fsync fails, is left out.
    pub fn durable_tips(&self, moved: impl Fn(ChainId, u64) -> bool) -> Vec<checkpoint::Entry> {
        let chains: Vec<_> = lock(&self.chains).values().cloned().collect();
        let mut out = Vec::new();
        for slot in chains {
            let mut s = lock(&slot);
            if s.broken.is_some() || s.tip.next_seq == 0 || !moved(s.tip.chain_id, s.tip.next_seq) {
                continue;
            }
            if let Err(e) = s.sync() {
                tracing::warn!(chain = %s.tip.chain_id, error = %e, "fsync for a checkpoint");
                continue;
            }
            out.push(checkpoint::Entry {
                host: s.tip.host.clone(),
                chain: s.tip.chain_id,
                seq: s.tip.next_seq - 1,
                head: s.tip.head,
            });
        }
        out
    }

    /// At a clean stop: fsyncs every chain and saves every tip, so the next
    /// start reads no chain back (only what a chain's files hold after it).
    pub fn close(&self) {
        let chains = lock(&self.chains).clone();
        for (id, slot) in chains {
            let mut s = lock(&slot);
            if s.broken.is_some() {
                continue;
            }
            if let Err(e) = s.sync() {
                tracing::warn!(chain = %id, error = %e, "fsync at stop");
            }
        }
        self.save_tips();
    }

    /// Saves in `tips.json` the tip of every chain of the files whose records
    /// are all durable now, with the store position it describes (a chain
    /// with records not yet synced keeps the tip saved before). One atomic
    /// write for the whole store: after a crash a chain is read back only from
    /// there on. Nothing on a stream (a chain resumes from its last message).
    pub fn save_tips(&self) {
        if self.jet.is_some() {
            return;
        }
        let chains: Vec<_> = lock(&self.chains).values().cloned().collect();
        let mut tips = lock(&self.saved).clone();
        let mut changed = false;
        for slot in chains {
            let mut s = lock(&slot);
            if s.broken.is_some() || s.tip.next_seq == 0 {
                continue;
            }
            let Backing::Files(log) = &s.log else {
                continue;
            };
            if tips
                .get(&s.tip.chain_id)
                .is_some_and(|t| t.position == log.position())
            {
                continue; // saved already
            }
            // A busy chain has records not yet synced at any moment: sync
            // them (as a checkpoint does), so its tip is saved all the same.
            if !log.all_durable() && s.sync().is_err() {
                continue;
            }
            let Backing::Files(log) = &s.log else {
                continue;
            };
            if log.all_durable() {
                let saved = SavedTip {
                    position: log.position(),
                    tip: s.tip.clone(),
                };
                tips.insert(s.tip.chain_id, saved);
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let file = TipsFile {
            tips: tips.values().cloned().collect(),
        };
        let text = serde_json::to_vec(&file).unwrap_or_default();
        match fsutil::write_atomic(&self.root.join(TIPS_FILE), &text, "tips") {
            Ok(()) => *lock(&self.saved) = tips,
            Err(e) => tracing::warn!(error = %e, "saving the chains' tips"),
        }
    }

    /// On a stream: brings the chains of every host up to what the whole
    /// cluster stored (see `store::stream`); nothing on a file store.
    pub fn refresh(&self) {
        if let Some(jet) = &self.jet {
            self.refresh_from_stream(jet);
        }
    }

    /// Every host the store holds, sorted by name, as `status.json` and the
    /// metrics report it; `report` logs each host that just fell silent.
    pub fn survey(&self, silent_after: std::time::Duration, report: bool) -> Vec<HostStatus> {
        let now = now_ns();
        let limit = i64::try_from(silent_after.as_nanos()).unwrap_or(i64::MAX);
        let chains = lock(&self.chains).clone();
        let mut hosts = lock(&self.hosts);
        let mut out = Vec::new();
        let mut names: Vec<_> = hosts.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(info) = hosts.get_mut(&name) else {
                continue;
            };
            let mut cs = Vec::new();
            let mut last: Option<(i64, bool)> = None;
            let mut bytes = 0u64;
            for id in &info.chains {
                let Some(slot) = chains.get(id) else { continue };
                let s = lock(slot);
                let t = &s.tip;
                if let Backing::Files(log) = &s.log {
                    bytes = bytes.saturating_add(log.position());
                }
                if let Some(ns) = t.last_seal_ns {
                    if last.map_or(true, |(l, _)| ns >= l) {
                        last = Some((ns, t.ended_cleanly));
                    }
                }
                cs.push(ChainStatus {
                    chain: id.to_string(),
                    next_seq: t.next_seq,
                    epochs: t.epoch,
                    last_seal_time: t.last_seal_ns.map(crate::util::timefmt::rfc3339),
                    ended_cleanly: t.ended_cleanly,
                    damaged: s.broken.clone(),
                });
            }
            let stopped = last.is_some_and(|(_, c)| c);
            let since = last.map_or(info.since_ns, |(ns, _)| ns);
            let silent = !stopped && now.saturating_sub(since) > limit;
            if report {
                if silent && !info.silent_reported {
                    tracing::warn!(host = name, last_seal = ?last.map(|(ns, _)| crate::util::timefmt::rfc3339(ns)), "host is silent: no seal for longer than {silent_after:?}");
                }
                info.silent_reported = silent;
            }
            out.push(HostStatus {
                host: name,
                last_seal_time: last.map(|(ns, _)| crate::util::timefmt::rfc3339(ns)),
                last_seal_ns: last.map(|(ns, _)| ns),
                last_batch_ns: info.last_batch_ns,
                silent,
                stopped_cleanly: stopped,
                store_bytes: bytes,
                chains: cs,
            });
        }
        out
    }

    /// Batches quarantined since the start, and the bytes the quarantine holds.
    pub fn quarantine_usage(&self) -> (u64, u64) {
        let q = lock(&self.quarantine);
        (q.kept, q.total)
    }

    /// Writes `status.json` (read by `logseal status`; `running` false in the
    /// one written at a clean stop, `interval` how often it is rewritten) and
    /// reports hosts silent for longer than `silent_after`.
    pub fn write_status(
        &self,
        silent_after: std::time::Duration,
        interval: std::time::Duration,
        running: bool,
        certificates: &[crate::monitor::expiry::Watched],
    ) -> io::Result<()> {
        let now = now_ns();
        let out = self.survey(silent_after, true);
        let (kept, held) = self.quarantine_usage();
        let doc = serde_json::json!({
            "time": crate::util::timefmt::rfc3339(now),
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "running": running,
            "interval_secs": interval.as_secs().max(1),
            "silent_after_secs": silent_after.as_secs(),
            "store_bytes": out.iter().map(|h| h.store_bytes).sum::<u64>(),
            "quarantine_bytes": held,
            "quarantined_batches": kept,
            "certificates": crate::monitor::expiry::deadlines(certificates),
            "hosts": out,
        });
        fsutil::write_atomic(
            &self.root.join("status.json"),
            format!("{doc:#}\n").as_bytes(),
            "status",
        )
    }
}

/// One chain in [`Store::survey`].
#[derive(Debug, Serialize)]
pub struct ChainStatus {
    /// Chain id.
    pub chain: String,
    /// Records held: the next seq expected.
    pub next_seq: u64,
    /// Signing epochs seen.
    pub epochs: u64,
    /// Time of its last seal (RFC 3339).
    pub last_seal_time: Option<String>,
    /// Its last record is a clean shutdown.
    pub ended_cleanly: bool,
    /// Why it cannot be extended: present only for a damaged chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// One host in [`Store::survey`].
#[derive(Debug, Serialize)]
pub struct HostStatus {
    /// Host name.
    pub host: String,
    /// Time of its newest seal (RFC 3339).
    pub last_seal_time: Option<String>,
    /// The same, ns since the Unix epoch.
    #[serde(skip)]
    pub last_seal_ns: Option<i64>,
    /// When this collector last stored a batch of it (this run), ns.
    #[serde(skip)]
    pub last_batch_ns: Option<i64>,
    /// No seal for longer than `silent_after`, and not stopped cleanly.
    pub silent: bool,
    /// Its newest chain ended with a clean shutdown.
    pub stopped_cleanly: bool,
    /// Bytes of its chains in the store.
    pub store_bytes: u64,
    /// Its chains.
    pub chains: Vec<ChainStatus>,
}

/// File beside a chain's segments holding its tip at the last clean stop.
const TIP_FILE: &str = "tip.json";

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SavedTip {
    /// Store position (end of the last segment) when the tip was saved.
    position: u64,
    tip: Tip,
}

/// A chain's tip saved by a collector of an earlier version at its clean stop
/// (this one saves every tip in `tips.json`).
fn read_saved_tip(dir: &Path) -> Option<SavedTip> {
    let b = fsutil::read_bounded(&dir.join(TIP_FILE), 64 << 10).ok()?;
    serde_json::from_slice(&b).ok()
}

/// `STORE/tips.json`: every chain's tip and the store position it describes.
const TIPS_FILE: &str = "tips.json";

/// Largest `tips.json` read (about 400 000 chains).
const MAX_TIPS_FILE: u64 = 256 << 20;

#[derive(serde::Serialize, serde::Deserialize)]
struct TipsFile {
    tips: Vec<SavedTip>,
}

/// The tips saved in `root/tips.json`; none if it is absent. One that cannot
/// be read (too large, not a regular file) or does not parse is ignored, with
/// a warning: the chains are then read back whole.
fn read_tips(root: &Path) -> HashMap<ChainId, SavedTip> {
    let path = root.join(TIPS_FILE);
    let bytes = match fsutil::read_bounded(&path, MAX_TIPS_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            // Too large, not a regular file, unreadable: the chains are read
            // whole (slower, never wrong); the next save replaces it.
            tracing::warn!(file = %path.display(), error = %e, "the saved tips cannot be read: every chain is read back from its Genesis");
            return HashMap::new();
        }
    };
    match serde_json::from_slice::<TipsFile>(&bytes) {
        Ok(f) => f.tips.into_iter().map(|t| (t.tip.chain_id, t)).collect(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the saved tips do not parse: every chain is read back from its Genesis");
            HashMap::new()
        }
    }
}

/// Gives `found` the stored record `payload` if it is a seal of `chain`;
/// true: stop (`found` said so, or the seal is past `last_epoch`: seals come
/// in epoch order, nothing further on is wanted).
fn visit_seal(
    chain: ChainId,
    last_epoch: u64,
    found: &mut impl FnMut(u64, &[u8]) -> bool,
    payload: &[u8],
) -> bool {
    use crate::chain::record::{decode_header_only, Body, Kind, Record};
    if decode_header_only(payload).map(|h| h.kind) != Ok(Kind::Seal) {
        return false;
    }
    let Ok(Record {
        chain_id,
        seq,
        body: Body::Seal { epoch, .. },
        ..
    }) = Record::decode(payload)
    else {
        return false;
    };
    chain_id == chain && (epoch > last_epoch || found(seq, payload))
}

/// Why a batch does not continue its chain.
enum BatchFault {
    /// It holds a record that differs from the one stored at its seq, or one
    /// older than this collector can compare: `keep` it in quarantine.
    Conflict {
        /// What was wrong.
        message: String,
        /// Quarantine it even without a fork's proof.
        keep: bool,
    },
    /// It does not continue the chain (quarantined).
    Rejected(String),
}

/// A batch checked against a chain's tip.
struct Checked<'b> {
    /// The records that are new: seq, leaf, the record.
    new: Vec<(u64, Digest, &'b [u8])>,
    /// The tip after them.
    tip: Tip,
    /// Where a stream message must end (the number of new records before
    /// it) and the tip there: each message holds at most the stream's chunk.
    cuts: Vec<(usize, Tip)>,
}

/// Appends checked records to the chain's files (the caller evicts the
/// chain on an error, once it released the slot's lock).
fn append_files(s: &mut Slot, checked: Checked<'_>) -> io::Result<()> {
    let Backing::Files(log) = &mut s.log else {
        return Err(io::Error::other("not a file store"));
    };
    for (_, _, rec) in &checked.new {
        if let Err(e) = log.append_raw(rec) {
            // Some records may be in the files and the tip not past them: not
            // to be extended nor its tip saved until it is read back (evicted).
            s.broken = Some(format!("a write failed ({e}); the chain is read back"));
            return Err(e);
        }
    }
    for (seq, leaf, _) in &checked.new {
        remember(&mut s.recent, *seq, *leaf);
    }
    s.tip = checked.tip;
    Ok(())
}

/// Adds a stored record's leaf to the recent ones (at most [`RECENT`]).
fn remember(recent: &mut VecDeque<(u64, Digest)>, seq: u64, leaf: Digest) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back((seq, leaf));
}

/// Checks a batch against the chain's tip: which records are new, and the
/// tip after them. A record the chain holds already (re-sent) is skipped if
/// it is the same. `chunk` bounds the bytes of one stream message.
fn check_batch<'b>(
    s: &Slot,
    batch: &Batch<'b>,
    leaves: &[Digest],
    chunk: usize,
) -> Result<Checked<'b>, BatchFault> {
    let mut tip = s.tip.clone();
    let mut new = Vec::new();
    let mut cuts = Vec::new();
    let mut bytes = 0usize;
    for (i, (rec, &leaf)) in batch.records.iter().zip(leaves).enumerate() {
        // What the record takes in a message: frame header, type byte, record.
        let framed = crate::chain::frame::FRAME_HEADER + 1 + rec.len();
        if bytes > 0 && bytes.saturating_add(framed) > chunk {
            cuts.push((new.len(), tip.clone()));
            bytes = 0;
        }
        let e = match tip.apply(rec, &leaf) {
            Ok(()) => {
                bytes = bytes.saturating_add(framed);
                new.push((tip.next_seq - 1, leaf, *rec));
                continue;
            }
            Err(e) => e,
        };
        return Err(match e {
            // A record the collector holds already: re-sent, or a fork.
            Refusal::OutOfOrder { expected, got } if got < expected => {
                let stored = s.recent.iter().rev().find(|(q, _)| *q == got).map(|x| x.1);
                match stored {
                    Some(l) if l == leaf => continue, // re-sent: idempotent
                    Some(_) => BatchFault::Conflict {
                        message: format!("record seq {got} differs from the record stored at that seq (a forked or rewritten chain)"),
                        keep: true,
                    },
                    None => BatchFault::Conflict {
                        message: format!("record seq {got} is older than the records this collector can compare; resume from seq {expected}"),
                        keep: false,
                    },
                }
            }
            // The agent skipped ahead of what this collector holds.
            Refusal::OutOfOrder { expected, got } if i == 0 => BatchFault::Rejected(format!(
                "batch starts at seq {got}, this collector holds up to seq {expected} (records missing in between)"
            )),
            e => BatchFault::Rejected(format!("record {i} of the batch: {e}")),
        });
    }
    cuts.retain(|(n, _)| *n > 0 && *n < new.len());
    Ok(Checked { new, tip, cuts })
}

fn read_dir_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(in_doing(format_args!("{}", dir.display())))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            v.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    v.sort();
    Ok(v)
}
