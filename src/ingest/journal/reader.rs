//! Reads the live journal through libsystemd's sd-journal (the `systemd`
//! crate) on a thread of its own (an `sd_journal` handle must stay on the
//! thread that opened it) and feeds the stamper batches of entries.
//!
//! Order of work per entry: cursor → seqnum check → fields → filter →
//! encoding. Every entry is looked at, chained or not, so that a seqnum jump
//! within one seqnum id (entries the journal lost, or vacuumed before they were
//! read) is seen and chained as a Loss record before the entry after the gap.

use super::config::{JournalSource, JournalStart};
use super::cursor::Cursor;
use super::filter::Filter;
use super::{push_field, F_BOOT_ID, F_CURSOR, F_MONOTONIC, F_REALTIME, F_SEQNUM, F_SEQNUM_ID};
use crate::chain::record::{LossReason, Source};
use crate::ingest::{Batch, ItemFormat, LossNote};
use crate::util::in_doing;
use crate::util::timefmt::now_ns;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use systemd::journal::{Journal, OpenDirectoryOptions, OpenOptions};
use tokio::sync::{mpsc, watch};

/// Entries per batch at most.
const BATCH_ENTRIES: usize = 1024;
/// Bytes per batch at most (beyond one entry): the stamper's channel (128
/// batches) holds at most ≈ 32 MiB of journal entries.
const BATCH_BYTES: usize = 256 << 10;
/// Attempts at reading one entry before it is skipped and counted in a Loss.
const ENTRY_TRIES: u32 = 10;
/// How long one wait for new entries lasts (the stop flag is checked between).
const WAIT: Duration = Duration::from_millis(200);
/// How often, while behind, the reader looks at the journal's newest entry
/// to publish its lag.
pub const LAG_PROBE: Duration = Duration::from_secs(1);

/// Settings of the journald reader.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Which journal.
    pub source: JournalSource,
    /// Where to start when there is no cursor.
    pub start: JournalStart,
    /// Which entries and fields.
    pub filter: Filter,
    /// Largest encoded entry; larger ones have their largest values cut.
    pub max_entry: usize,
    /// Resume after this cursor (the last entry chained).
    pub resume: Option<String>,
    /// Peer name in the chained events (the configured journal).
    pub peer: Arc<str>,
    /// Stop at the end the journal has when it is reached (and notify `done`).
    pub stop_at_end: bool,
    /// Notified when the reader stopped at the end of the journal.
    pub done: Arc<tokio::sync::Notify>,
    /// The agent's state directory: a `tail` or time start records there the
    /// entry it starts after, so that a restart before anything was chained
    /// does not skip what was written meanwhile.
    pub state_dir: std::path::PathBuf,
}

pub use super::ReaderStats;

fn open(source: &JournalSource) -> std::io::Result<Journal> {
    let mut j = match source {
        JournalSource::System => OpenOptions::default().local_only(true).open()?,
        JournalSource::Namespace(n) => OpenOptions::default().open_namespace(n.as_str())?,
        JournalSource::Directory(d) => OpenDirectoryOptions::default().open_directory(
            d.to_str()
                .ok_or_else(|| std::io::Error::other("journal directory is not UTF-8"))?,
        )?,
    };
    // 0: no limit, every field whole (the default cuts at 64 KiB).
    j.set_data_threshold(0)?;
    Ok(j)
}

/// What a source is called in messages.
fn describe(source: &JournalSource) -> String {
    match source {
        JournalSource::System => "the system journal".to_string(),
        JournalSource::Namespace(n) => format!("the journal of namespace {n}"),
        JournalSource::Directory(d) => format!("the journal files in {}", d.display()),
    }
}

/// Checks that `source` can be opened, before the agent touches its chain.
pub fn check(source: &JournalSource) -> std::io::Result<()> {
    if let JournalSource::Directory(d) = source {
        if !d.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("journald.journal: {} is not a directory", d.display()),
            ));
        }
    }
    open(source).map_err(in_doing(format_args!("opening {}", describe(source))))?;
    Ok(())
}

/// Opens the journal on a new thread and reads it until `stop` turns true.
/// Returns once the journal is open (or failed to open) and positioned.
pub fn spawn(
    cfg: ReaderConfig,
    tx: mpsc::Sender<Batch>,
    stop: watch::Receiver<bool>,
    stats: Arc<ReaderStats>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("logseal-journald".into())
        .spawn(move || {
            let mut r = match Reader::start(cfg, tx, stop, stats) {
                Ok(r) => {
                    let _ = ready_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            r.run();
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(std::io::Error::other(
            "the journald reader thread died while opening the journal",
        )),
    }
}

struct Reader {
    j: Journal,
    cfg: ReaderConfig,
    tx: mpsc::Sender<Batch>,
    stop: watch::Receiver<bool>,
    stats: Arc<ReaderStats>,
    batch: Batch,
    /// Last seqnum seen per seqnum id, with the entry's time (ns).
    seen: HashMap<String, (u64, i64)>,
    /// The entry at the current position is not handled yet (after a resume
    /// that landed on an entry other than the cursor's).
    current_unread: bool,
    /// Scratch: the entry's fields.
    scratch: Vec<u8>,
    spans: Vec<(usize, usize, usize)>,
    /// A second handle on the same journal, kept at its end: the newest
    /// entry's time, for the lag (None if it could not be opened).
    tail: Option<Journal>,
    /// When the newest entry was last looked at.
    probed: std::time::Instant,
}

impl Reader {
    fn start(
        cfg: ReaderConfig,
        tx: mpsc::Sender<Batch>,
        stop: watch::Receiver<bool>,
        stats: Arc<ReaderStats>,
    ) -> std::io::Result<Reader> {
        let what = describe(&cfg.source);
        check(&cfg.source)?;
        let j = open(&cfg.source).map_err(in_doing(format_args!("opening {what}")))?;
        let batch = new_batch(&cfg.peer);
        let tail = open(&cfg.source)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "journald: a second handle on {what} (for the lag metric) could not be opened; the lag is not published")
            })
            .ok();
        let mut r = Reader {
            j,
            cfg,
            tx,
            stop,
            stats,
            batch,
            seen: HashMap::new(),
            current_unread: false,
            scratch: Vec::new(),
            spans: Vec::new(),
            tail,
            probed: std::time::Instant::now(),
        };
        r.position()
            .map_err(in_doing(format_args!("positioning in {what}")))?;
        Ok(r)
    }

    /// Puts the read position right after the last entry chained, or at the
    /// configured start.
    fn position(&mut self) -> std::io::Result<()> {
        let Some(c) = self.cfg.resume.clone() else {
            // On the entry before the start (if any): the next one read is the first.
            let before = match self.cfg.start {
                JournalStart::Head => {
                    self.j.seek_head()?;
                    false
                }
                JournalStart::Tail => {
                    self.j.seek_tail()?;
                    self.j.previous()? > 0
                }
                JournalStart::Time(usec) => {
                    // previous() after a realtime seek gives the last entry at
                    // or before that time: seek just before the start.
                    self.j.seek_realtime_usec(usec.saturating_sub(1))?;
                    self.j.previous()? > 0
                }
            };
            if before {
                // Entries up to here are skipped by configuration: remember
                // that, as if they had been chained.
                let here = self.j.cursor()?;
                super::resume::write_cursor_file(&self.cfg.state_dir, &here)?;
                if let Some(h) = Cursor::parse(&here) {
                    self.stats.start_usec.store(h.realtime_usec, Relaxed);
                    self.seen.insert(
                        h.seqnum_id,
                        (h.seqnum, (h.realtime_usec as i64).saturating_mul(1000)),
                    );
                }
                tracing::info!(start = ?self.cfg.start, after = %here, "journald: new chain, starting in the journal");
            } else {
                self.j.seek_head()?;
                tracing::info!(start = ?self.cfg.start, "journald: new chain, starting at the oldest entry");
            }
            return Ok(());
        };
        let last = Cursor::parse(&c);
        if let Some(l) = &last {
            self.stats.start_usec.store(l.realtime_usec, Relaxed);
            self.seen.insert(
                l.seqnum_id.clone(),
                (l.seqnum, (l.realtime_usec as i64).saturating_mul(1000)),
            );
        }
        self.j.seek_cursor(c.as_str()).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "resuming at {c:?} (the last journal entry chained, from the spool or the \
                     journal-cursor file): journald does not take it as a cursor: {e}"
                ),
            )
        })?;
        if self.j.next()? == 0 {
            tracing::info!(cursor = %c, "journald: resuming; no entry at or after the last one chained yet");
            return Ok(());
        }
        if self.j.test_cursor(c.as_str())? {
            tracing::info!(cursor = %c, "journald: resuming after the last entry chained");
            return Ok(());
        }
        // The last entry chained is gone from the journal (vacuumed or
        // rotated away while the agent was stopped): read from here, and say
        // what may have been lost if the seqnum check cannot.
        self.current_unread = true;
        let here = self.j.cursor()?;
        let same_sequence = match (&last, Cursor::parse(&here)) {
            (Some(l), Some(h)) => l.seqnum_id == h.seqnum_id,
            _ => false,
        };
        tracing::warn!(cursor = %c, now_at = %here, "journald: the last entry chained is no longer in the journal");
        if !same_sequence {
            let t = last
                .as_ref()
                .map(|l| (l.realtime_usec as i64).saturating_mul(1000))
                .unwrap_or(0);
            let now = Cursor::parse(&here)
                .map(|h| (h.realtime_usec as i64).saturating_mul(1000))
                .unwrap_or(t);
            self.batch.loss = Some(Box::new(LossNote {
                reason: LossReason::SourceGap,
                count: 0,
                first_ns: t,
                last_ns: now,
                detail: format!(
                    "journald: the entry last chained ({c}) is no longer in the journal and the next one available ({here}) is of another sequence: an unknown number of entries between them may be lost"
                ),
            }));
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn run(&mut self) {
        let mut errors = 0u32;
        while !self.stopping() {
            match self.step() {
                Ok(true) => {
                    errors = 0;
                    self.probe_lag();
                }
                Ok(false) => {
                    // Caught up: hand over what we have, then wait.
                    if !self.flush() {
                        break;
                    }
                    let last = self.stats.last_read_usec.load(Relaxed);
                    self.stats.newest_usec.store(last, Relaxed);
                    self.stats.caught_up.store(true, Relaxed);
                    if self.cfg.stop_at_end {
                        tracing::info!("journald: reached the end of the journal; stopping");
                        self.cfg.done.notify_one();
                        break;
                    }
                    if let Err(e) = self.j.wait(Some(WAIT)) {
                        tracing::warn!(error = %e, "journald: waiting for the journal");
                        std::thread::sleep(WAIT);
                    }
                }
                Err(e) => {
                    errors += 1;
                    if errors == 1 || errors % 100 == 0 {
                        tracing::warn!(error = %e, errors, "journald: reading the journal failed; retrying");
                    }
                    if self.current_unread && errors >= ENTRY_TRIES {
                        // This entry cannot be read: account for it and go on.
                        self.current_unread = false;
                        let t = now_ns();
                        self.flush();
                        self.batch.loss = Some(Box::new(LossNote {
                            reason: LossReason::InputError,
                            count: 1,
                            first_ns: t,
                            last_ns: t,
                            detail: format!(
                                "journald: an entry could not be read after {errors} attempts ({e}); skipped"
                            ),
                        }));
                        errors = 0;
                    }
                    if !self.flush() {
                        break;
                    }
                    std::thread::sleep(WAIT);
                }
            }
        }
        // Entries read but not handed over are read again at the next start.
        tracing::info!(
            read = self.stats.read.load(Relaxed),
            sent = self.stats.sent.load(Relaxed),
            "journald input stopped"
        );
    }

    /// The current entry's fields, whole, into `scratch` and `spans`. A field
    /// libsystemd cannot read (compression it was not built with, corruption)
    /// ends the list with a `__LOGSEAL_FIELD_ERROR` field: the entry is still
    /// chained.
    fn read_fields(&mut self) {
        self.scratch.clear();
        self.spans.clear();
        self.j.restart_data();
        loop {
            match self.j.enumerate_data() {
                Ok(Some(f)) => {
                    let d = f.data();
                    let eq = d.iter().position(|&b| b == b'=').unwrap_or(d.len());
                    let s = self.scratch.len();
                    self.scratch.extend_from_slice(d);
                    self.spans.push((s, s + eq, s + d.len()));
                }
                Ok(None) => break,
                Err(e) => {
                    let s = self.scratch.len();
                    let msg = format!("__LOGSEAL_FIELD_ERROR={e}");
                    self.scratch.extend_from_slice(msg.as_bytes());
                    self.spans
                        .push((s, s + "__LOGSEAL_FIELD_ERROR".len(), self.scratch.len()));
                    break;
                }
            }
        }
    }

    /// Reads one entry; false when there is none yet.
    fn step(&mut self) -> std::io::Result<bool> {
        if !self.current_unread && self.j.next()? == 0 {
            return Ok(false);
        }
        // Until it is handled: a failure below retries this entry.
        self.current_unread = true;
        self.stats.caught_up.store(false, Relaxed);
        self.stats.read.fetch_add(1, Relaxed);
        let cursor = self.j.cursor()?;
        let parsed = Cursor::parse(&cursor);
        let (realtime, monotonic, boot) = match &parsed {
            Some(p) => (p.realtime_usec, p.monotonic_usec, p.boot_id.clone()),
            None => {
                let (m, b) = self.j.monotonic_timestamp()?;
                (self.j.timestamp_usec()?, m, b.to_string())
            }
        };
        let t_ns = (realtime as i64).saturating_mul(1000);
        self.stats.last_read_usec.store(realtime, Relaxed);
        if let Some(p) = &parsed {
            self.check_sequence(p, t_ns, &cursor);
        }
        self.read_fields();
        let view: Vec<(&[u8], &[u8])> = self
            .spans
            .iter()
            .map(|&(s, eq, e)| (&self.scratch[s..eq], &self.scratch[(eq + 1).min(e)..e]))
            .collect();
        self.current_unread = false;
        if !self.cfg.filter.wants(&view) {
            if self.batch.items.is_empty() {
                // Handled once what was sent before it is chained (the lag).
                let sent = self.stats.sent.load(Relaxed);
                self.stats.skipped_after.store(sent, Relaxed);
                self.stats.skipped_usec.store(realtime, Relaxed);
            }
            return Ok(true);
        }
        let seq = parsed.as_ref().map(|p| p.seqnum.to_string());
        let sid = parsed.as_ref().map(|p| p.seqnum_id.clone());
        let mut address: Vec<(&str, Vec<u8>)> = vec![
            (F_CURSOR, cursor.into_bytes()),
            (F_REALTIME, realtime.to_string().into_bytes()),
            (F_MONOTONIC, monotonic.to_string().into_bytes()),
        ];
        if let (Some(seq), Some(sid)) = (seq, sid) {
            address.push((F_SEQNUM, seq.into_bytes()));
            address.push((F_SEQNUM_ID, sid.into_bytes()));
        }
        address.push((F_BOOT_ID, boot.into_bytes()));
        let kept: Vec<(&[u8], &[u8])> = view
            .iter()
            .filter(|(n, _)| self.cfg.filter.keeps(n))
            .copied()
            .collect();
        let fixed: usize = address
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>()
            + kept.iter().map(|(n, _)| 8 + n.len()).sum::<usize>();
        let values: usize = kept.iter().map(|(_, v)| v.len()).sum();
        let total = fixed + values;
        let (cap, original_len) = if total > self.cfg.max_entry {
            let budget = self.cfg.max_entry.saturating_sub(fixed);
            (
                water_level(kept.iter().map(|(_, v)| v.len()), budget),
                Some(total as u64),
            )
        } else {
            (usize::MAX, None)
        };
        let b = &mut self.batch;
        let start = b.data.len();
        for (name, value) in &address {
            push_field(&mut b.data, name.as_bytes(), value);
        }
        for (name, value) in &kept {
            push_field(&mut b.data, name, &value[..value.len().min(cap)]);
        }
        b.items.push(crate::ingest::Item {
            start: start as u32,
            len: (b.data.len() - start) as u32,
            original_len,
        });
        if b.items.len() >= BATCH_ENTRIES || b.data.len() >= BATCH_BYTES {
            self.flush();
        }
        Ok(true)
    }

    /// While behind (at most every [`LAG_PROBE`]): looks at the journal's
    /// newest entry through the second handle and publishes its time.
    fn probe_lag(&mut self) {
        if self.probed.elapsed() < LAG_PROBE {
            return;
        }
        self.probed = std::time::Instant::now();
        let Some(t) = &mut self.tail else { return };
        let newest = (|| -> std::io::Result<Option<u64>> {
            // Takes in files added or rotated since the last look.
            t.wait(Some(Duration::ZERO))?;
            t.seek_tail()?;
            if t.previous()? == 0 {
                return Ok(None);
            }
            Ok(Some(t.timestamp_usec()?))
        })();
        match newest {
            Ok(Some(n)) => self.stats.newest_usec.store(n, Relaxed),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "journald: looking at the newest entry"),
        }
    }

    /// Notes a seqnum jump within a seqnum id as a Loss before this entry.
    fn check_sequence(&mut self, p: &Cursor, t_ns: i64, cursor: &str) {
        // (No key copy per entry: the sequence is almost always known.)
        let prev = match self.seen.get_mut(&p.seqnum_id) {
            Some(v) => Some(std::mem::replace(v, (p.seqnum, t_ns))),
            None => self.seen.insert(p.seqnum_id.clone(), (p.seqnum, t_ns)),
        };
        let Some((last, last_t)) = prev else { return };
        if p.seqnum <= last.saturating_add(1) {
            return;
        }
        let missing = p.seqnum - last - 1;
        // The Loss goes before this entry: hand over what precedes it.
        self.flush();
        let note = LossNote {
            reason: LossReason::SourceGap,
            count: missing,
            first_ns: last_t,
            last_ns: t_ns,
            detail: format!(
                "journald: seqnum jumped from {last} to {} in sequence {} (next entry {cursor}): {missing} entries were lost or vacuumed before the agent read them",
                p.seqnum, p.seqnum_id
            ),
        };
        match &mut self.batch.loss {
            // A resume note not handed over yet: keep both in the detail.
            Some(l) => {
                l.detail.push_str("; ");
                l.detail.push_str(&note.detail);
                l.count += note.count;
                l.last_ns = note.last_ns;
            }
            None => self.batch.loss = Some(Box::new(note)),
        }
    }

    /// Hands the batch to the stamper, waiting while the channel is full;
    /// false if the agent is stopping (the batch is dropped: it is read again
    /// at the next start) or the stamper is gone.
    fn flush(&mut self) -> bool {
        if self.batch.items.is_empty() && self.batch.loss.is_none() {
            return true;
        }
        let mut b = std::mem::replace(&mut self.batch, new_batch(&self.cfg.peer));
        b.time_ns = now_ns();
        let n = b.items.len() as u64;
        loop {
            match self.tx.try_send(b) {
                Ok(()) => {
                    self.stats.sent.fetch_add(n, Relaxed);
                    return true;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if self.stopping() {
                        return false;
                    }
                    // Held back (a full spool): the journal goes on.
                    self.probe_lag();
                    b = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
    }
}

fn new_batch(peer: &Arc<str>) -> Batch {
    let mut b = Batch::new(Source::Journald, peer.clone(), now_ns());
    b.format = ItemFormat::Fields;
    b
}

/// The largest `l` such that the values cut to `l` bytes sum to at most
/// `budget`: cuts the largest values first and leaves small ones whole.
pub fn water_level(lens: impl Iterator<Item = usize> + Clone, budget: usize) -> usize {
    let sum = |l: usize| lens.clone().map(|n| n.min(l)).sum::<usize>();
    let (mut lo, mut hi) = (0usize, lens.clone().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if sum(mid) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::water_level;

    #[test]
    fn water_level_cuts_the_largest_first() {
        let lens = [10usize, 1000, 50, 5000];
        let l = water_level(lens.iter().copied(), 1000);
        let total: usize = lens.iter().map(|n| (*n).min(l)).sum();
        assert!(total <= 1000 && total > 990, "{l} {total}");
        assert!(l >= 50, "small values stay whole: {l}");
        assert_eq!(water_level(lens.iter().copied(), 0), 0);
        assert_eq!(water_level(lens.iter().copied(), 1_000_000), 5000);
    }
}
