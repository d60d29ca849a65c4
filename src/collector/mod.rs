//! `logseal collector`: receives chains from agents over mutual TLS, verifies
//! every batch against the chain's tip, stores it durably, then acknowledges.
//!
//! Every connection is a task on one runtime of a few threads
//! ([`SESSION_THREADS`]), however many agents connect ([`session`] has the
//! order "verify → append → fsync → ack"). Chains are written and fsynced by
//! the process's write-behind pool ([`crate::storage::writebehind`]), which
//! wakes a session when an fsync covers what it waits to acknowledge; fsyncs
//! asked for while one runs are merged into the next (group commit per chain).

pub mod admission;
pub mod checkpoints;
pub mod config;
pub mod error;
pub mod metrics;
pub mod session;
pub mod store;
pub mod witnessing;

use crate::transport::crl::Crls;
use admission::{LogLimit, PreAuth};
use config::{CollectorConfig, EnrollmentMode};
use error::{CollectorError, TlsLoadError};
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use store::{Enrollment, Store};

/// File descriptors a session may hold: its socket and the segment file of
/// the chain it writes (most sessions write one chain; a spare).
const FDS_PER_CONNECTION: u64 = 3;

/// Threads of the runtime the connections run on: as many as the machine
/// has cores, up to this, however many agents connect.
pub const SESSION_THREADS: usize = 4;
/// Threads for what waits off those (a JetStream request, a large batch's
/// hashing, a receipt while the checkpoint log changes its key), at most.
pub const BLOCKING_THREADS: usize = 16;

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
    revoked: Arc<AtomicBool>,
    /// Wakes the session (at the stop, on revocation).
    wake: Arc<tokio::sync::Notify>,
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
                live.wake.notify_one();
                n += 1;
            }
        }
        n
    }

    /// Wakes every session: at the stop, each finishes what it read and
    /// tells its agent.
    fn wake_sessions(&self) {
        for live in lock(&self.sessions).live.values() {
            live.wake.notify_one();
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
    let rt = runtime()?;
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
        listener.set_nonblocking(true)?;
        let _in_runtime = rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        rt.spawn(accept(shared.clone(), listener))
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
    drop(stop);
    end_sessions(&shared, acceptor, rt);
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

/// The runtime the connections run on: a thread per core (up to
/// [`SESSION_THREADS`]), and up to [`BLOCKING_THREADS`] for what waits.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism().map_or(2, |n| n.get().min(SESSION_THREADS)),
        )
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("logseal-session")
        .enable_all()
        .build()
}

/// At the stop: no new connections; each session stores and acknowledges
/// what it read and tells its agent, within 10 s. A session still open then
/// is dropped (its batches unacknowledged: the agent sends them again).
fn end_sessions(
    shared: &Shared,
    acceptor: tokio::task::JoinHandle<()>,
    rt: tokio::runtime::Runtime,
) {
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake_sessions();
    acceptor.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.active.load(Ordering::SeqCst) + shared.pre_auth.count() > 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Accepts connections until the task is aborted at the stop: each one that
/// gets a place is served by a task of its own.
async fn accept(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let mut backoff = Duration::ZERO;
    loop {
        let (tcp, addr) = match listener.accept().await {
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
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
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
            reload_tls(&shared, "the CRL file changed");
        }
        tracing::debug!(peer, "connection accepted");
        tokio::spawn(session::serve(shared.clone(), tcp, peer, held));
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
