//! A fleet of N hosts against one collector, and the same fleet against
//! rsyslog receiving over gtls, in one run.
//!
//! One process simulates N agents. Each has its own client certificate, its
//! own chain and forward-secure key (made by logseal's `ChainWriter` before
//! the run: Genesis, events, a seal every `BENCH_SEAL_SECONDS` of its events,
//! as the agent's `seal_interval` does), and speaks the real protocol over
//! mutual TLS 1.3: Hello, Position, then batches, each acknowledged after the
//! collector verified and fsynced it. The fleet sends `BENCH_RATE` events/s in
//! aggregate for `BENCH_SECONDS`, spread evenly over the hosts; a host ships
//! what arrived at most every `BENCH_SHIP_MS` (the agent's commit interval).
//!
//! For rsyslog the same N connections (own certificates, gtls, x509/certvalid)
//! send the same events as octet-counted RFC 5424 lines at the same schedule;
//! rsyslog writes them to one file (no fsync: rsyslog's default).
//!
//! Reported per N (a row each): the collector's and rsyslogd's CPU per 1 000
//! events and their ratio, threads, peak RSS, wake-ups per second while every
//! host is connected and idle (context switches of all the process's
//! threads), the ack latency p50/p99 (batch sent → its Ack read), and the
//! collector's start-up time over the store the run left: after `kill -9` at
//! the end of the run, then after a clean stop.
//!
//! Run: `cargo bench --bench fleet`. `BENCH_HOSTS` (default `1,10,100,1000`,
//! comma-separated), `BENCH_RATE` (20 000), `BENCH_SECONDS` (10),
//! `BENCH_SHIP_MS` (10), `BENCH_SEAL_SECONDS` (1), `BENCH_PEERS`
//! (`logseal,rsyslog`), `BENCH_DIR` (a temporary directory).

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)] // a benchmark: panics are failures

mod common;
use logseal::chain::record::{Body, Payload, Source};
use logseal::chain::{ChainId, Digest};
use logseal::storage::writer::{ChainWriter, RecordLog};
use logseal::transport::proto::{self, Msg};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_logseal");
const MSG_LEN: usize = 200;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A chain's records kept in memory (the simulated agent's spool).
#[derive(Default)]
struct MemLog {
    records: Vec<Vec<u8>>,
    bytes: u64,
}

impl RecordLog for MemLog {
    fn append_record_leaf(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> std::io::Result<(u64, Digest)> {
        let mut r = Vec::new();
        encode(&mut r);
        let leaf = logseal::chain::hash::leaf(&r);
        let at = self.bytes;
        self.bytes += r.len() as u64;
        self.records.push(r);
        Ok((at, leaf))
    }
    fn append_frame(&mut self, frame: &[u8]) -> std::io::Result<u64> {
        let rec = logseal::chain::frame::frame_record(frame).expect("a record frame");
        let at = self.bytes;
        self.bytes += rec.len() as u64;
        self.records.push(rec.to_vec());
        Ok(at)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush_partial(&mut self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn buffered(&self) -> usize {
        0
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn position(&self) -> u64 {
        self.bytes
    }
}

/// One simulated host: its TLS identity, chain and what it sends when.
struct Host {
    name: String,
    cert: rustls_pki_types::CertificateDer<'static>,
    key: Vec<u8>,
    chain: ChainId,
    records: Vec<Vec<u8>>,
    /// Records sent (and acknowledged) before the measurement: the Genesis
    /// and what the writer put after it.
    setup: usize,
    /// (send at, end of the batch in `records`, events in it).
    batches: Vec<(Duration, usize, usize)>,
    /// The same events as syslog lines, per batch (rsyslog).
    lines: Vec<Vec<u8>>,
}

fn event_line(host: &str, i: u64) -> Vec<u8> {
    let mut m =
        format!("<134>1 2026-11-28T12:00:00.000000Z {host} app 4242 M1 - event {i} ").into_bytes();
    while m.len() < MSG_LEN {
        m.push(b'a' + (m.len() % 26) as u8);
    }
    m
}

struct Plan {
    hosts: usize,
    rate: f64,
    seconds: f64,
    ship: Duration,
    seal: Duration,
}

impl Plan {
    /// The send time of host `h`'s `k`-th event: the fleet's events evenly
    /// spaced, dealt to the hosts in turn.
    fn at(&self, h: usize, k: u64) -> Duration {
        Duration::from_secs_f64((k as f64 * self.hosts as f64 + h as f64) / self.rate)
    }
    fn events_of(&self, h: usize) -> u64 {
        let total = (self.rate * self.seconds) as u64;
        let n = self.hosts as u64;
        total / n + u64::from((h as u64) < total % n)
    }
}

/// Builds host `h`'s chain for the plan (its state in `state`).
fn make_host(plan: &Plan, h: usize, state: &Path, cert: (Vec<u8>, Vec<u8>)) -> Host {
    let name = format!("h{h:05}");
    let (mut w, _) = ChainWriter::open_log(state, Some(&name), "bench", |_| {
        Ok((MemLog::default(), Default::default()))
    })
    .unwrap();
    let setup = w.log().records.len();
    let (mut batches, mut lines) = (Vec::new(), Vec::new());
    let (mut k, total) = (0u64, plan.events_of(h));
    let mut last_seal = Duration::ZERO;
    let mut unsealed = false;
    while k < total {
        // One batch: this host's events up to the end of their ship window.
        let window = plan.at(h, k).as_nanos() / plan.ship.as_nanos().max(1);
        let end = Duration::from_nanos(((window + 1) * plan.ship.as_nanos()) as u64);
        let (mut n, mut text) = (0, Vec::new());
        while k < total && plan.at(h, k) < end {
            let line = event_line(&name, k);
            w.append(Body::Event {
                source: Source::SyslogTls,
                flags: 0,
                peer: "10.0.0.7:6514",
                original_len: None,
                payload: Payload::Raw(&line),
            })
            .unwrap();
            text.extend_from_slice(format!("{} ", line.len()).as_bytes());
            text.extend_from_slice(&line);
            k += 1;
            n += 1;
        }
        unsealed = true;
        if end.saturating_sub(last_seal) >= plan.seal || k == total {
            w.seal().unwrap();
            last_seal = end;
            unsealed = false;
        }
        batches.push((end, w.log().records.len(), n));
        lines.push(text);
    }
    assert!(!unsealed);
    let chain = w.chain_id();
    let records = std::mem::take(&mut w.log_mut().records);
    Host {
        name,
        cert: rustls_pki_types::CertificateDer::from(cert.0),
        key: cert.1,
        chain,
        records,
        setup,
        batches,
        lines,
    }
}

/// The bench's PKI: a CA, the collector's certificate (also rsyslog's) and
/// one client certificate per host (DER), made in memory with rcgen.
struct Pki {
    dir: PathBuf,
    ca_der: Vec<u8>,
    ca: (CertificateParams, KeyPair),
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "fleet bench CA");
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = date_time_ymd(2025, 1, 1);
        p.not_after = date_time_ymd(2035, 1, 1);
        let ca = p.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_der: ca.der().to_vec(),
            ca: (p, key),
        };
        let (crt, key) = pki.leaf("collector", true);
        std::fs::write(dir.join("collector.crt"), crt.pem()).unwrap();
        std::fs::write(dir.join("collector.key"), key.serialize_pem()).unwrap();
        pki
    }

    fn leaf(&self, name: &str, server: bool) -> (rcgen::Certificate, KeyPair) {
        let issuer = Issuer::from_params(&self.ca.0, &self.ca.1);
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        if server {
            p.subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        p.not_before = date_time_ymd(2025, 1, 1);
        p.not_after = date_time_ymd(2035, 1, 1);
        (p.signed_by(&key, &issuer).unwrap(), key)
    }

    fn client(&self, host: &str) -> (Vec<u8>, Vec<u8>) {
        let (c, k) = self.leaf(host, false);
        (c.der().to_vec(), k.serialize_der())
    }

    fn f(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn client_config(pki: &Pki, host: &Host) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(pki.ca_der.clone()))
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(host.key.clone().into());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(vec![host.cert.clone()], key)
    .unwrap();
    Arc::new(cfg)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(cfg: Arc<rustls::ClientConfig>, addr: &str, name: &str) -> Tls {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let sn = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(sn, tcp)
        .await
        .unwrap()
}

async fn send_msg<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, m: &Msg) {
    let mut out = Vec::new();
    m.write(&mut out).unwrap();
    w.write_all(&out).await.unwrap();
}

async fn read_msg<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Msg {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)
        .await
        .expect("a frame from the collector");
    let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 1];
    r.read_exact(&mut body).await.unwrap();
    let m = Msg::decode(head[4], &body).unwrap();
    if let Msg::Error { message, .. } = &m {
        panic!("the collector refused: {message}");
    }
    m
}

fn batch_frame(host: &Host, id: u64, from: usize, to: usize) -> Vec<u8> {
    let mut body = Vec::new();
    proto::begin_batch(&mut body, id, host.chain);
    for r in &host.records[from..to] {
        proto::push_record(&mut body, r);
    }
    proto::finish_batch(&mut body, (to - from) as u32);
    let mut out = Vec::new();
    proto::write_frame(&mut out, proto::t::BATCH, &body).unwrap();
    out
}

/// What a simulated sender is given: its TLS configuration, where to
/// connect, the gate that bounds the handshakes in flight, and the run's
/// start (each sender says it is ready, then waits for the start time).
struct Start {
    cfg: Arc<rustls::ClientConfig>,
    addr: String,
    gate: Arc<tokio::sync::Semaphore>,
    ready: tokio::sync::mpsc::Sender<()>,
    go: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
}

impl Start {
    /// Connects (at most the gate's number of handshakes at once).
    async fn connect(&self) -> (Tls, tokio::sync::SemaphorePermit<'_>) {
        let permit = self.gate.acquire().await.unwrap();
        (
            connect(self.cfg.clone(), &self.addr, "collector").await,
            permit,
        )
    }

    /// Says it is ready, then waits for the start time.
    async fn ready_then_go(&mut self) -> tokio::time::Instant {
        self.ready.send(()).await.unwrap();
        loop {
            if let Some(t) = *self.go.borrow() {
                return t;
            }
            self.go.changed().await.unwrap();
        }
    }
}

/// A host's session: connects, sends its setup records, waits for `go`, then
/// sends its batches on schedule; returns each batch's ack latency.
async fn agent(host: Arc<Host>, mut start: Start) -> Vec<Duration> {
    let (mut tls, permit) = start.connect().await;
    send_msg(
        &mut tls,
        &Msg::Hello {
            min_version: proto::MIN_VERSION,
            max_version: proto::VERSION,
            host: host.name.clone(),
            software: "fleet-bench".into(),
        },
    )
    .await;
    assert!(matches!(read_msg(&mut tls).await, Msg::Welcome { .. }));
    drop(permit);
    send_msg(&mut tls, &Msg::Position { chain: host.chain }).await;
    assert!(matches!(read_msg(&mut tls).await, Msg::Resume { .. }));
    tls.write_all(&batch_frame(&host, 1, 0, host.setup))
        .await
        .unwrap();
    assert!(matches!(read_msg(&mut tls).await, Msg::Ack { .. }));
    let t0 = start.ready_then_go().await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let n = host.batches.len();
    let sent = Arc::new(std::sync::Mutex::new(vec![None::<Instant>; n]));
    let sent2 = sent.clone();
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(n);
        let mut next = 0usize;
        while next < n {
            if let Msg::Ack { batch, .. } = read_msg(&mut rd).await {
                let now = Instant::now();
                let s = sent2.lock().unwrap();
                while next < n && (next as u64 + 2) <= batch {
                    lat.push(now - s[next].expect("acked before sent"));
                    next += 1;
                }
            }
        }
        lat
    });
    let mut from = host.setup;
    for (i, &(at, to, _)) in host.batches.iter().enumerate() {
        tokio::time::sleep_until(t0 + at).await;
        let f = batch_frame(&host, i as u64 + 2, from, to);
        sent.lock().unwrap()[i] = Some(Instant::now());
        wr.write_all(&f).await.unwrap();
        from = to;
    }
    let lat = reader.await.unwrap();
    let _ = wr.shutdown().await;
    lat
}

/// The same events as syslog lines over gtls to rsyslog.
async fn syslog_sender(host: Arc<Host>, mut start: Start) -> Vec<Duration> {
    let (mut tls, permit) = start.connect().await;
    tls.flush().await.unwrap();
    drop(permit);
    let t0 = start.ready_then_go().await;
    for (i, &(at, _, _)) in host.batches.iter().enumerate() {
        tokio::time::sleep_until(t0 + at).await;
        tls.write_all(&host.lines[i]).await.unwrap();
    }
    tls.shutdown().await.unwrap();
    Vec::new()
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn status_field(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches of every thread of a process: its wake-ups.
fn wakeups(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut n = 0;
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in s.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    n
}

struct Row {
    cpu_ms_per_k: f64,
    threads: u64,
    rss_mib: f64,
    idle_wakeups: f64,
    p50_ms: f64,
    p99_ms: f64,
    start_kill9: f64,
    start_clean: f64,
    events_per_s: f64,
}

#[allow(clippy::zombie_processes)] // the caller stops and waits for it
fn start_collector(dir: &Path, pki: &Pki, hosts: usize) -> (Child, String, f64) {
    let cfg = dir.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"{}\"\nlog_level = \"warn\"\n\
             [limits]\nmax_connections = {}\nmax_unauthenticated = 256\n\
             max_unauthenticated_per_address = 256\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.join("store").display(),
            hosts + 16,
            pki.f("ca.crt"),
            pki.f("collector.crt"),
            pki.f("collector.key"),
        ),
    )
    .unwrap();
    let t = Instant::now();
    let mut child = Command::new(BIN)
        .args(["collector", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("collector.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the collector did not start: see {}",
            dir.join("collector.log").display()
        );
        if let Some(a) = line.trim().strip_prefix("listening ") {
            return (child, a.to_string(), t.elapsed().as_secs_f64());
        }
    }
}

fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

/// Connects the fleet (`spawn` makes each host's task), measures the idle
/// wake-ups of `pid`, then runs the schedule: the CPU `pid` spent and the
/// ack latencies.
fn drive<F, Fut>(
    rt: &tokio::runtime::Runtime,
    hosts: &[Arc<Host>],
    pki: &Pki,
    (pid, addr): (u32, &str),
    spawn: F,
) -> Driven
where
    F: Fn(Arc<Host>, Start) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(hosts.len().max(1));
    let (go_tx, go_rx) = tokio::sync::watch::channel(None);
    let tasks: Vec<_> = hosts
        .iter()
        .map(|h| {
            let start = Start {
                cfg: client_config(pki, h),
                addr: addr.to_string(),
                gate: gate.clone(),
                ready: ready_tx.clone(),
                go: go_rx.clone(),
            };
            let fut = spawn(h.clone(), start);
            rt.spawn(fut)
        })
        .collect();
    rt.block_on(async {
        for _ in 0..hosts.len() {
            tokio::time::timeout(Duration::from_secs(600), ready_rx.recv())
                .await
                .expect("the fleet did not connect within 10 minutes");
        }
    });
    // Every host connected, nothing sent: what the receiver does idle.
    let w0 = wakeups(pid);
    std::thread::sleep(Duration::from_secs(2));
    let idle = (wakeups(pid) - w0) as f64 / 2.0;
    let (threads_tx, threads_rx) = std::sync::mpsc::channel();
    let sampler = std::thread::spawn(move || {
        let mut max = 0;
        while threads_rx.recv_timeout(Duration::from_millis(200)).is_err() {
            max = max.max(status_field(pid, "Threads:"));
        }
        max
    });
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    go_tx
        .send(Some(
            tokio::time::Instant::now() + Duration::from_millis(50),
        ))
        .unwrap();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(rt.block_on(t).unwrap());
    }
    let _ = threads_tx.send(());
    Driven {
        cpu_at_go: c0,
        idle,
        lat,
        threads: sampler.join().unwrap(),
        took: t0.elapsed(),
    }
}

/// What [`drive`] measured.
struct Driven {
    /// The receiver's CPU seconds when the schedule began.
    cpu_at_go: f64,
    /// Its wake-ups per second with every host connected and idle.
    idle: f64,
    /// Ack latencies (logseal).
    lat: Vec<Duration>,
    /// Its most threads during the run.
    threads: u64,
    /// From the start of the schedule to the last task's end.
    took: Duration,
}

fn run_logseal(rt: &tokio::runtime::Runtime, dir: &Path, pki: &Pki, hosts: &[Arc<Host>]) -> Row {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let (mut child, addr, _) = start_collector(dir, pki, hosts.len());
    let pid = child.id();
    let mut d = drive(rt, hosts, pki, (pid, &addr), agent);
    let cpu = cpu_seconds(pid) - d.cpu_at_go;
    let rss = status_field(pid, "VmHWM:") as f64 / 1024.0;
    let events: usize = hosts
        .iter()
        .map(|h| h.batches.iter().map(|b| b.2).sum::<usize>())
        .sum();
    stop(&mut child, "-KILL");
    let (mut child, _, start_kill9) = start_collector(dir, pki, hosts.len());
    stop(&mut child, "-TERM");
    let (mut child, _, start_clean) = start_collector(dir, pki, hosts.len());
    stop(&mut child, "-TERM");
    Row {
        cpu_ms_per_k: cpu * 1e3 / (events as f64 / 1e3),
        threads: d.threads,
        rss_mib: rss,
        idle_wakeups: d.idle,
        p50_ms: percentile(&mut d.lat, 0.5),
        p99_ms: percentile(&mut d.lat, 0.99),
        start_kill9,
        start_clean,
        events_per_s: events as f64 / d.took.as_secs_f64(),
    }
}

fn run_rsyslog(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    pki: &Pki,
    hosts: &[Arc<Host>],
) -> Option<Row> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let port = common::free_port();
    let out = dir.join("out.log");
    std::fs::write(
        dir.join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{crt}\" DefaultNetstreamDriverKeyFile=\"{key}\" maxMessageSize=\"8k\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\" MaxSessions=\"{max}\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{o}\" template=\"raw\")\n",
            d = dir.display(),
            ca = pki.f("ca.crt"),
            crt = pki.f("collector.crt"),
            key = pki.f("collector.key"),
            max = hosts.len() + 16,
            o = out.display()
        ),
    )
    .unwrap();
    let mut child = common::spawn_rsyslog(&dir.join("rsyslog.conf"), dir)?;
    common::wait_port(port);
    let pid = child.id();
    let addr = format!("127.0.0.1:{port}");
    let d = drive(rt, hosts, pki, (pid, &addr), syslog_sender);
    // Done when every line is in the file.
    let expected: u64 = hosts
        .iter()
        .flat_map(|h| h.batches.iter().map(|b| b.2 as u64 * (MSG_LEN as u64 + 1)))
        .sum();
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < expected {
        assert!(
            Instant::now() < deadline,
            "rsyslog did not write every line"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_seconds(pid) - d.cpu_at_go;
    let rss = status_field(pid, "VmHWM:") as f64 / 1024.0;
    stop(&mut child, "-TERM");
    let events: usize = hosts
        .iter()
        .map(|h| h.batches.iter().map(|b| b.2).sum::<usize>())
        .sum();
    Some(Row {
        cpu_ms_per_k: cpu * 1e3 / (events as f64 / 1e3),
        threads: d.threads,
        rss_mib: rss,
        idle_wakeups: d.idle,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        start_kill9: f64::NAN,
        start_clean: f64::NAN,
        events_per_s: f64::NAN,
    })
}

/// The run's directory, removed at the end.
struct Scratch(PathBuf);
impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let list: String = env_or("BENCH_HOSTS", "1,10,100,1000".to_string());
    let counts: Vec<usize> = list
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("BENCH_HOSTS: numbers, comma-separated")
        })
        .collect();
    let rate: f64 = env_or("BENCH_RATE", 20_000.0);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let ship = Duration::from_millis(env_or("BENCH_SHIP_MS", 10));
    let seal = Duration::from_secs_f64(env_or("BENCH_SEAL_SECONDS", 1.0));
    let peers: String = env_or("BENCH_PEERS", "logseal,rsyslog".to_string());
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = Scratch(base.join(format!("logseal-fleet-{}", std::process::id())));
    let pki = Pki::new(&tmp.path().join("pki"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "fleet: {rate} events/s in aggregate for {seconds} s, a batch per host at most every {} ms, a seal every {} s of a host's events",
        ship.as_millis(),
        seal.as_secs_f64()
    );
    println!(
        "{:>6} {:>9} | {:>8} {:>8} {:>6} | {:>7} {:>7} | {:>8} {:>8} | {:>7} {:>7} | {:>7} {:>7} | {:>6} {:>6}",
        "hosts", "events/s", "ms/1k ev", "rsyslog", "ratio", "threads", "rsyslog", "RSS MiB", "rsyslog",
        "idle/s", "rsyslog", "ack p50", "p99 ms", "start", "kill-9"
    );
    for n in counts {
        let plan = Plan {
            hosts: n,
            rate,
            seconds,
            ship,
            seal,
        };
        let state = tmp.path().join(format!("agents-{n}"));
        let hosts: Vec<Arc<Host>> = (0..n)
            .map(|h| {
                let cert = pki.client(&format!("h{h:05}"));
                Arc::new(make_host(&plan, h, &state.join(h.to_string()), cert))
            })
            .collect();
        let _ = std::fs::remove_dir_all(&state);
        let ls = peers
            .contains("logseal")
            .then(|| run_logseal(&rt, &tmp.path().join("logseal"), &pki, &hosts));
        let rs = if peers.contains("rsyslog") {
            run_rsyslog(&rt, &tmp.path().join("rsyslog"), &pki, &hosts)
        } else {
            None
        };
        let nan = |r: &Option<Row>, f: fn(&Row) -> f64| r.as_ref().map_or(f64::NAN, f);
        println!(
            "{:>6} {:>9.0} | {:>8.2} {:>8.2} {:>6.2} | {:>7.0} {:>7.0} | {:>8.1} {:>8.1} | {:>7.1} {:>7.1} | {:>7.1} {:>7.1} | {:>6.2} {:>6.2}",
            n,
            nan(&ls, |r| r.events_per_s),
            nan(&ls, |r| r.cpu_ms_per_k),
            nan(&rs, |r| r.cpu_ms_per_k),
            nan(&ls, |r| r.cpu_ms_per_k) / nan(&rs, |r| r.cpu_ms_per_k),
            nan(&ls, |r| r.threads as f64),
            nan(&rs, |r| r.threads as f64),
            nan(&ls, |r| r.rss_mib),
            nan(&rs, |r| r.rss_mib),
            nan(&ls, |r| r.idle_wakeups),
            nan(&rs, |r| r.idle_wakeups),
            nan(&ls, |r| r.p50_ms),
            nan(&ls, |r| r.p99_ms),
            nan(&ls, |r| r.start_clean),
            nan(&ls, |r| r.start_kill9),
        );
    }
}
