//! The listeners: UDP, TCP, unix datagram and unix stream sockets.
//!
//! Each sends [`Batch`]es into one bounded channel read by the stamper.
//! Streams wait when the channel is full (back-pressure reaches the sender
//! through TCP flow control); UDP cannot wait, so its messages are dropped and
//! counted, and the stamper chains a Loss record for them.

use super::conns::{Conn, Need, Registry};
use super::framing::{Budget, Framer};
use super::{Batch, LossCounter};
use crate::chain::record::Source;
use crate::util::timefmt::now_ns;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch, Semaphore};

/// Settings shared by all listeners.
#[derive(Debug, Clone, Copy)]
pub struct ListenLimits {
    /// Longer messages are cut.
    pub max_message: usize,
    /// Open connections per stream listener.
    pub max_connections: usize,
    /// Silent stream connections are closed after this long.
    pub idle_timeout: Duration,
}

const UDP_BURST: usize = 256;
/// A burst of datagrams also ends at this many bytes (a batch never needs
/// more of the in-flight budget than its smallest size, 1 MiB, holds).
const DGRAM_BURST_BYTES: usize = 512 << 10;
/// Receive buffer asked for on UDP and unix datagram sockets, so that bursts
/// wait in the kernel instead of being dropped there.
pub const DGRAM_RCVBUF: usize = 8 << 20;

/// Enlarges a datagram socket's receive buffer (beyond `rmem_max` when running
/// as root).
pub fn enlarge_rcvbuf(fd: impl std::os::fd::AsFd) {
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, DGRAM_RCVBUF).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, DGRAM_RCVBUF);
    }
}

/// Datagrams the kernel dropped so far on this UDP socket.
pub fn udp_drops(sock: &tokio::net::UdpSocket) -> Option<u64> {
    kernel_udp_drops(rustix::fs::fstat(sock).ok()?.st_ino)
}

/// Datagrams the kernel dropped on the UDP socket with this inode because its
/// receive buffer was full (the `drops` column of /proc/net/udp and udp6).
pub fn kernel_udp_drops(inode: u64) -> Option<u64> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        #[allow(clippy::disallowed_methods)] // a kernel table in /proc: no size on stat
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 13 && f[9].parse() == Ok(inode) {
                return f[12].parse().ok();
            }
        }
    }
    None
}

/// Receives datagrams on a UDP socket until shutdown.
///
/// `drops` is the kernel's drop count for the socket when it was bound: every
/// drop after it is counted as a loss (read where the socket is bound, before
/// senders know the address: a task that starts late must not take drops
/// that happened meanwhile as its starting point).
pub async fn udp(
    sock: tokio::net::UdpSocket,
    tx: mpsc::Sender<Batch>,
    loss: Arc<LossCounter>,
    limits: ListenLimits,
    streams: Streams,
    mut drops: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    let inode = rustix::fs::fstat(&sock).map(|s| s.st_ino).ok();
    // The kernel's drops are read a second after traffic (while it lasts,
    // every second, and once after it ends): idle, the input sleeps. Drops
    // only happen while datagrams arrive.
    let mut check: Option<tokio::time::Instant> = None;
    loop {
        let at = check.unwrap_or_else(tokio::time::Instant::now);
        let first = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            () = tokio::time::sleep_until(at), if check.is_some() => {
                // Losses in the kernel are accounted for like our own.
                if let Some(now) = inode.and_then(kernel_udp_drops) {
                    if now > drops {
                        loss.add(now - drops, now_ns());
                    }
                    drops = now;
                }
                check = None;
                continue;
            }
            _ = shutdown.changed() => {
                udp_drain_at_stop(&sock, &mut buf, &tx, &loss, limits, &streams);
                // And what the kernel dropped since the last tick.
                if let Some(now) = inode.and_then(kernel_udp_drops) {
                    if now > drops {
                        loss.add(now - drops, now_ns());
                    }
                }
                return;
            }
        };
        check.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(1));
        let t = now_ns();
        let mut batches: Vec<Batch> = Vec::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some(r) = next.take() {
            match r {
                Ok((len, peer)) => {
                    let peer: Arc<str> = Arc::from(peer.to_string());
                    let b = match batches.last_mut() {
                        Some(b) if *b.peer == *peer => b,
                        _ => {
                            batches.push(Batch::new(Source::SyslogUdp, peer, t));
                            batches.last_mut().expect("just pushed")
                        }
                    };
                    push_datagram(b, &buf[..len], limits.max_message);
                }
                Err(e) => tracing::warn!(error = %e, "udp receive failed"),
            }
            n += 1;
            let bytes: usize = batches.iter().map(|b| b.data.len()).sum();
            if n < UDP_BURST && bytes < DGRAM_BURST_BYTES {
                next = match sock.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    r => Some(r),
                };
            }
        }
        for mut b in batches {
            let items = b.items.len() as u64;
            if !streams.charge_now(&mut b) {
                loss.add(items, t);
                continue;
            }
            match tx.try_send(b) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => loss.add(items, t),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// At stop: what senders already handed to the kernel is passed on if the
/// channel has room and counted as lost if not (as [`drain_at_stop`] does for
/// unix datagrams).
fn udp_drain_at_stop(
    sock: &tokio::net::UdpSocket,
    buf: &mut [u8],
    tx: &mpsc::Sender<Batch>,
    loss: &LossCounter,
    limits: ListenLimits,
    streams: &Streams,
) {
    while let Ok((len, peer)) = sock.try_recv_from(buf) {
        let t = now_ns();
        let mut b = Batch::new(Source::SyslogUdp, Arc::from(peer.to_string()), t);
        push_datagram(&mut b, &buf[..len], limits.max_message);
        if !streams.charge_now(&mut b) || tx.try_send(b).is_err() {
            loss.add(1, t);
        }
    }
}

fn push_datagram(b: &mut Batch, msg: &[u8], max: usize) {
    // Chained exactly as received (a trailing newline, if any, included).
    if msg.len() > max {
        b.push(&msg[..max], Some(msg.len() as u64));
    } else {
        b.push(msg, None);
    }
}

/// What a datagram input does while the stamper cannot take input.
pub enum DgramFull {
    /// Wait (senders block).
    Block,
    /// Drop and count while the receiver says the stamper is blocked.
    Drop(watch::Receiver<bool>),
}

/// At stop: the datagrams senders already handed to the kernel are passed on
/// if the channel has room and counted as lost if not, never dropped
/// unaccounted in the socket buffer.
fn drain_at_stop(
    sock: &tokio::net::UnixDatagram,
    buf: &mut [u8],
    peer: &Arc<str>,
    tx: &mpsc::Sender<Batch>,
    loss: &LossCounter,
    limits: ListenLimits,
    streams: &Streams,
) {
    loop {
        let t = now_ns();
        let mut b = Batch::new(Source::SyslogUnix, peer.clone(), t);
        while b.items.len() < UDP_BURST && b.data.len() < DGRAM_BURST_BYTES {
            match sock.try_recv(buf) {
                Ok(len) => push_datagram(&mut b, &buf[..len], limits.max_message),
                Err(_) => break,
            }
        }
        if b.items.is_empty() {
            return;
        }
        let n = b.items.len() as u64;
        if !streams.charge_now(&mut b) || tx.try_send(b).is_err() {
            loss.add(n, t);
        }
    }
}

/// Receives datagrams on a unix datagram socket (`/dev/log` style) until
/// shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn unix_dgram(
    sock: tokio::net::UnixDatagram,
    path: String,
    tx: mpsc::Sender<Batch>,
    loss: Arc<LossCounter>,
    limits: ListenLimits,
    when_full: DgramFull,
    streams: Streams,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 256 << 10];
    enlarge_rcvbuf(&sock);
    let peer: Arc<str> = Arc::from(path);
    loop {
        let r = tokio::select! {
            r = sock.recv(&mut buf) => r,
            _ = shutdown.changed() => {
                drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits, &streams);
                return;
            }
        };
        let t = now_ns();
        let mut b = Batch::new(Source::SyslogUnix, peer.clone(), t);
        let mut next = Some(r);
        while let Some(r) = next.take() {
            match r {
                Ok(len) => push_datagram(&mut b, &buf[..len], limits.max_message),
                Err(e) => tracing::warn!(error = %e, "unix datagram receive failed"),
            }
            if b.items.len() < UDP_BURST && b.data.len() < DGRAM_BURST_BYTES {
                next = match sock.try_recv(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    r => Some(r),
                };
            }
        }
        if b.items.is_empty() {
            continue;
        }
        let n = b.items.len() as u64;
        let send = async {
            streams.charge(&mut b).await;
            tx.send(b).await
        };
        match &when_full {
            // Senders wait: a full channel back-pressures them (their socket
            // buffer fills and send() blocks) instead of losing messages.
            DgramFull::Block => tokio::select! {
                r = send => if r.is_err() { return },
                _ = shutdown.changed() => {
                    loss.add(n, t);
                    drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits, &streams);
                    return;
                }
            },
            // A burst waits for the stamper as above; but once the stamper
            // cannot take input (the spool is full, writes fail), a program
            // calling syslog(3) must not hang on the logger: what cannot be
            // chained is dropped and counted.
            DgramFull::Drop(blocked) => {
                let mut blocked = blocked.clone();
                tokio::select! {
                    r = send => if r.is_err() { return },
                    _ = blocked.wait_for(|b| *b) => loss.add(n, t),
                    _ = shutdown.changed() => {
                    loss.add(n, t);
                    drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits, &streams);
                    return;
                }
                }
            }
        }
    }
}

/// What the inputs share: the open stream connections, the memory budget of
/// their buffers, the memory budget of batches handed to the stamper, and
/// whether the stamper is blocked (spool full, writes failing).
#[derive(Clone)]
pub struct Streams {
    /// Every open stream connection.
    pub registry: Arc<Registry>,
    /// The stream connections' buffers, beyond a small room per connection.
    pub budget: Arc<Budget>,
    /// Batches on their way to the stamper (the channel, the stager's and the
    /// stamper's queues), one permit per byte: a stream input waits for it,
    /// a datagram input that finds none drops and counts.
    pub in_flight: Arc<Semaphore>,
    in_flight_total: usize,
    /// True while the stamper cannot take input.
    pub blocked: watch::Receiver<bool>,
}

impl Streams {
    /// Buffers of `memory` bytes, and as much for batches on their way.
    pub fn new(memory: usize, blocked: watch::Receiver<bool>) -> Streams {
        let in_flight_total = memory.min(Semaphore::MAX_PERMITS);
        Streams {
            registry: Arc::new(Registry::default()),
            budget: Arc::new(Budget::new(memory)),
            in_flight: Arc::new(Semaphore::new(in_flight_total)),
            in_flight_total,
            blocked,
        }
    }

    /// Permits a batch needs (a batch larger than the whole budget takes all of it).
    fn permits(&self, b: &Batch) -> u32 {
        b.mem().min(self.in_flight_total).min(u32::MAX as usize) as u32
    }

    /// Charges a datagram batch if the budget has room now; false if not
    /// (the batch is then dropped and counted).
    pub fn charge_now(&self, b: &mut Batch) -> bool {
        match self
            .in_flight
            .clone()
            .try_acquire_many_owned(self.permits(b))
        {
            Ok(p) => {
                b.charge = Some(p);
                true
            }
            Err(_) => false,
        }
    }

    /// Charges a batch, waiting for room.
    pub async fn charge(&self, b: &mut Batch) {
        b.charge = self
            .in_flight
            .clone()
            .acquire_many_owned(self.permits(b))
            .await
            .ok();
    }
}

/// One stream listener's place among [`Streams`].
#[derive(Clone)]
pub struct StreamListener {
    /// What all inputs share.
    pub streams: Streams,
    /// This listener's number (connections are closed to make room for a new
    /// one on the same listener only).
    pub index: usize,
    /// Messages this listener's connections received but could not pass on
    /// (stopping while the stamper was blocked).
    pub loss: Arc<LossCounter>,
}

/// Bytes a connection reads at once while quiet, without taking from the budget.
pub const SMALL_READ: usize = 2 << 10;
/// Bytes a busy connection reads at once.
pub const LARGE_READ: usize = 64 << 10;
/// Received bytes are framed this many at a time.
const CHUNK: usize = 2 << 10;
/// A batch this large (data and item table) is passed on before the rest of
/// a read is framed.
const BATCH_SOFT: usize = 64 << 10;
/// The most a large read's batch can hold before it is charged: a spare
/// batch's buffers (256 KiB), grown to [`BATCH_SOFT`] and one chunk more (a
/// message per two bytes, each with a 24-byte entry), doubled by growth.
pub const BATCH_UNCHARGED: usize = (256 << 10) + 2 * (BATCH_SOFT + CHUNK * 13);
/// A busy connection's large buffer is given back after this long without data.
const SHRINK_AFTER: Duration = Duration::from_secs(1);
/// At most this much of what is already queued in the kernel is read when a
/// connection is closed to make room or the agent stops, for at most
/// `DRAIN_TIME`, each read waiting at most `DRAIN_WAIT`.
const DRAIN_MAX: usize = 8 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_WAIT: Duration = Duration::from_millis(10);

/// A connection's read buffer: small while the peer is quiet, large while it
/// fills the small one, if less than half the budget is used (the other half
/// is kept for messages). A large buffer is charged with the batch it can
/// fill before that batch is charged.
struct ReadBuf {
    buf: Vec<u8>,
    budget: Arc<Budget>,
    charged: usize,
}

impl ReadBuf {
    fn new(budget: Arc<Budget>) -> ReadBuf {
        ReadBuf {
            buf: vec![0; SMALL_READ],
            budget,
            charged: 0,
        }
    }

    fn grow(&mut self) {
        let extra = LARGE_READ - SMALL_READ + BATCH_UNCHARGED;
        if self.charged == 0 && self.budget.take_below(extra, self.budget.total() / 2) {
            self.buf = vec![0; LARGE_READ];
            self.charged = extra;
        }
    }

    fn shrink(&mut self) {
        if self.charged > 0 {
            self.buf = vec![0; SMALL_READ];
            self.budget.give(self.charged);
            self.charged = 0;
        }
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handed {
    /// The stamper has it.
    Passed,
    /// The agent stops and the stamper is blocked: counted as lost.
    Counted,
    /// The stamper is gone.
    Closed,
}

/// Hands a batch to the stamper, waiting for its memory and while the channel
/// is full (the sender waits too: TCP flow control). Once the agent stops, a
/// batch the blocked stamper will never take is counted as lost instead of
/// dropped unaccounted.
///
/// A connection draining what the kernel holds before it closes (`closing`)
/// does not wait on a blocked stamper even while the agent runs: it counts.
async fn pass_on(
    tx: &mpsc::Sender<Batch>,
    mut b: Batch,
    shutdown: &mut watch::Receiver<bool>,
    at: &StreamListener,
    closing: bool,
) -> Handed {
    let (n, t) = (b.items.len() as u64, b.time_ns);
    let mut blocked = at.streams.blocked.clone();
    let stopped_and_blocked = async {
        if !closing && !*shutdown.borrow() {
            let _ = shutdown.changed().await;
        }
        let _ = blocked.wait_for(|b| *b).await;
    };
    let send = async {
        at.streams.charge(&mut b).await;
        match tx.send(b).await {
            Ok(()) => Handed::Passed,
            Err(_) => Handed::Closed,
        }
    };
    tokio::select! {
        r = send => r,
        _ = stopped_and_blocked => {
            at.loss.add(n, t);
            Handed::Counted
        }
    }
}

/// One stream connection's framing and handing over.
struct Taker<'a> {
    source: Source,
    peer: &'a Arc<str>,
    tx: &'a mpsc::Sender<Batch>,
    at: &'a StreamListener,
    conn: &'a Conn,
    framer: Framer,
    /// Reading what the kernel holds before closing: a blocked stamper is
    /// not waited on (counted instead), nobody else is closed for memory.
    closing: bool,
}

impl Taker<'_> {
    /// Frames `data` and passes the messages on (or counts them, once the
    /// agent stops with the stamper blocked), in batches of at most about
    /// [`BATCH_SOFT`]; false when the stamper is gone.
    async fn take(&mut self, data: &[u8], shutdown: &mut watch::Receiver<bool>) -> bool {
        let t = now_ns();
        let starved = self.framer.starved();
        // A large read reuses a spare batch's buffers (its reader is charged
        // for them); a small one gets exactly what its messages can need (a
        // spare may be 256 KiB, uncharged until the batch is).
        let mut b = if data.len() > CHUNK {
            Batch::with_capacity(
                self.source,
                self.peer.clone(),
                t,
                data.len().min(BATCH_SOFT),
            )
        } else {
            let mut b = Batch::new(self.source, self.peer.clone(), t);
            b.data.reserve_exact(data.len() + self.framer.held());
            b.items.reserve_exact(data.len() / 2 + 2);
            b
        };
        let mut open = true;
        for chunk in data.chunks(CHUNK) {
            let framer = &mut self.framer;
            framer.push(chunk, &mut |m, cut| b.push(m, cut));
            if b.used() >= BATCH_SOFT {
                let full = std::mem::replace(&mut b, Batch::new(self.source, self.peer.clone(), t));
                open = self.hand_over(full, shutdown).await;
                if !open {
                    break;
                }
            }
        }
        self.conn.holds(self.framer.charged());
        if self.framer.starved() > starved && !self.closing {
            // Make room for the next message: close whoever holds memory and
            // has been silent the longest.
            self.conn.registry().evict(Need::Memory);
            if let Some(not_logged) = self.conn.registry().may_log() {
                let budget = &self.at.streams.budget;
                tracing::warn!(peer = %self.peer, used = budget.used(), limit = budget.total(), not_logged,
                    "limits.stream_memory used up: message cut (its length is chained with it)");
            }
        }
        if open && !b.items.is_empty() {
            open = self.hand_over(b, shutdown).await;
        }
        self.framer.settle();
        self.conn.holds(self.framer.charged());
        open
    }

    async fn hand_over(&mut self, mut b: Batch, shutdown: &mut watch::Receiver<bool>) -> bool {
        // Charged by what it holds: not by room reserved and not used.
        b.shrink();
        // A message with something in it is what makes a peer not silent
        // (blank lines, CRLF ones included, and a trickle of one endless
        // message do not).
        let said = |i: &crate::ingest::Item| b.bytes(i).iter().any(|c| !c.is_ascii_whitespace());
        if b.items.iter().any(said) {
            self.conn.touch();
        }
        self.conn.busy(true);
        let handed = pass_on(self.tx, b, shutdown, self.at, self.closing).await;
        self.conn.busy(false);
        handed != Handed::Closed
    }

    /// End of stream: the partial message, if any.
    async fn finish(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let mut b = Batch::new(self.source, self.peer.clone(), now_ns());
        self.framer.finish(&mut |m, cut| b.push(m, cut));
        if !b.items.is_empty() {
            self.conn.busy(true);
            pass_on(self.tx, b, shutdown, self.at, self.closing).await;
        }
    }
}

/// Why a connection's reading ended.
#[derive(PartialEq, Eq)]
enum End {
    /// End of stream, a read error, idle timeout, or the stamper gone.
    Closed,
    /// The agent stops, or the connection makes room: what the kernel already
    /// holds for it is read first (not left to a reset).
    Drain,
}

/// Reads one stream connection until EOF, idle timeout, shutdown or until it
/// is closed to make room.
#[allow(clippy::too_many_arguments)]
pub async fn stream_conn<S: AsyncRead + Unpin>(
    mut s: S,
    source: Source,
    peer: Arc<str>,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
    conn: Conn,
    at: StreamListener,
) {
    crate::storage::faults::panic_point("input-stream");
    tracing::debug!(source = source.name(), input = %at.loss.listen, peer = %peer, "connection opened");
    let budget = &at.streams.budget;
    let mut buf = ReadBuf::new(budget.clone());
    let mut taker = Taker {
        source,
        peer: &peer,
        tx: &tx,
        at: &at,
        conn: &conn,
        framer: Framer::with_budget(limits.max_message, budget.clone()),
        closing: false,
    };
    let mut heard = tokio::time::Instant::now();
    let end = loop {
        // (The stop is looked at here too: `pass_on` may have seen it change.)
        if *shutdown.borrow() {
            break End::Drain;
        }
        let idle_at = heard + limits.idle_timeout;
        let wait_until = match buf.charged {
            0 => idle_at,
            _ => idle_at.min(tokio::time::Instant::now() + SHRINK_AFTER),
        };
        let r = tokio::select! {
            r = tokio::time::timeout_at(wait_until, s.read(&mut buf.buf)) => r,
            _ = shutdown.changed() => break End::Drain,
            _ = conn.evicted() => {
                if let Some(not_logged) = conn.registry().may_log() {
                    tracing::info!(%peer, not_logged, "closing the connection silent the longest to make room");
                }
                break End::Drain;
            }
        };
        let n = match r {
            Err(_) if tokio::time::Instant::now() >= idle_at => {
                tracing::info!(%peer, "closing idle connection");
                break End::Closed;
            }
            Err(_) => {
                buf.shrink();
                continue;
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "connection read failed");
                break End::Closed;
            }
            Ok(Ok(0)) => break End::Closed,
            Ok(Ok(n)) => n,
        };
        heard = tokio::time::Instant::now();
        if !taker.take(&buf.buf[..n], &mut shutdown).await {
            break End::Closed;
        }
        if n == buf.buf.len() {
            buf.grow();
        }
    };
    taker.closing = true;
    if end == End::Drain {
        // What the peer sent before the close is in the kernel already: read
        // it and chain it, or count it (a blocked stamper is not waited on).
        // Bounded in bytes and in time: a sender that keeps writing does not
        // hold the stop.
        let mut drained = 0;
        let until = tokio::time::Instant::now() + DRAIN_TIME;
        while drained < DRAIN_MAX && tokio::time::Instant::now() < until {
            // (A short wait, not none: data the reactor has not yet seen as
            // readable is still read.)
            let read = tokio::time::timeout(DRAIN_WAIT, s.read(&mut buf.buf));
            match read.await {
                Ok(Ok(n)) if n > 0 => {
                    drained += n;
                    if !taker.take(&buf.buf[..n], &mut shutdown).await {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    taker.finish(&mut shutdown).await;
}

/// A listening socket: yields connections and a peer name for each.
pub trait Acceptor: Send + 'static {
    /// The connection type.
    type Conn: Send + 'static;
    /// Waits for the next connection.
    fn next(&self) -> impl std::future::Future<Output = io::Result<(Self::Conn, Arc<str>)>> + Send;
}

impl Acceptor for tokio::net::TcpListener {
    type Conn = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<(Self::Conn, Arc<str>)> {
        let (s, addr) = self.accept().await?;
        let _ = s.set_nodelay(true);
        Ok((s, Arc::from(addr.to_string())))
    }
}

/// A unix stream listener and the path it listens on (the peer name).
pub struct UnixAcceptor(pub tokio::net::UnixListener, pub Arc<str>);

impl Acceptor for UnixAcceptor {
    type Conn = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<(Self::Conn, Arc<str>)> {
        let (s, _) = self.0.accept().await?;
        Ok((s, self.1.clone()))
    }
}

/// Waits after a failed accept(2): doubling from the first to the second.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this long about failed accepts.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// With every slot taken and no connection silent long enough to close,
/// look again after this long.
const EVICT_RETRY: Duration = Duration::from_millis(250);

/// Accepts connections until shutdown, at most `max_connections` at once, and
/// runs `handle` for each on its own task. A connection that arrives when
/// every slot is taken makes room: the connection of this listener silent the
/// longest (at least [`EVICT_MIN_IDLE`]) is closed.
pub async fn serve<A, F, Fut>(
    listener: A,
    limits: ListenLimits,
    at: &StreamListener,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) where
    A: Acceptor,
    F: Fn(A::Conn, Arc<str>, watch::Receiver<bool>, Conn) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = &at.streams.registry;
    // accept(2) failures (out of descriptors, or of memory): logged at most
    // once per ACCEPT_LOG_EVERY with how many were not, waited on with a
    // doubling backoff.
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut last_log: Option<std::time::Instant> = None;
    let mut not_logged = 0u64;
    // The connections' tasks: at the stop, the listener ends once they have
    // passed on (or counted as lost) what they read.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.next() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((conn, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let permit = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        // Every slot taken: the connection silent the longest
                        // makes room (or, none silent long enough, look again).
                        let got = loop {
                            let freed = registry.evict(Need::Slot(at.index));
                            let retry = if freed { ACCEPT_LOG_EVERY } else { EVICT_RETRY };
                            tokio::select! {
                                p = slots.clone().acquire_owned() => break p.ok(),
                                _ = tokio::time::sleep(retry) => {}
                                _ = shutdown.changed() => break None,
                            }
                        };
                        match got {
                            Some(p) => p,
                            None => break,
                        }
                    }
                };
                let work = handle(conn, peer, shutdown.clone(), registry.join(at.index));
                conns.spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Err(e) => {
                if last_log.map_or(true, |t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!(error = %e, not_logged, "accept failed: waiting before the next");
                    last_log = Some(std::time::Instant::now());
                    not_logged = 0;
                } else {
                    not_logged += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    while conns.join_next().await.is_some() {}
}

/// Serves syslog over a plain stream: TCP, or a unix stream socket
/// (`UnixAcceptor`).
pub async fn plain<A>(
    listener: A,
    source: Source,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    at: StreamListener,
    shutdown: watch::Receiver<bool>,
) where
    A: Acceptor,
    A::Conn: AsyncRead + Unpin,
{
    serve(
        listener,
        limits,
        &at.clone(),
        shutdown,
        move |conn, peer, sd, c| {
            let at = at.clone();
            stream_conn(conn, source, peer, tx.clone(), limits, sd, c, at)
        },
    )
    .await
}

/// Serves syslog over TLS (RFC 5425). A failed handshake (wrong CA, no client
/// certificate when one is required, garbage) is logged and the connection
/// closed; the listener goes on. Each connection takes the configuration
/// current when it arrives (SIGHUP replaces it).
pub async fn tls(
    listener: tokio::net::TcpListener,
    config: Arc<crate::util::stop::Reloadable<rustls::ServerConfig>>,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    at: StreamListener,
    shutdown: watch::Receiver<bool>,
) {
    serve(
        listener,
        limits,
        &at.clone(),
        shutdown,
        move |conn, addr, sd, c| {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.get());
            let tx = tx.clone();
            let at = at.clone();
            async move {
                let mut stopping = sd.clone();
                let handshake = tokio::select! {
                    h = tokio::time::timeout(Duration::from_secs(30), acceptor.accept(conn)) => h,
                    _ = c.evicted() => return,
                    _ = stopping.changed() => return,
                };
                match handshake {
                    Ok(Ok(stream)) => {
                        let peer = match stream.get_ref().1.peer_certificates() {
                            Some(_) => Arc::from(format!("{addr} (client certificate verified)")),
                            None => addr,
                        };
                        stream_conn(stream, Source::SyslogTls, peer, tx, limits, sd, c, at).await;
                    }
                    Ok(Err(e)) => tracing::warn!(peer = %addr, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::warn!(peer = %addr, "TLS handshake timed out"),
                }
            }
        },
    )
    .await
}
