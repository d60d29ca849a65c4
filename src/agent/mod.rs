//! `logseal agent`: syslog inputs → stamper → durable spool.
//!
//! Lifecycle: bind every input, load every certificate and open the journal
//! (a start that fails here leaves the chain untouched), then open the chain,
//! start the stamper thread, tell systemd READY=1. SIGHUP reloads the
//! certificates. On SIGTERM or SIGINT stop the inputs (STOPPING=1), let the
//! stamper drain the channel, write a clean-shutdown Lifecycle record and a
//! final seal, exit 0.

pub mod config;
pub mod error;
mod inputs;
mod journal;
pub mod metrics;
pub mod stage;
pub mod stamper;
pub mod unwritten;

use crate::chain::record::Source;
use crate::ingest::listen::{self, ListenLimits, StreamListener, Streams};
use crate::ingest::LossCounter;
use crate::storage::segment_log::{LogOptions, SegmentLog};
use crate::storage::writer::{ChainWriter, Opened};
use crate::transport::shipper::{self, ShipLink, ShipStats, ShipperConfig};
use crate::util::stop::{Asked, Reloadable};
use config::{AgentConfig, Input};
use error::AgentError;
use stamper::{StamperConfig, Stats};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use unwritten::{LostCount, Unwritten};

pub(crate) use inputs::check_files;
use inputs::{bind_inputs, Bound, SocketFiles};
use journal::JournalConfig;

/// Capacity of the channel from the inputs to the stamper, in batches (a batch
/// is at most one 64 KiB read, or 256 datagrams): bounds memory to ~8 MiB.
const CHANNEL_BATCHES: usize = 128;

/// The certificate files the agent uses (for expiry warnings and metrics).
fn watched_files(cfg: &AgentConfig) -> Vec<crate::monitor::expiry::Watched> {
    use crate::monitor::expiry::Watched;
    let mut w = Vec::new();
    if let Some(ship) = &cfg.ship {
        w.push(Watched::cert("ship.cert", &ship.cert));
        w.push(Watched::cert("ship.ca", &ship.ca));
    }
    for (i, input) in cfg.inputs.iter().enumerate() {
        if let Input::Tls {
            cert, client_ca, ..
        } = input
        {
            w.push(Watched::cert(format!("input {} cert", i + 1), cert));
            if let Some(ca) = client_ca {
                w.push(Watched::cert(format!("input {} client_ca", i + 1), ca));
            }
        }
    }
    w
}

/// SIGHUP: loads the certificates again (TLS inputs and shipping). A file that
/// does not load keeps the configuration in use. Settings other than the
/// certificate files' contents take effect at the next start.
fn reload(
    cfg: &AgentConfig,
    bound_tls: &[(usize, Arc<Reloadable<rustls::ServerConfig>>)],
    ship_tls: Option<&Arc<Reloadable<rustls::ClientConfig>>>,
) {
    tracing::info!(
        "SIGHUP: reloading certificates and keys (TLS inputs, shipping); other settings need a restart"
    );
    if let Some(path) = &cfg.source {
        match AgentConfig::load(path) {
            Ok(new) => {
                let changed = new.changed(cfg);
                if !changed.is_empty() {
                    tracing::warn!(
                        file = %path.display(),
                        "changed since the start, taking effect at the next restart: {}",
                        changed.join(", ")
                    );
                }
            }
            Err(e) => tracing::warn!("{e}: the configuration in use stays"),
        }
    }
    for (i, holder) in bound_tls {
        if let Some(Input::Tls {
            listen,
            cert,
            key,
            client_ca,
        }) = cfg.inputs.get(*i)
        {
            match crate::transport::tls::syslog_server_config(cert, key, client_ca.as_deref()) {
                Ok(c) => {
                    holder.set(c);
                    tracing::info!(input = %format!("tls://{listen}"), "certificates reloaded");
                }
                Err(e) => {
                    tracing::error!(input = %format!("tls://{listen}"), "reload refused, the certificates in use stay: {e}")
                }
            }
        }
    }
    if let (Some(holder), Some(ship)) = (ship_tls, &cfg.ship) {
        match crate::transport::tls::client_config(&ship.ca, &ship.cert, &ship.key) {
            Ok(c) => {
                holder.set(c);
                tracing::info!("shipping certificates reloaded (used from the next connection)");
            }
            Err(e) => tracing::error!("[ship] reload refused, the certificates in use stay: {e}"),
        }
    }
}

/// Runs the agent until SIGTERM/SIGINT (SIGHUP reloads certificates). Bound
/// addresses are printed to stdout as `listening URL` lines (useful with port 0).
pub fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    // One owner per state directory, for the whole run (the shipper included):
    // a second agent on it is refused, naming the first.
    let _lock = crate::storage::fsutil::lock_dir(&cfg.state_dir, "state directory")?;

    let panicked = panic_stops();
    // Everything that can fail for a reason outside the chain comes first, so
    // that a start that fails leaves the chain as it was (no Genesis, no
    // `recovered` record for a run that never happened).
    // (Its socket files are removed when `p` goes, at the end of the run.)
    let mut p = prepare(&cfg)?;
    let spool_dir = cfg.state_dir.join("spool");
    let writer = open_chain(&cfg, &spool_dir, &p.left_over, p.unwritten.as_ref())?;

    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (blocked_tx, blocked_rx) = watch::channel(false);
    let inputs = start_inputs(&cfg, &p.rt, p.bound, &tx, &stop_rx, &blocked_rx)?;
    let journal_done = Arc::new(tokio::sync::Notify::new());
    let (journald, journal_stats) = journal::start(
        p.journal_cfg,
        &cfg,
        &spool_dir,
        &tx,
        &stop_rx,
        &journal_done,
    )?;
    // The stamper learns from this that every input has stopped.
    let input_senders = tx.downgrade();
    drop(tx);
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let stats = Arc::new(Stats::default());
    let scfg = stamper_config(&cfg, blocked_tx, p.unwritten);
    let shipping = start_shipper(&cfg, p.ship_tls.as_ref(), &writer, &spool_dir)?;
    // What the metrics endpoint and `logseal status` read.
    let observed = Arc::new(metrics::AgentMetrics {
        stats: stats.clone(),
        ship: shipping.as_ref().map(|s| s.stats.clone()),
        journal: journal_stats.clone(),
        inputs: inputs.views,
        spool_limit: cfg.spool.max_size,
        heartbeat: cfg.chain.heartbeat,
        host: writer.host().to_string(),
        chain: writer.chain_id().to_string(),
        certificates: watched_files(&cfg),
    });
    crate::monitor::expiry::warn_expiring_now(&observed.certificates);
    if let Some(listener) = p.metrics_listener {
        let registry = Arc::new(observed.registry());
        p.rt.spawn(crate::monitor::metrics::serve(
            listener,
            registry,
            stop_rx.clone(),
        ));
    }
    let st = stats.clone();
    let link = shipping.as_ref().map(|s| s.link.clone());
    let losses = inputs.losses;
    let stamper = std::thread::Builder::new()
        .name("logseal-stamper".into())
        .spawn(move || stamper::run(writer, rx, input_senders, losses, scfg, st, link))?;

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(inputs = cfg.inputs.len(), "agent ready");
    let running = Running {
        cfg: &cfg,
        observed: &observed,
        bound_tls: &inputs.bound_tls,
        ship_tls: p.ship_tls.as_ref(),
        journal_done: &journal_done,
        panicked,
    };
    p.rt.block_on(running.supervise(&mut p.stop));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: closing inputs, sealing");
    let _ = stop_tx.send(true);
    p.rt.block_on(async {
        for t in inputs.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    if let Some(h) = journald {
        if h.join().is_err() {
            tracing::error!("the journald reader thread panicked");
        }
    }
    drop(p.rt); // closes every sender: the stamper drains and seals
    let stamped = stamper.join();
    if let Some(shipping) = shipping {
        shipping.finish(&spool_dir, matches!(stamped, Ok(Ok(()))));
    }
    stopped(stamped, panicked, &observed, &cfg.state_dir)
}

/// What a start needs that can fail for a reason outside the chain.
struct Prepared {
    rt: tokio::runtime::Runtime,
    stop: crate::util::stop::StopSignals,
    /// Removed when the agent exits.
    _socket_files: SocketFiles,
    bound: Vec<Bound>,
    metrics_listener: Option<tokio::net::TcpListener>,
    ship_tls: Option<Arc<Reloadable<rustls::ClientConfig>>>,
    journal_cfg: Option<JournalConfig>,
    unwritten: Option<Arc<Mutex<Unwritten>>>,
    left_over: Vec<LostCount>,
}

/// The runtime, the signals, every input bound, every certificate loaded,
/// the journal opened and the loss-count file made: all before the chain is
/// touched.
fn prepare(cfg: &AgentConfig) -> Result<Prepared, AgentError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("logseal-io")
        .build()?;
    let stop = crate::util::stop::StopSignals::install(&rt)?;
    let mut socket_files = SocketFiles::new();
    let bound = bind_inputs(cfg, &rt, &mut socket_files)?;
    let metrics_listener = match &cfg.metrics {
        Some(m) => Some(rt.block_on(crate::monitor::metrics::bind(m))?),
        None => None,
    };
    let ship_tls = match &cfg.ship {
        Some(ship) => Some(Arc::new(Reloadable::new(
            crate::transport::tls::client_config(&ship.ca, &ship.cert, &ship.key).map_err(
                |cause| AgentError::Tls {
                    what: "[ship]".into(),
                    cause: Box::new(cause),
                },
            )?,
        ))),
        None => None,
    };
    let journal_cfg = match &cfg.journald {
        Some(j) => Some(journal::prepare(cfg, j)?),
        None => None,
    };
    if cfg.ship.is_none() {
        tracing::warn!(
            "no [ship] table: records stay on this host only (nothing is sent to a collector)"
        );
    }
    // Made at full size now, while there is room: a stop on a full disk
    // writes into it what it could not chain.
    let (unwritten, left_over) = match Unwritten::open(&cfg.state_dir) {
        Ok((u, left)) => (Some(Arc::new(Mutex::new(u))), left),
        // ENOSPC, EDQUOT (ErrorKind::StorageFull is newer than our MSRV).
        Err(e) if matches!(e.raw_os_error(), Some(28 | 122)) => {
            tracing::warn!(error = %e, "no room to make the file that keeps loss counts across a stop on a full disk");
            (None, Vec::new())
        }
        Err(e) => return Err(e.into()),
    };

    Ok(Prepared {
        rt,
        stop,
        _socket_files: socket_files,
        bound,
        metrics_listener,
        ship_tls,
        journal_cfg,
        unwritten,
        left_over,
    })
}

/// The stamper's settings, from the agent's.
fn stamper_config(
    cfg: &AgentConfig,
    blocked: watch::Sender<bool>,
    unwritten: Option<Arc<Mutex<Unwritten>>>,
) -> StamperConfig {
    StamperConfig {
        seal_interval: cfg.chain.seal_interval,
        heartbeat: cfg.chain.heartbeat,
        commit_interval: cfg.spool.commit_interval,
        max_size: cfg.spool.max_size,
        journal_state: cfg.journald.as_ref().map(|_| cfg.state_dir.clone()),
        blocked: Arc::new(blocked),
        unwritten,
        // Under systemd's watchdog the loop shows itself alive every second;
        // without one it sleeps until input or its next seal is due.
        alive_every: sd_notify::watchdog_enabled(false, &mut 0u64)
            .then_some(std::time::Duration::from_secs(1)),
    }
}

/// After the stamper stopped: its result, a panic elsewhere, the last
/// `status.json`.
fn stopped(
    stamped: std::thread::Result<Result<(), crate::storage::writer::WriterError>>,
    panicked: &PanicStop,
    observed: &metrics::AgentMetrics,
    state_dir: &std::path::Path,
) -> Result<(), AgentError> {
    match stamped {
        Ok(r) => r?,
        Err(_) => return Err(AgentError::StamperPanicked),
    }
    if lock(&panicked.0).is_some() {
        return Err(AgentError::Panicked(panic_text(panicked)));
    }
    if let Err(e) = observed.status(false).write(state_dir) {
        tracing::warn!(error = %e, "writing status.json at the stop");
    }
    tracing::info!(
        events = observed.stats.events(),
        seals = observed.stats.seals.load(Ordering::Relaxed),
        "agent stopped cleanly"
    );
    Ok(())
}

/// Opens (or starts) the chain in the spool, chains what the previous stop
/// could not, and seals: a verifier run right after the start sees a sealed
/// chain, not a tail waiting for the first heartbeat seal.
fn open_chain(
    cfg: &AgentConfig,
    spool_dir: &std::path::Path,
    left_over: &[LostCount],
    unwritten: Option<&Arc<Mutex<Unwritten>>>,
) -> Result<ChainWriter<SegmentLog>, AgentError> {
    let host = (!cfg.host.is_empty()).then_some(cfg.host.as_str());
    let opts = LogOptions {
        segment_bytes: cfg.spool.segment_size,
        // The stamper only hashes and frames; another thread copies into the
        // page cache and fsyncs.
        write_behind: true,
    };
    let (mut writer, opened) = ChainWriter::open_log(
        &cfg.state_dir,
        host,
        &spool_dir.display().to_string(),
        |each| SegmentLog::open(spool_dir, opts, each),
    )?;
    match &opened {
        Opened::New { origin, note } => {
            tracing::info!(chain = %writer.chain_id(), host = writer.host(), origin = origin.name(), note = %note, "new chain")
        }
        Opened::Resumed {
            after_seq,
            clean,
            torn_bytes,
            rolled_forward,
        } => {
            tracing::info!(chain = %writer.chain_id(), after_seq, clean, torn_bytes, rolled_forward, "chain resumed")
        }
    }
    let chained_left_over =
        chain_left_over(&mut writer, &opened, left_over, unwritten.map(|u| &**u))?;
    // The Genesis, or the start/recovery record, is sealed at once: a verifier
    // run right after the start sees a sealed chain, not a tail waiting for
    // the first heartbeat seal.
    writer.seal()?;
    if chained_left_over {
        if let Some(u) = unwritten {
            lock(u).save(Vec::new())?;
        }
    }
    Ok(writer)
}

/// The inputs, serving.
struct Inputs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Every input's loss counter (streams first, then datagrams).
    losses: Vec<Arc<LossCounter>>,
    /// The TLS inputs' configurations, reloaded on SIGHUP.
    bound_tls: Vec<(usize, Arc<Reloadable<rustls::ServerConfig>>)>,
    /// What the metrics show of each input.
    views: Vec<metrics::InputView>,
}

/// Starts serving every bound input; prints `listening URL` for each.
fn start_inputs(
    cfg: &AgentConfig,
    rt: &tokio::runtime::Runtime,
    bound: Vec<Bound>,
    tx: &mpsc::Sender<crate::ingest::Batch>,
    stop_rx: &watch::Receiver<bool>,
    blocked_rx: &watch::Receiver<bool>,
) -> Result<Inputs, AgentError> {
    let streams = bound
        .iter()
        .filter(|b| matches!(b, Bound::Tcp(..) | Bound::Tls(..) | Bound::UnixStream(..)))
        .count();
    let limits = ListenLimits {
        max_message: cfg.limits.max_message as usize,
        max_connections: connections_per_listener(cfg.limits.max_connections, streams),
        idle_timeout: cfg.limits.idle_timeout,
    };
    let mut losses = Vec::new();
    let mut tasks = Vec::new();
    let mut bound_tls = Vec::new();
    let streams = Streams::new(cfg.limits.stream_memory as usize, blocked_rx.clone());
    let mut stream_at = |i: usize, source: Source, listen: String| {
        let loss = Arc::new(LossCounter::new(source, listen));
        losses.push(loss.clone());
        StreamListener {
            streams: streams.clone(),
            index: i,
            loss,
        }
    };
    let mut dgram_losses = Vec::new();
    let mut views = Vec::new();
    for (i, b) in bound.into_iter().enumerate() {
        let tx = tx.clone();
        let sd = stop_rx.clone();
        let _guard = rt.enter();
        match b {
            Bound::Udp(sock, loss, drops) => {
                crate::announce(format_args!("listening udp://{}", sock.local_addr()?));
                let inode = rustix::fs::fstat(&sock).ok().map(|m| (m.st_ino, drops));
                views.push((format!("udp://{}", sock.local_addr()?), loss.clone(), inode));
                dgram_losses.push(loss.clone());
                let streams = streams.clone();
                tasks.push(rt.spawn(listen::udp(sock, tx, loss, limits, streams, drops, sd)));
            }
            Bound::Tcp(l) => {
                let addr = l.local_addr()?;
                crate::announce(format_args!("listening tcp://{addr}"));
                let at = stream_at(i, Source::SyslogTcp, addr.to_string());
                views.push((format!("tcp://{addr}"), at.loss.clone(), None));
                tasks.push(rt.spawn(listen::plain(l, Source::SyslogTcp, tx, limits, at, sd)));
            }
            Bound::Tls(l, tls) => {
                let addr = l.local_addr()?;
                crate::announce(format_args!("listening tls://{addr}"));
                bound_tls.push((i, tls.clone()));
                let at = stream_at(i, Source::SyslogTls, addr.to_string());
                views.push((format!("tls://{addr}"), at.loss.clone(), None));
                tasks.push(rt.spawn(listen::tls(l, tls, tx, limits, at, sd)));
            }
            Bound::UnixDgram(s, name, loss, block) => {
                crate::announce(format_args!("listening unix-dgram://{name}"));
                views.push((format!("unix-dgram://{name}"), loss.clone(), None));
                dgram_losses.push(loss.clone());
                let when_full = if block {
                    listen::DgramFull::Block
                } else {
                    listen::DgramFull::Drop(blocked_rx.clone())
                };
                let streams = streams.clone();
                tasks.push(rt.spawn(listen::unix_dgram(
                    s, name, tx, loss, limits, when_full, streams, sd,
                )));
            }
            Bound::UnixStream(l, name) => {
                crate::announce(format_args!("listening unix-stream://{name}"));
                let at = stream_at(i, Source::SyslogUnix, name.clone());
                views.push((format!("unix-stream://{name}"), at.loss.clone(), None));
                let unix = listen::UnixAcceptor(l, name.into());
                tasks.push(rt.spawn(listen::plain(unix, Source::SyslogUnix, tx, limits, at, sd)));
            }
        }
    }
    losses.extend(dgram_losses);
    Ok(Inputs {
        tasks,
        losses,
        bound_tls,
        views: views
            .into_iter()
            .map(|(name, loss, udp)| metrics::InputView { name, loss, udp })
            .collect(),
    })
}

/// The shipper thread and what it shares.
struct Shipping {
    link: Arc<ShipLink>,
    stats: Arc<ShipStats>,
    handle: std::thread::JoinHandle<()>,
}

/// Starts the shipper thread if there is a [ship] table.
fn start_shipper(
    cfg: &AgentConfig,
    ship_tls: Option<&Arc<Reloadable<rustls::ClientConfig>>>,
    writer: &ChainWriter<SegmentLog>,
    spool_dir: &std::path::Path,
) -> Result<Option<Shipping>, AgentError> {
    let (Some(ship), Some(tls)) = (&cfg.ship, ship_tls) else {
        return Ok(None);
    };
    let link = Arc::new(ShipLink::new(writer.log().acked()));
    let scfg = ShipperConfig {
        host: writer.host().to_string(),
        collectors: ship.collectors.clone(),
        server_name: ship.server_name.clone(),
        tls: tls.clone(),
        batch_records: ship.batch_records,
        batch_bytes: ship.batch_size as usize,
        window: ship.window,
        keepalive: ship.keepalive,
        backoff_max: ship.backoff_max,
        drain_timeout: ship.drain_timeout,
        require_receipts: ship.require_receipts,
    };
    let ship_stats = Arc::new(ShipStats::default());
    let (l, st, dir) = (link.clone(), ship_stats.clone(), spool_dir.to_path_buf());
    let handle = std::thread::Builder::new()
        .name("logseal-shipper".into())
        .spawn(move || shipper::run(scfg, dir, l, st))?;
    let collectors: Vec<String> = ship.collectors.iter().map(ToString::to_string).collect();
    tracing::info!(collectors = ?collectors, "shipping to collectors");
    Ok(Some(Shipping {
        link,
        stats: ship_stats,
        handle,
    }))
}

impl Shipping {
    /// Lets the shipper send the final records (shutdown, seal) within the
    /// drain timeout, and after a clean stop records the last
    /// acknowledgement (the resume point is the end of the spool).
    fn finish(self, spool_dir: &std::path::Path, clean: bool) {
        self.link.close();
        let _ = self.handle.join();
        if clean {
            if let Err(e) = SegmentLog::ack_closed(spool_dir, self.link.acked()) {
                tracing::warn!(error = %e, "recording the last acknowledgement in the spool");
            }
        }
        tracing::info!(
            records = self.stats.records.load(Ordering::Relaxed),
            batches = self.stats.batches.load(Ordering::Relaxed),
            "shipper stopped"
        );
    }
}

/// What the agent looks after while it runs.
struct Running<'a> {
    cfg: &'a AgentConfig,
    observed: &'a metrics::AgentMetrics,
    bound_tls: &'a [(usize, Arc<Reloadable<rustls::ServerConfig>>)],
    ship_tls: Option<&'a Arc<Reloadable<rustls::ClientConfig>>>,
    journal_done: &'a tokio::sync::Notify,
    panicked: &'static PanicStop,
}

impl Running<'_> {
    /// Until a stop is asked (or the journal's end with --stop-at-journal-end,
    /// or a panic): the systemd watchdog, `status.json`, certificate
    /// deadlines, SIGHUP reloads.
    async fn supervise(&self, stop: &mut crate::util::stop::StopSignals) {
        let (cfg, observed, panicked) = (self.cfg, self.observed, self.panicked);
        let stats = &observed.stats;
        // Watchdog: ping systemd only while the stamper loop is turning (it
        // turns at least once a second under a watchdog; stuck for 5 s means
        // no more pings). Without a watchdog, no tick: an idle agent sleeps.
        let mut usec = 0u64;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
        let period = Duration::from_micros((usec / 2).max(100_000));
        let mut tick = tokio::time::interval(period);
        let mut last_alive = u64::MAX;
        let mut last_change = std::time::Instant::now();
        let mut status = tokio::time::interval(crate::monitor::status::AGENT_INTERVAL);
        let mut status_failing = false;
        let mut expiry = crate::monitor::expiry::recheck();
        loop {
            tokio::select! {
                _ = expiry.tick() => {
                    crate::monitor::expiry::warn_expiring_now(&observed.certificates);
                }
                _ = status.tick() => {
                    let r = observed.status(true).write(&cfg.state_dir);
                    match r {
                        Err(e) if !status_failing => {
                            tracing::warn!(error = %e, "writing status.json (read by `logseal status`)");
                            status_failing = true;
                        }
                        Err(_) => {}
                        Ok(()) => status_failing = false,
                    }
                }
                asked = stop.recv() => match asked {
                    Asked::Stop => break,
                    Asked::Reload => {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                        reload(cfg, self.bound_tls, self.ship_tls);
                        crate::monitor::expiry::warn_expiring_now(&observed.certificates);
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                    }
                },
                _ = self.journal_done.notified() => break,
                _ = panicked.1.notified() => {
                    tracing::error!("{}: stopping (inputs closed, the chain sealed)", panic_text(panicked));
                    break;
                }
                _ = tick.tick(), if watchdog => {
                    let alive = stats.alive_ms.load(Ordering::Relaxed);
                    if alive != last_alive {
                        last_alive = alive;
                        last_change = std::time::Instant::now();
                    }
                    if watchdog && last_change.elapsed() < Duration::from_secs(5) {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    }
                }
            }
        }
    }
}

/// Chains a Loss record for each count the previous stop could not write
/// (kept in `losses.pending`), unless its record did reach the spool after
/// all (same chain, seq at most the last one found). True if the file held
/// any (it is to be cleared once these records are sealed).
///
/// Before appending, the file is rewritten to name the seqs the new records
/// will have: a start that stops before they are durable chains them again,
/// one that stops after (or tears the clearing write) does not.
fn chain_left_over(
    w: &mut ChainWriter<SegmentLog>,
    opened: &Opened,
    left: &[LostCount],
    file: Option<&Mutex<Unwritten>>,
) -> Result<bool, AgentError> {
    if left.is_empty() {
        return Ok(false);
    }
    let after_seq = match opened {
        Opened::Resumed { after_seq, .. } => Some(*after_seq),
        Opened::New { .. } => None,
    };
    let todo: Vec<(&LostCount, u64)> = left
        .iter()
        .map(|c| (c, c.missing_from(w.chain_id(), after_seq)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let planned = todo
        .iter()
        .zip(w.next_seq()..)
        .map(|((c, count), seq)| LostCount {
            chain: w.chain_id(),
            seq: Some(seq),
            events: false,
            count: *count,
            ..(*c).clone()
        })
        .collect();
    if let Some(f) = file {
        lock(f).save(planned)?;
    }
    for (c, count) in todo {
        let detail = match (c.events, c.seq) {
            (true, Some(seq)) => format!(
                "received and chained before the previous stop (chain {} from seq {seq}), which could \
                 not write them to the spool",
                c.chain
            ),
            (false, Some(seq)) => format!(
                "counted before the previous stop, whose Loss record (chain {} seq {seq}) did not \
                 reach the spool",
                c.chain
            ),
            (_, None) => {
                "counted before the previous stop, which could not write a Loss record for it".into()
            }
        };
        w.append(crate::chain::record::Body::Loss {
            source: c.source,
            reason: c.reason,
            count,
            first_ns: c.first_ns,
            last_ns: c.last_ns,
            detail: &detail,
        })?;
        tracing::warn!(
            count,
            source = c.source.name(),
            "{detail}: Loss record chained now"
        );
    }
    Ok(true)
}

/// Descriptors kept back from stream connections: the chain's and the spool's
/// files, the journal, the shipper's connection, the runtime's own.
const FD_RESERVE: u64 = 128;

/// How many connections each of `streams` stream listeners may hold: the
/// configured number, or fewer if all of them full would leave less than
/// [`FD_RESERVE`] descriptors (the soft open-file limit is raised to the hard
/// one first). A flood of connections then waits in the listen backlog; it
/// never takes the descriptors a seal needs.
fn connections_per_listener(configured: usize, streams: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if streams == 0 {
        return configured;
    }
    let fit = (have.saturating_sub(FD_RESERVE) / streams as u64).max(1);
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    if configured > fit {
        tracing::warn!(
            open_files = have,
            stream_listeners = streams,
            max_connections = fit,
            configured,
            "the open-file limit cannot hold limits.max_connections on every stream listener \
             and keep {FD_RESERVE} descriptors for the chain: connections per listener lowered \
             (raise LimitNOFILE to have more)"
        );
        return fit;
    }
    configured
}

/// What stops the agent when any of its threads or tasks panics: the first
/// panic's description, and a wake-up for the main loop. A panic in an input
/// task would otherwise end that input alone, silently; the agent stops
/// instead, cleanly (final seal), with an error, so that a supervisor
/// restarts it whole.
type PanicStop = (Mutex<Option<String>>, tokio::sync::Notify);

fn panic_stops() -> &'static PanicStop {
    static STOP: std::sync::OnceLock<PanicStop> = std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if let Some(stop) = STOP.get() {
                let thread = std::thread::current();
                let mut first = lock(&stop.0);
                if first.is_none() {
                    *first = Some(format!(
                        "thread {} panicked: {info}",
                        thread.name().unwrap_or("(unnamed)")
                    ));
                }
                stop.1.notify_one();
            }
        }));
        (Mutex::new(None), tokio::sync::Notify::new())
    })
}

/// A lock that a panic while it was held does not make unusable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_text(stop: &PanicStop) -> String {
    lock(&stop.0).clone().unwrap_or_default()
}
