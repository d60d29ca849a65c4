//! The agent's shipper: reads the spool from the acknowledged position and
//! sends its records to a collector in batches over mutual TLS.
//!
//! - Only records the stamper has fsynced are sent ([`ShipLink::set_durable`]),
//!   so a collector never holds a record the agent could lose in a crash and
//!   then write differently.
//! - The acknowledged position advances only on a collector's Ack, which it
//!   sends after its own fsync. The stamper applies it to the spool
//!   ([`ShipLink::acked`]), which deletes fully acknowledged segments.
//! - On connect the shipper asks where the collector stands on each chain and
//!   skips what it already holds, so a lost Ack never duplicates records.
//! - Failures: reconnect with exponential backoff and jitter, moving to the
//!   next configured collector after each failed attempt.

use crate::chain::frame::{self, FrameFault, FRAME_RECORD};
use crate::chain::receipt::Receipt;
use crate::chain::record::decode_header_only;
use crate::chain::ChainId;
use crate::storage::segment_log;
use crate::transport::proto::{self, Code, FrameReader, Msg, ReadError};
use crate::transport::receipts::{self, Heads};
use rustls::pki_types::ServerName;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shared between the stamper (writer of the spool) and the shipper.
#[derive(Debug, Default)]
pub struct ShipLink {
    durable: Mutex<u64>,
    cv: Condvar,
    acked: AtomicU64,
    closed: AtomicBool,
}

impl ShipLink {
    /// A link whose spool is acknowledged up to `acked`.
    pub fn new(acked: u64) -> ShipLink {
        ShipLink {
            durable: Mutex::new(acked),
            cv: Condvar::new(),
            acked: AtomicU64::new(acked),
            closed: AtomicBool::new(false),
        }
    }

    /// The stamper: everything below `pos` is fsynced.
    pub fn set_durable(&self, pos: u64) {
        let mut d = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        if pos > *d {
            *d = pos;
            self.cv.notify_all();
        }
    }

    /// The stamper has stopped: every record is in the files and durable.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _g = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        self.cv.notify_all();
    }

    /// Position acknowledged by a collector.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    fn durable(&self) -> u64 {
        *self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `t` for the durable position to pass `than`.
    fn wait_beyond(&self, than: u64, t: Duration) -> u64 {
        let g = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, t, |d| *d <= than && !self.closed.load(Ordering::SeqCst))
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// Shipper settings.
#[derive(Clone)]
pub struct ShipperConfig {
    /// The agent's host name (sent in Hello; must match its certificate).
    pub host: String,
    /// Collectors (`HOST:PORT`), in order of preference.
    pub collectors: Vec<crate::util::config::HostPort>,
    /// Name the collectors' certificates must carry; empty: each address's host part.
    pub server_name: String,
    /// TLS client configuration (SIGHUP replaces it; each connection takes
    /// the current one).
    pub tls: Arc<crate::util::stop::Reloadable<rustls::ClientConfig>>,
    /// Records per batch at most.
    pub batch_records: usize,
    /// Bytes per batch at most.
    pub batch_bytes: usize,
    /// Batches in flight at most.
    pub window: usize,
    /// Ping interval on an idle connection.
    pub keepalive: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// After [`ShipLink::close`], ship for at most this long.
    pub drain_timeout: Duration,
    /// Refuse collectors that do not sign receipts (protocol version 2).
    pub require_receipts: bool,
}

/// Counters for logs, tests and the metrics endpoint.
#[derive(Debug)]
pub struct ShipStats {
    /// Records acknowledged by collectors.
    pub records: AtomicU64,
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// A session with a collector is up (handshake and Hello done).
    pub connected: AtomicBool,
    /// Wall-clock time of the last acknowledgement, ns since the Unix epoch
    /// (0: none in this run).
    pub last_ack_ns: std::sync::atomic::AtomicI64,
    /// Seconds from sending a batch to its acknowledgement.
    pub ack_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for ShipStats {
    fn default() -> Self {
        ShipStats {
            records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_ack_ns: std::sync::atomic::AtomicI64::new(0),
            ack_seconds: prometheus_client::metrics::histogram::Histogram::new(
                crate::util::units::latency_buckets(),
            ),
        }
    }
}

/// Reads frames from the spool files, from a global position up to a limit.
struct Cursor {
    dir: PathBuf,
    pos: u64,
    file: Option<(u64, std::fs::File)>,
    buf: Vec<u8>,
}

/// One record read from the spool.
struct Item {
    end: u64,
    chain: ChainId,
    seq: u64,
    range: (usize, usize),
}

impl Cursor {
    fn new(dir: &Path, pos: u64) -> Cursor {
        Cursor {
            dir: dir.to_path_buf(),
            pos,
            file: None,
            buf: Vec::new(),
        }
    }

    /// An error of the spool, naming it.
    fn error(&self, kind: io::ErrorKind, what: String) -> io::Error {
        io::Error::new(kind, format!("spool {}: {what}", self.dir.display()))
    }

    /// Opens the segment holding `self.pos`; moves `pos` past a header.
    fn locate(&mut self) -> io::Result<()> {
        if let Some((base, f)) = &self.file {
            let len = f.metadata()?.len();
            if self.pos < base + len {
                return Ok(());
            }
        }
        let bases = segment_log::segment_bases(&self.dir)?;
        let Some(&base) = bases.iter().rev().find(|&&b| b <= self.pos) else {
            let why = "deleted before it was acknowledged?";
            let e = format!("no segment holds position {} ({why})", self.pos);
            return Err(self.error(io::ErrorKind::NotFound, e));
        };
        if self.pos < base + frame::HEADER_LEN {
            self.pos = base + frame::HEADER_LEN;
        }
        let path = self.dir.join(format!("{base:020}.seg"));
        self.file = Some((base, std::fs::File::open(&path)?));
        Ok(())
    }

    /// Reads whole records from `pos` while below `limit` (a frame boundary),
    /// into `self.buf` (one `pread` per chunk); returns them as ranges into the
    /// buffer. Records of one chain only: a batch holds one chain; and up to
    /// a seal at most: a batch ends at one.
    fn read(&mut self, limit: u64, max_records: usize, max_bytes: usize) -> io::Result<Vec<Item>> {
        use std::os::unix::fs::FileExt;
        let mut items = Vec::new();
        // Bytes of `buf` in use: the buffer only grows, so that it is not
        // zeroed again for every batch.
        let mut used = 0;
        let mut chain: Option<ChainId> = None;
        while self.pos < limit && items.len() < max_records && used < max_bytes {
            self.locate()?;
            if self.pos >= limit {
                break; // a new segment, durable up to its header only
            }
            let Some((base, f)) = &self.file else { break };
            let base = *base;
            let off = self.pos - base;
            let start = used;
            let want = (limit - self.pos).min((max_bytes - start).max(8) as u64) as usize;
            grow(&mut self.buf, start + want);
            let n = read_at_most(f, &mut self.buf[start..start + want], off)?;
            used = start + n;
            if n == 0 {
                // End of this segment: the next one starts at base + its length.
                self.file = None;
                self.pos = base + off;
                let bases = segment_log::segment_bases(&self.dir)?;
                if !bases.contains(&self.pos) {
                    let e = format!(
                        "segment {base:020}.seg ends at {}, and no segment starts there",
                        self.pos
                    );
                    return Err(self.error(io::ErrorKind::InvalidData, e));
                }
                continue;
            }
            // Parse the complete frames of the chunk.
            let mut at = start;
            let mut end = start + n;
            let mut stop = false;
            while at < end && items.len() < max_records {
                let foff = off + (at - start) as u64;
                let fr = match frame::parse_frame(&self.buf[at..end]) {
                    Ok(fr) => fr,
                    Err(FrameFault::Incomplete { .. }) if at != start => break, // the next call reads it from its start
                    Err(FrameFault::Incomplete { need }) => {
                        // One frame larger than the chunk: read exactly it.
                        grow(&mut self.buf, start + need);
                        f.read_exact_at(&mut self.buf[start..start + need], off)
                            .map_err(|e| {
                                io::Error::new(
                                    e.kind(),
                                    format!("spool segment {base:020}.seg: the frame at offset {foff}: {e} (the spool was damaged; shipping stops here)"),
                                )
                            })?;
                        end = start + need;
                        continue;
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("spool segment {base:020}.seg: {e} at offset {foff} (the spool was damaged; shipping stops here)"),
                        ))
                    }
                };
                if fr.frame_type == FRAME_RECORD {
                    let hd = decode_header_only(fr.payload).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("spool segment {base:020}.seg offset {foff}: {e}"),
                        )
                    })?;
                    if chain.is_some_and(|c| c != hd.chain_id) {
                        stop = true;
                        break;
                    }
                    chain = Some(hd.chain_id);
                    items.push(Item {
                        end: base + foff + fr.len as u64,
                        chain: hd.chain_id,
                        seq: hd.seq,
                        range: (at + frame::FRAME_HEADER + 1, at + fr.len),
                    });
                    // A batch ends at a seal: the agent knows the head there,
                    // and checks the receipt for it (transport::receipts).
                    stop = hd.kind == crate::chain::Kind::Seal;
                }
                at += fr.len;
                self.pos = base + off + (at - start) as u64;
                if stop {
                    break;
                }
            }
            used = at;
            if stop {
                break;
            }
        }
        Ok(items)
    }

    /// End of the spool's files (after the stamper stopped).
    fn end_of_files(&self) -> io::Result<u64> {
        let bases = segment_log::segment_bases(&self.dir)?;
        let Some(&base) = bases.last() else {
            return Ok(self.pos);
        };
        let len = std::fs::metadata(self.dir.join(format!("{base:020}.seg")))?.len();
        Ok(base + len)
    }
}

/// Makes `buf` at least `len` bytes long.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// Reads up to `buf.len()` bytes at `off`; fewer only at the end of the file.
fn read_at_most(f: &std::fs::File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A session ended because shipping is over: stopped on request with
/// everything acknowledged, or the drain timed out. (Failures are `Err((made
/// progress, why))`.)
struct Done;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Why a session with a collector ended (the shipper logs it and connects
/// again, to the next collector if the session made no progress).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The name the collector's certificate must carry is not a valid name.
    #[error("server name {name:?}: {cause}")]
    ServerName {
        /// The name.
        name: String,
        /// Why.
        cause: rustls::pki_types::InvalidDnsNameError,
    },
    /// The collector's address did not resolve.
    #[error("resolving {addr}: {cause}")]
    Resolve {
        /// `HOST:PORT`.
        addr: String,
        /// Why.
        cause: io::Error,
    },
    /// A socket or TLS operation failed.
    #[error("{doing}: {cause}")]
    Io {
        /// What the shipper was doing.
        doing: &'static str,
        /// Why.
        cause: io::Error,
    },
    /// rustls refused to start a session.
    #[error("starting TLS: {0}")]
    Tls(rustls::Error),
    /// No message from the collector, or a broken one.
    #[error("{doing}: {cause}")]
    Read {
        /// What the shipper was waiting for.
        doing: &'static str,
        /// Why.
        cause: ReadError,
    },
    /// A message that does not decode.
    #[error("{0}")]
    Wire(#[from] proto::WireError),
    /// The collector answered with an error.
    #[error("collector refused {what} ({code}): {message}")]
    Refused {
        /// The session or records.
        what: &'static str,
        /// The error code's name.
        code: &'static str,
        /// The collector's message.
        message: String,
    },
    /// The collector cannot take records now (busy, stopping, storage
    /// failing): the shipper retries.
    #[error("collector: {code}: {message}")]
    Retry {
        /// The error code's name.
        code: &'static str,
        /// The collector's message.
        message: String,
    },
    /// An answer the protocol does not allow at this point.
    #[error("unexpected answer to {to}: {got}")]
    Unexpected {
        /// What was asked.
        to: String,
        /// The message received.
        got: String,
    },
    /// Reading the spool.
    #[error("reading the spool: {0}")]
    Spool(io::Error),
    /// The collector speaks a protocol without receipts, and the agent
    /// requires them.
    #[error("the collector speaks protocol version {version}, without receipts; this agent requires them (ship.require_receipts)")]
    NoReceipts {
        /// The collector's version.
        version: u16,
    },
    /// The collector's receipt (for a batch, or for where it stands: batch
    /// 0) does not match what was sent.
    #[error("the collector's receipt (batch {batch}) does not match what this agent sent: {why}")]
    Receipt {
        /// The batch.
        batch: u64,
        /// What differs.
        why: String,
    },
}

/// A session's end: whether it made progress, and why it ended.
type Ended = (bool, ShipError);

fn io_err(doing: &'static str) -> impl FnOnce(io::Error) -> ShipError {
    move |cause| ShipError::Io { doing, cause }
}

fn unexpected(to: impl Into<String>, got: &Msg) -> ShipError {
    ShipError::Unexpected {
        to: to.into(),
        got: format!("{got:?}"),
    }
}

/// Runs the shipper until the link is closed and everything is acknowledged
/// (or the drain timeout passes).
pub fn run(cfg: ShipperConfig, spool_dir: PathBuf, link: Arc<ShipLink>, stats: Arc<ShipStats>) {
    let receipts_dir = spool_dir
        .parent()
        .map_or_else(|| spool_dir.join("receipts"), receipts::dir);
    let mut book = match receipts::Book::open(&receipts_dir) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(dir = %receipts_dir.display(), error = %e, "cannot keep the collectors' receipts");
            None
        }
    };
    // The head at the acknowledged position, where a kept receipt names it.
    let mut acked_head = book
        .as_ref()
        .map(|b| b.head_at(link.acked()))
        .unwrap_or_default();
    let mut which = 0usize;
    let mut backoff = Duration::from_millis(100);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if link.closed.load(Ordering::SeqCst) {
            let d = *drain_deadline.get_or_insert_with(|| Instant::now() + cfg.drain_timeout);
            if Instant::now() >= d || all_acked(&link, &spool_dir) {
                return;
            }
        }
        let addr = &cfg.collectors[which % cfg.collectors.len()];
        let mut s = Session {
            cfg: &cfg,
            link: &link,
            stats: &stats,
            cursor: Cursor::new(&spool_dir, link.acked()),
            addr,
            drain_deadline: &mut drain_deadline,
            heads: acked_head,
            read_end: link.acked(),
            read_seq: None,
            acked_head: &mut acked_head,
            book: book.as_mut(),
            collector: String::new(),
            version: proto::VERSION,
            log: None,
        };
        let ended = s.run();
        stats.connected.store(false, Ordering::Relaxed);
        flush_receipts(book.as_mut());
        match ended {
            Ok(Done) => return,
            Err((progress, e)) => {
                tracing::warn!(collector = %addr, error = %e, retry_in = ?backoff, "shipping interrupted");
                if progress {
                    backoff = Duration::from_millis(100);
                } else {
                    which += 1;
                    backoff = (backoff * 2).min(cfg.backoff_max);
                }
            }
        }
        // Jitter: 50–150 % of the backoff, so a fleet does not reconnect in step.
        let jitter = {
            let mut b = [0u8; 2];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
            0.5 + f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
        };
        let pause = backoff.mul_f64(jitter);
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if link.closed.load(Ordering::SeqCst) {
                let d = *drain_deadline.get_or_insert_with(|| Instant::now() + cfg.drain_timeout);
                if Instant::now() >= d {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20).min(pause));
        }
    }
}

fn all_acked(link: &ShipLink, dir: &Path) -> bool {
    Cursor::new(dir, 0)
        .end_of_files()
        .map(|end| link.acked() >= end)
        .unwrap_or(false)
}

struct Session<'a> {
    cfg: &'a ShipperConfig,
    link: &'a ShipLink,
    stats: &'a ShipStats,
    cursor: Cursor,
    addr: &'a crate::util::config::HostPort,
    drain_deadline: &'a mut Option<Instant>,
    /// The head after the last record read.
    heads: Heads,
    /// The spool position after the last record read, and its chain and seq.
    read_end: u64,
    read_seq: Option<(ChainId, u64)>,
    /// The head after the last record acknowledged (kept across sessions).
    acked_head: &'a mut Heads,
    /// Where receipts are kept (`None`: the directory could not be made).
    book: Option<&'a mut receipts::Book>,
    /// The collector's name, from its Welcome.
    collector: String,
    /// The protocol version of the session.
    version: u16,
    /// The log chain and epoch of the session's last receipt.
    log: Option<(ChainId, u64)>,
}

struct InFlight {
    id: u64,
    end: u64,
    records: u64,
    sent: Instant,
    chain: ChainId,
    /// The seq of its last record.
    last_seq: u64,
    /// The head after the batch's last record, where known.
    heads: Heads,
}

/// Where a collector stands on a chain.
struct Position {
    /// The first seq it does not hold.
    next: u64,
    /// Its receipt for `next - 1` (protocol version 3), until the record
    /// there is read and found to match it: records below `next` count as
    /// held only then.
    receipt: Option<(Receipt, Vec<u8>)>,
}

/// Writes the receipt kept last, if any; a failure is logged.
fn flush_receipts(book: Option<&mut receipts::Book>) {
    if let Some(Err(e)) = book.map(receipts::Book::flush) {
        tracing::error!(error = %e, "cannot write the collector's receipt");
    }
}

/// The collector's receipt in a Resume against the agent's own head at that
/// seq (if known): another head is a fork, said here.
fn resume_fork(r: &Receipt, head: Option<crate::chain::Digest>) -> Option<String> {
    let h = head.filter(|h| *h != r.head)?;
    Some(format!(
        "the collector holds head {} after seq {} of chain {}, this spool {}: the chain forked (a state directory restored from a copy?)",
        crate::chain::hex::encode(&r.head),
        r.seq,
        r.chain,
        crate::chain::hex::encode(&h)
    ))
}

impl Session<'_> {
    fn connect(&mut self) -> Result<(Tls, u32), ShipError> {
        let name = if self.cfg.server_name.is_empty() {
            &self.addr.host
        } else {
            &self.cfg.server_name
        };
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|cause| ShipError::ServerName {
                name: name.clone(),
                cause,
            })?;
        let resolve = |cause| ShipError::Resolve {
            addr: self.addr.to_string(),
            cause,
        };
        let sa = (self.addr.host.as_str(), self.addr.port)
            .to_socket_addrs()
            .map_err(resolve)?
            .next()
            .ok_or_else(|| resolve(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let tcp = TcpStream::connect_timeout(&sa, Duration::from_secs(5))
            .map_err(io_err("connecting"))?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .and_then(|_| tcp.set_write_timeout(Some(Duration::from_secs(30))))
            .map_err(io_err("setting socket timeouts"))?;
        let conn = rustls::ClientConnection::new(self.cfg.tls.get(), server_name)
            .map_err(ShipError::Tls)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        Msg::Hello {
            min_version: proto::MIN_VERSION,
            max_version: proto::VERSION,
            host: self.cfg.host.clone(),
            software: format!("logseal {}", env!("CARGO_PKG_VERSION")),
        }
        .write(&mut tls)
        .and_then(|_| tls.flush())
        .map_err(io_err("TLS handshake or hello"))?;
        let mut fr = FrameReader::default();
        let (ty, body) = fr
            .next(&mut tls, proto::HELLO_MAX)
            .map_err(|cause| ShipError::Read {
                doing: "waiting for the collector's welcome",
                cause,
            })?;
        match Msg::decode(ty, body)? {
            Msg::Welcome {
                version,
                collector,
                max_frame,
                ..
            } if (proto::MIN_VERSION..=proto::VERSION).contains(&version) => {
                tracing::info!(collector = %self.addr, name = collector, version, "connected to collector");
                if version < proto::RECEIPTS {
                    if self.cfg.require_receipts {
                        return Err(ShipError::NoReceipts { version });
                    }
                    tracing::warn!(collector = %self.addr, version, "the collector speaks an older protocol: its acks carry no receipt");
                }
                self.collector = collector;
                self.version = version;
                Ok((tls, max_frame))
            }
            Msg::Error { code, message, .. } => Err(ShipError::Refused {
                what: "the session",
                code: Code::from_u16(code).map_or("unknown", Code::name),
                message,
            }),
            other => Err(unexpected("hello", &other)),
        }
    }

    fn run(&mut self) -> Result<Done, Ended> {
        let (mut tls, max_frame) = self.connect().map_err(|e| (false, e))?;
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.store(true, Ordering::Relaxed);
        tls.sock
            .set_read_timeout(Some(self.cfg.keepalive.max(Duration::from_secs(1)) * 2))
            .map_err(|e| (false, io_err("setting the read timeout")(e)))?;
        let max_batch = self.cfg.batch_bytes.min(max_frame as usize - 64);
        let mut fr = FrameReader::default();
        let mut positions: HashMap<ChainId, Position> = HashMap::new();
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut next_id = 1u64;
        let mut progress = false;
        let mut body = Vec::new();
        let mut last_io = Instant::now();
        loop {
            let closed = self.link.closed.load(Ordering::SeqCst);
            let limit = if closed {
                self.cursor
                    .end_of_files()
                    .map_err(|e| (progress, ShipError::Spool(e)))?
            } else {
                self.link.durable()
            };
            if closed && self.drained(inflight.is_empty(), limit) {
                return Ok(Done);
            }
            // 1. Send while the window has room and there is something to send.
            if inflight.len() < self.cfg.window && self.cursor.pos < limit {
                let items = self
                    .cursor
                    .read(limit, self.cfg.batch_records, max_batch)
                    .map_err(|e| (progress, ShipError::Spool(e)))?;
                let Some(first) = items.first() else { continue };
                let (chain, first_seq) = (first.chain, first.seq);
                if let Some(e) = self.overclaimed(&positions, Some(chain)) {
                    return Err((progress, e));
                }
                #[allow(clippy::map_entry)] // the lookup awaits the network in between
                if !positions.contains_key(&chain) {
                    let p = self.ask_position(
                        (&mut tls, &mut fr),
                        &mut inflight,
                        &mut progress,
                        (chain, first_seq),
                    )?;
                    positions.insert(chain, p);
                }
                let Some(at) = positions.get_mut(&chain) else {
                    continue;
                };
                proto::begin_batch(&mut body, next_id, chain);
                let n = self
                    .fill_batch(&items, at, &mut body)
                    .map_err(|e| (progress, e))?;
                let end = items.last().map_or(self.cursor.pos, |i| i.end);
                let last_seq = items.last().map_or(0, |i| i.seq);
                if n == 0 {
                    let waiting = at.receipt.is_some();
                    self.held(&mut inflight, waiting, (chain, last_seq, end));
                    continue;
                }
                proto::finish_batch(&mut body, n);
                proto::write_frame(&mut tls, proto::t::BATCH, &body)
                    .and_then(|_| tls.flush())
                    .map_err(|e| (progress, io_err("sending a batch")(e)))?;
                last_io = Instant::now();
                inflight.push_back(InFlight {
                    id: next_id,
                    end,
                    records: u64::from(n),
                    sent: Instant::now(),
                    chain,
                    last_seq,
                    heads: self.heads,
                });
                next_id += 1;
                continue;
            }
            // 2. Collect acknowledgements.
            if !inflight.is_empty() {
                self.await_ack(&mut tls, &mut fr, &mut inflight, &mut progress)?;
                last_io = Instant::now();
                continue;
            }
            // 3. Idle: wait for new records; ping now and then. A collector
            // that holds more of a chain than this spool has durably read is
            // not believed.
            if let Some(e) = self.overclaimed(&positions, None) {
                return Err((progress, e));
            }
            if last_io.elapsed() >= self.cfg.keepalive {
                Msg::Ping(0)
                    .write(&mut tls)
                    .and_then(|_| tls.flush())
                    .map_err(|e| (progress, io_err("sending a ping")(e)))?;
                match self.read_msg(&mut tls, &mut fr, progress)? {
                    Msg::Pong(_) => {}
                    other => return Err((progress, unexpected("ping", &other))),
                }
                last_io = Instant::now();
            }
            if !closed {
                // Asleep until records become durable, the stop, or the next
                // ping is due: no timer while idle.
                let ping_in = self.cfg.keepalive.saturating_sub(last_io.elapsed());
                self.link.wait_beyond(
                    self.cursor.pos.max(limit),
                    ping_in.max(Duration::from_millis(10)),
                );
            }
        }
    }

    /// A chain whose Resume receipt is still waiting for its record, though
    /// this spool's records of it are all read (another chain follows, or
    /// none is durable yet: `current` is the chain read now, if any): the
    /// collector says it holds more than this spool ever held — a spool cut
    /// back, or restored from a copy, or a lying collector.
    fn overclaimed(
        &self,
        positions: &HashMap<ChainId, Position>,
        current: Option<ChainId>,
    ) -> Option<ShipError> {
        let (chain, p) = positions
            .iter()
            .find(|(c, p)| p.receipt.is_some() && Some(**c) != current)?;
        let last = match self.read_seq {
            Some((c, s)) if c == *chain => format!("ends at seq {s}"),
            _ => "ends before it".to_string(),
        };
        let why = format!(
            "the collector holds chain {chain} up to seq {}; this spool's chain {last} (cut back or restored from a copy?)",
            p.next.saturating_sub(1)
        );
        Some(self.mismatch(0, why))
    }

    /// Records the collector holds already, the last `last_seq` of `chain`
    /// ending at `end`: acknowledged at once, or with the batch in flight
    /// before them — unless a Resume receipt is `waiting` for its record to
    /// be read and compared (then only a later acknowledgement covers them).
    fn held(
        &mut self,
        inflight: &mut VecDeque<InFlight>,
        waiting: bool,
        (chain, last_seq, end): (ChainId, u64, u64),
    ) {
        if waiting {
            return;
        }
        if inflight.is_empty() {
            self.set_acked(end, self.heads);
        } else {
            inflight.push_back(InFlight {
                id: 0,
                end,
                records: 0,
                sent: Instant::now(),
                chain,
                last_seq,
                heads: self.heads,
            });
        }
    }

    /// After the stamper stopped: true once everything up to `limit` is
    /// acknowledged, or the drain timeout has passed (said in the log).
    fn drained(&mut self, nothing_in_flight: bool, limit: u64) -> bool {
        if nothing_in_flight && self.link.acked() >= limit {
            return true;
        }
        let d = *self
            .drain_deadline
            .get_or_insert_with(|| Instant::now() + self.cfg.drain_timeout);
        if Instant::now() < d {
            return false;
        }
        tracing::warn!(
            unacknowledged_bytes = limit.saturating_sub(self.link.acked()),
            "stopping with records not yet acknowledged; they stay in the spool and are sent at the next start"
        );
        true
    }

    /// Puts the records of `items` (of one chain) that the collector does
    /// not hold into the batch `body`; steps the head over all of them and,
    /// where the record before the collector's next seq is read, checks the
    /// receipt of its Resume against it. Returns how many went in.
    fn fill_batch(
        &mut self,
        items: &[Item],
        at: &mut Position,
        body: &mut Vec<u8>,
    ) -> Result<u32, ShipError> {
        let mut n = 0u32;
        for it in items {
            let rec = &self.cursor.buf[it.range.0..it.range.1];
            self.heads.step(it.chain, it.seq, rec);
            self.read_end = it.end;
            self.read_seq = Some((it.chain, it.seq));
            if it.seq >= at.next {
                proto::push_record(body, rec);
                n += 1;
            } else if it.seq + 1 == at.next {
                if let Some((r, bytes)) = at.receipt.take() {
                    let head = self.heads.after(it.chain, it.seq);
                    if let Some(why) = resume_fork(&r, head) {
                        return Err(self.mismatch(0, why));
                    }
                    self.keep_receipt(&r, it.end, head.is_some(), bytes);
                }
            }
        }
        Ok(n)
    }

    /// Asks where the collector stands on `chain` (after the acks of every
    /// batch in flight): the next seq it needs, and (version 3) its receipt
    /// for the seq before.
    fn ask_position(
        &mut self,
        (tls, fr): (&mut Tls, &mut FrameReader),
        inflight: &mut VecDeque<InFlight>,
        progress: &mut bool,
        (chain, first_seq): (ChainId, u64),
    ) -> Result<Position, Ended> {
        // Ask where the collector stands; acks of earlier batches first.
        while !inflight.is_empty() {
            self.await_ack(tls, fr, inflight, progress)?;
        }
        Msg::Position { chain }
            .write(tls)
            .and_then(|_| tls.flush())
            .map_err(|e| (*progress, io_err("asking the chain's position")(e)))?;
        let (next, receipt) = loop {
            match self.read_msg(tls, fr, *progress)? {
                Msg::Resume {
                    chain: c,
                    next_seq,
                    receipt,
                    ..
                } if c == chain => break (next_seq, receipt),
                Msg::Pong(_) => continue,
                other => return Err((*progress, unexpected("position", &other))),
            }
        };
        tracing::debug!(chain = %chain, next_seq = next, "collector position");
        let (Some(seq), true) = (next.checked_sub(1), self.version >= proto::RECEIPTS) else {
            return Ok(Position {
                next,
                receipt: None,
            });
        };
        let r = self
            .check_receipt(0, chain, seq, None, &receipt)
            .map_err(|e| (*progress, e))?;
        if seq >= first_seq {
            return Ok(Position {
                next,
                receipt: Some((r, receipt)),
            });
        }
        // The record it names was read already (the last one acknowledged,
        // usually): its head is compared now (else when it is read).
        let head = self.heads.after(chain, seq);
        if let Some(why) = resume_fork(&r, head) {
            return Err((*progress, self.mismatch(0, why)));
        }
        self.keep_receipt(&r, self.read_end, head.is_some(), receipt);
        Ok(Position {
            next,
            receipt: None,
        })
    }

    /// Takes everything below `pos` as acknowledged; `heads`: the head there.
    fn set_acked(&mut self, pos: u64, heads: Heads) {
        if self.link.acked.fetch_max(pos, Ordering::SeqCst) < pos {
            *self.acked_head = heads;
        }
    }

    fn read_msg(&self, tls: &mut Tls, fr: &mut FrameReader, progress: bool) -> Result<Msg, Ended> {
        let (ty, body) = fr.next(tls, proto::HELLO_MAX).map_err(|cause| {
            let doing = match cause {
                ReadError::Timeout => "waiting for the collector's answer",
                _ => "reading from the collector",
            };
            (progress, ShipError::Read { doing, cause })
        })?;
        let m = Msg::decode(ty, body).map_err(|e| (progress, e.into()))?;
        if let Msg::Error {
            code,
            message,
            batch,
        } = &m
        {
            let c = Code::from_u16(*code);
            let name = c.map_or("unknown", Code::name);
            let message = message.clone();
            if c.is_some_and(Code::retryable) {
                return Err((
                    progress,
                    ShipError::Retry {
                        code: name,
                        message,
                    },
                ));
            }
            tracing::error!(collector = %self.addr, code = name, batch, "collector refused records: {message}");
            return Err((
                progress,
                ShipError::Refused {
                    what: "records",
                    code: name,
                    message,
                },
            ));
        }
        Ok(m)
    }

    fn await_ack(
        &mut self,
        tls: &mut Tls,
        fr: &mut FrameReader,
        inflight: &mut VecDeque<InFlight>,
        progress: &mut bool,
    ) -> Result<(), Ended> {
        // Entries with id 0 were already held by the collector: they complete
        // with the batch before them.
        self.complete_held(inflight);
        let Some(front) = inflight.front() else {
            return Ok(());
        };
        let want = front.id;
        match self.read_msg(tls, fr, *progress)? {
            Msg::Ack {
                batch,
                next_seq,
                receipt,
                ..
            } if batch == want => {
                if let Some(f) = inflight.pop_front() {
                    self.receipt(&f, next_seq, receipt)
                        .map_err(|e| (*progress, e))?;
                    self.set_acked(f.end, f.heads);
                    self.stats.records.fetch_add(f.records, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .ack_seconds
                        .observe(f.sent.elapsed().as_secs_f64());
                    self.stats
                        .last_ack_ns
                        .store(crate::util::timefmt::now_ns(), Ordering::Relaxed);
                    *progress = true;
                }
                self.complete_held(inflight);
                if inflight.is_empty() {
                    flush_receipts(self.book.as_deref_mut());
                }
                Ok(())
            }
            Msg::Pong(_) => Ok(()),
            other => Err((*progress, unexpected(format!("batch {want}"), &other))),
        }
    }
}

/// Receipts.
impl Session<'_> {
    /// Entries the collector held already complete with the batch before them.
    fn complete_held(&mut self, inflight: &mut VecDeque<InFlight>) {
        while inflight.front().is_some_and(|f| f.id == 0) {
            if let Some(f) = inflight.pop_front() {
                self.set_acked(f.end, f.heads);
            }
        }
    }

    /// Checks the receipt of the Ack of batch `f` (protocol version 3) and
    /// keeps it; a receipt that does not match what was sent is an error, and
    /// the batch is not taken as acknowledged.
    fn receipt(&mut self, f: &InFlight, next_seq: u64, bytes: Vec<u8>) -> Result<(), ShipError> {
        if self.version < proto::RECEIPTS {
            return Ok(());
        }
        let head = f.heads.after(f.chain, f.last_seq);
        if next_seq != f.last_seq.saturating_add(1) {
            return Err(self.mismatch(
                f.id,
                format!(
                    "the Ack says the collector holds up to seq {}, the batch ended at seq {}",
                    next_seq.saturating_sub(1),
                    f.last_seq
                ),
            ));
        }
        let r = self.check_receipt(f.id, f.chain, f.last_seq, head, &bytes)?;
        if head.is_none() {
            tracing::debug!(seq = r.seq, "receipt kept; the head it names is not checked (this run has not read the chain's head there)");
        }
        self.keep_receipt(&r, f.end, head.is_some(), bytes);
        Ok(())
    }

    /// Keeps a checked receipt (see [`receipts::Book::keep`]); a failure to
    /// write it is logged (the acknowledgement stands: the collector holds
    /// the records either way).
    fn keep_receipt(&mut self, r: &Receipt, end: u64, checked: bool, bytes: Vec<u8>) {
        if let Some(b) = self.book.as_deref_mut() {
            if let Err(e) = b.keep(r, end, checked, bytes) {
                tracing::error!(error = %e, "cannot write the collector's receipt");
            }
        }
    }

    /// Checks a receipt naming `seq` of `chain` (with `head` after it, if
    /// known) from this session's collector.
    fn check_receipt(
        &mut self,
        batch: u64,
        chain: ChainId,
        seq: u64,
        head: Option<crate::chain::Digest>,
        bytes: &[u8],
    ) -> Result<Receipt, ShipError> {
        if bytes.is_empty() {
            return Err(self.mismatch(batch, "the collector's answer carries no receipt".into()));
        }
        let x = receipts::Expected {
            collector: &self.collector,
            host: &self.cfg.host,
            chain,
            seq,
            head,
            previous: self.log,
        };
        match receipts::check(bytes, &x) {
            Ok(r) => {
                self.log = Some((r.log_chain, r.log_epoch));
                Ok(r)
            }
            Err(e) => Err(self.mismatch(batch, e.0)),
        }
    }

    fn mismatch(&self, batch: u64, why: String) -> ShipError {
        tracing::error!(collector = %self.addr, batch, "the collector's receipt does not match what this agent sent: {why}");
        ShipError::Receipt { batch, why }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::*;
    use crate::storage::segment_log::{LogOptions, SegmentLog};

    /// A record header (version, kind Event, chain, seq, time) and a payload.
    fn record(chain: ChainId, seq: u64, payload_len: usize) -> Vec<u8> {
        let mut r = vec![crate::chain::record::FORMAT_VERSION, 2];
        r.extend_from_slice(&chain.0);
        r.extend_from_slice(&seq.to_be_bytes());
        r.extend_from_slice(&0i64.to_be_bytes());
        r.resize(r.len() + payload_len, b'x');
        r
    }

    fn spool_with(dir: &Path, records: &[Vec<u8>]) -> u64 {
        let _ = std::fs::remove_dir_all(dir);
        let opts = LogOptions {
            segment_bytes: 1 << 20,
            write_behind: false,
        };
        let (mut s, _) = SegmentLog::open(dir, opts, |_, _, _| {}).unwrap();
        for r in records {
            s.append_raw(r).unwrap();
        }
        s.sync_begin().unwrap();
        s.synced().unwrap();
        s.position()
    }

    #[test]
    fn the_cursor_reads_whole_records_of_one_chain_and_stops_at_damage() {
        let dir = std::env::temp_dir().join(format!("logseal-cursor-{}", std::process::id()));
        let (a, b) = (ChainId([1; 16]), ChainId([2; 16]));
        // Two records of chain a, one larger than a read chunk, then chain b.
        let recs = vec![record(a, 0, 10), record(a, 1, 3000), record(b, 0, 5)];
        let end = spool_with(&dir, &recs);

        let mut c = Cursor::new(&dir, 0);
        let items = c.read(end, 100, 64).unwrap();
        let seqs: Vec<_> = items.iter().map(|i| (i.chain, i.seq)).collect();
        assert_eq!(seqs, [(a, 0), (a, 1)], "one chain per read");
        for (i, it) in items.iter().enumerate() {
            assert_eq!(&c.buf[it.range.0..it.range.1], &recs[i][..]);
        }
        let items = c.read(end, 100, 1 << 20).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].chain, items[0].end), (b, end));

        // A byte flipped inside the second frame: the first is read, then an
        // error names the segment and the frame's offset.
        let seg = dir.join(format!("{:020}.seg", 0));
        let mut bytes = std::fs::read(&seg).unwrap();
        let second = (crate::chain::frame::HEADER_LEN as usize) + 8 + 1 + recs[0].len();
        bytes[second + 100] ^= 0x40;
        std::fs::write(&seg, &bytes).unwrap();
        let mut c = Cursor::new(&dir, 0);
        let first = c.read(end, 1, 1 << 20).unwrap();
        assert_eq!(first.len(), 1);
        let e = c.read(end, 100, 1 << 20).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let m = e.to_string();
        assert!(
            m.contains("00000000000000000000.seg")
                && m.contains("checksum")
                && m.contains(&format!("offset {second}")),
            "{m}"
        );

        // The segment cut inside the second frame's header (shorter than the
        // position it was durable to): an error naming it, not a busy loop.
        let first_end = (crate::chain::frame::HEADER_LEN as usize) + 8 + 1 + recs[0].len();
        bytes.truncate(first_end + 4);
        std::fs::write(&seg, &bytes).unwrap();
        let mut c = Cursor::new(&dir, 0);
        let e = c.read(end, 100, 1 << 20).err().unwrap();
        let m = e.to_string();
        assert!(
            m.contains("00000000000000000000.seg") && m.contains(&format!("offset {first_end}")),
            "{m}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
