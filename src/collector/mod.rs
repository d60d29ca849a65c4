//! `logseal collector`: receives chains from agents over mutual TLS, verifies
//! every batch against the chain's tip, stores it durably, then acknowledges.
//!
//! Blocking threads per agent connection (rustls streams): a collector serves
//! hundreds of agents, not tens of thousands, and the blocking code keeps the
//! order "verify → append → fsync → ack" plain to read. A connection's thread
//! reads batches and checks their links against the chain's tip; a second one
//! hashes their leaves meanwhile (`leaf_stage`). Each chain is written
//! and fsynced by a thread of its own ([`crate::storage::writebehind`]): a connection
//! appends a verified batch, asks for an fsync without waiting for it and goes
//! on verifying the next batch; it acknowledges batches in order as soon as the
//! fsync has reached their end. fsyncs asked for while one runs are merged
//! into the next (group commit).

pub mod admission;
pub mod checkpoints;
pub mod config;
pub mod error;
pub mod metrics;
pub mod store;
pub mod wake;
pub mod witnessing;

use crate::chain::{hash, Digest};
use crate::transport::crl::Crls;
use crate::transport::proto::{self, Code, FrameReader, Msg, ReadError};
use admission::{Deadline, Held, LogLimit, PreAuth};
use config::{CollectorConfig, EnrollmentMode};
use error::{CollectorError, TlsLoadError};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use store::{Enrollment, Refused, Store};

/// A session with batches not yet acknowledged is woken when their fsync
/// ends ([`wake`]); it also looks this often, should a wake-up ever be lost.
const BUSY_WAIT: Duration = Duration::from_secs(1);
/// A read blocks only once a frame has begun to arrive: it gives up this often
/// to see to the acknowledgements while the rest of the frame comes.
const PARTIAL_FRAME_WAIT: Duration = Duration::from_millis(500);
/// After an `Error`, what the agent still sends is read (and dropped) this
/// long at most, so that the agent reads the error before the connection
/// closes ([`linger`]).
const LINGER: Duration = Duration::from_secs(2);
/// Bytes read (and dropped) while lingering, at most.
const LINGER_BYTES: usize = 64 << 20;
/// File descriptors a session may hold: its socket, the clone kept to end it
/// on revocation, its wake-up eventfd, and the segment file of the chain it
/// writes (most sessions write one chain; a spare).
const FDS_PER_CONNECTION: u64 = 5;

/// Raises the soft limit on open files to the hard one, and warns when even
/// that is too low for `max_connections` (accept(2) would then fail with
/// EMFILE before the connection limit is reached).
fn fd_limit(max_connections: usize, max_unauthenticated: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let need = (max_connections as u64)
        .saturating_mul(FDS_PER_CONNECTION)
        .saturating_add(max_unauthenticated as u64)
        .saturating_add(64);
    if have < need {
        tracing::warn!(
            open_files = have,
            needed = need,
            max_connections,
            "the open-file limit is below what limits.max_connections needs: raise LimitNOFILE or lower max_connections"
        );
    }
}

/// Waits after a failed accept(2) (out of file descriptors): doubling from
/// the first to the second.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a session ended by a revocation is told.
const REVOKED: &str = "the client certificate was revoked";

/// In the store: how recent the CRLs the collector used were.
const CRL_FLOOR_FILE: &str = "crl-floor.json";

/// Reads `STORE/crl-floor.json`, if there is one.
fn read_floor(store: &std::path::Path) -> Result<Option<Crls>, TlsLoadError> {
    let path = store.join(CRL_FLOOR_FILE);
    match crate::storage::fsutil::read_bounded_text(&path, 1 << 20) {
        Ok(text) => Crls::from_floor_text(&text)
            .map(Some)
            .map_err(|cause| TlsLoadError::Floor { path, cause }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(TlsLoadError::FloorRead { path, cause }),
    }
}

/// How hosts are admitted: trust on first use, or the enrolled file's anchors.
fn enrollment(cfg: &config::EnrollmentConfig) -> Result<Enrollment, CollectorError> {
    Ok(match cfg.mode {
        EnrollmentMode::FirstUse => Enrollment::FirstUse,
        EnrollmentMode::Strict => {
            let path = cfg.enrolled.clone().unwrap_or_default();
            Enrollment::Strict(config::read_enrolled(&path)?)
        }
    })
}

/// How often the CRL file is looked at.
const CRL_POLL: Duration = Duration::from_secs(1);

/// Rebuilds the TLS configuration; ends the sessions the new CRL revokes. A
/// failure keeps the configuration in use, logs and raises an alert.
fn reload_tls(shared: &Shared, why: &str) {
    match shared.tls.reload() {
        Ok(crls) => {
            shared.tls.save_floor(shared.store.root());
            let listed = crls.as_ref().map_or(0, Crls::len);
            let ended = crls.as_ref().map_or(0, |c| shared.end_revoked(c));
            tracing::info!(
                why,
                revoked_listed = listed,
                sessions_ended = ended,
                "TLS configuration reloaded"
            );
            if let Some(w) = crls.and_then(|c| c.stale(unix_now())) {
                tracing::warn!("{w}");
                shared.store.alert("crl-stale", "", None, &w);
            }
        }
        Err(e) => {
            tracing::error!(
                why,
                "reload refused, the previous TLS configuration stays in use: {e}"
            );
            shared
                .store
                .alert("tls-reload-failed", "", None, &format!("{why}: {e}"));
        }
    }
}

/// Batches a connection hands to its leaf stage before it stores the oldest:
/// the stage hashes one while the connection reads the next and stores the
/// one before.
const HASH_AHEAD: usize = 1;

/// A batch body up to this size is hashed by the session itself when no
/// batch waits in the leaf stage: handing it over would cost more than the
/// hashing. The leaf stage's thread starts with the first larger batch, so a
/// host that sends a few events at a time costs one thread, not two.
const INLINE_HASH_MAX: usize = 64 << 10;

/// The TLS configuration: built at start (an unusable certificate, key, CA
/// or CRL refuses the start), rebuilt on SIGHUP and when the CRL file changes.
/// A rebuild that fails keeps the configuration in use and raises an alert:
/// a garbled or rolled-back CRL never becomes "nothing is revoked".
struct TlsSource {
    cfg: config::TlsConfig,
    current: Mutex<Loaded>,
}

struct Loaded {
    server: Arc<rustls::ServerConfig>,
    crls: Option<Crls>,
    /// What the CRL file looked like when it was loaded.
    crl_file: Option<FileStamp>,
}

/// Identity of a file's content as the file system tells it: a replaced or
/// rewritten file changes one of these.
type FileStamp = (Option<SystemTime>, u64, u64);

fn stamp_of(p: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.modified().ok(), m.len(), m.ino()))
}

impl TlsSource {
    /// Loads `cfg`; with `floor` (what the CRLs used before were), an older
    /// CRL is refused.
    fn new(cfg: config::TlsConfig, floor: Option<&Crls>) -> Result<TlsSource, CollectorError> {
        let loaded = Self::build(&cfg, floor).map_err(|cause| CollectorError::Tls {
            cause,
            against_floor: floor.is_some(),
        })?;
        if let Some(w) = loaded.crls.as_ref().and_then(|c| c.stale(unix_now())) {
            tracing::warn!(crl = %cfg.crl.as_deref().unwrap_or_else(|| "".as_ref()).display(), "{w}");
        }
        Ok(TlsSource {
            cfg,
            current: Mutex::new(loaded),
        })
    }

    /// Checks every file of `cfg` and builds the server configuration. With
    /// `current`, a CRL older than the one in use is refused.
    fn build(cfg: &config::TlsConfig, current: Option<&Crls>) -> Result<Loaded, TlsLoadError> {
        let (crls, crl_file) = match &cfg.crl {
            Some(path) => {
                let stamp = stamp_of(path);
                let ca = crate::transport::tls::load_certs(&cfg.ca).map_err(TlsLoadError::Ca)?;
                let c = Crls::load(path, &ca).map_err(TlsLoadError::Crl)?;
                if let Some(cur) = current {
                    c.may_replace(cur)
                        .map_err(|cause| TlsLoadError::CrlRollback {
                            path: path.clone(),
                            cause,
                        })?;
                }
                (Some(c), stamp)
            }
            None => (None, None),
        };
        let server =
            crate::transport::tls::server_config(&cfg.ca, &cfg.cert, &cfg.key, crls.as_ref())
                .map_err(TlsLoadError::Server)?;
        Ok(Loaded {
            server,
            crls,
            crl_file,
        })
    }

    fn get(&self) -> Arc<rustls::ServerConfig> {
        lock(&self.current).server.clone()
    }

    /// Records how recent the CRLs in use are (`STORE/crl-floor.json`), so
    /// that a restart on an older CRL file is refused too.
    fn save_floor(&self, store: &std::path::Path) {
        let text = lock(&self.current).crls.as_ref().map(Crls::floor_text);
        if let Some(text) = text {
            if let Err(e) = crate::storage::fsutil::write_atomic(
                &store.join(CRL_FLOOR_FILE),
                text.as_bytes(),
                "crl-floor",
            ) {
                tracing::warn!(error = %e, "recording the CRLs in use in {CRL_FLOOR_FILE}");
            }
        }
    }

    /// True if the CRL in use revokes `cert`.
    fn revokes(&self, cert: &rustls_pki_types::CertificateDer<'_>) -> bool {
        lock(&self.current)
            .crls
            .as_ref()
            .is_some_and(|c| c.revokes(cert))
    }

    /// True if the CRL file changed since it was loaded.
    fn crl_changed(&self) -> bool {
        match &self.cfg.crl {
            Some(p) => stamp_of(p) != lock(&self.current).crl_file,
            None => false,
        }
    }

    /// Rebuilds everything from the files. On success returns the CRLs now in
    /// use (sessions of certificates they revoke must end); on failure keeps
    /// the configuration in use and says why.
    fn reload(&self) -> Result<Option<Crls>, TlsLoadError> {
        let mut cur = lock(&self.current);
        // Taken before the file is read: if it is being rewritten, its next
        // change of size or time makes the poll try again.
        let before = self.cfg.crl.as_deref().and_then(stamp_of);
        match Self::build(&self.cfg, cur.crls.as_ref()) {
            Ok(n) => {
                *cur = n;
                Ok(cur.crls.clone())
            }
            Err(e) => {
                // Not the same file again at every poll.
                cur.crl_file = before;
                Err(e)
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A connection after its handshake: what revocation needs to end it.
struct Live {
    cert: rustls_pki_types::CertificateDer<'static>,
    peer: String,
    /// A second handle on the socket: shutting it down ends the session's
    /// blocking reads at once.
    sock: TcpStream,
    revoked: Arc<AtomicBool>,
    /// Wakes the session (at the stop, on revocation).
    wake: Arc<wake::Wake>,
}

/// The connections after their handshake, by id.
#[derive(Default)]
struct Sessions {
    next: u64,
    live: std::collections::HashMap<u64, Live>,
}

struct Shared {
    store: Store,
    /// Signs the receipts in Acks (protocol version 3).
    receipts: Arc<checkpoints::ReceiptSigner>,
    /// The checkpoint log's newest durable seal, for peers that witness it.
    published: checkpoints::Published,
    /// Counters for the metrics.
    counts: metrics::Counts,
    /// The TLS configuration and the CRL in use.
    tls: TlsSource,
    name: String,
    max_frame: usize,
    idle: Duration,
    handshake: Duration,
    stop: AtomicBool,
    sessions: Mutex<Sessions>,
    /// Connections not yet authenticated, and their limits.
    pre_auth: Arc<PreAuth>,
    /// Authenticated sessions, at most `max_connections`.
    active: AtomicUsize,
    max_connections: usize,
    /// Rate limit of the log lines about refused connections.
    log_limit: LogLimit,
}

impl Shared {
    /// Ends every session whose certificate `crls` revokes; returns how many.
    fn end_revoked(&self, crls: &Crls) -> usize {
        let s = lock(&self.sessions);
        let mut n = 0;
        for live in s.live.values() {
            if crls.revokes(&live.cert) && !live.revoked.swap(true, Ordering::SeqCst) {
                tracing::warn!(peer = live.peer, "certificate revoked: ending its session");
                let _ = live.sock.shutdown(std::net::Shutdown::Read);
                live.wake.signal();
                n += 1;
            }
        }
        n
    }

    /// Wakes every session: at the stop, each finishes what it read and
    /// tells its agent.
    fn wake_sessions(&self) {
        for live in lock(&self.sessions).live.values() {
            live.wake.signal();
        }
    }
}

/// What `--check-config` found: errors (`run` would refuse to start) and
/// warnings (it would start and say the same).
#[derive(Debug, Default)]
pub struct Findings {
    /// Each a line naming the key and file.
    pub errors: Vec<String>,
    /// Each a line naming the key and file.
    pub warnings: Vec<String>,
}

/// What `run` would refuse at start, checked without binding or opening the
/// store (`--check-config`): the certificates, key, CA and CRL (parsed, the CRL
/// signed by the CA), and the enrolled-hosts file. A CRL past its nextUpdate
/// is a warning.
pub fn check_files(cfg: &CollectorConfig) -> Findings {
    use crate::storage::access::check_file;
    let user = crate::storage::access::service_user();
    let user = user.as_ref();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    // Each file opened (by the service user too, when run as root), then
    // parsed together: every problem at once.
    let ca_ok = check_file("tls.ca", &cfg.tls.ca, user, &mut errors);
    let mut ok = ca_ok;
    ok &= check_file("tls.cert", &cfg.tls.cert, user, &mut errors);
    ok &= check_file("tls.key", &cfg.tls.key, user, &mut errors);
    if let Some(crl) = &cfg.tls.crl {
        // The CRL against the CA, whatever the state of the collector's own key.
        if check_file("tls.crl", crl, user, &mut errors) && ca_ok {
            let checked = crate::transport::tls::load_certs(&cfg.tls.ca)
                .map_err(|e| format!("tls.ca: {e}"))
                .and_then(|ca| Crls::load(crl, &ca).map_err(|e| format!("tls.crl: {e}")));
            match checked {
                Ok(c) => {
                    if let Some(w) = c.stale(unix_now()) {
                        warnings.push(format!("tls.crl: {}: {w}", crl.display()));
                    }
                }
                Err(e) => {
                    errors.push(e);
                    ok = false;
                }
            }
        } else {
            ok = false;
        }
    }
    if ok {
        match read_floor(&cfg.store) {
            Ok(floor) => {
                if let Err(e) = TlsSource::build(&cfg.tls, floor.as_ref()) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let (EnrollmentMode::Strict, Some(p)) = (cfg.enrollment.mode, &cfg.enrollment.enrolled) {
        if check_file("enrollment.enrolled", p, user, &mut errors) {
            if let Err(e) = config::read_enrolled(p) {
                errors.push(format!("enrollment.enrolled: {e}"));
            }
        }
    }
    Findings { errors, warnings }
}

/// Opens the store and loads the TLS configuration (a CRL older than the one
/// the store's collector used before is refused).
fn open_store(cfg: &CollectorConfig) -> Result<(Store, TlsSource), CollectorError> {
    let enrollment = enrollment(&cfg.enrollment)?;
    let floor = read_floor(&cfg.store).map_err(|cause| CollectorError::Tls {
        cause,
        against_floor: false,
    })?;
    let tls = TlsSource::new(cfg.tls.clone(), floor.as_ref())?;
    let jet = match &cfg.jetstream {
        Some(j) => Some(crate::storage::jetstream::JetStream::open(j, true)?),
        None => None,
    };
    let store = Store::open(
        &cfg.store,
        enrollment,
        cfg.limits.segment_size,
        store::QuarantineLimits {
            per_host: cfg.limits.quarantine_per_host,
            total: cfg.limits.quarantine_total,
        },
        jet,
    )?;
    tls.save_floor(&cfg.store);
    if let Some(w) = lock(&tls.current)
        .crls
        .as_ref()
        .and_then(|c| c.stale(unix_now()))
    {
        store.alert("crl-stale", "", None, &w);
    }
    Ok((store, tls))
}

/// The witness thread, and the sender whose drop stops it.
type WitnessThread = (std::thread::JoinHandle<()>, std_mpsc::Sender<()>);

/// With `[jetstream]`, a thread that brings the chains of known hosts up to
/// the stream every `status_interval` ([`Store::refresh`]), off the status
/// task: a slow stream delays the status, never the watchdog or a stop.
fn start_refresh(
    cfg: &CollectorConfig,
    shared: &Arc<Shared>,
) -> Result<Option<WitnessThread>, CollectorError> {
    if cfg.jetstream.is_none() {
        return Ok(None);
    }
    let (stop, stopped) = std_mpsc::channel::<()>();
    let (shared, every) = (shared.clone(), cfg.liveness.status_interval);
    let thread = std::thread::Builder::new()
        .name("logseal-refresh".into())
        .spawn(move || {
            while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                shared.store.refresh();
            }
        })?;
    Ok(Some((thread, stop)))
}

/// Starts the witness thread if `[witness]` names peers (docs/FORMAT.md
/// §7.4).
fn start_witness(
    cfg: &CollectorConfig,
    shared: &Arc<Shared>,
) -> Result<Option<WitnessThread>, CollectorError> {
    if cfg.witness.peers.is_empty() {
        return Ok(None);
    }
    let tls = crate::transport::tls::client_config(&cfg.tls.ca, &cfg.tls.cert, &cfg.tls.key)
        .map_err(CollectorError::WitnessTls)?;
    let (stop, stopped) = std_mpsc::channel::<()>();
    let (shared, wcfg) = (shared.clone(), cfg.witness.clone());
    let thread = std::thread::Builder::new()
        .name("logseal-witness".into())
        .spawn(move || {
            let revoked = |c: &rustls_pki_types::CertificateDer<'_>| shared.tls.revokes(c);
            witnessing::run(
                &wcfg,
                &shared.name,
                (&tls, &revoked),
                &shared.store,
                &stopped,
            )
        })?;
    Ok(Some((thread, stop)))
}

/// Opens the collector's checkpoint log (its own chain, named after the
/// collector); a new one prints its trust-anchor line.
fn open_checkpoint_log(
    cfg: &CollectorConfig,
    store: &Store,
) -> Result<(checkpoints::CheckpointLog, String), CollectorError> {
    let name = crate::chain::hostname::canonical(&if cfg.name.is_empty() {
        crate::util::host::system_host()
    } else {
        cfg.name.clone()
    });
    let log = checkpoints::CheckpointLog::open(store.root(), &name)
        .map_err(CollectorError::CheckpointLog)?;
    if log.is_new() {
        let line = log.anchor_line(store.root())?;
        crate::announce(format_args!(
            "checkpoint log genesis {line} (a trust anchor for `logseal verify --trust-file`)"
        ));
    }
    Ok((log, name))
}

/// Runs the collector until SIGTERM/SIGINT (SIGHUP reloads the certificates
/// and the CRL). Prints `listening ADDR` on stdout.
pub fn run(cfg: CollectorConfig) -> Result<(), CollectorError> {
    fd_limit(cfg.limits.max_connections, cfg.limits.max_unauthenticated);
    let (store, tls) = open_store(&cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut stop = crate::util::stop::StopSignals::install(&rt)?;
    let listener = TcpListener::bind(cfg.listen.0).map_err(|cause| CollectorError::Bind {
        listen: cfg.listen,
        cause,
    })?;
    let local = listener.local_addr()?;
    let metrics_listener = match &cfg.metrics {
        Some(m) => Some(rt.block_on(crate::monitor::metrics::bind(m))?),
        None => None,
    };
    let (checkpoint_log, name) = open_checkpoint_log(&cfg, &store)?;
    crate::announce(format_args!("listening {local}"));
    let _ = std::io::stdout().flush();
    let shared = Arc::new(Shared {
        store,
        receipts: checkpoint_log.receipts(),
        published: checkpoint_log.published(),
        counts: metrics::Counts::default(),
        tls,
        name,
        max_frame: cfg.limits.max_frame as usize,
        idle: cfg.limits.idle_timeout,
        handshake: cfg.limits.handshake_timeout,
        stop: AtomicBool::new(false),
        sessions: Mutex::new(Sessions::default()),
        pre_auth: PreAuth::new(
            cfg.limits.max_unauthenticated,
            cfg.limits.max_unauthenticated_per_address,
        ),
        active: AtomicUsize::new(0),
        max_connections: cfg.limits.max_connections,
        log_limit: LogLimit::default(),
    });

    let acceptor = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("logseal-accept".into())
            .spawn(move || accept(&shared, listener))?
    };
    let (checkpoint_stop, stop_rx) = std::sync::mpsc::channel::<()>();
    let checkpointer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("logseal-checkpoint".into())
            .spawn(move || checkpoints::run(checkpoint_log, &shared.store, &stop_rx))?
    };
    let background: Vec<_> = [start_witness(&cfg, &shared)?, start_refresh(&cfg, &shared)?]
        .into_iter()
        .flatten()
        .collect();

    let silent_after = cfg.liveness.heartbeat * cfg.liveness.silent_after;
    let certificates = watched(&cfg.tls);
    crate::monitor::expiry::warn_expiring_now(&certificates);
    let (metrics_stop, metrics_stopped) = tokio::sync::watch::channel(false);
    if let Some(l) = metrics_listener {
        let m = Arc::new(metrics::CollectorMetrics {
            shared: shared.clone(),
            silent_after,
            certificates: certificates.clone(),
        });
        let registry = Arc::new(m.registry());
        rt.spawn(crate::monitor::metrics::serve(l, registry, metrics_stopped));
    }

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(listen = %local, store = %cfg.store.display(), "collector ready");

    rt.block_on(supervise(
        &cfg,
        &shared,
        &mut stop,
        &certificates,
        silent_after,
    ));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: no new connections; finishing the ones open");
    let _ = metrics_stop.send(true);
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake_sessions();
    let _ = TcpStream::connect(local); // wakes the acceptor
    let _ = acceptor.join();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.active.load(Ordering::SeqCst) + shared.pre_auth.count() > 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the witness recorded goes into the last checkpoint, which names
    // what the sessions stored; then the chains' tips are saved.
    for (thread, stop) in background {
        drop(stop);
        if thread.join().is_err() {
            tracing::error!("a background thread (witness, stream refresh) panicked");
        }
    }
    drop(checkpoint_stop);
    if checkpointer.join().is_err() {
        tracing::error!("the checkpoint thread panicked");
    }
    shared.store.close();
    let _ = shared.store.write_status(
        silent_after,
        cfg.liveness.status_interval,
        false,
        &certificates,
    );
    tracing::info!("collector stopped");
    Ok(())
}

/// Accepts connections until the stop: each one that gets a place is served
/// on a thread of its own.
fn accept(shared: &Arc<Shared>, listener: TcpListener) {
    let mut backoff = Duration::ZERO;
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let tcp = match conn {
            Ok(t) => {
                backoff = Duration::ZERO;
                t
            }
            Err(e) => {
                // Out of file descriptors (or memory): the connection
                // stays queued, and accepting again at once would spin
                // a core. Wait, longer each time, up to a second.
                backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                if let Some(n) = shared.log_limit.allow("accept") {
                    tracing::warn!(error = %e, retry_in = ?backoff, not_logged = n, "cannot accept a connection");
                }
                std::thread::sleep(backoff);
                continue;
            }
        };
        let Ok(addr) = tcp.peer_addr() else { continue };
        let peer = addr.to_string();
        // Until its handshake and Hello are done a connection holds a
        // place of its own, apart from the agents' sessions.
        let held = match shared.pre_auth.admit(addr.ip()) {
            Ok(h) => h,
            Err(why) => {
                if let Some(n) = shared.log_limit.allow(why) {
                    tracing::warn!(peer, not_logged = n, "connection closed: {why}");
                }
                continue;
            }
        };
        // A CRL written just now applies to this handshake already
        // (one stat per connection; the main loop looks every second).
        if shared.tls.crl_changed() {
            reload_tls(shared, "the CRL file changed");
        }
        // The place is given back when `held` is dropped: by the
        // thread, or here with the closure if the thread cannot start.
        tracing::debug!(peer, "connection accepted");
        let conn_shared = shared.clone();
        let spawned = crate::storage::faults::spawn(
            std::thread::Builder::new().name("logseal-conn".into()),
            move || serve(&conn_shared, tcp, &peer, held),
        );
        if let Err(e) = spawned {
            if let Some(n) = shared.log_limit.allow("spawn") {
                tracing::error!(error = %e, not_logged = n, "cannot start a connection thread: connection closed");
            }
        }
    }
}

/// The certificate files whose deadlines the collector watches.
fn watched(tls: &config::TlsConfig) -> Vec<crate::monitor::expiry::Watched> {
    use crate::monitor::expiry::Watched;
    let mut w = vec![
        Watched::cert("tls.cert", &tls.cert),
        Watched::cert("tls.ca", &tls.ca),
    ];
    if let Some(crl) = &tls.crl {
        w.push(Watched::crl("tls.crl", crl));
    }
    w
}

/// Until a stop is asked: the systemd watchdog, `status.json`, the CRL
/// file, certificate deadlines, SIGHUP reloads.
async fn supervise(
    cfg: &CollectorConfig,
    shared: &Shared,
    stop: &mut crate::util::stop::StopSignals,
    certificates: &[crate::monitor::expiry::Watched],
    silent_after: Duration,
) {
    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    let mut wd = tokio::time::interval(Duration::from_micros((usec / 2).max(100_000)));
    let mut status = tokio::time::interval(cfg.liveness.status_interval);
    // The CRL file is looked at every second: a revocation takes effect
    // within a second, for new handshakes and for open sessions.
    let mut crl_poll = tokio::time::interval(CRL_POLL);
    let mut expiry = crate::monitor::expiry::recheck();
    loop {
        tokio::select! {
            _ = expiry.tick() => {
                crate::monitor::expiry::warn_expiring_now(certificates);
            },
            asked = stop.recv() => match asked {
                crate::util::stop::Asked::Stop => break,
                crate::util::stop::Asked::Reload => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    tracing::info!("SIGHUP: reloading the certificates, key, CA and CRL (other settings need a restart)");
                    reload_tls(shared, "SIGHUP");
                    crate::monitor::expiry::warn_expiring_now(certificates);
                    if let Some(path) = &cfg.source {
                        match CollectorConfig::load(path) {
                            Ok(new) => {
                                let changed = new.changed(cfg);
                                if !changed.is_empty() {
                                    tracing::warn!(file = %path.display(), "changed since the start, taking effect at the next restart: {}", changed.join(", "));
                                }
                            }
                            Err(e) => tracing::warn!("{e:#}: the configuration in use stays"),
                        }
                    }
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                }
            },
            _ = crl_poll.tick() => if shared.tls.crl_changed() {
                reload_tls(shared, "the CRL file changed");
            },
            // Without systemd's watchdog, no tick: an idle collector sleeps.
            _ = wd.tick(), if watchdog => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            },
            _ = status.tick() => {
                if let Err(e) = shared.store.write_status(silent_after, cfg.liveness.status_interval, true, certificates) {
                    tracing::warn!(error = %e, "writing status.json");
                }
            }
        }
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn send(tls: &mut Tls, m: &Msg) -> std::io::Result<()> {
    m.write(tls)?;
    tls.flush()
}

fn refuse(tls: &mut Tls, code: Code, batch: u64, message: &str) {
    metrics::REFUSALS[(code as usize).min(11)].fetch_add(1, Ordering::Relaxed);
    let _ = send(
        tls,
        &Msg::Error {
            code: code as u16,
            batch,
            message: message.to_string(),
        },
    );
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// Serves one agent connection.
fn serve(shared: &Shared, tcp: TcpStream, peer: &str, mut held: Held) {
    let _ = tcp.set_nodelay(true);
    // One deadline for the handshake and the Hello: a client that trickles a
    // byte now and then cannot keep its place longer.
    let deadline = Instant::now() + shared.handshake;
    let Some((mut tls, cert)) = handshake(shared, tcp, peer, deadline) else {
        return;
    };
    let mut fr = FrameReader::default();
    let hello = {
        let mut sock = Deadline {
            sock: &tls.sock,
            at: deadline,
        };
        fr.next(
            &mut rustls::Stream::new(&mut tls.conn, &mut sock),
            proto::HELLO_MAX,
        )
    };
    // Refusals before the session also end by the deadline, however slowly the
    // client reads them.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let _ = tls.sock.set_write_timeout(Some(left));
    let ip = tls
        .sock
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.ip().to_string());
    let Some((host, version)) = admit_hello(shared, &mut tls, hello, &cert, peer, &ip) else {
        return;
    };
    // Authenticated: the connection leaves the pre-authentication places and
    // takes one of the sessions'.
    held.release();
    if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
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
        refuse(&mut tls, Code::Unavailable, 0, m);
        return;
    }
    struct Active<'a>(&'a AtomicUsize);
    impl Drop for Active<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _active = Active(&shared.active);
    let welcome = Msg::Welcome {
        version,
        collector: shared.name.clone(),
        max_frame: shared.max_frame as u32,
        idle_secs: shared.idle.as_secs() as u32,
    };
    let Some(registered) = register(shared, &mut tls, &cert, peer, &host) else {
        return;
    };
    if send(&mut tls, &welcome).is_err() {
        return;
    }
    let receipts = (version >= proto::RECEIPTS).then_some(&*shared.receipts);
    let ctx = SessionCtx {
        host: &host,
        peer,
        revoked: &registered.revoked,
        receipts,
        wake: registered.wake.clone(),
    };
    match session(shared, &mut tls, &mut fr, ctx) {
        Ok(()) => tracing::info!(peer, host, "agent disconnected"),
        Err(e) => {
            tracing::warn!(peer, host, "connection closed: {e}");
            if e.told_the_agent() {
                linger(&mut tls);
            }
        }
    }
}

/// A session in [`Shared::sessions`] (removed when dropped).
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
    revoked: Arc<AtomicBool>,
    wake: Arc<wake::Wake>,
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
    tls: &mut Tls,
    cert: &rustls_pki_types::CertificateDer<'static>,
    peer: &str,
    host: &str,
) -> Option<Registered<'a>> {
    let revoked = Arc::new(AtomicBool::new(false));
    let (Ok(sock), Ok(wake)) = (tls.sock.try_clone(), wake::Wake::new()) else {
        // Without a handle a revocation could not end it: fail closed.
        refuse(
            tls,
            Code::Unavailable,
            0,
            "the collector is out of resources; retry later",
        );
        return None;
    };
    let id = {
        let mut s = lock(&shared.sessions);
        let id = s.next;
        s.next += 1;
        s.live.insert(
            id,
            Live {
                cert: cert.clone(),
                peer: format!("{peer} ({host})"),
                sock,
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
        refuse(tls, Code::Revoked, 0, REVOKED);
        return None;
    }
    Some(registered)
}

/// After an `Error` to an agent that may still be sending (its batches
/// pipelined): stops writing and reads what comes, for [`LINGER`] at most, so
/// that closing does not reset the connection before the agent read why.
fn linger(tls: &mut Tls) {
    use std::io::Read;
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + LINGER;
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 16 << 10];
    let mut left = LINGER_BYTES;
    while Instant::now() < until && left > 0 {
        match (&tls.sock).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The TLS handshake (the client certificate checked here: CA, validity,
/// CRL), by `deadline`: the session and the client's certificate.
fn handshake(
    shared: &Shared,
    tcp: TcpStream,
    peer: &str,
    deadline: Instant,
) -> Option<(Tls, rustls_pki_types::CertificateDer<'static>)> {
    let conn = match rustls::ServerConnection::new(shared.tls.get()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(peer, error = %e, "TLS setup");
            return None;
        }
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        let mut sock = Deadline {
            sock: &tls.sock,
            at: deadline,
        };
        if let Err(e) = tls.conn.complete_io(&mut sock) {
            if let Some(n) = shared.log_limit.allow("handshake") {
                tracing::warn!(peer, error = %e, not_logged = n, "connection refused: TLS handshake failed");
            }
            return None;
        }
    }
    let Some(cert) = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
    else {
        tracing::warn!(peer, "connection refused: no client certificate");
        return None;
    };
    Some((tls, cert))
}

/// Checks the Hello: protocol version, host name, and that the client
/// certificate vouches for that name. The host, or `None` once refused.
fn admit_hello(
    shared: &Shared,
    tls: &mut Tls,
    hello: Result<(u8, &[u8]), ReadError>,
    cert: &rustls_pki_types::CertificateDer<'_>,
    peer: &str,
    ip: &str,
) -> Option<(String, u16)> {
    match hello {
        Ok((ty, body)) => match Msg::decode(ty, body) {
            Ok(Msg::Hello {
                min_version,
                max_version,
                host,
                software,
            }) => {
                // What the client sent is shown bounded (a Hello may hold
                // 64 KiB); refusals are logged rate-limited, and an alert names
                // the address, not the port: retries are one alert, counted.
                let shown = crate::collector::store::clip(&host, 64).into_owned();
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
                    refuse(tls, Code::Version, 0, &m);
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
                    refuse(tls, Code::NotYourChain, 0, &m.to_string());
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
                    refuse(tls, Code::NotYourChain, 0, &m);
                    return None;
                }
                let _ = tls.sock.set_write_timeout(Some(Duration::from_secs(30)));
                tracing::info!(peer, host, software, version, "agent connected");
                Some((host, version))
            }
            Ok(other) => {
                let m = format!("expected hello, got {other:?}");
                tracing::warn!(peer, "connection refused: {m}");
                refuse(tls, Code::Protocol, 0, &m);
                None
            }
            Err(e) => {
                tracing::warn!(peer, "connection refused: {e}");
                refuse(tls, Code::Protocol, 0, &e.to_string());
                None
            }
        },
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
                refuse(tls, Code::FrameTooLarge, 0, &why);
            }
            None
        }
    }
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
    arrived: Instant,
}

/// A batch frame's body handed to the leaf stage, and what came back.
struct Hashed {
    body: Vec<u8>,
    /// The batch's layout and every record's leaf, or why the batch could
    /// not be decoded.
    leaves: Result<(proto::BatchLayout, Vec<Digest>), proto::WireError>,
}

/// The leaf stage of a connection: hashes the leaves of every batch it is
/// given, in order. Leaves do not depend on the chain's tip, so this runs on a
/// thread of its own while the connection thread reads the next batch and
/// checks links, appends and acknowledges the one before.
fn leaf_stage(
    rx: std_mpsc::Receiver<Vec<u8>>,
    tx: std_mpsc::SyncSender<Hashed>,
    wake: &wake::Wake,
) {
    for body in rx {
        if tx.send(hash_batch(body)).is_err() {
            return;
        }
        wake.signal();
    }
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
    /// The leaf-hashing thread could not start or stopped.
    #[error("the leaf stage: {0}")]
    LeafStage(String),
}

/// The channels to and from a session's leaf stage (its thread ends when
/// they are dropped).
struct LeafStage {
    to: std_mpsc::SyncSender<Vec<u8>>,
    from: std_mpsc::Receiver<Hashed>,
}

impl LeafStage {
    fn start(wake: Arc<wake::Wake>) -> Result<LeafStage, SessionError> {
        // Capacity for every batch in flight: neither side ever blocks on a send.
        let (to, rx) = std_mpsc::sync_channel(HASH_AHEAD + 1);
        let (tx, from) = std_mpsc::sync_channel(HASH_AHEAD + 1);
        std::thread::Builder::new()
            .name("logseal-leaves".into())
            .spawn(move || leaf_stage(rx, tx, &wake))
            .map_err(|e| SessionError::LeafStage(format!("cannot start: {e}")))?;
        Ok(LeafStage { to, from })
    }
}

/// A batch's leaves, hashed where it was read.
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
    /// Batches stored, waiting for their fsync to be acknowledged.
    pending: VecDeque<PendingAck>,
    /// The leaf stage, once started.
    leaves: Option<LeafStage>,
    /// Batches handed to the leaf stage and not stored yet.
    hashing: usize,
    /// Batch buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// Set when the CRL came to revoke this session's certificate.
    revoked: &'a AtomicBool,
    /// Signs a receipt into every Ack (protocol version 3), else `None`.
    receipts: Option<&'a checkpoints::ReceiptSigner>,
    /// The session's wake-up, and its waker given to the chains it writes.
    wake: Arc<wake::Wake>,
    waker: crate::storage::writebehind::Waker,
    /// The chains given the waker (told at the end that it is gone).
    watched: Vec<Arc<Mutex<store::Slot>>>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for slot in &self.watched {
            lock(slot).unwatch(&self.waker);
        }
    }
}

/// What a session is given besides the connection.
struct SessionCtx<'a> {
    host: &'a str,
    peer: &'a str,
    /// Set when the CRL comes to revoke the certificate.
    revoked: &'a AtomicBool,
    /// Signs receipts (protocol version 3).
    receipts: Option<&'a checkpoints::ReceiptSigner>,
    wake: Arc<wake::Wake>,
}

/// Acknowledgements.
impl Session<'_> {
    /// Acknowledges, in order, the pending batches whose chain is durable to
    /// their end; does not wait for an fsync (signing a receipt may wait
    /// while the checkpoint log promotes its key).
    fn ack_synced(&mut self, tls: &mut Tls) -> Result<(), SessionError> {
        while let Some(p) = self.pending.front() {
            let (shared, revoked) = (self.shared, self.revoked);
            // Nothing is acknowledged once the certificate is revoked (what was
            // stored stays stored; the agent sends it again, and it is idempotent).
            if revoked.load(Ordering::SeqCst) {
                refuse(tls, Code::Revoked, 0, REVOKED);
                return Err(SessionError::Revoked);
            }
            let synced = lock(&p.slot).synced();
            match synced {
                Ok(pos) if pos >= p.end => {}
                Ok(_) => return Ok(()),
                Err(e) => {
                    let m = storage_failed(shared, tls, p, e);
                    self.pending.clear();
                    return Err(m);
                }
            }
            let (batch, chain, next_seq, head) = (p.batch, p.chain, p.next_seq, p.head);
            let receipt = self.receipt(tls, batch, chain, next_seq, head)?;
            let Some(p) = self.pending.front() else {
                return Ok(());
            };
            let ack = Msg::Ack {
                batch: p.batch,
                chain: p.chain,
                next_seq: p.next_seq,
                receipt,
            };
            send(tls, &ack).map_err(SessionError::Send)?;
            let c = &shared.counts;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.records.fetch_add(p.records, Ordering::Relaxed);
            c.ack_seconds.observe(p.arrived.elapsed().as_secs_f64());
            self.pending.pop_front();
        }
        Ok(())
    }

    /// The receipt for seq `next_seq - 1` of `chain` with `head` after it
    /// (protocol version 3; empty before, or for an empty chain). When the
    /// checkpoint log has no key to give within the signer's wait (it is
    /// promoting its key, or stopping), the agent is told to retry, and
    /// nothing is acknowledged.
    fn receipt(
        &self,
        tls: &mut Tls,
        batch: u64,
        chain: crate::chain::ChainId,
        next_seq: u64,
        head: Digest,
    ) -> Result<Vec<u8>, SessionError> {
        let (Some(r), Some(seq)) = (self.receipts, next_seq.checked_sub(1)) else {
            return Ok(Vec::new());
        };
        if let Some(b) = r.sign(self.host, chain, seq, head) {
            return Ok(b);
        }
        let message =
            "this collector cannot sign receipts now (its checkpoint log is changing its key, or the collector is stopping); retry later"
                .to_string();
        refuse(tls, Code::Storage, batch, &message);
        Err(SessionError::Refused {
            batch,
            code: Code::Storage,
            message,
        })
    }

    /// Waits until every chain touched by pending batches is durable, then
    /// acknowledges them all (through [`Session::ack_synced`], which then finds them all
    /// durable).
    fn commit(&mut self, tls: &mut Tls) -> Result<(), SessionError> {
        let (shared, pending) = (self.shared, &mut self.pending);
        let mut synced: Vec<&Arc<Mutex<store::Slot>>> = Vec::new();
        let mut failed = None;
        for p in pending.iter() {
            if synced.iter().any(|s| Arc::ptr_eq(s, &p.slot)) {
                continue;
            }
            if let Err(e) = lock(&p.slot).sync() {
                failed = Some(storage_failed(shared, tls, p, e));
                break;
            }
            synced.push(&p.slot);
        }
        if let Some(m) = failed {
            pending.clear();
            return Err(m);
        }
        self.ack_synced(tls)
    }
}

/// The message loop after Hello/Welcome.
fn session(
    shared: &Shared,
    tls: &mut Tls,
    fr: &mut FrameReader,
    ctx: SessionCtx<'_>,
) -> Result<(), SessionError> {
    {
        let mut s = Session {
            shared,
            host: ctx.host,
            peer: ctx.peer,
            pending: VecDeque::new(),
            leaves: None,
            hashing: 0,
            spare: Vec::new(),
            revoked: ctx.revoked,
            receipts: ctx.receipts,
            waker: ctx.wake.waker(),
            wake: ctx.wake,
            watched: Vec::new(),
        };
        s.run(tls, fr)
    }
}

impl Session<'_> {
    /// Batches are being hashed, or wait to be acknowledged.
    fn busy(&self) -> bool {
        self.hashing > 0 || !self.pending.is_empty()
    }

    /// Stores every hashed batch and acknowledges those already durable.
    fn settle(&mut self, tls: &mut Tls) -> Result<(), SessionError> {
        self.store_hashed(tls, 0)?;
        self.ack_synced(tls)
    }

    fn run(&mut self, tls: &mut Tls, fr: &mut FrameReader) -> Result<(), SessionError> {
        let mut idle_since = Instant::now();
        let _ = tls.sock.set_read_timeout(Some(PARTIAL_FRAME_WAIT));
        loop {
            if self.revoked.load(Ordering::SeqCst) {
                // Batches read but not acknowledged stay unacknowledged: the
                // agent keeps them and sends them again under a new certificate.
                refuse(tls, Code::Revoked, 0, REVOKED);
                return Err(SessionError::Revoked);
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                // What was read is stored and acknowledged, then the agent told.
                self.store_hashed(tls, 0)?;
                self.commit(tls)?;
                refuse(tls, Code::Unavailable, 0, "collector shutting down");
                return Ok(());
            }
            // Asleep until input, a wake-up (an fsync ended, a batch is
            // hashed, the stop) or the idle timeout: no timer while idle.
            if !fr.has_frame() && tls.conn.wants_read() {
                let wait = if self.busy() {
                    BUSY_WAIT
                } else {
                    self.shared.idle.saturating_sub(idle_since.elapsed())
                };
                match self.wake.wait(&tls.sock, Some(wait)) {
                    wake::Woken::Input => {}
                    wake::Woken::Signal | wake::Woken::Timeout if self.busy() => {
                        self.settle(tls)?;
                        continue;
                    }
                    wake::Woken::Signal => continue,
                    wake::Woken::Timeout => {
                        if idle_since.elapsed() >= self.shared.idle {
                            return Err(SessionError::Idle(self.shared.idle));
                        }
                        continue;
                    }
                }
            }
            let frame = fr.next(tls, self.shared.max_frame);
            let (ty, body) = match frame {
                Ok(f) => f,
                Err(ReadError::Timeout) => {
                    if self.busy() {
                        // A frame arrives slowly: see to the acks meanwhile.
                        self.settle(tls)?;
                    } else if idle_since.elapsed() > self.shared.idle {
                        // However it trickles, a frame must be whole in time.
                        return Err(SessionError::Idle(self.shared.idle));
                    }
                    continue;
                }
                Err(ReadError::Closed) => {
                    if self.revoked.load(Ordering::SeqCst) {
                        continue; // refused at the top of the loop
                    }
                    self.store_hashed(tls, 0)?;
                    let _ = self.commit(tls);
                    return Ok(());
                }
                Err(e @ ReadError::TooLarge { .. }) => {
                    let m = e.to_string();
                    tracing::warn!(peer = self.peer, host = self.host, "refusing frame: {m}");
                    refuse(tls, Code::FrameTooLarge, 0, &m);
                    return Err(SessionError::Read(e));
                }
                Err(e) => return Err(SessionError::Read(e)),
            };
            idle_since = Instant::now();
            if ty == proto::t::BATCH {
                let mut b = self.spare.pop().unwrap_or_default();
                b.clear();
                b.extend_from_slice(body);
                if self.hashing == 0 && b.len() <= INLINE_HASH_MAX {
                    self.store_one(tls, hash_batch(b))?;
                } else {
                    if self.leaves.is_none() {
                        self.leaves = Some(LeafStage::start(self.wake.clone())?);
                    }
                    if let Some(l) = &self.leaves {
                        l.to.send(b)
                            .map_err(|_| SessionError::LeafStage("stopped".into()))?;
                        self.hashing += 1;
                    }
                    self.store_hashed(tls, HASH_AHEAD)?;
                }
                self.ack_synced(tls)?;
                continue;
            }
            // Other messages answer after every batch before them.
            self.store_hashed(tls, 0)?;
            let msg = match Msg::decode(ty, body) {
                Ok(m) => m,
                Err(e) => {
                    refuse(tls, Code::Protocol, 0, &e.to_string());
                    return Err(e.into());
                }
            };
            self.answer(tls, msg)?;
        }
    }

    fn answer(&mut self, tls: &mut Tls, msg: Msg) -> Result<(), SessionError> {
        match msg {
            Msg::Position { chain } => {
                self.commit(tls)?;
                let reply = match self.shared.store.position(self.host, chain) {
                    Ok(Some((next_seq, head))) => Msg::Resume {
                        chain,
                        known: true,
                        next_seq,
                        receipt: self.receipt(tls, 0, chain, next_seq, head)?,
                    },
                    Ok(None) => Msg::Resume {
                        chain,
                        known: false,
                        next_seq: 0,
                        receipt: Vec::new(),
                    },
                    Err(Refused { code, message }) => {
                        refuse(tls, code, 0, &message);
                        return Err(SessionError::Refused {
                            batch: 0,
                            code,
                            message,
                        });
                    }
                };
                send(tls, &reply).map_err(SessionError::Send)
            }
            Msg::Ping(n) => {
                self.commit(tls)?;
                send(tls, &Msg::Pong(n)).map_err(SessionError::Send)
            }
            Msg::Checkpoint if self.receipts.is_none() => {
                let m = "Checkpoint is a message of protocol version 3";
                refuse(tls, Code::Protocol, 0, m);
                Err(SessionError::Unexpected(m.into()))
            }
            Msg::Checkpoint => {
                let block = lock(&self.shared.published).clone();
                let Some(block) = block else {
                    let m = "this collector's checkpoint log has no durable seal yet; retry later";
                    refuse(tls, Code::Unavailable, 0, m);
                    return Err(SessionError::Unexpected(m.into()));
                };
                tracing::debug!(host = self.host, "checkpoint asked for (witness)");
                send(tls, &Msg::Published { block }).map_err(SessionError::Send)
            }
            Msg::Error { code, message, .. } => Err(SessionError::Agent { code, message }),
            other => {
                let e = SessionError::Unexpected(format!("{other:?}"));
                refuse(tls, Code::Protocol, 0, &e.to_string());
                Err(e)
            }
        }
    }

    /// Stores hashed batches, in order, until at most `keep` are left with the
    /// leaf stage.
    fn store_hashed(&mut self, tls: &mut Tls, keep: usize) -> Result<(), SessionError> {
        while self.hashing > keep {
            let h = self
                .leaves
                .as_ref()
                .and_then(|l| l.from.recv().ok())
                .ok_or_else(|| SessionError::LeafStage("stopped".into()))?;
            self.hashing -= 1;
            self.store_one(tls, h)?;
        }
        Ok(())
    }

    /// Stores one hashed batch and keeps its buffer for the next.
    fn store_one(&mut self, tls: &mut Tls, h: Hashed) -> Result<(), SessionError> {
        let r = self.store(tls, &h);
        if self.spare.len() < HASH_AHEAD {
            self.spare.push(h.body);
        }
        r
    }

    /// Verifies a batch against its chain's tip, appends it and asks for an
    /// fsync (without waiting); its ack waits in `pending`.
    fn store(&mut self, tls: &mut Tls, h: &Hashed) -> Result<(), SessionError> {
        let arrived = Instant::now();
        let (batch, leaves) = match &h.leaves {
            Ok((layout, leaves)) => (layout.batch(&h.body), leaves),
            Err(e) => {
                // Acknowledge what was stored before the malformed batch.
                let _ = self.commit(tls);
                tracing::warn!(peer = self.peer, host = self.host, "batch refused: {e}");
                refuse(tls, Code::Protocol, 0, &e.to_string());
                return Err(e.clone().into());
            }
        };
        if self.revoked.load(Ordering::SeqCst) {
            refuse(tls, Code::Revoked, batch.id, REVOKED);
            return Err(SessionError::Revoked);
        }
        match self.shared.store.apply(self.host, &batch, leaves) {
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
                    return Err(storage_failed(self.shared, tls, &p, e));
                }
                self.pending.push_back(p);
                Ok(())
            }
            Err(Refused { code, message }) => {
                // Acknowledge what was stored before the refused batch.
                let id = batch.id;
                let _ = self.commit(tls);
                tracing::warn!(
                    peer = self.peer,
                    host = self.host,
                    batch = id,
                    code = code.name(),
                    "batch refused: {message}"
                );
                refuse(tls, code, id, &message);
                Err(SessionError::Refused {
                    batch: id,
                    code,
                    message,
                })
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A chain's write or fsync failed: its state is read back from disk on next
/// use, and the agent is told (it resends from the collector's position).
fn storage_failed(
    shared: &Shared,
    tls: &mut Tls,
    p: &PendingAck,
    e: std::io::Error,
) -> SessionError {
    shared.store.evict(p.chain);
    let e = SessionError::Storage(e);
    refuse(tls, Code::Storage, p.batch, &e.to_string());
    e
}
