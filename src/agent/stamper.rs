//! The stamper: one thread owns the chain. It takes batches from the inputs'
//! bounded channel, appends them to the spool, group-commits (fsync at most
//! `commit_interval` after a record was appended), seals at most every
//! `seal_interval` while events flow and every `heartbeat` when idle, and
//! chains Loss records for what inputs had to drop.
//!
//! The channel is tokio's bounded mpsc rather than crossbeam-channel: the
//! inputs are async tasks, and `send().await` lets a stream input wait for room
//! without blocking an executor thread. The stager ([`super::stage`]) reads it,
//! encodes, frames and hashes the events of each batch on its own thread, and
//! passes them on through a short bounded queue; this thread takes the head
//! steps, appends, syncs and seals.
//!
//! Back-pressure: while the spool holds `max_size` bytes, or the disk refuses
//! writes, the stamper stops taking batches; the channel fills, stream inputs
//! wait, UDP drops and counts. Nothing is retried out of order: a failed
//! append is retried with the same record before anything else.

use super::stage::{self, Staged};
use super::unwritten::{LostCount, Unwritten};
use crate::chain::record::{Body, LossReason, Payload, Source};
use crate::ingest::{Batch, ItemFormat, LossCounter};
use crate::storage::segment_log::SegmentLog;
use crate::storage::writer::{ChainWriter, WriterError};
use crate::transport::shipper::ShipLink;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Stamper settings.
#[derive(Debug, Clone)]
pub struct StamperConfig {
    /// Seal at most this long after the first unsealed record.
    pub seal_interval: Duration,
    /// Seal this often when idle.
    pub heartbeat: Duration,
    /// fsync at most this long after an append.
    pub commit_interval: Duration,
    /// Spool size cap.
    pub max_size: u64,
    /// With a journald input: the state directory that keeps the
    /// `journal-cursor` file (see [`crate::ingest::journal::resume`]).
    pub journal_state: Option<std::path::PathBuf>,
    /// Told whether input is being taken (false) or not (true: the spool is
    /// full or writes fail): datagram inputs drop and count meanwhile.
    pub blocked: Arc<tokio::sync::watch::Sender<bool>>,
    /// Where counts of lost events go when a stop cannot write their Loss
    /// records (see [`super::unwritten`]).
    pub unwritten: Option<Arc<std::sync::Mutex<Unwritten>>>,
    /// Turn at least this often (systemd's watchdog watches the turns);
    /// `None`: only for input and the seals and syncs due.
    pub alive_every: Option<Duration>,
}

/// Loss records appended and not yet known durable: the spool position after
/// each, and what it counts.
#[derive(Default)]
struct LossLog(Vec<(u64, LostCount)>);

impl LossLog {
    fn appended(&mut self, w: &ChainWriter<SegmentLog>, seq: Option<u64>, body: &Body<'_>) {
        if let Body::Loss {
            source,
            reason,
            count,
            first_ns,
            last_ns,
            ..
        } = *body
        {
            let lost = LostCount {
                chain: w.chain_id(),
                seq,
                events: false,
                source,
                reason,
                count,
                first_ns,
                last_ns,
            };
            self.0.push((w.log().position(), lost));
        }
    }

    /// Events `first..next` of a batch were appended.
    fn events(&mut self, w: &ChainWriter<SegmentLog>, first: u64, b: &Batch) {
        let n = w.next_seq().saturating_sub(first);
        // Journal entries not written are read again at the next start.
        if n == 0 || b.format == ItemFormat::Fields {
            return;
        }
        let lost = LostCount {
            chain: w.chain_id(),
            seq: Some(first),
            events: true,
            source: b.source,
            // Counted only if they never become durable: a write failed.
            reason: LossReason::WriteFailed,
            count: n,
            first_ns: b.time_ns,
            last_ns: b.time_ns,
        };
        self.0.push((w.log().position(), lost));
    }

    fn durable_to(&mut self, pos: u64) {
        self.0.retain(|(end, _)| *end > pos);
    }
}

/// The cursor of the last journald entry chained, as far as it is durable.
#[derive(Default)]
struct JournalMark {
    /// Appended, not yet known durable: the spool position after the entry, and its cursor.
    pending: VecDeque<(u64, String)>,
    /// Durable in the spool.
    durable: Option<String>,
    /// In the cursor file.
    written: Option<String>,
}

impl JournalMark {
    /// The spool is durable up to `pos`.
    fn synced_to(&mut self, pos: u64) {
        while self.pending.front().is_some_and(|(p, _)| *p <= pos) {
            self.durable = self.pending.pop_front().map(|(_, c)| c);
        }
    }

    /// Writes the durable cursor to the file if it is newer than the file's.
    fn save(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        if self.durable.is_some() && self.durable != self.written {
            let c = self.durable.as_deref().unwrap_or_default();
            crate::ingest::journal::resume::write_cursor_file(dir, c)?;
            self.written = self.durable.clone();
        }
        Ok(())
    }
}

/// The spool is durable up to `durable`: publishes it to the shipper and
/// applies its acknowledgements.
fn ship_sync(
    w: &mut ChainWriter<SegmentLog>,
    link: Option<&ShipLink>,
    jm: &mut Journal<'_>,
    durable: u64,
) {
    jm.mark.synced_to(durable);
    let Some(link) = link else { return };
    link.set_durable(durable);
    apply_acks(w, Some(link), jm);
}

/// The journald cursor bookkeeping and where its file lives.
struct Journal<'a> {
    mark: JournalMark,
    dir: Option<&'a std::path::Path>,
    /// Writing the cursor file failed last time (warned once).
    save_failing: bool,
}

/// Records the shipper's acknowledged position in the spool (which deletes
/// fully acknowledged segments and so makes room under the size cap), but
/// never past the chain's resume point.
fn apply_acks(w: &mut ChainWriter<SegmentLog>, link: Option<&ShipLink>, jm: &mut Journal<'_>) {
    let Some(link) = link else { return };
    // Crash recovery reads the spool from the resume point: keep it.
    let acked = link.acked().min(w.resume_position());
    if acked > w.log().acked() {
        // A segment about to go may hold the last journald cursor: keep it.
        if let Some(dir) = jm.dir {
            if w.log().removes_below(acked) {
                match jm.mark.save(dir) {
                    Ok(()) => jm.save_failing = false,
                    Err(e) => {
                        if !jm.save_failing {
                            tracing::warn!(error = %e, "writing the journal cursor file; keeping acknowledged segments until it succeeds");
                            jm.save_failing = true;
                        }
                        return;
                    }
                }
            }
        }
        if let Err(e) = w.log_mut().set_acked(acked) {
            tracing::warn!(error = %e, "recording the acknowledged position in the spool");
        }
    }
}

/// Counters the stamper publishes (for logs, tests, the watchdog and the
/// metrics endpoint, which reads them at each scrape).
#[derive(Debug, Default)]
pub struct Stats {
    /// Seals made.
    pub seals: AtomicU64,
    /// Monotonic milliseconds of the last loop turn (liveness for the watchdog).
    pub alive_ms: AtomicU64,
    /// Wall-clock time of the last seal, ns since the Unix epoch (0: none yet).
    pub last_seal_ns: AtomicI64,
    /// Records appended since the last seal.
    pub unsealed: AtomicU64,
    /// Bytes in the spool's files.
    pub spool_bytes: AtomicU64,
    /// Spool bytes durable and not acknowledged by a collector.
    pub unacked_bytes: AtomicU64,
    /// Records of this run durable and not acknowledged.
    pub unacked_records: AtomicU64,
    /// When the oldest record not acknowledged was made durable, ns since the
    /// Unix epoch (0: everything acknowledged). Records a previous run left
    /// unacknowledged count as made durable when this run started.
    pub oldest_unacked_ns: AtomicI64,
    /// Events chained, by [`Source`] byte.
    pub events_by_source: [AtomicU64; Source::SLOTS],
    /// Bytes of messages chained, by [`Source`] byte.
    pub bytes_by_source: [AtomicU64; Source::SLOTS],
    /// Raw events chained that do not start like syslog (flagged unparsed).
    pub unparsed: AtomicU64,
    /// Loss records chained, by [`LossReason`] byte.
    pub loss_records: [AtomicU64; LossReason::SLOTS],
    /// Events those Loss records account for (0 where unknown), by reason.
    pub loss_events: [AtomicU64; LossReason::SLOTS],
    /// Wall-clock time of the last journal entry chained in this run, µs
    /// since the Unix epoch (0: none yet).
    pub journal_chained_usec: AtomicU64,
}

impl Stats {
    /// Events chained since the start, from every source.
    pub fn events(&self) -> u64 {
        self.events_by_source
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// A Loss record for `count` events was chained.
    pub fn loss(&self, reason: LossReason, count: u64) {
        let i = (reason as usize).min(4);
        self.loss_records[i].fetch_add(1, Ordering::Relaxed);
        self.loss_events[i].fetch_add(count, Ordering::Relaxed);
    }
}

/// Durable spool positions not yet acknowledged, with how many records of this
/// run lie below each and when it became durable: what the metrics say of the
/// shipping backlog. At most [`UNACKED_MARKS`] marks: when full, every other
/// one goes (the age gets coarser, never wrong by more than the gap).
#[derive(Debug, Default)]
struct Backlog {
    marks: VecDeque<(u64, u64, i64)>,
    /// Records appended since the start, at the newest mark.
    records: u64,
    /// Records appended since the start and acknowledged (to a mark's precision).
    acked_records: u64,
}

/// Marks kept by [`Backlog`].
const UNACKED_MARKS: usize = 4096;

impl Backlog {
    /// Position `pos` is durable with `records` records of this run below it.
    fn durable(&mut self, pos: u64, records: u64) {
        if self.marks.back().is_some_and(|m| m.0 >= pos) {
            return;
        }
        if self.marks.len() >= UNACKED_MARKS {
            let mut i = 0;
            self.marks.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.marks
            .push_back((pos, records, crate::util::timefmt::now_ns()));
        self.records = records;
    }

    /// Publishes the backlog between `acked` and `durable` into `stats`.
    fn publish(&mut self, acked: u64, durable: u64, stats: &Stats) {
        while let Some(m) = self.marks.front().filter(|m| m.0 <= acked) {
            self.acked_records = m.1;
            self.marks.pop_front();
        }
        let (oldest, unacked) = match self.marks.front() {
            Some(m) => (m.2, self.records.saturating_sub(self.acked_records)),
            None => (0, 0),
        };
        stats.oldest_unacked_ns.store(oldest, Ordering::Relaxed);
        stats.unacked_records.store(unacked, Ordering::Relaxed);
        stats
            .unacked_bytes
            .store(durable.saturating_sub(acked), Ordering::Relaxed);
    }
}

/// Why the stamper is not taking input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The spool reached `[spool] max_size`: stream inputs slow down, UDP is
    /// dropped (and counted), until acknowledgements free space.
    SpoolFull,
    /// A write or fsync of the spool failed: input waits until writing works.
    WriteFailed,
}

impl Held {
    /// What a Loss record's detail says of it.
    fn says(self) -> &'static str {
        match self {
            Held::SpoolFull => "the spool was full",
            Held::WriteFailed => "writes to the spool were failing",
        }
    }
}

struct Pending {
    batch: Batch,
    next: usize,
    /// The batch's Loss note is chained.
    loss_done: bool,
    /// The events encoded, framed and hashed by the stager.
    staged: Option<Box<Staged>>,
}

impl Pending {
    fn new((batch, staged): stage::Input) -> Pending {
        Pending {
            batch,
            next: 0,
            loss_done: false,
            staged,
        }
    }
}

/// Runs the stamper until the channel is closed, then shuts the chain down
/// cleanly (Lifecycle `shutdown` + seal).
pub fn run(
    mut w: ChainWriter<SegmentLog>,
    rx: mpsc::Receiver<Batch>,
    inputs: mpsc::WeakSender<Batch>,
    losses: Vec<Arc<LossCounter>>,
    cfg: StamperConfig,
    stats: Arc<Stats>,
    link: Option<Arc<ShipLink>>,
) -> Result<(), WriterError> {
    let link = link.as_deref();
    let mut jm = Journal {
        mark: JournalMark::default(),
        dir: cfg.journal_state.as_deref(),
        save_failing: false,
    };
    if link.is_some() {
        // What a previous run left in the spool is durable once synced here.
        w.sync().map_err(|e| WriterError::Io {
            what: "syncing the spool".into(),
            source: e,
        })?;
        let d = w.log().position();
        ship_sync(&mut w, link, &mut jm, d);
    }
    let shift = Arc::new(AtomicU64::new(0));
    let rx = stage::spawn(rx, w.chain_id(), w.next_seq(), shift.clone()).map_err(|e| {
        WriterError::Io {
            what: "starting the stager".into(),
            source: e,
        }
    })?;
    // The spool is known durable up to `durable`.
    let durable = w.log().synced().unwrap_or(0);
    let start_seq = w.next_seq();
    let mut backlog = Backlog::default();
    if link.is_some() {
        backlog.durable(durable, 0);
    }
    // The agent sealed the chain just before it started this thread.
    stats
        .last_seal_ns
        .store(crate::util::timefmt::now_ns(), Ordering::Relaxed);
    let mut s = Stamper {
        w,
        link,
        jm,
        cfg: &cfg,
        stats: &stats,
        losses: &losses,
        shift,
        last_seal: Instant::now(),
        first_unsealed: None,
        first_unsynced: None,
        durable,
        start_seq,
        sealed_seq: start_seq,
        backlog,
        loss_log: LossLog::default(),
        queue: VecDeque::new(),
        blocked: None,
        held_since_counted: None,
        closed: false,
        seal_failures: 0,
        stuck_since: None,
        last_input: None,
    };
    let start = Instant::now();
    while !(s.closed && s.queue.is_empty()) {
        stats
            .alive_ms
            .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        s.publish();
        if s.stopping_while_held(&rx, &inputs) {
            break;
        }
        s.take_input(&rx); // 1.
        s.append_queued(); // 2.
        s.held_since_counted = s.blocked.or(s.held_since_counted);
        // 3. Losses counted by inputs.
        if s.blocked.is_none() && s.chain_counted_losses() {
            s.first_unsealed.get_or_insert_with(Instant::now);
            s.first_unsynced.get_or_insert_with(Instant::now);
        }
        s.commit(); // 4.
        s.seal_if_due(); // 5.
    }
    s.shut_down()
}

/// What the stager hands over: a batch and its staged records.
type StagedRx = std_mpsc::Receiver<(Batch, Option<Box<Staged>>)>;

/// A failed seal or write is retried after this long.
const RETRY: Duration = Duration::from_millis(200);

/// After input stops, the loop still looks every second this long for
/// losses the inputs count late (a datagram input's kernel drops).
const LOSS_WATCH: Duration = Duration::from_secs(5);

/// The stamper's state between turns of its loop.
struct Stamper<'a> {
    w: ChainWriter<SegmentLog>,
    link: Option<&'a ShipLink>,
    jm: Journal<'a>,
    cfg: &'a StamperConfig,
    stats: &'a Stats,
    losses: &'a [Arc<LossCounter>],
    /// Shared with the stager (see [`stage::spawn`]).
    shift: Arc<AtomicU64>,
    last_seal: Instant,
    first_unsealed: Option<Instant>,
    first_unsynced: Option<Instant>,
    /// The spool is known durable up to here.
    durable: u64,
    start_seq: u64,
    sealed_seq: u64,
    backlog: Backlog,
    loss_log: LossLog,
    queue: VecDeque<Pending>,
    /// Why input is not being taken.
    blocked: Option<Held>,
    /// Why input was last held since the inputs' counts were last chained:
    /// what a Loss record of those counts gives as its reason.
    held_since_counted: Option<Held>,
    /// Every input has stopped.
    closed: bool,
    seal_failures: u64,
    /// Since when input has been held while the inputs are closed.
    stuck_since: Option<Instant>,
    /// When input last came (losses are looked for a while after it).
    last_input: Option<Instant>,
}

impl Stamper<'_> {
    /// Acknowledgements applied; the spool, the unsealed count and the backlog
    /// published.
    fn publish(&mut self) {
        apply_acks(&mut self.w, self.link, &mut self.jm);
        let stats = self.stats;
        stats
            .spool_bytes
            .store(self.w.log().bytes(), Ordering::Relaxed);
        stats.unsealed.store(
            self.w.next_seq().saturating_sub(self.sealed_seq),
            Ordering::Relaxed,
        );
        if let Some(l) = self.link {
            self.backlog.publish(l.acked(), self.durable, stats);
        }
    }

    /// Stopping while input cannot be written (spool full, or the disk
    /// refusing writes for 10 s): what was received but cannot be chained is
    /// accounted for in Loss records, then the chain is shut down. True if so.
    fn stopping_while_held(&mut self, rx: &StagedRx, inputs: &mpsc::WeakSender<Batch>) -> bool {
        if inputs.upgrade().is_some() || self.blocked.is_none() {
            return false;
        }
        let since = *self.stuck_since.get_or_insert_with(Instant::now);
        if self.blocked != Some(Held::SpoolFull) && since.elapsed() <= Duration::from_secs(10) {
            return false;
        }
        // The inputs are closed: the stager passes on the rest and ends.
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(b) => self.queue.push_back(Pending::new(b)),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        account_unwritten(
            &mut self.w,
            &mut self.queue,
            self.blocked,
            &mut self.loss_log,
            self.stats,
        );
        true
    }

    /// Step 1: takes input, unless the spool is full or a write is failing;
    /// waits at most until the next seal, commit or watchdog turn.
    fn take_input(&mut self, rx: &StagedRx) {
        let cfg = self.cfg;
        let full = self.w.log().bytes() >= cfg.max_size;
        match (full, self.blocked) {
            (true, None) => {
                tracing::warn!(
                    bytes = self.w.log().bytes(),
                    cap = cfg.max_size,
                    "spool full: slowing stream inputs, dropping UDP until space returns"
                );
                self.blocked = Some(Held::SpoolFull);
            }
            (false, Some(Held::SpoolFull)) => {
                tracing::info!("spool has room again");
                self.blocked = None;
            }
            _ => {}
        }
        cfg.blocked.send_if_modified(|b| {
            let now = self.blocked.is_some();
            std::mem::replace(b, now) != now
        });
        let mut wait = cfg.heartbeat.saturating_sub(self.last_seal.elapsed());
        if let Some(t) = self.first_unsealed {
            wait = wait.min(cfg.seal_interval.saturating_sub(t.elapsed()));
        }
        if let Some(t) = self.first_unsynced {
            wait = wait.min(cfg.commit_interval.saturating_sub(t.elapsed()));
        }
        // Turn often enough that the watchdog sees the loop alive.
        if let Some(every) = cfg.alive_every {
            wait = wait.min(every);
        }
        // Inputs count losses without waking the loop (a datagram input reads
        // the kernel's drops a second after its traffic): while there was
        // input lately, or losses wait, look every second. Idle, it sleeps.
        let lately = self.last_input.is_some_and(|t| t.elapsed() < LOSS_WATCH);
        // Records durable and not yet acknowledged: the acknowledgement is
        // applied (spool trimmed, `acked` written) within a second of coming.
        let unacked = self.link.is_some_and(|l| l.acked() < self.durable);
        if lately || unacked || self.losses.iter().any(|l| !l.is_empty()) {
            wait = wait.min(Duration::from_secs(1));
        }
        // A sync in flight (asked for everything appended, not done yet): look
        // again soon, to publish what it made durable.
        if self.first_unsynced.is_none() && self.durable < self.w.log().position() {
            wait = wait.min(Duration::from_millis(1));
        }
        if self.blocked.is_some() {
            std::thread::sleep(wait.min(RETRY));
        } else if self.queue.is_empty() && !self.closed {
            match rx.recv_timeout(wait) {
                Ok(b) => {
                    self.last_input = Some(Instant::now());
                    self.queue.push_back(Pending::new(b));
                    while self.queue.len() < 64 {
                        match rx.try_recv() {
                            Ok(b) => self.queue.push_back(Pending::new(b)),
                            Err(_) => break,
                        }
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// Step 2: appends in order; a failure keeps the rest queued.
    fn append_queued(&mut self) {
        let cfg = self.cfg;
        if self.blocked != Some(Held::SpoolFull) {
            while let Some(p) = self.queue.pop_front() {
                self.first_unsealed.get_or_insert_with(Instant::now);
                self.first_unsynced.get_or_insert_with(Instant::now);
                let marks = (&mut self.jm.mark, &mut self.loss_log);
                if let Err(p) =
                    append_batch(&mut self.w, p, self.stats, cfg.max_size, marks, &self.shift)
                {
                    self.queue.push_front(p);
                    if self.blocked.is_none() && self.w.log().bytes() < cfg.max_size {
                        self.blocked = Some(Held::WriteFailed);
                    }
                    break;
                }
                if self.blocked == Some(Held::WriteFailed) {
                    tracing::info!("writing to the spool again");
                    self.blocked = None;
                }
                if self.w.log().bytes() >= cfg.max_size {
                    break;
                }
            }
        }
    }

    /// Step 4, group commit: a sync is asked for at most `commit_interval` after
    /// an append; the spool's write-behind thread does it while this one
    /// goes on, and what it made durable is published when it is done.
    fn commit(&mut self) {
        let cfg = self.cfg;
        if self
            .first_unsynced
            .is_some_and(|t| t.elapsed() >= cfg.commit_interval || self.closed)
        {
            match self.w.log_mut().sync_begin() {
                Ok(()) => self.first_unsynced = None,
                Err(e) => {
                    if self.blocked.is_none() {
                        tracing::warn!(error = %e, "fsync of the spool failed; holding input until it succeeds");
                        self.blocked = Some(Held::WriteFailed);
                    }
                }
            }
        }
        match self.w.log().synced() {
            Ok(d) => {
                if d > self.durable {
                    self.durable = d;
                    self.backlog
                        .durable(d, self.w.next_seq().saturating_sub(self.start_seq));
                    self.loss_log.durable_to(d);
                    ship_sync(&mut self.w, self.link, &mut self.jm, d);
                }
                // Everything appended is durable again (by a sync or a seal).
                if self.blocked == Some(Held::WriteFailed)
                    && self.queue.is_empty()
                    && self.durable >= self.w.log().position()
                {
                    tracing::info!("writing to the spool again");
                    self.blocked = None;
                }
            }
            Err(e) => {
                if self.blocked.is_none() {
                    tracing::warn!(error = %e, "writing or fsync of the spool failed; holding input until it succeeds");
                    self.blocked = Some(Held::WriteFailed);
                }
                // Ask again: the write-behind thread retries what is queued.
                self.first_unsynced.get_or_insert_with(Instant::now);
            }
        }
    }

    /// Step 5: seals when one is due: `seal_interval` after the first unsealed
    /// record, `heartbeat` after the last seal, or a seal left pending.
    fn seal_if_due(&mut self) {
        let cfg = self.cfg;
        let seal_due = self
            .first_unsealed
            .is_some_and(|t| t.elapsed() >= cfg.seal_interval)
            || self.last_seal.elapsed() >= cfg.heartbeat
            || self.w.seal_pending();
        if seal_due {
            match self.w.seal() {
                Ok(_) => {
                    if self.seal_failures > 0 {
                        tracing::info!(attempts = self.seal_failures + 1, "seal succeeded");
                        self.seal_failures = 0;
                    }
                    self.stats.seals.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .last_seal_ns
                        .store(crate::util::timefmt::now_ns(), Ordering::Relaxed);
                    self.last_seal = Instant::now();
                    self.sealed_seq = self.w.next_seq();
                    self.first_unsealed = None;
                    self.first_unsynced = None;
                    self.durable = self.w.log().position();
                    self.backlog.durable(
                        self.durable,
                        self.w.next_seq().saturating_sub(self.start_seq),
                    );
                    self.loss_log.durable_to(self.durable);
                    ship_sync(&mut self.w, self.link, &mut self.jm, self.durable);
                }
                Err(e) => {
                    self.seal_failures += 1;
                    if self.seal_failures == 1 || self.seal_failures % 100 == 0 {
                        tracing::warn!(error = %e, attempts = self.seal_failures, "seal failed; retrying");
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// The channel is closed: chains the last counted losses, seals, and
    /// writes the shutdown record and its seal. Retries while the disk
    /// refuses (a signal to stop must not lose the shutdown seal).
    fn shut_down(mut self) -> Result<(), WriterError> {
        let cfg = self.cfg;
        // Losses the inputs counted and that were not chained yet.
        self.held_since_counted = self.blocked.or(self.held_since_counted);
        self.chain_counted_losses();
        // Drain done: clean shutdown. Retry while the disk refuses (a signal to stop
        // must not lose the shutdown seal).
        let mut tries = 0;
        let sealed = loop {
            if self.w.seal_pending() {
                if let Err(e) = self.w.seal() {
                    tries += 1;
                    if tries > 50 {
                        break Err(e);
                    }
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
            break Ok(());
        };
        if let Ok(d) = self.w.log().synced() {
            self.loss_log.durable_to(d);
        }
        let chain = self.w.chain_id();
        let ended = sealed.and_then(|()| self.w.shutdown("agent stopped"));
        if let Err(e) = ended {
            let held = self.held_since_counted;
            keep_for_next_start(
                cfg.unwritten.as_deref(),
                chain,
                self.loss_log,
                self.losses,
                held,
            );
            return Err(e);
        }
        self.stats.seals.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_seal_ns
            .store(crate::util::timefmt::now_ns(), Ordering::Relaxed);
        self.stats.unsealed.store(0, Ordering::Relaxed);
        // The agent deletes acknowledged segments after this returns.
        self.jm.mark.synced_to(u64::MAX);
        if let Some(dir) = self.jm.dir {
            if let Err(e) = self.jm.mark.save(dir) {
                tracing::warn!(error = %e, "writing the journal cursor file");
            }
        }
        Ok(())
    }
}

/// Why an input's counter counted: writes to the spool failing while input
/// was held; else a UDP socket overran, or another input could not hand its
/// messages over.
fn counted_reason(l: &LossCounter, held: Option<Held>) -> LossReason {
    match held {
        Some(Held::WriteFailed) => LossReason::WriteFailed,
        _ if l.source == Source::SyslogUdp => LossReason::UdpOverrun,
        _ => LossReason::SpoolFull,
    }
}

impl Stamper<'_> {
    /// Chains the inputs' counts (see [`chain_counted_losses`]); once they
    /// are all chained, the reason they were counted for starts afresh.
    fn chain_counted_losses(&mut self) -> bool {
        let held = self.held_since_counted;
        let any = chain_counted_losses(
            &mut self.w,
            self.losses,
            held,
            &mut self.loss_log,
            self.stats,
        );
        if self.losses.iter().all(|l| l.is_empty()) {
            self.held_since_counted = self.blocked;
        }
        any
    }
}

/// Chains a Loss record for each input that counted dropped messages; returns
/// true if it appended any. A count that cannot be written is kept for later.
fn chain_counted_losses(
    w: &mut ChainWriter<SegmentLog>,
    losses: &[Arc<LossCounter>],
    held: Option<Held>,
    log: &mut LossLog,
    stats: &Stats,
) -> bool {
    let mut any = false;
    for l in losses {
        let Some((count, first_ns, last_ns)) = l.take() else {
            continue;
        };
        let detail = format!(
            "{} on {}: dropped while {}",
            l.source.name(),
            l.listen,
            match held {
                Some(h) => h.says(),
                None => "the channel or spool was full",
            }
        );
        let reason = counted_reason(l, held);
        let body = Body::Loss {
            source: l.source,
            reason,
            count,
            first_ns,
            last_ns,
            detail: &detail,
        };
        match w.append(body.clone()) {
            Ok(seq) => {
                log.appended(w, Some(seq), &body);
                stats.loss(reason, count);
                any = true;
                tracing::warn!(
                    count,
                    source = l.source.name(),
                    "messages dropped; Loss record chained"
                );
            }
            Err(e) => {
                tracing::warn!(count, error = %e, "could not chain a Loss record yet");
                l.restore(count, first_ns.max(last_ns));
            }
        }
    }
    any
}

/// A stop that could not write its last records: the Loss records among them
/// (and counts no record was made for) are kept in `losses.pending` for the
/// next start, which chains them.
fn keep_for_next_start(
    file: Option<&std::sync::Mutex<Unwritten>>,
    chain: crate::chain::ChainId,
    log: LossLog,
    losses: &[Arc<LossCounter>],
    held: Option<Held>,
) {
    let mut counts: Vec<LostCount> = log.0.into_iter().map(|(_, c)| c).collect();
    for l in losses {
        if let Some((count, first_ns, last_ns)) = l.take() {
            let reason = counted_reason(l, held);
            counts.push(LostCount {
                chain,
                seq: None,
                events: false,
                source: l.source,
                reason,
                count,
                first_ns,
                last_ns,
            });
        }
    }
    if counts.is_empty() {
        return;
    }
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let saved = match file {
        Some(f) => f
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .save(counts)
            .map_err(|e| e.to_string()),
        None => Err(format!(
            "{} could not be made at start",
            super::unwritten::FILE_NAME
        )),
    };
    match saved {
        Ok(()) => tracing::warn!(
            count = total,
            file = super::unwritten::FILE_NAME,
            "Loss records could not be written at this stop: their counts are kept for the next start, which chains them"
        ),
        Err(e) => tracing::error!(
            count = total,
            error = %e,
            "Loss records could not be written at this stop, nor their counts kept: these losses are not in the chain"
        ),
    }
}

/// Chains Loss records (one per input kind) for batches that were received but
/// could not be written before the agent stopped.
fn account_unwritten(
    w: &mut ChainWriter<SegmentLog>,
    queue: &mut VecDeque<Pending>,
    why: Option<Held>,
    log: &mut LossLog,
    stats: &Stats,
) {
    let mut per_source: Vec<(Source, u64, i64, i64)> = Vec::new();
    for p in queue.drain(..) {
        let n = (p.batch.items.len() - p.next) as u64;
        // Journal entries not chained are read again at the next start.
        if n == 0 || p.batch.format == ItemFormat::Fields {
            continue;
        }
        let t = p.batch.time_ns;
        match per_source.iter_mut().find(|e| e.0 == p.batch.source) {
            Some(e) => {
                e.1 += n;
                e.2 = e.2.min(t);
                e.3 = e.3.max(t);
            }
            None => per_source.push((p.batch.source, n, t, t)),
        }
    }
    for (source, count, first_ns, last_ns) in per_source {
        let detail = format!(
            "received but not chained: agent stopped while {}",
            why.map_or("stopping", Held::says)
        );
        let reason = match why {
            Some(Held::WriteFailed) => LossReason::WriteFailed,
            _ => LossReason::SpoolFull,
        };
        let body = Body::Loss {
            source,
            reason,
            count,
            first_ns,
            last_ns,
            detail: &detail,
        };
        let r = w.append(body.clone());
        log.appended(w, r.as_ref().ok().copied(), &body);
        match r {
            Ok(_) => {
                stats.loss(reason, count);
                tracing::warn!(
                    count,
                    source = source.name(),
                    "stopping with a full spool: Loss record chained"
                )
            }
            Err(e) => {
                tracing::error!(count, source = source.name(), error = %e, "stopping: messages could not be chained and their loss could not be recorded")
            }
        }
    }
}

/// Appends the items of a batch from `p.next` on; on failure returns what is left.
#[allow(clippy::result_large_err)] // the batch is handed back whole, as it came in
fn append_batch(
    w: &mut ChainWriter<SegmentLog>,
    mut p: Pending,
    stats: &Stats,
    cap: u64,
    (mark, losses): (&mut JournalMark, &mut LossLog),
    shift: &AtomicU64,
) -> Result<(), Pending> {
    let b = &p.batch;
    if let (Some(l), false) = (&b.loss, p.loss_done) {
        let r = w.append_at(
            b.time_ns,
            Body::Loss {
                source: b.source,
                reason: l.reason,
                count: l.count,
                first_ns: l.first_ns,
                last_ns: l.last_ns,
                detail: &l.detail,
            },
        );
        if let Err(e) = r {
            tracing::warn!(error = %e, "append to the spool failed; holding input until it succeeds");
            return Err(p);
        }
        stats.loss(l.reason, l.count);
        tracing::warn!(count = l.count, source = b.source.name(), detail = %l.detail, "loss at the source; Loss record chained");
        p.loss_done = true;
    }
    let first = p.next;
    let first_seq = w.next_seq();
    while p.next < b.items.len() {
        if w.log().bytes() >= cap {
            break; // spool full: the rest waits
        }
        if let Some(st) = &p.staged {
            let i = p.next;
            match w.append_staged(st.first_seq + i as u64, st.frame(i), &st.leaves[i]) {
                Ok(true) => {
                    p.next += 1;
                    continue;
                }
                Ok(false) => {
                    // The stamper chained a record of its own since this was
                    // staged: encode the rest here; later batches use the new shift.
                    shift.store(
                        w.next_seq().saturating_sub(st.base + i as u64),
                        Ordering::Relaxed,
                    );
                    p.staged = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "append to the spool failed; holding input until it succeeds");
                    break;
                }
            }
        }
        let item = b.items[p.next];
        let bytes = b.bytes(&item);
        let payload = match b.format {
            ItemFormat::Raw => Payload::Raw(bytes),
            ItemFormat::Fields => {
                let mut fields = Vec::with_capacity(32);
                crate::ingest::journal::split_fields(bytes, &mut fields);
                Payload::Fields(fields)
            }
        };
        let r = w.append_at(b.time_ns, stage::event_body(b, &item, payload));
        if let Err(e) = r {
            tracing::warn!(error = %e, "append to the spool failed; holding input until it succeeds");
            break;
        }
        p.next += 1;
    }
    if b.format == ItemFormat::Fields && p.next > first {
        let last = b.bytes(&b.items[p.next - 1]);
        if let Some(c) = crate::ingest::journal::field(last, crate::ingest::journal::F_CURSOR) {
            let c = String::from_utf8_lossy(c).into_owned();
            mark.pending.push_back((w.log().position(), c));
        }
        let realtime = crate::ingest::journal::field(last, crate::ingest::journal::F_REALTIME)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        if let Some(t) = realtime {
            stats.journal_chained_usec.store(t, Ordering::Relaxed);
        }
    }
    losses.events(w, first_seq, b);
    // One pass over what was chained: bytes, and raw events not like syslog.
    let chained = &b.items[first..p.next];
    let raw = b.format == ItemFormat::Raw;
    let (bytes, unparsed) = chained.iter().fold((0u64, 0u64), |(n, u), i| {
        let odd = raw && !stage::looks_like_syslog(b.bytes(i));
        (n + u64::from(i.len), u + u64::from(odd))
    });
    let si = (b.source as usize).min(7);
    stats.events_by_source[si].fetch_add(chained.len() as u64, Ordering::Relaxed);
    stats.bytes_by_source[si].fetch_add(bytes, Ordering::Relaxed);
    stats.unparsed.fetch_add(unparsed, Ordering::Relaxed);
    if p.next < b.items.len() {
        return Err(p);
    }
    crate::ingest::recycle(p.batch);
    Ok(())
}
