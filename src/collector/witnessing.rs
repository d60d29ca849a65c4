//! Witnessing peer collectors (docs/FORMAT.md §7.4): every `witness.every`,
//! this collector asks each configured peer, over the agents' protocol and
//! mutual TLS, for its newest checkpoint seal (a witness block, §7.1),
//! checks it, and records it in its own checkpoint log, which seals it: the
//! peer cannot later cut its log back, or replace it, without `logseal
//! verify PEER_STORE --witnessed-by THIS_STORE` seeing it.
//!
//! Every block that differs from the last one recorded for the peer is
//! recorded: `verify` checks every one, so a peer log restored from a copy
//! and run on, which holds later seals but not the ones shown before, is
//! caught. While running, it also raises an alert when a peer goes back
//! (`witness-rollback`: a seal older than the last one it showed), shows two
//! seals of one seq (`witness-fork`), starts another log chain
//! (`witness-new-chain`), or shows something that is not its checkpoint
//! (`witness-refused`); a peer it cannot reach is `witness-failed` (once a
//! streak). The last block is remembered in memory only: what a peer did
//! while this collector was down is shown by `verify`, not by an alert.
//!
//! Invariants: only a block whose record is a seal valid under the key it
//! names, of the configured collector (and genesis, when pinned), is
//! recorded; a block is read within [`HELLO_MAX`](proto::HELLO_MAX) bytes
//! and [`EXCHANGE`] from the connection; one block per peer is remembered.

use super::config::{WitnessConfig, WitnessPeer};
use super::store::Store;
use crate::transport::block::Witness;
use crate::transport::proto::{self, Code, FrameReader, Msg, ReadError};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long connecting to a peer may take.
const CONNECT: Duration = Duration::from_secs(5);
/// How long the whole exchange with a peer may take, from the connection to
/// its checkpoint (however slowly it sends its bytes).
const EXCHANGE: Duration = Duration::from_secs(15);

/// The peer's socket: every read and write fails with `TimedOut` once the
/// exchange's deadline has passed.
struct Budget {
    sock: TcpStream,
    at: Instant,
}

impl Budget {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer did not answer within {} s", EXCHANGE.as_secs()),
            ));
        }
        Ok(left)
    }
}

impl std::io::Read for Budget {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        self.sock.read(buf)
    }
}

impl std::io::Write for Budget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// Why a peer's checkpoint could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The address does not resolve, or nobody answers there.
    #[error("cannot reach {address}: {source}")]
    Connect {
        /// The peer's address.
        address: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The peer's name is not a TLS server name.
    #[error("{name:?} is not a name a certificate can be valid for")]
    ServerName {
        /// The name.
        name: String,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The exchange failed (TLS handshake, write, read).
    #[error("{doing}: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The peer's answer could not be read.
    #[error("{doing}: {source}")]
    Read {
        /// What was being done.
        doing: &'static str,
        /// Cause.
        source: ReadError,
    },
    /// The peer refused.
    #[error("the peer refused: {code}: {message}")]
    Refused {
        /// Its error code's name.
        code: &'static str,
        /// Its message.
        message: String,
    },
    /// The peer answered something else.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// What it sent is not its checkpoint.
    #[error("what it sent is not its checkpoint: {0}")]
    NotItsCheckpoint(String),
    /// Its certificate is revoked by the CRL this collector uses (`[tls] crl`).
    #[error(
        "its certificate is revoked by the CRL in use ([tls] crl): nothing it sends is recorded"
    )]
    Revoked,
}

impl FetchError {
    /// True if the peer answered, but with something that is not its
    /// checkpoint (an alert of its own, not a failure to reach it).
    fn is_refusal(&self) -> bool {
        matches!(self, FetchError::NotItsCheckpoint(_) | FetchError::Revoked)
    }
}

/// Whether a certificate is revoked by the CRL the collector uses now.
pub type Revoked<'a> = &'a (dyn Fn(&CertificateDer<'_>) -> bool + Sync);

/// Asks `peer` for its newest checkpoint, as collector `me` (the name of
/// this collector's certificate), and checks it is the peer's: its
/// certificate not `revoked`, a valid seal, of the collector the peer is
/// configured as, from the pinned genesis key.
pub fn fetch(
    peer: &WitnessPeer,
    me: &str,
    tls: &Arc<rustls::ClientConfig>,
    revoked: Revoked<'_>,
) -> Result<Witness, FetchError> {
    let connect = |source| FetchError::Connect {
        address: peer.address.clone(),
        source,
    };
    let addr = peer
        .address
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::Error::other("no address")))?;
    let tcp = TcpStream::connect_timeout(&addr, CONNECT).map_err(connect)?;
    let io = |doing| move |source| FetchError::Io { doing, source };
    let sock = Budget {
        sock: tcp,
        at: Instant::now() + EXCHANGE,
    };
    let name = ServerName::try_from(peer.name.clone()).map_err(|_| FetchError::ServerName {
        name: peer.name.clone(),
    })?;
    let conn = rustls::ClientConnection::new(tls.clone(), name)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    Msg::Hello {
        min_version: proto::RECEIPTS,
        max_version: proto::VERSION,
        host: me.to_string(),
        software: format!("logseal {} (witness)", env!("CARGO_PKG_VERSION")),
    }
    .write(&mut tls)
    .and_then(|_| tls.flush())
    .map_err(io("TLS handshake or hello"))?;
    let mut fr = FrameReader::default();
    let answer = |fr: &mut FrameReader, tls: &mut _, doing| {
        let (ty, body) = fr
            .next(tls, proto::HELLO_MAX)
            .map_err(|source| FetchError::Read { doing, source })?;
        match Msg::decode(ty, body) {
            Ok(Msg::Error { code, message, .. }) => Err(FetchError::Refused {
                code: Code::from_u16(code).map_or("unknown", Code::name),
                message,
            }),
            Ok(m) => Ok(m),
            Err(e) => Err(FetchError::Unexpected(e.to_string())),
        }
    };
    match answer(&mut fr, &mut tls, "waiting for the peer's welcome")? {
        Msg::Welcome { version, .. } if version >= proto::RECEIPTS => {}
        other => return Err(FetchError::Unexpected(format!("{other:?}"))),
    }
    // The handshake is done: the CA vouched for the peer; the CRL is checked
    // here, the collector's own, as it reloads it.
    if tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map_or(true, revoked)
    {
        return Err(FetchError::Revoked);
    }
    Msg::Checkpoint
        .write(&mut tls)
        .and_then(|_| tls.flush())
        .map_err(io("asking for the checkpoint"))?;
    let block = match answer(&mut fr, &mut tls, "waiting for the peer's checkpoint")? {
        Msg::Published { block } => block,
        other => return Err(FetchError::Unexpected(format!("{other:?}"))),
    };
    let w = Witness::parse_block(&block).map_err(|e| FetchError::NotItsCheckpoint(e.0))?;
    if w.host != peer.name {
        return Err(FetchError::NotItsCheckpoint(format!(
            "it is collector {:?}'s, not {:?}'s",
            w.host, peer.name
        )));
    }
    if let Some(g) = peer.genesis.as_ref().filter(|g| **g != w.genesis) {
        return Err(FetchError::NotItsCheckpoint(format!(
            "its log starts from genesis key {}, not the pinned {g}",
            w.genesis
        )));
    }
    Ok(w)
}

/// What a newly fetched block is, next to the one seen before.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The first, a later seal, or another chain: recorded.
    Record,
    /// The same seal again.
    Same,
    /// An older seal of the same chain than one shown before: recorded.
    Rollback,
    /// Another record at a seq seen before: recorded, both are kept.
    Fork,
}

fn step(last: Option<&Witness>, new: &Witness) -> Step {
    match last {
        Some(l) if l.chain == new.chain && l.seq == new.seq && l.record == new.record => Step::Same,
        Some(l) if l.chain == new.chain && l.seq == new.seq => Step::Fork,
        Some(l) if l.chain == new.chain && l.seq > new.seq => Step::Rollback,
        _ => Step::Record,
    }
}

/// One peer's state.
struct Watched<'a> {
    peer: &'a WitnessPeer,
    /// The newest block recorded.
    last: Option<Witness>,
    /// Fetches have been failing since the last success.
    failing: bool,
}

/// Runs the witness thread until `stop` says so (or its sender is gone):
/// every `cfg.every`, each peer once.
pub fn run(
    cfg: &WitnessConfig,
    me: &str,
    (tls, revoked): (&Arc<rustls::ClientConfig>, Revoked<'_>),
    store: &Store,
    stop: &mpsc::Receiver<()>,
) {
    let mut peers: Vec<Watched<'_>> = cfg
        .peers
        .iter()
        .map(|peer| Watched {
            peer,
            last: None,
            failing: false,
        })
        .collect();
    loop {
        for w in &mut peers {
            turn(w, me, (tls, revoked), store);
        }
        if let Err(mpsc::RecvTimeoutError::Disconnected) | Ok(()) = stop.recv_timeout(cfg.every) {
            return;
        }
    }
}

/// Fetches one peer's checkpoint and records it if it is new.
fn turn(
    w: &mut Watched<'_>,
    me: &str,
    (tls, revoked): (&Arc<rustls::ClientConfig>, Revoked<'_>),
    store: &Store,
) {
    let name = &w.peer.name;
    let new = match fetch(w.peer, me, tls, revoked) {
        Ok(new) => new,
        Err(e) => {
            let refusal = e.is_refusal();
            // What the peer sent is shown bounded.
            let e = super::store::clip(&e.to_string(), 512).into_owned();
            if refusal {
                tracing::error!(peer = name, error = e, "witness: checkpoint refused");
                store.alert("witness-refused", name, None, &e);
            } else if !w.failing {
                tracing::warn!(
                    peer = name,
                    error = e,
                    "witness: cannot fetch the peer's checkpoint; trying again every turn"
                );
                store.alert(
                    "witness-failed",
                    name,
                    None,
                    &format!("cannot fetch its checkpoint: {e}"),
                );
            }
            w.failing = true;
            return;
        }
    };
    if std::mem::take(&mut w.failing) {
        tracing::info!(peer = name, "witness: the peer answers again");
    }
    let record = match step(w.last.as_ref(), &new) {
        Step::Same => false,
        Step::Record => {
            if let Some(l) = w.last.as_ref().filter(|l| l.chain != new.chain) {
                let m = format!(
                    "its checkpoint log is now chain {} (seal {}), no longer {} (last seal witnessed: {}): it started another log (its signer state lost, or its log replaced)",
                    new.chain, new.seq, l.chain, l.seq
                );
                tracing::warn!(peer = name, "witness: {m}");
                store.alert("witness-new-chain", name, None, &m);
            }
            true
        }
        Step::Rollback => {
            let last = w.last.as_ref().map_or(0, |l| l.seq);
            let m = format!(
                "its checkpoint log went back from seal {last} to seal {} of chain {}: cut back or restored from a copy; both are recorded, and `logseal verify` of its store with --witnessed-by this store shows it",
                new.seq, new.chain
            );
            tracing::error!(peer = name, "witness: {m}");
            store.alert("witness-rollback", name, None, &m);
            true
        }
        Step::Fork => {
            let m = format!(
                "it showed two different seals at seq {} of its log chain {}: both are recorded in this collector's checkpoint log",
                new.seq, new.chain
            );
            tracing::error!(peer = name, "witness: {m}");
            store.alert("witness-fork", name, None, &m);
            true
        }
    };
    if !record {
        return;
    }
    match crate::chain::checkpoint::encode_witnessed(&new.text()) {
        Some(statement) => {
            tracing::debug!(peer = name, chain = %new.chain, seq = new.seq, "witness: checkpoint recorded");
            // Remembered only once taken: a block the log could not take is
            // fetched and recorded again at the next turn.
            if store.note(statement) {
                w.last = Some(new);
            }
        }
        None => tracing::error!(peer = name, "witness: its block is too long to record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainId;

    fn w(chain: u8, seq: u64, rec: u8) -> Witness {
        Witness {
            host: "c".into(),
            genesis: "SHA256:00".into(),
            chain: ChainId([chain; 16]),
            seq,
            time_ns: 0,
            record: vec![rec],
        }
    }

    #[test]
    fn a_peer_going_back_or_forking_is_named() {
        assert_eq!(step(None, &w(1, 5, 1)), Step::Record);
        assert_eq!(step(Some(&w(1, 5, 1)), &w(1, 5, 1)), Step::Same);
        assert_eq!(step(Some(&w(1, 5, 1)), &w(1, 9, 2)), Step::Record);
        assert_eq!(step(Some(&w(1, 5, 1)), &w(1, 4, 2)), Step::Rollback);
        assert_eq!(step(Some(&w(1, 5, 1)), &w(1, 5, 2)), Step::Fork);
        assert_eq!(step(Some(&w(1, 5, 1)), &w(2, 1, 2)), Step::Record);
    }
}
