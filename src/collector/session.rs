//! One agent's connection: the TLS handshake and the Hello under one
//! deadline, then the session that verifies, stores and acknowledges batches.
//!
//! Each connection is a task on the collector's runtime (a few threads for
//! every connection, none per connection or chain). A session reads a batch,
//! hashes its leaves (a batch over [`INLINE_HASH_MAX`] is hashed on a blocking
//! thread while the session reads the next one), checks the links against the
//! chain's tip, appends it and asks the write-behind pool for an fsync
//! without waiting. The pool wakes the session ([`Notify`]) after each fsync
//! of a chain it writes; the session then acknowledges, in order, each batch
//! an fsync covers. An idle session waits for its socket, a wake-up or its
//! idle deadline: no timer runs while nothing happens.
//!
//! What may wait long runs off the runtime's workers: a JetStream store's
//! requests, and a receipt signature while the checkpoint log changes its key
//! ([`tokio::task::block_in_place`]).

use super::admission::{Held, LogLimit};
use super::store::{self, Refused};
use super::{checkpoints, lock, metrics, Live, Shared, REVOKED};
use crate::chain::{hash, Digest};
use crate::transport::proto::{self, Code, FrameReader, Msg, ReadError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

/// A session with batches not yet acknowledged is woken when their fsync
/// ends; it also looks this often, should a wake-up ever be lost.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// A write to an agent (an answer, an Error) must be done within this: an
/// agent that stops reading does not hold its session for ever.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// After an `Error`, how long and how much the session still reads (and
/// drops) so that closing does not reset the connection before the agent
/// read why.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 << 20;

/// Batches a session has hashed elsewhere before it stores the oldest: one is
/// hashed while the session reads the next and stores the one before.
const HASH_AHEAD: usize = 1;

/// A batch body up to this size is hashed by the session itself when no
/// batch is being hashed elsewhere: handing it over would cost more than the
/// hashing.
const INLINE_HASH_MAX: usize = 64 << 10;

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// What a session has to send: encoded messages, and whether the TLS session
/// is closed (close_notify) after them.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    close: bool,
    /// A write failed or timed out part-way: nothing more is sent (what
    /// follows would not start at a frame boundary).
    failed: bool,
}

impl Out {
    fn msg(&mut self, m: &Msg) {
        // Into a Vec: cannot fail.
        let _ = m.write(&mut self.buf);
    }

    /// An `Error` to the agent, after which the session ends.
    fn refuse(&mut self, code: Code, batch: u64, message: &str) {
        metrics::REFUSALS[(code as usize).min(11)].fetch_add(1, Ordering::Relaxed);
        self.msg(&Msg::Error {
            code: code as u16,
            batch,
            message: message.to_string(),
        });
        self.close = true;
    }

    /// Writes what waits (and the close_notify) to `tls`, by `WRITE_WAIT`.
    async fn send(&mut self, tls: &mut Tls) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write to the agent failed",
            ));
        }
        let write = async {
            if !self.buf.is_empty() {
                tls.write_all(&self.buf).await?;
                self.buf.clear();
            }
            if std::mem::take(&mut self.close) {
                tls.get_mut().1.send_close_notify();
            }
            tls.flush().await
        };
        let r = timeout(WRITE_WAIT, write).await.unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the agent read nothing for 30 s",
            ))
        });
        if r.is_err() {
            self.failed = true;
            self.buf.clear();
        }
        r
    }
}

/// Serves one agent connection.
pub(super) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: String, mut held: Held) {
    let shared = &*shared;
    let peer = peer.as_str();
    let _ = tcp.set_nodelay(true);
    // One deadline for the handshake and the Hello: a client that trickles a
    // byte now and then cannot keep its place longer.
    let deadline = Instant::now() + shared.handshake;
    let Some((mut tls, cert)) = handshake(shared, tcp, peer, deadline).await else {
        return;
    };
    let mut fr = FrameReader::default();
    let mut out = Out::default();
    let hello = timeout_at(deadline, fr.next_async(&mut tls, proto::HELLO_MAX))
        .await
        .unwrap_or(Err(ReadError::Timeout));
    let ip = tls
        .get_ref()
        .0
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.ip().to_string());
    let admitted = admit_hello(shared, &mut out, hello, &cert, peer, &ip);
    let Some((host, version)) = admitted else {
        // Refusals before the session also end by the deadline, however
        // slowly the client reads them.
        let _ = timeout_at(deadline, out.send(&mut tls)).await;
        return;
    };
    // Authenticated: the connection leaves the pre-authentication places and
    // takes one of the sessions'.
    held.release();
    let Some(_active) = Active::take(shared) else {
        let m = "the collector serves limits.max_connections sessions already; retry later";
        if let Some(n) = shared.log_limit.allow("max-connections") {
            tracing::warn!(
                peer,
                host,
                not_logged = n,
                limit = shared.max_connections,
                "connection refused: {m}"
            );
        }
        out.refuse(Code::Unavailable, 0, m);
        let _ = out.send(&mut tls).await;
        return;
    };
    let Some(registered) = register(shared, &mut out, &cert, peer, &host) else {
        let _ = out.send(&mut tls).await;
        return;
    };
    out.msg(&Msg::Welcome {
        version,
        collector: shared.name.clone(),
        max_frame: shared.max_frame as u32,
        idle_secs: shared.idle.as_secs() as u32,
    });
    if out.send(&mut tls).await.is_err() {
        return;
    }
    let receipts = (version >= proto::RECEIPTS).then_some(&*shared.receipts);
    let mut s = Session::new(shared, &host, peer, &registered, receipts);
    let ended = s.run(&mut tls, &mut fr).await;
    // What the session still had to say (an Error, the last acks).
    let sent = s.out.send(&mut tls).await;
    drop(s);
    match ended {
        Ok(()) => tracing::info!(peer, host, "agent disconnected"),
        Err(e) => {
            tracing::warn!(peer, host, "connection closed: {e}");
            if e.told_the_agent() && sent.is_ok() {
                linger(&mut tls).await;
            }
        }
    }
}

/// One of `limits.max_connections` places, given back when dropped.
struct Active<'a>(&'a Shared);

impl Active<'_> {
    fn take(shared: &Shared) -> Option<Active<'_>> {
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Active(shared))
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A session in [`Shared::sessions`] (removed when dropped).
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
    revoked: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.shared.sessions).live.remove(&self.id);
    }
}

/// Registers a session for revocation: a CRL change ends the session of a
/// certificate it revokes (rustls checks the CRL only at the handshake, which
/// may have begun under an older CRL). Registered first, then checked against
/// the CRL in use now: a reload either comes before the check (the check sees
/// its CRL) or after the registration (it ends the session). `None`: refused.
fn register<'a>(
    shared: &'a Shared,
    out: &mut Out,
    cert: &rustls_pki_types::CertificateDer<'static>,
    peer: &str,
    host: &str,
) -> Option<Registered<'a>> {
    let revoked = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let id = {
        let mut s = lock(&shared.sessions);
        let id = s.next;
        s.next += 1;
        s.live.insert(
            id,
            Live {
                cert: cert.clone(),
                peer: format!("{peer} ({host})"),
                revoked: revoked.clone(),
                wake: wake.clone(),
            },
        );
        id
    };
    let registered = Registered {
        shared,
        id,
        revoked,
        wake,
    };
    if shared.tls.revokes(cert) {
        tracing::warn!(
            peer,
            host,
            "connection refused: {REVOKED} (the CRL changed during its handshake)"
        );
        out.refuse(Code::Revoked, 0, REVOKED);
        return None;
    }
    Some(registered)
}

/// After an `Error` to an agent that may still be sending (its batches
/// pipelined): stops writing and reads what comes, for [`LINGER`] at most, so
/// that closing does not reset the connection before the agent read why.
async fn linger(tls: &mut Tls) {
    let sock = tls.get_mut().0;
    let _ = sock.shutdown().await;
    let until = Instant::now() + LINGER;
    let mut buf = vec![0u8; 16 << 10];
    let mut left = LINGER_BYTES;
    while left > 0 {
        match timeout_at(until, sock.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// The TLS handshake (the client certificate checked here: CA, validity,
/// CRL), by `deadline`: the session and the client's certificate.
async fn handshake(
    shared: &Shared,
    tcp: TcpStream,
    peer: &str,
    deadline: Instant,
) -> Option<(Tls, rustls_pki_types::CertificateDer<'static>)> {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.get());
    let tls = match timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            refused_handshake(&shared.log_limit, peer, &e.to_string());
            return None;
        }
        Err(_) => {
            refused_handshake(
                &shared.log_limit,
                peer,
                "the TLS handshake and hello did not finish within limits.handshake_timeout",
            );
            return None;
        }
    };
    let Some(cert) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
    else {
        tracing::warn!(peer, "connection refused: no client certificate");
        return None;
    };
    Some((tls, cert))
}

fn refused_handshake(limit: &LogLimit, peer: &str, error: &str) {
    if let Some(n) = limit.allow("handshake") {
        tracing::warn!(
            peer,
            error,
            not_logged = n,
            "connection refused: TLS handshake failed"
        );
    }
}

/// Checks the Hello: protocol version, host name, and that the client
/// certificate vouches for that name. The host, or `None` once refused.
fn admit_hello(
    shared: &Shared,
    out: &mut Out,
    hello: Result<(u8, &[u8]), ReadError>,
    cert: &rustls_pki_types::CertificateDer<'_>,
    peer: &str,
    ip: &str,
) -> Option<(String, u16)> {
    let (ty, body) = match hello {
        Ok(frame) => frame,
        Err(e) => {
            let why = match &e {
                ReadError::Timeout => {
                    "the hello did not arrive within limits.handshake_timeout".to_string()
                }
                e => e.to_string(),
            };
            if let Some(n) = shared.log_limit.allow("hello") {
                tracing::warn!(
                    peer,
                    not_logged = n,
                    "connection refused: no valid hello: {why}"
                );
            }
            if let ReadError::TooLarge { .. } = e {
                out.refuse(Code::FrameTooLarge, 0, &why);
            }
            return None;
        }
    };
    let (min_version, max_version, host, software) = match Msg::decode(ty, body) {
        Ok(Msg::Hello {
            min_version,
            max_version,
            host,
            software,
        }) => (min_version, max_version, host, software),
        Ok(other) => {
            let m = format!("expected hello, got {other:?}");
            tracing::warn!(peer, "connection refused: {m}");
            out.refuse(Code::Protocol, 0, &m);
            return None;
        }
        Err(e) => {
            tracing::warn!(peer, "connection refused: {e}");
            out.refuse(Code::Protocol, 0, &e.to_string());
            return None;
        }
    };
    // What the client sent is shown bounded (a Hello may hold 64 KiB);
    // refusals are logged rate-limited, and an alert names the address, not
    // the port: retries are one alert, counted.
    let shown = store::clip(&host, 64).into_owned();
    // The highest version both speak.
    let version = max_version.min(proto::VERSION);
    if version < min_version.max(proto::MIN_VERSION) {
        let m = format!(
            "this collector speaks protocol versions {}..{}, the agent {min_version}..{max_version}",
            proto::MIN_VERSION,
            proto::VERSION
        );
        if let Some(n) = shared.log_limit.allow("version") {
            tracing::warn!(
                peer,
                host = shown,
                not_logged = n,
                "connection refused: {m}"
            );
        }
        out.refuse(Code::Version, 0, &m);
        return None;
    }
    // One form per host name: `WEB-02` or `web-02.` with web-02's
    // certificate would otherwise start other hosts in the store.
    if let Err(m) = crate::chain::hostname::check(&host) {
        if let Some(n) = shared.log_limit.allow("bad-host-name") {
            tracing::warn!(peer, not_logged = n, "connection refused: {m}");
        }
        shared
            .store
            .alert("bad-host-name", "", None, &format!("{m} (from {ip})"));
        out.refuse(Code::NotYourChain, 0, &m.to_string());
        return None;
    }
    if !crate::transport::tls::cert_names_host(cert, &host) {
        let m = format!("the client certificate is not valid for host {host:?}");
        if let Some(n) = shared.log_limit.allow("certificate-host-mismatch") {
            tracing::warn!(peer, host, not_logged = n, "connection refused: {m}");
        }
        shared.store.alert(
            "certificate-host-mismatch",
            &host,
            None,
            &format!("{m} (from {ip})"),
        );
        out.refuse(Code::NotYourChain, 0, &m);
        return None;
    }
    tracing::info!(peer, host, software, version, "agent connected");
    Some((host, version))
}

struct PendingAck {
    batch: u64,
    chain: crate::chain::ChainId,
    next_seq: u64,
    /// The chain's head after seq `next_seq - 1`.
    head: Digest,
    /// Store position the chain must be durable to before the ack.
    end: u64,
    slot: Arc<Mutex<store::Slot>>,
    /// Records newly stored by the batch.
    records: u64,
    /// When the collector began to store it.
    arrived: std::time::Instant,
}

/// A batch frame's body and its leaves.
struct Hashed {
    body: Vec<u8>,
    /// The batch's layout and every record's leaf, or why the batch could
    /// not be decoded.
    leaves: Result<(proto::BatchLayout, Vec<Digest>), proto::WireError>,
}

/// A batch's leaves (they do not depend on the chain's tip).
fn hash_batch(body: Vec<u8>) -> Hashed {
    let leaves = proto::BatchLayout::decode(&body).map(|l| {
        let leaves = l
            .records
            .iter()
            .map(|r| hash::leaf(&body[r.clone()]))
            .collect();
        (l, leaves)
    });
    Hashed { body, leaves }
}

/// Why a session with an agent ended before the agent closed it (logged;
/// where the agent is owed an answer it was sent an `Error` first).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The CRL came to revoke the agent's certificate.
    #[error("{REVOKED}")]
    Revoked,
    /// Nothing arrived for the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// A frame could not be read.
    #[error("{0}")]
    Read(ReadError),
    /// A message that does not decode.
    #[error("{0}")]
    Wire(#[from] proto::WireError),
    /// The store refused a batch (or the chain's position).
    #[error("batch {batch} refused ({}): {message}", code.name())]
    Refused {
        /// The batch (0: a Position).
        batch: u64,
        /// The code sent to the agent.
        code: Code,
        /// The message sent to the agent.
        message: String,
    },
    /// A write or fsync of the store failed.
    #[error("fsync of the store failed: {0}")]
    Storage(std::io::Error),
    /// An answer could not be sent.
    #[error("sending to the agent: {0}")]
    Send(std::io::Error),
    /// The agent said why it ends the session.
    #[error("agent reported error {code}: {message}")]
    Agent {
        /// Its code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// A message an agent does not send at this point.
    #[error("unexpected message from an agent: {0}")]
    Unexpected(String),
    /// A batch could not be hashed off the session (no thread to do it).
    #[error("hashing a batch: {0}")]
    Hashing(String),
}

impl SessionError {
    /// The agent was sent an `Error` saying why (it may not have read it yet).
    fn told_the_agent(&self) -> bool {
        matches!(
            self,
            SessionError::Refused { .. } | SessionError::Storage(_) | SessionError::Revoked
        )
    }
}

/// One connection's state after Hello/Welcome.
struct Session<'a> {
    shared: &'a Shared,
    host: &'a str,
    peer: &'a str,
    /// What waits to be sent to the agent.
    out: Out,
    /// Batches stored, waiting for their fsync to be acknowledged.
    pending: VecDeque<PendingAck>,
    /// Batches being hashed off the session, oldest first.
    hashing: VecDeque<JoinHandle<Hashed>>,
    /// A batch buffer to reuse.
    spare: Vec<Vec<u8>>,
    /// Set when the CRL came to revoke this session's certificate.
    revoked: &'a AtomicBool,
    /// Signs a receipt into every Ack (protocol version 3), else `None`.
    receipts: Option<&'a checkpoints::ReceiptSigner>,
    /// The session's wake-up, and its waker given to the chains it writes.
    wake: Arc<Notify>,
    waker: crate::storage::writebehind::Waker,
    /// The chains given the waker (told at the end that it is gone).
    watched: Vec<Arc<Mutex<store::Slot>>>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for slot in &self.watched {
            lock(slot).unwatch(&self.waker);
        }
        for h in &self.hashing {
            h.abort();
        }
    }
}

/// Runs `f`, which may wait long, off the runtime's workers when the store
/// is a JetStream stream (a request over the network); a file store's calls
/// only queue work for the write-behind pool.
fn store_call<T>(shared: &Shared, f: impl FnOnce() -> T) -> T {
    if shared.store.waits_on_network() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Acknowledgements.
impl<'a> Session<'a> {
    fn new(
        shared: &'a Shared,
        host: &'a str,
        peer: &'a str,
        registered: &'a Registered<'_>,
        receipts: Option<&'a checkpoints::ReceiptSigner>,
    ) -> Session<'a> {
        let wake = registered.wake.clone();
        let notify = wake.clone();
        Session {
            shared,
            host,
            peer,
            out: Out::default(),
            pending: VecDeque::new(),
            hashing: VecDeque::new(),
            spare: Vec::new(),
            revoked: &registered.revoked,
            receipts,
            wake,
            waker: Arc::new(move || notify.notify_one()),
            watched: Vec::new(),
        }
    }

    /// Acknowledges, in order, the pending batches whose chain is durable to
    /// their end; does not wait for an fsync.
    fn ack_synced(&mut self) -> Result<(), SessionError> {
        while let Some(p) = self.pending.front() {
            // Nothing is acknowledged once the certificate is revoked (what was
            // stored stays stored; the agent sends it again, and it is idempotent).
            if self.revoked.load(Ordering::SeqCst) {
                self.out.refuse(Code::Revoked, 0, REVOKED);
                return Err(SessionError::Revoked);
            }
            let synced = lock(&p.slot).synced();
            match synced {
                Ok(pos) if pos >= p.end => {}
                Ok(_) => return Ok(()),
                Err(e) => {
                    let m = storage_failed(self.shared, &mut self.out, p, e);
                    self.pending.clear();
                    return Err(m);
                }
            }
            let (batch, chain, next_seq, head) = (p.batch, p.chain, p.next_seq, p.head);
            let receipt = self.receipt(batch, chain, next_seq, head)?;
            let Some(p) = self.pending.pop_front() else {
                return Ok(());
            };
            self.out.msg(&Msg::Ack {
                batch: p.batch,
                chain: p.chain,
                next_seq: p.next_seq,
                receipt,
            });
            let c = &self.shared.counts;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.records.fetch_add(p.records, Ordering::Relaxed);
            c.ack_seconds.observe(p.arrived.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// The receipt for seq `next_seq - 1` of `chain` with `head` after it
    /// (protocol version 3; empty before, or for an empty chain). When the
    /// checkpoint log has no key to give within the signer's wait (it is
    /// promoting its key, or stopping), the agent is told to retry, and
    /// nothing is acknowledged.
    fn receipt(
        &mut self,
        batch: u64,
        chain: crate::chain::ChainId,
        next_seq: u64,
        head: Digest,
    ) -> Result<Vec<u8>, SessionError> {
        let (Some(r), Some(seq)) = (self.receipts, next_seq.checked_sub(1)) else {
            return Ok(Vec::new());
        };
        let signed = r.sign_now(self.host, chain, seq, head).or_else(|| {
            // The log is changing its key: wait for it off the workers.
            tokio::task::block_in_place(|| r.sign(self.host, chain, seq, head))
        });
        if let Some(b) = signed {
            return Ok(b);
        }
        let message =
            "this collector cannot sign receipts now (its checkpoint log is changing its key, or the collector is stopping); retry later"
                .to_string();
        self.out.refuse(Code::Storage, batch, &message);
        Err(SessionError::Refused {
            batch,
            code: Code::Storage,
            message,
        })
    }

    /// Waits until every pending batch is durable and acknowledged.
    async fn commit(&mut self) -> Result<(), SessionError> {
        loop {
            self.ack_synced()?;
            if self.pending.is_empty() {
                return Ok(());
            }
            let _ = timeout(BUSY_WAIT, self.wake.notified()).await;
        }
    }

    /// Batches are being hashed, or wait to be acknowledged.
    fn busy(&self) -> bool {
        !self.hashing.is_empty() || !self.pending.is_empty()
    }

    /// Stores every hashed batch and acknowledges those already durable.
    async fn settle(&mut self) -> Result<(), SessionError> {
        self.store_hashed(0).await?;
        self.ack_synced()
    }
}

/// What woke a waiting session.
enum Woken<'f> {
    Frame(Result<(u8, &'f [u8]), ReadError>),
    Signal,
    Timeout,
}

/// The message loop after Hello/Welcome.
impl Session<'_> {
    async fn run(&mut self, tls: &mut Tls, fr: &mut FrameReader) -> Result<(), SessionError> {
        let mut idle_since = Instant::now();
        loop {
            if !self.out.buf.is_empty() {
                self.out.send(tls).await.map_err(SessionError::Send)?;
            }
            if self.revoked.load(Ordering::SeqCst) {
                // Batches read but not acknowledged stay unacknowledged: the
                // agent keeps them and sends them again under a new certificate.
                self.out.refuse(Code::Revoked, 0, REVOKED);
                return Err(SessionError::Revoked);
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                // What was read is stored and acknowledged, then the agent told.
                self.store_hashed(0).await?;
                self.commit().await?;
                self.out
                    .refuse(Code::Unavailable, 0, "collector shutting down");
                return Ok(());
            }
            // Asleep until input, a wake-up (an fsync ended, the stop, a
            // revocation), the idle deadline or, while busy, the fallback
            // look. A frame that trickles in is kept across wake-ups; it must
            // be whole by the idle deadline.
            let until = if self.busy() {
                Instant::now() + BUSY_WAIT
            } else {
                idle_since + self.shared.idle
            };
            let max = self.shared.max_frame;
            let woken = tokio::select! {
                biased;
                f = fr.next_async(tls, max) => Woken::Frame(f),
                () = self.wake.notified() => Woken::Signal,
                () = tokio::time::sleep_until(until) => Woken::Timeout,
            };
            let (ty, body) = match woken {
                Woken::Frame(Ok(f)) => f,
                Woken::Signal | Woken::Timeout if self.busy() => {
                    self.settle().await?;
                    continue;
                }
                Woken::Signal => continue,
                Woken::Timeout => {
                    if idle_since.elapsed() >= self.shared.idle {
                        return Err(SessionError::Idle(self.shared.idle));
                    }
                    continue;
                }
                Woken::Frame(Err(ReadError::Closed)) => {
                    if self.revoked.load(Ordering::SeqCst) {
                        continue; // refused at the top of the loop
                    }
                    self.store_hashed(0).await?;
                    let _ = self.commit().await;
                    return Ok(());
                }
                Woken::Frame(Err(e @ ReadError::TooLarge { .. })) => {
                    let m = e.to_string();
                    tracing::warn!(peer = self.peer, host = self.host, "refusing frame: {m}");
                    self.out.refuse(Code::FrameTooLarge, 0, &m);
                    return Err(SessionError::Read(e));
                }
                Woken::Frame(Err(e)) => return Err(SessionError::Read(e)),
            };
            idle_since = Instant::now();
            if ty == proto::t::BATCH {
                self.batch(body).await?;
                continue;
            }
            // Other messages answer after every batch before them.
            self.store_hashed(0).await?;
            let msg = match Msg::decode(ty, body) {
                Ok(m) => m,
                Err(e) => {
                    self.out.refuse(Code::Protocol, 0, &e.to_string());
                    return Err(e.into());
                }
            };
            self.answer(msg).await?;
        }
    }

    /// A batch frame: hashed here or off the session, stored in order, its
    /// ack sent once durable.
    async fn batch(&mut self, body: &[u8]) -> Result<(), SessionError> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(body);
        if self.hashing.is_empty() && b.len() <= INLINE_HASH_MAX {
            self.store_one(hash_batch(b)).await?;
        } else {
            // The session is told when the leaves are ready: the batch is
            // then stored (and its ack sent once durable) without waiting for
            // the next frame.
            let wake = self.wake.clone();
            self.hashing.push_back(tokio::task::spawn_blocking(move || {
                let h = hash_batch(b);
                wake.notify_one();
                h
            }));
            self.store_hashed(HASH_AHEAD).await?;
        }
        self.ack_synced()
    }

    async fn answer(&mut self, msg: Msg) -> Result<(), SessionError> {
        match msg {
            Msg::Position { chain } => {
                self.commit().await?;
                let (shared, host) = (self.shared, self.host);
                let at = tokio::task::block_in_place(|| shared.store.position(host, chain));
                let reply = match at {
                    Ok(Some((next_seq, head))) => Msg::Resume {
                        chain,
                        known: true,
                        next_seq,
                        receipt: self.receipt(0, chain, next_seq, head)?,
                    },
                    Ok(None) => Msg::Resume {
                        chain,
                        known: false,
                        next_seq: 0,
                        receipt: Vec::new(),
                    },
                    Err(Refused { code, message }) => {
                        self.out.refuse(code, 0, &message);
                        return Err(SessionError::Refused {
                            batch: 0,
                            code,
                            message,
                        });
                    }
                };
                self.out.msg(&reply);
                Ok(())
            }
            Msg::Ping(n) => {
                self.commit().await?;
                self.out.msg(&Msg::Pong(n));
                Ok(())
            }
            Msg::Checkpoint if self.receipts.is_none() => {
                let m = "Checkpoint is a message of protocol version 3";
                self.out.refuse(Code::Protocol, 0, m);
                Err(SessionError::Unexpected(m.into()))
            }
            Msg::Checkpoint => {
                let block = lock(&self.shared.published).clone();
                let Some(block) = block else {
                    let m = "this collector's checkpoint log has no durable seal yet; retry later";
                    self.out.refuse(Code::Unavailable, 0, m);
                    return Err(SessionError::Unexpected(m.into()));
                };
                tracing::debug!(host = self.host, "checkpoint asked for (witness)");
                self.out.msg(&Msg::Published { block });
                Ok(())
            }
            Msg::Error { code, message, .. } => Err(SessionError::Agent { code, message }),
            other => {
                let e = SessionError::Unexpected(format!("{other:?}"));
                self.out.refuse(Code::Protocol, 0, &e.to_string());
                Err(e)
            }
        }
    }

    /// Stores hashed batches, in order, until at most `keep` are left being
    /// hashed.
    async fn store_hashed(&mut self, keep: usize) -> Result<(), SessionError> {
        while self.hashing.len() > keep {
            let Some(h) = self.hashing.front_mut() else {
                break;
            };
            let hashed = h.await.map_err(|e| SessionError::Hashing(e.to_string()));
            self.hashing.pop_front();
            self.store_one(hashed?).await?;
        }
        Ok(())
    }

    /// Stores one hashed batch and keeps its buffer for the next.
    async fn store_one(&mut self, h: Hashed) -> Result<(), SessionError> {
        let r = self.store(&h).await;
        if self.spare.len() < HASH_AHEAD {
            self.spare.push(h.body);
        }
        r
    }

    /// Verifies a batch against its chain's tip, appends it and asks for an
    /// fsync (without waiting); its ack waits in `pending`.
    async fn store(&mut self, h: &Hashed) -> Result<(), SessionError> {
        let arrived = std::time::Instant::now();
        let (batch, leaves) = match &h.leaves {
            Ok((layout, leaves)) => (layout.batch(&h.body), leaves),
            Err(e) => {
                // Acknowledge what was stored before the malformed batch.
                let _ = self.commit().await;
                tracing::warn!(peer = self.peer, host = self.host, "batch refused: {e}");
                self.out.refuse(Code::Protocol, 0, &e.to_string());
                return Err(e.clone().into());
            }
        };
        if self.revoked.load(Ordering::SeqCst) {
            self.out.refuse(Code::Revoked, batch.id, REVOKED);
            return Err(SessionError::Revoked);
        }
        let (shared, host) = (self.shared, self.host);
        match store_call(shared, || shared.store.apply(host, &batch, leaves)) {
            Ok(stored) => {
                let p = PendingAck {
                    batch: batch.id,
                    chain: batch.chain,
                    next_seq: stored.next_seq,
                    head: stored.head,
                    end: stored.end,
                    slot: stored.slot,
                    records: stored.new_records as u64,
                    arrived,
                };
                if !self.watched.iter().any(|s| Arc::ptr_eq(s, &p.slot)) {
                    lock(&p.slot).watch(&self.waker);
                    self.watched.push(p.slot.clone());
                }
                let begun = lock(&p.slot).sync_begin();
                if let Err(e) = begun {
                    return Err(storage_failed(self.shared, &mut self.out, &p, e));
                }
                self.pending.push_back(p);
                Ok(())
            }
            Err(Refused { code, message }) => {
                // Acknowledge what was stored before the refused batch.
                let id = batch.id;
                let _ = self.commit().await;
                tracing::warn!(
                    peer = self.peer,
                    host = self.host,
                    batch = id,
                    code = code.name(),
                    "batch refused: {message}"
                );
                self.out.refuse(code, id, &message);
                Err(SessionError::Refused {
                    batch: id,
                    code,
                    message,
                })
            }
        }
    }
}

/// A chain's write or fsync failed: its state is read back from disk on next
/// use, and the agent is told (it resends from the collector's position).
fn storage_failed(
    shared: &Shared,
    out: &mut Out,
    p: &PendingAck,
    e: std::io::Error,
) -> SessionError {
    shared.store.evict(p.chain);
    let e = SessionError::Storage(e);
    out.refuse(Code::Storage, p.batch, &e.to_string());
    e
}
