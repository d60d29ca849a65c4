//! `logseal agent`: syslog inputs → stamper → durable spool.
//!
//! Lifecycle: bind every input (fail before READY if one cannot be bound),
//! open the chain, start the stamper thread, tell systemd READY=1; on SIGTERM or
//! SIGINT stop the inputs (STOPPING=1), let the stamper drain the channel, write
//! a clean-shutdown Lifecycle record and a final seal, exit 0.

pub mod config;
pub mod stage;
pub mod stamper;

use crate::chain::record::Source;
use crate::ingest::listen::{self, ListenLimits};
use crate::ingest::LossCounter;
use crate::spool::{Spool, SpoolOptions};
use crate::transport::shipper::{self, ShipLink, ShipStats, ShipperConfig};
use crate::writer::{ChainWriter, Opened};
use config::{AgentConfig, Input};
use stamper::{StamperConfig, Stats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Capacity of the channel from the inputs to the stamper, in batches (a batch
/// is at most one 64 KiB read, or 256 datagrams): bounds memory to ~8 MiB.
const CHANNEL_BATCHES: usize = 128;

/// Runs the agent until SIGTERM/SIGINT. Bound addresses are printed to stdout
/// as `listening URL` lines (useful with port 0).
pub fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    // One owner per state directory, for the whole run (the shipper included):
    // a second agent on it is refused, naming the first.
    let _lock = crate::fsutil::lock_dir(&cfg.state_dir, "state directory")?;
    let host = (!cfg.host.is_empty()).then_some(cfg.host.as_str());
    let spool_dir = cfg.state_dir.join("spool");
    let opts = SpoolOptions {
        segment_bytes: cfg.spool.segment_size,
        // The stamper only hashes and frames; another thread copies into the
        // page cache and fsyncs.
        write_behind: true,
    };
    let (mut writer, opened) = ChainWriter::open_log(
        &cfg.state_dir,
        host,
        &spool_dir.display().to_string(),
        |each| Spool::open(&spool_dir, opts, each),
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
    // The Genesis, or the start/recovery record, is sealed at once: a verifier
    // run right after the start sees a sealed chain, not a tail waiting for
    // the first heartbeat seal.
    writer.seal()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("logseal-io")
        .build()?;
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = ListenLimits {
        max_message: cfg.limits.max_message as usize,
        max_connections: cfg.limits.max_connections,
        idle_timeout: cfg.limits.idle_timeout,
    };
    let mut losses = Vec::new();
    let mut tasks = Vec::new();
    let mut inherited = Inherited::from_env();
    let mut owned_paths = Vec::new(); // socket files we created (and remove at exit)
    let mut stop = crate::stop::StopSignals::install(&rt)?;
    rt.block_on(async {
        for input in &cfg.inputs {
            let tx = tx.clone();
            let sd = stop_rx.clone();
            match input {
                Input::Udp { listen } => {
                    let sock = match inherited.udp(listen) {
                        Some(s) => tokio::net::UdpSocket::from_std(s)?,
                        None => tokio::net::UdpSocket::bind(listen)
                            .await
                            .map_err(|e| anyhow::anyhow!("binding udp://{listen}: {e}"))?,
                    };
                    let addr = sock.local_addr()?;
                    println!("listening udp://{addr}");
                    let loss = Arc::new(LossCounter::new(Source::SyslogUdp, addr.to_string()));
                    losses.push(loss.clone());
                    tasks.push(tokio::spawn(listen::udp(sock, tx, loss, limits, sd)));
                }
                Input::Tcp { listen } => {
                    let l = match inherited.tcp(listen) {
                        Some(l) => tokio::net::TcpListener::from_std(l)?,
                        None => tokio::net::TcpListener::bind(listen)
                            .await
                            .map_err(|e| anyhow::anyhow!("binding tcp://{listen}: {e}"))?,
                    };
                    println!("listening tcp://{}", l.local_addr()?);
                    tasks.push(tokio::spawn(listen::tcp(l, tx, limits, sd)));
                }
                Input::Tls {
                    listen,
                    cert,
                    key,
                    client_ca,
                } => {
                    let tls = crate::ingest::tls::server_config(cert, key, client_ca.as_deref())
                        .map_err(anyhow::Error::msg)?;
                    let l = match inherited.tcp(listen) {
                        Some(l) => tokio::net::TcpListener::from_std(l)?,
                        None => tokio::net::TcpListener::bind(listen)
                            .await
                            .map_err(|e| anyhow::anyhow!("binding tls://{listen}: {e}"))?,
                    };
                    println!("listening tls://{}", l.local_addr()?);
                    tasks.push(tokio::spawn(listen::tls(l, tls, tx, limits, sd)));
                }
                Input::UnixDgram { path } => {
                    let s = match inherited.unix_dgram(path) {
                        Some(s) => tokio::net::UnixDatagram::from_std(s)?,
                        None => {
                            remove_stale_socket(path)?;
                            owned_paths.push(path.clone());
                            let s = tokio::net::UnixDatagram::bind(path).map_err(|e| {
                                anyhow::anyhow!("binding unix://{}: {e}", path.display())
                            })?;
                            set_mode(path, 0o666)?;
                            s
                        }
                    };
                    println!("listening unix://{}", path.display());
                    let name = path.display().to_string();
                    let loss = Arc::new(LossCounter::new(Source::SyslogUnix, name.clone()));
                    losses.push(loss.clone());
                    tasks.push(tokio::spawn(listen::unix_dgram(
                        s, name, tx, loss, limits, sd,
                    )));
                }
                Input::UnixStream { path } => {
                    let l = match inherited.unix_stream(path) {
                        Some(l) => tokio::net::UnixListener::from_std(l)?,
                        None => {
                            remove_stale_socket(path)?;
                            owned_paths.push(path.clone());
                            let l = tokio::net::UnixListener::bind(path).map_err(|e| {
                                anyhow::anyhow!("binding unix-stream://{}: {e}", path.display())
                            })?;
                            set_mode(path, 0o666)?;
                            l
                        }
                    };
                    println!("listening unix-stream://{}", path.display());
                    tasks.push(tokio::spawn(listen::unix_stream(
                        l,
                        path.display().to_string(),
                        tx,
                        limits,
                        sd,
                    )));
                }
            }
        }
        anyhow::Ok(())
    })?;
    inherited.warn_unused();
    let journal_done = Arc::new(tokio::sync::Notify::new());
    let journald = match &cfg.journald {
        Some(j) => Some(start_journald(
            &cfg,
            j,
            &spool_dir,
            tx.clone(),
            stop_rx.clone(),
            journal_done.clone(),
        )?),
        None => None,
    };
    // The stamper learns from this that every input has stopped.
    let inputs = tx.downgrade();
    drop(tx);
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let stats = Arc::new(Stats::default());
    let scfg = StamperConfig {
        seal_interval: cfg.chain.seal_interval,
        heartbeat: cfg.chain.heartbeat,
        commit_interval: cfg.spool.commit_interval,
        max_size: cfg.spool.max_size,
        journal_state: cfg.journald.as_ref().map(|_| cfg.state_dir.clone()),
    };
    let shipping = match &cfg.ship {
        Some(ship) => {
            let tls = crate::transport::tls::client_config(&ship.ca, &ship.cert, &ship.key)
                .map_err(anyhow::Error::msg)?;
            let link = Arc::new(ShipLink::new(writer.log().acked()));
            let scfg = ShipperConfig {
                host: writer.host().to_string(),
                collectors: ship.collectors.clone(),
                server_name: ship.server_name.clone(),
                tls,
                batch_records: ship.batch_records,
                batch_bytes: ship.batch_size as usize,
                window: ship.window,
                keepalive: ship.keepalive,
                backoff_max: ship.backoff_max,
                drain_timeout: ship.drain_timeout,
            };
            let ship_stats = Arc::new(ShipStats::default());
            let (l, st, dir) = (link.clone(), ship_stats.clone(), spool_dir.clone());
            let handle = std::thread::Builder::new()
                .name("logseal-shipper".into())
                .spawn(move || shipper::run(scfg, dir, l, st))?;
            tracing::info!(collectors = ?ship.collectors, "shipping to collectors");
            Some((link, ship_stats, handle))
        }
        None => None,
    };
    let st = stats.clone();
    let link = shipping.as_ref().map(|s| s.0.clone());
    let stamper = std::thread::Builder::new()
        .name("logseal-stamper".into())
        .spawn(move || stamper::run(writer, rx, inputs, losses, scfg, st, link))?;

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(inputs = cfg.inputs.len(), "agent ready");

    rt.block_on(async {
        // Watchdog: ping systemd only while the stamper loop is turning (it
        // turns at least once a second; stuck for 5 s means no more pings).
        let mut usec = 0u64;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
        let period = Duration::from_micros((usec / 2).max(100_000));
        let mut tick = tokio::time::interval(period);
        let mut last_alive = u64::MAX;
        let mut last_change = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.recv() => break,
                _ = journal_done.notified() => break,
                _ = tick.tick() => {
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
        anyhow::Ok(())
    })?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: closing inputs, sealing");
    let _ = stop_tx.send(true);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    if let Some(h) = journald {
        if h.join().is_err() {
            tracing::error!("the journald reader thread panicked");
        }
    }
    drop(rt); // closes every sender: the stamper drains and seals
    let stamped = stamper.join();
    if let Some((link, ship_stats, handle)) = shipping {
        // The final records (shutdown, seal) go out too, within the drain timeout.
        link.close();
        let _ = handle.join();
        // After a clean stop the resume point is the end of the spool.
        if matches!(stamped, Ok(Ok(()))) {
            if let Err(e) = Spool::ack_closed(&spool_dir, link.acked()) {
                tracing::warn!(error = %e, "recording the last acknowledgement in the spool");
            }
        }
        tracing::info!(
            records = ship_stats.records.load(Ordering::Relaxed),
            batches = ship_stats.batches.load(Ordering::Relaxed),
            "shipper stopped"
        );
    }
    match stamped {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the stamper thread panicked"),
    }
    for p in &owned_paths {
        let _ = std::fs::remove_file(p);
    }
    tracing::info!(
        events = stats.events.load(Ordering::Relaxed),
        seals = stats.seals.load(Ordering::Relaxed),
        "agent stopped cleanly"
    );
    Ok(())
}

/// Opens the journal and starts its reader after the last entry chained.
#[cfg(feature = "journald")]
fn start_journald(
    cfg: &AgentConfig,
    j: &config::JournaldConfig,
    spool_dir: &std::path::Path,
    tx: mpsc::Sender<crate::ingest::Batch>,
    stop: watch::Receiver<bool>,
    done: Arc<tokio::sync::Notify>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use crate::journal::{reader, resume, Filter};
    let resume = resume::resume_cursor(&cfg.state_dir, spool_dir)
        .map_err(|e| anyhow::anyhow!("finding the last journal entry chained: {e}"))?;
    let rcfg = reader::ReaderConfig {
        source: config::JournalSource::parse(&j.journal).map_err(anyhow::Error::msg)?,
        start: config::JournalStart::parse(&j.start).map_err(anyhow::Error::msg)?,
        filter: Filter::new(j).map_err(anyhow::Error::msg)?,
        max_entry: j.max_entry_size as usize,
        resume,
        peer: j.journal.as_str().into(),
        stop_at_end: j.stop_at_end,
        done,
        state_dir: cfg.state_dir.clone(),
    };
    let h = reader::spawn(rcfg, tx, stop, Arc::new(reader::ReaderStats::default()))?;
    println!("reading journal {}", j.journal);
    Ok(h)
}

#[cfg(not(feature = "journald"))]
fn start_journald(
    _: &AgentConfig,
    _: &config::JournaldConfig,
    _: &std::path::Path,
    _: mpsc::Sender<crate::ingest::Batch>,
    _: watch::Receiver<bool>,
    _: Arc<tokio::sync::Notify>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    anyhow::bail!("[journald]: this logseal was built without journald support")
}

/// Sockets passed by systemd (socket activation, `LISTEN_FDS`), matched to
/// inputs by kind and address, so that a socket unit can bind port 514 for an
/// agent that runs without privileges.
struct Inherited {
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
    unix_stream: Vec<std::os::unix::net::UnixListener>,
    unix_dgram: Vec<std::os::unix::net::UnixDatagram>,
}

impl Inherited {
    fn from_env() -> Inherited {
        let mut fds = listenfd::ListenFd::from_env();
        let mut me = Inherited {
            tcp: vec![],
            udp: vec![],
            unix_stream: vec![],
            unix_dgram: vec![],
        };
        for i in 0..fds.len() {
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                me.tcp.push(l);
            } else if let Ok(Some(s)) = fds.take_udp_socket(i) {
                me.udp.push(s);
            } else if let Ok(Some(l)) = fds.take_unix_listener(i) {
                me.unix_stream.push(l);
            } else if let Ok(Some(s)) = fds.take_unix_datagram(i) {
                me.unix_dgram.push(s);
            } else {
                tracing::warn!(
                    index = i,
                    "passed file descriptor is not a socket logseal can use"
                );
            }
        }
        let n = me.tcp.len() + me.udp.len() + me.unix_stream.len() + me.unix_dgram.len();
        if n > 0 {
            tracing::info!(sockets = n, "using sockets passed by systemd");
        }
        me
    }

    fn same(listen: &str, got: std::io::Result<std::net::SocketAddr>) -> bool {
        matches!((listen.parse::<std::net::SocketAddr>(), got), (Ok(a), Ok(b)) if a == b)
    }

    /// Removes the first socket that `matches` and makes it non-blocking.
    fn take<T>(
        v: &mut Vec<T>,
        matches: impl Fn(&T) -> bool,
        nonblocking: impl Fn(&T) -> std::io::Result<()>,
    ) -> Option<T> {
        let s = v.swap_remove(v.iter().position(matches)?);
        nonblocking(&s).ok()?;
        Some(s)
    }

    fn same_path(
        addr: std::io::Result<std::os::unix::net::SocketAddr>,
        path: &std::path::Path,
    ) -> bool {
        addr.ok().and_then(|a| a.as_pathname().map(|p| p == path)) == Some(true)
    }

    fn tcp(&mut self, listen: &str) -> Option<std::net::TcpListener> {
        Self::take(
            &mut self.tcp,
            |l| Self::same(listen, l.local_addr()),
            |l| l.set_nonblocking(true),
        )
    }

    fn udp(&mut self, listen: &str) -> Option<std::net::UdpSocket> {
        Self::take(
            &mut self.udp,
            |s| Self::same(listen, s.local_addr()),
            |s| s.set_nonblocking(true),
        )
    }

    fn unix_stream(&mut self, path: &std::path::Path) -> Option<std::os::unix::net::UnixListener> {
        Self::take(
            &mut self.unix_stream,
            |l| Self::same_path(l.local_addr(), path),
            |l| l.set_nonblocking(true),
        )
    }

    fn unix_dgram(&mut self, path: &std::path::Path) -> Option<std::os::unix::net::UnixDatagram> {
        Self::take(
            &mut self.unix_dgram,
            |s| Self::same_path(s.local_addr(), path),
            |s| s.set_nonblocking(true),
        )
    }

    fn warn_unused(&self) {
        for l in &self.tcp {
            tracing::warn!(addr = ?l.local_addr().ok(), "passed TCP socket matches no input; not used");
        }
        for s in &self.udp {
            tracing::warn!(addr = ?s.local_addr().ok(), "passed UDP socket matches no input; not used");
        }
        for l in &self.unix_stream {
            tracing::warn!(addr = ?l.local_addr().ok(), "passed unix stream socket matches no input; not used");
        }
        for s in &self.unix_dgram {
            tracing::warn!(addr = ?s.local_addr().ok(), "passed unix datagram socket matches no input; not used");
        }
    }
}

fn remove_stale_socket(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok(std::fs::remove_file(path)?),
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(_) => Ok(()),
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}
