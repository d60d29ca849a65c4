//! A segment log: a directory of segment files holding one chain's records —
//! the agent's spool (kept until a collector has acknowledged them) and each
//! chain of a collector's store.
//!
//! ```text
//! DIR/<base>.seg    segments, 20-digit zero-padded `base`: the global position of
//!                   the segment's first byte (its header). Global position of a
//!                   frame = base + its offset in the file. The next segment's base
//!                   is this one's base + its length, so positions never repeat.
//! DIR/acked         global position up to which a collector has acknowledged the
//!                   records as durable (8 bytes big-endian + CRC32C), written with
//!                   fsutil::write_atomic. Absent: nothing acknowledged.
//! ```
//!
//! Invariants: only the last segment is appended to; a segment is fsynced before
//! the next one is created; a segment is deleted only when every frame in it lies
//! below the acknowledged position. A crash leaves at most a torn tail in the last
//! segment (cut at open, saved beside it as `<base>.seg.torn-<offset>`), or a last
//! segment shorter than its header (rewritten). Damage anywhere else, or segments
//! whose bases do not follow each other, is reported and nothing is appended.

use crate::storage::fsutil;
use crate::storage::segment::{Damage, OpenError, Repair, SegmentReader, SegmentWriter};
use std::io;
use std::path::{Path, PathBuf};

/// Settings of a segment log.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// A new segment is started once the current one reaches this size.
    pub segment_bytes: u64,
    /// Write and fsync on a thread of the spool's own ([`crate::storage::writebehind`]),
    /// so that appending only fills a buffer.
    pub write_behind: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            write_behind: false,
        }
    }
}

/// The segment files of one chain in one directory.
pub struct SegmentLog {
    dir: PathBuf,
    opts: LogOptions,
    /// Closed segments: (base, length).
    closed: Vec<(u64, u64)>,
    cur: SegmentWriter,
    cur_base: u64,
    acked: u64,
    /// Called after each fdatasync of the write-behind (of every segment,
    /// the ones to come too).
    wakers: Vec<crate::storage::writebehind::Waker>,
}

fn seg_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn acked_path(dir: &Path) -> PathBuf {
    dir.join("acked")
}

/// Writes `acked` atomically: the position and its CRC32C.
fn write_acked(dir: &Path, pos: u64) -> io::Result<()> {
    let mut b = pos.to_be_bytes().to_vec();
    b.extend_from_slice(&crc32c::crc32c(&b).to_be_bytes());
    fsutil::write_atomic(&acked_path(dir), &b, "spool-acked")
}

/// Bases of the segment files in `dir`, sorted.
pub fn segment_bases(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(b) = stem.parse() {
                    bases.push(b);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The acknowledged position recorded in a spool directory, if any. Errors
/// do not name the file: the caller does.
fn read_acked(dir: &Path) -> io::Result<Option<u64>> {
    // 12 bytes; a larger file (or a FIFO, a device) is refused unread.
    match crate::storage::fsutil::read_bounded(&acked_path(dir), 64) {
        Ok(b) if b.len() == 12 => {
            let crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            if crc != crc32c::crc32c(&b[..8]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "checksum mismatch",
                ));
            }
            Ok(Some(u64::from_be_bytes(
                b[..8].try_into().unwrap_or([0; 8]),
            )))
        }
        Ok(b) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, not the 12 of an acknowledged position", b.len()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl SegmentLog {
    /// Opens (creating if needed) the spool in `dir`, calling `each(position,
    /// frame type, payload)` for every frame in order.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
        each: impl FnMut(u64, u8, &[u8]),
    ) -> Result<(SegmentLog, Repair), OpenError> {
        Self::open_from(dir, opts, 0, each)
    }

    /// [`open`](Self::open) that reads the frames only from global position
    /// `from` on: a frame boundary saved when everything before it was
    /// written and synced (the collector's saved tips). Segments wholly
    /// before it are not read, only their lengths checked to follow each
    /// other; a log that ends before `from` is refused.
    pub fn open_from(
        dir: &Path,
        opts: LogOptions,
        from: u64,
        mut each: impl FnMut(u64, u8, &[u8]),
    ) -> Result<(SegmentLog, Repair), OpenError> {
        let io = |source| OpenError::Io {
            path: dir.to_path_buf(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let mut bases = segment_bases(dir).map_err(io)?;
        if bases.is_empty() {
            bases.push(0);
        }
        let mut closed = Vec::new();
        let last = bases.len() - 1;
        for (i, &base) in bases[..last].iter().enumerate() {
            let path = seg_path(dir, base);
            let size = std::fs::symlink_metadata(&path).map_err(io)?.len();
            let len = if base + size <= from {
                size
            } else {
                let mut r = SegmentReader::open(&path).map_err(|e| OpenError::BadHeader {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                if from > base {
                    r.skip_to(from - base).map_err(io)?;
                }
                let damage = r
                    .frames_until_damage(|offset, ty, payload| each(base + offset, ty, payload))
                    .map_err(io)?;
                if let Some(Damage { offset, reason, .. }) = damage {
                    return Err(OpenError::Damaged {
                        path,
                        offset,
                        reason,
                    });
                }
                r.position()
            };
            if base + len != bases[i + 1] {
                return Err(OpenError::Damaged {
                    path: seg_path(dir, bases[i + 1]),
                    offset: 0,
                    reason: "spool segment does not start where the previous one ends (a segment is missing or was altered)",
                });
            }
            closed.push((base, len));
        }
        let base = bases[last];
        let (mut cur, repair) = SegmentWriter::open_append_from(
            &seg_path(dir, base),
            from.saturating_sub(base),
            |off, t, p| each(base + off, t, p),
        )?;
        if opts.write_behind {
            cur.write_behind().map_err(io)?;
        }
        let acked = read_acked(dir)
            .map_err(|source| OpenError::Io {
                path: acked_path(dir),
                source,
            })?
            .unwrap_or(bases[0]);
        Ok((
            SegmentLog {
                dir: dir.to_path_buf(),
                opts,
                closed,
                cur,
                cur_base: base,
                acked,
                wakers: Vec::new(),
            },
            repair,
        ))
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Global position at which the next frame will start.
    pub fn position(&self) -> u64 {
        self.cur_base + self.cur.position()
    }

    /// Bytes held by the spool (all segments, including buffered frames).
    pub fn bytes(&self) -> u64 {
        let first = self.closed.first().map_or(self.cur_base, |s| s.0);
        self.position() - first
    }

    /// Position up to which records were acknowledged by a collector.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// True if acknowledging up to `pos` would delete a segment.
    pub fn removes_below(&self, pos: u64) -> bool {
        self.closed
            .first()
            .is_some_and(|&(base, len)| base + len <= pos.min(self.position()))
    }

    /// Calls `waker` after every fdatasync (or failure) of the write-behind,
    /// in this segment and the next ones.
    pub fn add_waker(&mut self, waker: &crate::storage::writebehind::Waker) {
        if !self.wakers.iter().any(|w| std::sync::Arc::ptr_eq(w, waker)) {
            self.wakers.push(waker.clone());
            self.cur.add_waker(waker);
        }
    }

    /// No longer calls `waker`.
    pub fn remove_waker(&mut self, waker: &crate::storage::writebehind::Waker) {
        self.wakers.retain(|w| !std::sync::Arc::ptr_eq(w, waker));
        self.cur.remove_waker(waker);
    }

    /// Stops the write-behind thread after a storage error: nothing more
    /// reaches the files, and the last segment is cut back to what is known
    /// durable. The spool is not to be used after this.
    pub fn close_writer(&mut self) {
        self.cur.close_write_behind();
    }

    /// Starts making everything appended so far durable; with write-behind
    /// without waiting ([`synced`](Self::synced) tells when it is done).
    pub fn sync_begin(&mut self) -> io::Result<()> {
        self.cur.sync_begin()
    }

    /// Global position up to which the spool is known durable, or the error
    /// that stopped writing.
    pub fn synced(&self) -> io::Result<u64> {
        Ok(self.cur_base + self.cur.synced()?)
    }

    /// True if everything appended is known durable (no error pending).
    pub fn all_durable(&self) -> bool {
        self.cur.synced_now().map(|s| self.cur_base + s) == Some(self.position())
    }

    /// Records an acknowledgement and deletes segments that lie wholly below it.
    pub fn set_acked(&mut self, pos: u64) -> io::Result<()> {
        if pos <= self.acked {
            return Ok(());
        }
        let pos = pos.min(self.position());
        write_acked(&self.dir, pos)?;
        self.acked = pos;
        let mut removed = false;
        while let Some(&(base, len)) = self.closed.first() {
            if base + len > pos {
                break;
            }
            std::fs::remove_file(seg_path(&self.dir, base))?;
            self.closed.remove(0);
            removed = true;
        }
        if removed {
            fsutil::fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Records an acknowledgement in a spool no process has open (the agent
    /// after its stamper stopped): writes `acked` and deletes the segments that
    /// lie wholly below it.
    pub fn ack_closed(dir: &Path, pos: u64) -> io::Result<()> {
        let old = read_acked(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", acked_path(dir).display())))?
            .unwrap_or(0);
        if pos <= old {
            return Ok(());
        }
        write_acked(dir, pos)?;
        let bases = segment_bases(dir)?;
        let mut removed = false;
        for w in bases.windows(2) {
            if w[1] <= pos {
                std::fs::remove_file(seg_path(dir, w[0]))?;
                removed = true;
            }
        }
        if removed {
            fsutil::fsync_dir(dir)?;
        }
        Ok(())
    }

    /// Appends an already-encoded record (the collector's store); returns its
    /// global position.
    pub fn append_raw(&mut self, record: &[u8]) -> io::Result<u64> {
        let base = self.room()?;
        let (off, _) = self
            .cur
            .append_record_with(|b| b.extend_from_slice(record))?;
        Ok(base + off)
    }

    /// Starts a new segment if the current one is full; returns the current
    /// segment's base.
    fn room(&mut self) -> io::Result<u64> {
        if self.cur.position() >= self.opts.segment_bytes {
            self.rotate()?;
        }
        Ok(self.cur_base)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.cur.sync()?;
        let len = self.cur.position();
        let base = self.cur_base + len;
        let (mut next, _) = SegmentWriter::open_append(&seg_path(&self.dir, base), |_, _, _| {})
            .map_err(|e| io::Error::other(e.to_string()))?;
        if self.opts.write_behind {
            next.write_behind()?;
            for w in &self.wakers {
                next.add_waker(w);
            }
        }
        self.closed.push((self.cur_base, len));
        self.cur = next;
        self.cur_base = base;
        Ok(())
    }
}

impl crate::storage::writer::RecordLog for SegmentLog {
    fn append_frame(&mut self, frame: &[u8]) -> io::Result<u64> {
        let base = self.room()?;
        Ok(base + self.cur.append_frame(frame)?)
    }
    fn append_record_leaf(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<(u64, crate::chain::Digest)> {
        let base = self.room()?;
        let (off, leaf) = self.cur.append_record_leaf(encode)?;
        Ok((base + off, leaf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.cur.flush()
    }
    #[cfg(feature = "fault-injection")]
    fn flush_partial(&mut self, n: usize) -> io::Result<()> {
        self.cur.flush_partial(n)
    }
    fn buffered(&self) -> usize {
        self.cur.buffered()
    }
    fn sync(&mut self) -> io::Result<()> {
        self.cur.sync()
    }
    fn position(&self) -> u64 {
        SegmentLog::position(self)
    }
}

impl crate::storage::writer::RecordLog for SegmentWriter {
    fn append_frame(&mut self, frame: &[u8]) -> io::Result<u64> {
        SegmentWriter::append_frame(self, frame)
    }
    fn append_record_leaf(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<(u64, crate::chain::Digest)> {
        SegmentWriter::append_record_leaf(self, encode)
    }
    fn flush(&mut self) -> io::Result<()> {
        SegmentWriter::flush(self)
    }
    #[cfg(feature = "fault-injection")]
    fn flush_partial(&mut self, n: usize) -> io::Result<()> {
        SegmentWriter::flush_partial(self, n)
    }
    fn buffered(&self) -> usize {
        SegmentWriter::buffered(self)
    }
    fn sync(&mut self) -> io::Result<()> {
        SegmentWriter::sync(self)
    }
    fn position(&self) -> u64 {
        SegmentWriter::position(self)
    }
}
