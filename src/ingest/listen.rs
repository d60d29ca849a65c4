//! The listeners: UDP, TCP, unix datagram and unix stream sockets.
//!
//! Each sends [`Batch`]es into one bounded channel read by the stamper.
//! Streams wait when the channel is full (back-pressure reaches the sender
//! through TCP flow control); UDP cannot wait, so its messages are dropped and
//! counted, and the stamper chains a Loss record for them.

use super::framing::Framer;
use super::{Batch, LossCounter};
use crate::chain::record::Source;
use crate::writer::now_ns;
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
pub async fn udp(
    sock: tokio::net::UdpSocket,
    tx: mpsc::Sender<Batch>,
    loss: Arc<LossCounter>,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    enlarge_rcvbuf(&sock);
    let inode = rustix::fs::fstat(&sock).map(|s| s.st_ino).ok();
    let mut drops = inode.and_then(kernel_udp_drops).unwrap_or(0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let first = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = tick.tick() => {
                // Losses in the kernel are accounted for like our own.
                if let Some(now) = inode.and_then(kernel_udp_drops) {
                    if now > drops {
                        loss.add(now - drops, now_ns());
                    }
                    drops = now;
                }
                continue;
            }
            _ = shutdown.changed() => return,
        };
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
            if n < UDP_BURST {
                next = match sock.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    r => Some(r),
                };
            }
        }
        for b in batches {
            let items = b.items.len() as u64;
            match tx.try_send(b) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => loss.add(items, t),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
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
) {
    loop {
        let t = now_ns();
        let mut b = Batch::new(Source::SyslogUnix, peer.clone(), t);
        while b.items.len() < UDP_BURST {
            match sock.try_recv(buf) {
                Ok(len) => push_datagram(&mut b, &buf[..len], limits.max_message),
                Err(_) => break,
            }
        }
        if b.items.is_empty() {
            return;
        }
        let n = b.items.len() as u64;
        if tx.try_send(b).is_err() {
            loss.add(n, t);
        }
    }
}

/// Receives datagrams on a unix datagram socket (`/dev/log` style) until
/// shutdown.
pub async fn unix_dgram(
    sock: tokio::net::UnixDatagram,
    path: String,
    tx: mpsc::Sender<Batch>,
    loss: Arc<LossCounter>,
    limits: ListenLimits,
    when_full: DgramFull,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 256 << 10];
    enlarge_rcvbuf(&sock);
    let peer: Arc<str> = Arc::from(path);
    loop {
        let r = tokio::select! {
            r = sock.recv(&mut buf) => r,
            _ = shutdown.changed() => {
                drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits);
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
            if b.items.len() < UDP_BURST {
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
        match &when_full {
            // Senders wait: a full channel back-pressures them (their socket
            // buffer fills and send() blocks) instead of losing messages.
            DgramFull::Block => tokio::select! {
                r = tx.send(b) => if r.is_err() { return },
                _ = shutdown.changed() => {
                    loss.add(n, t);
                    drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits);
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
                    r = tx.send(b) => if r.is_err() { return },
                    _ = blocked.wait_for(|b| *b) => loss.add(n, t),
                    _ = shutdown.changed() => {
                    loss.add(n, t);
                    drain_at_stop(&sock, &mut buf, &peer, &tx, &loss, limits);
                    return;
                }
                }
            }
        }
    }
}

/// Reads one stream connection until EOF, idle timeout or shutdown.
pub async fn stream_conn<S: AsyncRead + Unpin>(
    mut s: S,
    source: Source,
    peer: Arc<str>,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    crate::faults::panic_point("input-stream");
    let mut framer = Framer::new(limits.max_message);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let r = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, s.read(&mut buf)) => r,
            _ = shutdown.changed() => break,
        };
        let n = match r {
            Err(_) => {
                tracing::info!(%peer, "closing idle connection");
                break;
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "connection read failed");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
        };
        let mut b = Batch::with_capacity(source, peer.clone(), now_ns(), n);
        framer.push(&buf[..n], &mut |m, cut| b.push(m, cut));
        if !b.items.is_empty() && tx.send(b).await.is_err() {
            return;
        }
    }
    let mut b = Batch::new(source, peer.clone(), now_ns());
    framer.finish(&mut |m, cut| b.push(m, cut));
    if !b.items.is_empty() {
        let _ = tx.send(b).await;
    }
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

/// Accepts connections until shutdown, at most `max_connections` at once, and
/// runs `handle` for each on its own task.
pub async fn serve<A, F, Fut>(
    listener: A,
    limits: ListenLimits,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) where
    A: Acceptor,
    F: Fn(A::Conn, Arc<str>, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // accept(2) failures (out of descriptors, or of memory): logged at most
    // once per ACCEPT_LOG_EVERY with how many were not, waited on with a
    // doubling backoff.
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut last_log: Option<std::time::Instant> = None;
    let mut not_logged = 0u64;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.next() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((conn, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let work = handle(conn, peer, shutdown.clone());
                tokio::spawn(async move {
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
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Serves syslog over TCP.
pub async fn tcp(
    listener: tokio::net::TcpListener,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    shutdown: watch::Receiver<bool>,
) {
    serve(listener, limits, shutdown, move |conn, peer, sd| {
        stream_conn(conn, Source::SyslogTcp, peer, tx.clone(), limits, sd)
    })
    .await
}

/// Serves syslog over a unix stream socket.
pub async fn unix_stream(
    listener: tokio::net::UnixListener,
    path: String,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = UnixAcceptor(listener, Arc::from(path));
    serve(acceptor, limits, shutdown, move |conn, peer, sd| {
        stream_conn(conn, Source::SyslogUnix, peer, tx.clone(), limits, sd)
    })
    .await
}

/// Serves syslog over TLS (RFC 5425). A failed handshake (wrong CA, no client
/// certificate when one is required, garbage) is logged and the connection
/// closed; the listener goes on. Each connection takes the configuration
/// current when it arrives (SIGHUP replaces it).
pub async fn tls(
    listener: tokio::net::TcpListener,
    config: Arc<crate::stop::Reloadable<rustls::ServerConfig>>,
    tx: mpsc::Sender<Batch>,
    limits: ListenLimits,
    shutdown: watch::Receiver<bool>,
) {
    serve(listener, limits, shutdown, move |conn, addr, sd| {
        let acceptor = tokio_rustls::TlsAcceptor::from(config.get());
        let tx = tx.clone();
        async move {
            match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(conn)).await {
                Ok(Ok(stream)) => {
                    let peer = match stream.get_ref().1.peer_certificates() {
                        Some(_) => Arc::from(format!("{addr} (client certificate verified)")),
                        None => addr,
                    };
                    stream_conn(stream, Source::SyslogTls, peer, tx, limits, sd).await;
                }
                Ok(Err(e)) => tracing::warn!(peer = %addr, error = %e, "TLS handshake refused"),
                Err(_) => tracing::warn!(peer = %addr, "TLS handshake timed out"),
            }
        }
    })
    .await
}
