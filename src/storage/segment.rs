//! Segment files: the one on-disk record-log format (stamp output, spool,
//! collector store, export bundles). The format itself (header, frames) is
//! [`crate::chain::frame`]; this module reads and appends files of it.
//!
//! Invariants: frames are only ever appended; a frame is complete on disk once
//! the writer has fsynced after it. A crash can leave at most one incomplete
//! frame at the end (a *torn tail*); [`SegmentWriter::open_append`] cuts it off
//! (keeping a copy of the torn bytes beside the file) before appending. A
//! damaged frame followed by good frames is *not* a crash artefact: the writer
//! refuses to append to such a file rather than destroy evidence, and the reader
//! reports it and resynchronises on the next frame whose CRC checks.

use crate::chain::frame::{
    check_header, frame_crc, frame_header, header, push_record, push_record_frame, FRAME_RECORD,
    FRAME_REDACTED, HEADER_LEN, MAGIC, MAX_FRAME, REDACTED_LEN,
};
use crate::chain::record::FORMAT_VERSION;
use crate::storage::crcspan;
use crate::storage::fsutil;
use crate::storage::writebehind::WriteBehind;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const WRITE_BUFFER: usize = 1 << 20;
/// With write-behind, frames are handed over in buffers of this size: small
/// enough that a sync waits for little, large enough for few hand-overs.
const BEHIND_BUFFER: usize = 256 << 10;

/// True if the file starts with the segment magic.
pub fn looks_like_segment(path: &Path) -> bool {
    let mut m = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut m))
        .map(|_| &m == MAGIC)
        .unwrap_or(false)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("record larger than the maximum frame size ({MAX_FRAME} bytes)"),
    )
}

/// One item read from a segment.
#[derive(Debug)]
pub enum Item<'a> {
    /// A frame whose CRC checks.
    Frame {
        /// File offset of the frame header.
        offset: u64,
        /// Frame type byte.
        frame_type: u8,
        /// Frame payload (after the type byte).
        payload: &'a [u8],
    },
    /// Bytes that are not a valid frame, followed by a valid frame at `offset + skipped`.
    Corrupt {
        /// File offset where the damage starts.
        offset: u64,
        /// Bytes skipped to reach the next valid frame.
        skipped: u64,
        /// What was wrong with the frame at `offset`.
        reason: &'static str,
    },
    /// The file ends inside a frame, or with bytes that are not a valid frame and
    /// no valid frame after them.
    TornTail {
        /// File offset where the torn tail starts.
        offset: u64,
        /// Its length in bytes.
        bytes: u64,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Where [`SegmentReader::frames_until_damage`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// File offset where the damage starts.
    pub offset: u64,
    /// A torn tail: its length to the end of the file. None: bytes that are
    /// not a frame, with valid frames after them.
    pub bytes: Option<u64>,
    /// What was wrong.
    pub reason: &'static str,
}

/// Streams the frames of a segment with a bounded buffer.
///
/// Memory: the buffer holds at most 2 × (the largest frame, 16 MiB, + its
/// 8-byte header + [`LOOKBEHIND`]) bytes, plus 1 MiB of CRC prefixes while
/// resynchronising. Time: linear in the file size, damaged or not (each
/// candidate frame met while resynchronising costs at most
/// [`crcspan::STEP`] bytes of CRC and a few multiplications, however long it
/// claims to be).
pub struct SegmentReader<R> {
    r: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pos: u64,
    eof: bool,
    /// CRC32C prefixes of the bytes searched while resynchronising.
    prefixes: crcspan::Prefixes,
    /// Bytes checksummed or moved within the buffer so far: see [`SegmentReader::work`].
    work: u64,
}

/// Frames read in order longer than this have their CRC from prefixes (a
/// shorter one costs at most this much CRC per damaged header).
const PREFIX_MIN_IN_ORDER: u64 = 1024;

/// Bytes kept in the buffer before the read position: the CRC prefixes of a
/// resynchronisation may start there.
const LOOKBEHIND: usize = crcspan::STEP as usize;

impl SegmentReader<File> {
    /// Opens a segment file and checks its header.
    pub fn open(path: &Path) -> io::Result<SegmentReader<File>> {
        let f = File::open(path)?;
        SegmentReader::new(f)
    }
}

impl<R: Read + Seek> SegmentReader<R> {
    /// Goes on reading at file offset `offset`, which must be where a frame
    /// begins (a position saved when the file was written): what lies before
    /// it is not read.
    pub fn skip_to(&mut self, offset: u64) -> io::Result<()> {
        let offset = offset.max(HEADER_LEN);
        self.r.seek(SeekFrom::Start(offset))?;
        self.start = 0;
        self.end = 0;
        self.pos = offset;
        self.eof = false;
        self.prefixes = crcspan::Prefixes::default();
        Ok(())
    }
}

impl<R: Read> SegmentReader<R> {
    /// Reads and checks the header from `r`.
    pub fn new(mut r: R) -> io::Result<SegmentReader<R>> {
        let mut h = Vec::with_capacity(16);
        (&mut r).take(16).read_to_end(&mut h)?;
        check_header(&h).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(SegmentReader {
            r,
            buf: vec![0u8; 256 << 10],
            start: 0,
            end: 0,
            pos: HEADER_LEN,
            eof: false,
            prefixes: crcspan::Prefixes::default(),
            work: 0,
        })
    }

    /// File offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes checksummed directly or moved within the buffer so far (the CRC
    /// prefixes count as checksummed): the reader's work, which stays within a
    /// small multiple of the file size whatever the file holds.
    pub fn work(&self) -> u64 {
        self.work + self.prefixes.work()
    }

    fn avail(&self) -> usize {
        self.end - self.start
    }

    /// Ensures `n` bytes are buffered from `start`; false at end of file.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        while self.avail() < n {
            if self.eof {
                return Ok(false);
            }
            // Room for `n` bytes from `start`, keeping LOOKBEHIND bytes before
            // it. The buffer grows to twice what is needed, so that moving
            // the bytes down happens at most once per half buffer read:
            // linear, even when every byte offset asks for a long frame.
            let keep = self.start.min(LOOKBEHIND);
            if self.buf.len() < n + keep {
                self.buf
                    .resize((2 * (n + LOOKBEHIND)).max(self.buf.len()), 0);
            }
            if self.start > keep && (self.buf.len() - self.start < n || self.end == self.buf.len())
            {
                self.buf.copy_within(self.start - keep..self.end, 0);
                self.work += (self.end - self.start + keep) as u64;
                self.end -= self.start - keep;
                self.start = keep;
            }
            let k = self.r.read(&mut self.buf[self.end..])?;
            if k == 0 {
                self.eof = true;
            }
            self.end += k;
        }
        Ok(true)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Checks whether a complete valid frame starts at `start`. Returns its body
    /// length, or why not (`Err(true)` if the file ended first).
    fn frame_at(
        &mut self,
        strict_prefilter: bool,
    ) -> io::Result<Result<usize, (&'static str, bool)>> {
        if !self.fill(8)? {
            return Ok(Err(("file ends inside a frame header", true)));
        }
        let Some((len, crc)) = frame_header(&self.buf[self.start..self.end]) else {
            return Ok(Err(("file ends inside a frame header", true)));
        };
        if len == 0 || len > MAX_FRAME {
            return Ok(Err(("frame length out of range", false)));
        }
        if strict_prefilter {
            // While resynchronising, reject cheaply before paying for a CRC.
            if !self.fill(10.min(8 + len))? {
                return Ok(Err(("file ends inside a frame", true)));
            }
            let t = self.buf[self.start + 8];
            let ok = match t {
                FRAME_RECORD => len < 2 || self.buf[self.start + 9] == FORMAT_VERSION,
                FRAME_REDACTED => len == 1 + REDACTED_LEN,
                _ => false,
            };
            if !ok {
                return Ok(Err(("unknown frame type", false)));
            }
        }
        if !self.fill(8 + len)? {
            return Ok(Err(("file ends inside a frame", true)));
        }
        // While resynchronising, candidates overlap: their CRCs come from
        // prefixes shared by all of them (see crcspan), not from their bytes
        // one by one. So do those of long frames read in order: a crafted
        // file may follow each valid frame with a header announcing 16 MiB.
        let by_prefixes = len as u64
            > if strict_prefilter {
                crcspan::STEP
            } else {
                PREFIX_MIN_IN_ORDER
            };
        let computed = if by_prefixes {
            let (buf, start, pos) = (&self.buf, self.start as u64, self.pos);
            let bytes =
                |a: u64, b: u64| &buf[(a + start - pos) as usize..(b + start - pos) as usize];
            let (s, e) = (pos + 8, pos + 8 + len as u64);
            self.prefixes.cover(s, e, &bytes);
            let len4 = crc32c::crc32c(&(len as u32).to_be_bytes());
            crcspan::combine(len4, self.prefixes.span(s, e, &bytes), len as u32)
        } else {
            self.work += len as u64;
            frame_crc(&self.buf[self.start + 8..self.start + 8 + len])
        };
        if computed != crc {
            return Ok(Err(("frame checksum mismatch", false)));
        }
        Ok(Ok(len))
    }

    /// Calls `each` with (offset, frame type, payload) for every frame up to
    /// the end of the file or the first damage, which it returns (a writer
    /// that must not append after damage stops there).
    pub fn frames_until_damage(
        &mut self,
        mut each: impl FnMut(u64, u8, &[u8]),
    ) -> io::Result<Option<Damage>> {
        while let Some(item) = self.next_item()? {
            match item {
                Item::Frame {
                    offset,
                    frame_type,
                    payload,
                } => each(offset, frame_type, payload),
                Item::Corrupt { offset, reason, .. } => {
                    return Ok(Some(Damage {
                        offset,
                        bytes: None,
                        reason,
                    }))
                }
                Item::TornTail {
                    offset,
                    bytes,
                    reason,
                } => {
                    return Ok(Some(Damage {
                        offset,
                        bytes: Some(bytes),
                        reason,
                    }))
                }
            }
        }
        Ok(None)
    }

    /// The next item, or `None` at a clean end of file.
    pub fn next_item(&mut self) -> io::Result<Option<Item<'_>>> {
        if !self.fill(1)? {
            return Ok(None);
        }
        let offset = self.pos;
        let reason = match self.frame_at(false)? {
            Ok(len) => {
                let s = self.start;
                self.consume(8 + len);
                let body = &self.buf[s + 8..s + 8 + len];
                return Ok(Some(Item::Frame {
                    offset,
                    frame_type: body[0],
                    payload: &body[1..],
                }));
            }
            Err((reason, _)) => reason,
        };
        // Damage at `offset`: look for the next valid frame.
        self.consume(1);
        loop {
            if !self.fill(1)? {
                return Ok(Some(Item::TornTail {
                    offset,
                    bytes: self.pos - offset,
                    reason,
                }));
            }
            match self.frame_at(true)? {
                Ok(_) => {
                    return Ok(Some(Item::Corrupt {
                        offset,
                        skipped: self.pos - offset,
                        reason,
                    }))
                }
                Err(_) => self.consume(1),
            }
        }
    }
}

/// What [`SegmentWriter::open_append`] found and repaired.
#[derive(Debug, Default, Clone)]
pub struct Repair {
    /// Bytes of a torn tail that were cut off.
    pub torn_bytes: u64,
    /// Where the torn bytes were saved, if any.
    pub saved_to: Option<PathBuf>,
}

/// Error opening a segment for appending.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The header is not a valid segment header.
    #[error("{path}: {reason}")]
    BadHeader {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Damage in the middle of the file (not a torn tail).
    #[error("{path}: damaged frame at offset {offset} ({reason}) followed by valid data; refusing to append (that would bury evidence). Run `logseal verify` on it and move it aside")]
    Damaged {
        /// File.
        path: PathBuf,
        /// Offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Appends frames to a segment file through a large buffer.
pub struct SegmentWriter {
    file: Arc<File>,
    path: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]` (with write-behind: handed over up to here).
    flushed: u64,
    /// Buffer size at which frames are handed to the file.
    flush_at: usize,
    /// With write-behind, the thread that writes and syncs.
    behind: Option<WriteBehind>,
    /// Without write-behind: file offset durable after the last sync.
    durable: u64,
    /// Closed by [`close_write_behind`](Self::close_write_behind): every call fails.
    closed: bool,
}

impl SegmentWriter {
    /// Opens `path` for appending, creating it with a header if it does not exist
    /// or is empty, cutting off a torn tail, and fdatasyncing what it holds.
    /// Calls `each` for every valid frame (offset, type, payload) so the caller
    /// can rebuild its state in one pass.
    pub fn open_append(
        path: &Path,
        each: impl FnMut(u64, u8, &[u8]),
    ) -> Result<(SegmentWriter, Repair), OpenError> {
        Self::open_append_from(path, 0, each)
    }

    /// [`open_append`](Self::open_append) that reads the file only from
    /// offset `from` on (a frame boundary saved when the file was written and
    /// synced; 0: from the header). A file shorter than `from` is refused, and
    /// so is any damage after `from`, torn tail or not: nothing is cut on the
    /// word of a saved position (were it not a frame boundary, or a frame
    /// crafted inside a record's payload, a "torn tail" cut there would
    /// destroy good records). The caller then reads the file from its header,
    /// which repairs what is to be repaired.
    pub fn open_append_from(
        path: &Path,
        from: u64,
        mut each: impl FnMut(u64, u8, &[u8]),
    ) -> Result<(SegmentWriter, Repair), OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut repair = Repair::default();
        if from > len.max(HEADER_LEN) {
            return Err(OpenError::Damaged {
                path: path.to_path_buf(),
                offset: len,
                reason: "the segment ends before the position saved for it",
            });
        }
        if len < HEADER_LEN {
            // New file, or a crash while creating it: a short header holds no frames.
            file.set_len(0).map_err(io)?;
            file.write_all(&header()).map_err(io)?;
            file.sync_all().map_err(io)?;
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    fsutil::fsync_dir(dir).map_err(io)?;
                }
            }
            repair.torn_bytes = len;
        } else {
            let mut r = SegmentReader::new(&mut file).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => OpenError::BadHeader {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
                _ => io(e),
            })?;
            if from > HEADER_LEN {
                r.skip_to(from).map_err(io)?;
            }
            let damage = r.frames_until_damage(&mut each).map_err(io)?;
            if let (Some(d), true) = (&damage, from > HEADER_LEN) {
                return Err(OpenError::Damaged {
                    path: path.to_path_buf(),
                    offset: d.offset,
                    reason:
                        "damage after the position saved for it (read from the header to repair)",
                });
            }
            let torn = match damage {
                None => None,
                Some(Damage {
                    offset,
                    bytes: Some(bytes),
                    ..
                }) => Some((offset, bytes)),
                Some(Damage { offset, reason, .. }) => {
                    return Err(OpenError::Damaged {
                        path: path.to_path_buf(),
                        offset,
                        reason,
                    })
                }
            };
            if let Some((offset, bytes)) = torn {
                let saved = path.with_file_name(format!(
                    "{}.torn-{offset}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                let mut tail = Vec::with_capacity(bytes as usize);
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                (&mut file).take(bytes).read_to_end(&mut tail).map_err(io)?;
                fsutil::write_atomic(&saved, &tail, "torn-tail").map_err(io)?;
                file.set_len(offset).map_err(io)?;
                file.sync_all().map_err(io)?;
                repair = Repair {
                    torn_bytes: bytes,
                    saved_to: Some(saved),
                };
            }
        }
        let end = file.seek(SeekFrom::End(0)).map_err(io)?;
        // A previous process may have left bytes unsynced: make them durable
        // now, so the durable offset is exact from the start (and a failed
        // fdatasync later only ever concerns bytes this writer can write again).
        file.sync_data().map_err(io)?;
        Ok((
            SegmentWriter {
                file: Arc::new(file),
                path: path.to_path_buf(),
                buf: Vec::with_capacity(WRITE_BUFFER + 4096),
                flushed: end,
                flush_at: WRITE_BUFFER,
                behind: None,
                durable: end,
                closed: false,
            },
            repair,
        ))
    }

    /// Hands writing and syncing to the write-behind pool from now on (see
    /// [`crate::storage::writebehind`]): appends then only copy into a buffer.
    pub fn write_behind(&mut self) -> io::Result<()> {
        if self.behind.is_none() {
            // The thread starts from a durable file (see its module comment).
            self.sync()?;
            self.behind = Some(WriteBehind::start(self.file.clone(), self.durable)?);
            self.flush_at = BEHIND_BUFFER;
        }
        Ok(())
    }

    /// Stops the write-behind thread without writing what it still holds, and
    /// cuts the file back to what is known durable
    /// ([`WriteBehind::abandon`]). Every later call fails: writing what is
    /// still buffered would leave a hole where the file was cut.
    pub fn close_write_behind(&mut self) {
        self.closed = true;
        if let Some(behind) = self.behind.take() {
            behind.abandon();
        }
    }

    /// Calls `waker` after every fdatasync (or failure) of the write-behind
    /// from now on; nothing without write-behind (syncing waits there).
    pub fn add_waker(&self, waker: &crate::storage::writebehind::Waker) {
        if let Some(b) = &self.behind {
            b.add_waker(waker.clone());
        }
    }

    /// No longer calls `waker`.
    pub fn remove_waker(&self, waker: &crate::storage::writebehind::Waker) {
        if let Some(b) = &self.behind {
            b.remove_waker(waker);
        }
    }

    /// Fails once the writer is closed.
    fn ensure_open(&self) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::other(format!(
                "{}: closed after a storage error",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File offset at which the next frame will start.
    pub fn position(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Appends a record frame whose payload `encode` writes; returns the frame's
    /// offset and the payload bytes (for hashing without a copy).
    pub fn append_record_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<(u64, &[u8])> {
        let offset = self.room()?;
        let start = push_record(&mut self.buf, encode).ok_or_else(too_large)?;
        Ok((offset, &self.buf[start + 9..]))
    }

    /// Hands the buffer over if it is full; returns the offset of the next frame.
    fn room(&mut self) -> io::Result<u64> {
        self.ensure_open()?;
        if self.buf.len() >= self.flush_at {
            self.hand_off()?;
        }
        Ok(self.flushed + self.buf.len() as u64)
    }

    /// Appends a complete frame as [`crate::chain::frame::encode_frame`] made it (length, CRC, type,
    /// payload), verbatim; returns its offset.
    pub fn append_frame(&mut self, frame: &[u8]) -> io::Result<u64> {
        let offset = self.room()?;
        self.buf.extend_from_slice(frame);
        Ok(offset)
    }

    /// Like [`append_record_with`](Self::append_record_with), returning the
    /// record's chain leaf `SHA-256(0x00 ‖ record)` instead of its bytes
    /// (hashed in place, see [`crate::chain::frame::push_record_frame`]).
    pub fn append_record_leaf(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<(u64, crate::chain::Digest)> {
        let offset = self.room()?;
        let leaf = push_record_frame(&mut self.buf, encode).ok_or_else(too_large)?;
        Ok((offset, leaf))
    }

    /// Writes buffered frames to the file, or with write-behind hands them to
    /// its thread without waiting. On failure (e.g. the disk is full) the file is
    /// cut back to the last complete write and the frames stay buffered (or
    /// queued), so a later call retries them and no torn frame is left.
    fn hand_off(&mut self) -> io::Result<()> {
        let Some(behind) = &self.behind else {
            return self.flush();
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len() as u64;
        match behind.submit(self.flushed, buf) {
            Ok(mut spare) => {
                spare.reserve(BEHIND_BUFFER + 4096);
                self.buf = spare;
                self.flushed += len;
                Ok(())
            }
            Err((e, buf)) => {
                self.buf = buf;
                Err(e)
            }
        }
    }

    /// Writes buffered frames to the file (no fsync); with write-behind, waits
    /// until its thread has written them. On failure see `hand_off`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.ensure_open()?;
        use std::os::unix::fs::FileExt;
        if self.behind.is_some() {
            self.hand_off()?;
            return self.behind.as_ref().map_or(Ok(()), |l| l.wait_written());
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.file.write_all_at(&self.buf, self.flushed) {
                let _ = self.file.set_len(self.flushed);
                return Err(e);
            }
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes only the first `n` buffered bytes (for crash tests of torn frames).
    #[cfg(feature = "fault-injection")]
    pub fn flush_partial(&mut self, n: usize) -> io::Result<()> {
        self.ensure_open()?;
        use std::os::unix::fs::FileExt;
        if let Some(behind) = &self.behind {
            behind.wait_written()?;
        }
        let n = n.min(self.buf.len());
        self.file.write_all_at(&self.buf[..n], self.flushed)
    }

    /// Buffered bytes not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Starts making everything appended so far durable. With write-behind
    /// this does not wait ([`synced`](Self::synced) tells when it is done);
    /// without, it is [`sync`](Self::sync).
    pub fn sync_begin(&mut self) -> io::Result<()> {
        self.ensure_open()?;
        if self.behind.is_none() {
            return self.sync();
        }
        self.hand_off()?;
        if let Some(behind) = &self.behind {
            behind.request_sync(self.flushed);
        }
        Ok(())
    }

    /// File offset up to which the file is known durable: with write-behind
    /// what its thread has fdatasynced (or the error that stopped it), without
    /// it the end of the last [`sync`](Self::sync) (or of the file when it was
    /// opened).
    pub fn synced(&self) -> io::Result<u64> {
        self.ensure_open()?;
        match &self.behind {
            Some(behind) => behind.synced(),
            None => Ok(self.durable),
        }
    }

    /// [`synced`](Self::synced) without taking an error from the write-behind
    /// (`None` then, or once closed).
    pub fn synced_now(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        match &self.behind {
            Some(behind) => behind.synced_now(),
            None => Some(self.durable),
        }
    }

    /// Flushes and fdatasyncs: everything appended so far is durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.ensure_open()?;
        if self.behind.is_some() {
            self.hand_off()?;
            let upto = self.flushed;
            return self.behind.as_ref().map_or(Ok(()), |l| l.sync(upto));
        }
        self.flush()?;
        self.file.sync_data()?;
        self.durable = self.flushed;
        Ok(())
    }
}
