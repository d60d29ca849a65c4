//! Sender → forwarder → receiver over mutual TLS, side by side in one run:
//! logseal (agent → collector: chained, sealed, verified, fsynced, acknowledged),
//! rsyslog → rsyslog (imtcp → omfwd gtls → imtcp gtls → omfile) and
//! syslog-ng → syslog-ng (syslog() → syslog(tls) → file), all fed by the same
//! generator (this process) over TCP to the forwarder.
//!
//! Two measurements per pipeline:
//! - **throughput**: `BENCH_MESSAGES` (default 1 000 000) messages of 200 bytes in
//!   one write; done when the receiver's output stops growing for 2 s (the time it
//!   reached its final size ends the measurement, for logseal less the seal
//!   records after the last event, which come on the agent's seal timer whatever
//!   the rate); every
//!   message must be there (logseal: the store also verifies intact).
//! - **latency** at a fixed rate (`BENCH_RATE`, default 50 000/s, for
//!   `BENCH_SECONDS`, default 10): each message carries its send time; a reader
//!   tails the receiver's output and records, per message, the time from send to
//!   its appearance there. For logseal that is the collector's store, where a
//!   record appears after verification and just before the fsync that precedes
//!   its acknowledgement.
//!
//! - **required work**: after the table, the CPU the design makes logseal spend
//!   per event whatever else it does (SHA-256 ×4 through `ring`, CRC32C ×3),
//!   measured in-process on this bench's record, against logseal's CPU per
//!   event and a third of the fastest peer's.
//!
//! - **verify STORE**: after each logseal throughput run, `logseal verify` on
//!   the stopped store against its checkpoint log and with `--no-checkpoints`.
//!
//! Run: `cargo bench --bench ship`. `BENCH_RUNS` (default 3) throughput runs per
//! pipeline, medians printed. `BENCH_PIPELINES`: a comma-separated subset of
//! `logseal,baseline,rsyslog,syslog-ng` (default all). `BENCH_BASELINE`: another
//! build's `logseal` binary, run as the pipeline `baseline` (the cost of a
//! change, measured in the same run). `SYSLOG_NG_ROOT`: an extracted syslog-ng-core.

#![allow(clippy::disallowed_methods)] // peer config files, not state

mod common;
use common::{free_port, median, syslog_ng_root, wait_port};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MSG_LEN: usize = 200;

fn now_ns() -> i64 {
    logseal::util::timefmt::now_ns()
}

fn frame(out: &mut Vec<u8>, tag: &str, i: u64, t: i64) {
    let head =
        format!("<134>1 2026-11-28T12:00:00.000000Z web-01 app 4242 M1 - msg-{tag}-{i} t={t} ");
    let mut m = head.into_bytes();
    while m.len() < MSG_LEN {
        m.push(b'a' + (m.len() % 26) as u8);
    }
    out.extend_from_slice(format!("{} ", m.len()).as_bytes());
    out.extend_from_slice(&m);
}

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            let t = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running pipeline: its input port, its output (a file, or a store directory).
struct Pipeline {
    procs: Procs,
    port: u16,
    output: PathBuf,
    store: bool,
}

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        logseal::cmd::pki::init(dir, "bench CA", 30).expect("CA");
        logseal::cmd::pki::issue(
            dir,
            "collector",
            logseal::cmd::pki::Role::Collector,
            30,
            &["127.0.0.1".into()],
        )
        .expect("collector cert");
        logseal::cmd::pki::issue(dir, "web-01", logseal::cmd::pki::Role::Agent, 30, &[])
            .expect("agent cert");
        Pki {
            dir: dir.to_path_buf(),
        }
    }
    fn f(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a pipeline process")
}

fn logseal_pipeline(dir: &Path, pki: &Pki, bin: &str) -> Pipeline {
    let cport = free_port();
    let aport = free_port();
    let store = dir.join("store");
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "listen = \"127.0.0.1:{cport}\"\nstore = \"{}\"\nlog_level = \"warn\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            store.display(),
            pki.f("ca.crt"),
            pki.f("collector.crt"),
            pki.f("collector.key")
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "host = \"web-01\"\nstate_dir = \"{}\"\nlog_level = \"warn\"\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:{aport}\"\n\
             [ship]\ncollectors = [\"127.0.0.1:{cport}\"]\nserver_name = \"collector\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ndrain_timeout = \"60s\"\n",
            dir.join("agent").display(),
            pki.f("ca.crt"),
            pki.f("web-01.crt"),
            pki.f("web-01.key")
        ),
    )
    .expect("config");
    let c = spawn(
        Command::new(bin)
            .args(["collector", "--config"])
            .arg(dir.join("collector.toml")),
    );
    wait_port(cport);
    let a = spawn(
        Command::new(bin)
            .args(["agent", "--config"])
            .arg(dir.join("agent.toml")),
    );
    wait_port(aport);
    Pipeline {
        procs: Procs(vec![a, c]),
        port: aport,
        output: store.join("hosts"),
        store: true,
    }
}

fn rsyslog_pipeline(dir: &Path, pki: &Pki) -> Option<Pipeline> {
    let (p1, p2) = (free_port(), free_port());
    let out = dir.join("out.log");
    let rdir = dir.join("recv");
    let fdir = dir.join("fwd");
    std::fs::create_dir_all(&rdir).ok()?;
    std::fs::create_dir_all(&fdir).ok()?;
    std::fs::write(
        rdir.join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{crt}\" DefaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\" MaxSessions=\"10\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{p2}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{o}\" template=\"raw\")\n",
            d = rdir.display(),
            ca = pki.f("ca.crt"),
            crt = pki.f("collector.crt"),
            key = pki.f("collector.key"),
            o = out.display()
        ),
    )
    .ok()?;
    std::fs::write(
        fdir.join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{crt}\" DefaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imtcp\" MaxSessions=\"10\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{p1}\")\n\
             action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{p2}\" protocol=\"tcp\" StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"collector\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" queue.type=\"LinkedList\" queue.size=\"500000\" action.resumeRetryCount=\"-1\")\n",
            d = fdir.display(),
            ca = pki.f("ca.crt"),
            crt = pki.f("web-01.crt"),
            key = pki.f("web-01.key"),
        ),
    )
    .ok()?;
    let run = |d: &Path| common::spawn_rsyslog(&d.join("rsyslog.conf"), d);
    let r = run(&rdir)?;
    wait_port(p2);
    let f = run(&fdir)?;
    wait_port(p1);
    Some(Pipeline {
        procs: Procs(vec![f, r]),
        port: p1,
        output: out,
        store: false,
    })
}

fn syslog_ng_pipeline(dir: &Path, pki: &Pki, root: &Path) -> Option<Pipeline> {
    let (p1, p2) = (free_port(), free_port());
    let out = dir.join("out.log");
    let opts = "options { threaded(yes); use-dns(no); use-fqdn(no); keep-hostname(yes); chain-hostnames(no); log-fifo-size(500000); stats-freq(0); };";
    let tls = |crt: &str, key: &str| {
        format!(
            "tls(key-file(\"{}\") cert-file(\"{}\") ca-file(\"{}\") peer-verify(required-trusted))",
            pki.f(key),
            pki.f(crt),
            pki.f("ca.crt")
        )
    };
    let mut procs = Vec::new();
    for (name, conf, port) in [
        (
            "recv",
            format!(
                "@version: 3.38\n{opts}\n\
                 source s {{ syslog(ip(\"127.0.0.1\") port({p2}) transport(\"tls\") {} flags(store-raw-message) log-iw-size(500000) max-connections(10)); }};\n\
                 destination d {{ file(\"{}\" template(\"$RAWMSG\\n\") flush-lines(100)); }};\n\
                 log {{ source(s); destination(d); flags(flow-control); }};\n",
                tls("collector.crt", "collector.key"),
                out.display()
            ),
            p2,
        ),
        (
            "fwd",
            format!(
                "@version: 3.38\n{opts}\n\
                 source s {{ syslog(ip(\"127.0.0.1\") port({p1}) transport(\"tcp\") log-iw-size(500000) max-connections(10)); }};\n\
                 destination d {{ syslog(\"127.0.0.1\" port({p2}) transport(\"tls\") {}); }};\n\
                 log {{ source(s); destination(d); flags(flow-control); }};\n",
                tls("web-01.crt", "web-01.key")
            ),
            p1,
        ),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).ok()?;
        std::fs::write(d.join("syslog-ng.conf"), conf).ok()?;
        let child = common::spawn_syslog_ng(root, &d.join("syslog-ng.conf"), &d)?;
        procs.push(child);
        wait_port(port);
    }
    procs.reverse();
    Some(Pipeline {
        procs: Procs(procs),
        port: p1,
        output: out,
        store: false,
    })
}

/// Messages with `tag` in the output (and, for a store, whether it verifies).
fn count(p: &Pipeline, tag: &str) -> (u64, bool) {
    let pat = format!("msg-{tag}-");
    if p.store {
        let Ok((files, _)) =
            logseal::responder::verify_files::expand(std::slice::from_ref(&p.output))
        else {
            return (0, false);
        };
        let r = logseal::responder::verify_files::verify(&files, Default::default(), |_, _| {})
            .expect("verify");
        let mut n = 0;
        for f in &files {
            let mut rd = logseal::storage::segment::SegmentReader::open(f).expect("segment");
            while let Some(item) = rd.next_item().expect("read") {
                if let logseal::storage::segment::Item::Frame { payload, .. } = item {
                    if payload.windows(pat.len()).any(|w| w == pat.as_bytes()) {
                        n += 1;
                    }
                }
            }
        }
        // A store may end unsealed until the agent stops; links are what matter here.
        let ok = r.chains.iter().all(|c| {
            c.problems.iter().all(|f| {
                matches!(
                    f.problem,
                    logseal::chain::verify::Problem::UnsealedTail { .. }
                )
            })
        });
        (n, ok)
    } else {
        let text = std::fs::read(&p.output).unwrap_or_default();
        let n = text
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(pat.len()).any(|w| w == pat.as_bytes()))
            .count() as u64;
        (n, true)
    }
}

/// CPU time (user + system, all threads) the pipeline's processes have used.
fn cpu_time(p: &Pipeline) -> Duration {
    let tick = *CLK_TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    });
    let ticks: u64 = p
        .procs
        .0
        .iter()
        .map(|c| {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
            // Fields after the command name: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect();
            f.iter().sum::<u64>()
        })
        .sum();
    Duration::from_secs_f64(ticks as f64 / tick as f64)
}

static CLK_TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Events per second, and CPU µs the pipeline's processes spent per event.
fn throughput(p: &Pipeline, n: u64, run: usize) -> (f64, f64) {
    let tag = format!("tp{run}");
    let mut data = Vec::with_capacity(n as usize * (MSG_LEN + 8));
    for i in 1..=n {
        frame(&mut data, &tag, i, 0);
    }
    let cpu0 = cpu_time(p);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    s.write_all(&data).expect("send");
    let history = common::watch_growth(&p.output, t0, Duration::from_secs(2));
    let cpu = (cpu_time(p) - cpu0).as_secs_f64();
    drop(s);
    // logseal: the end is when the last event was stored; the seal after it
    // comes on the agent's seal timer, up to `seal_interval` later at any rate.
    let trailing = if p.store {
        common::bytes_after_last_event(&p.output)
    } else {
        0
    };
    let total = history.last().map_or(0, |&(_, s)| s);
    let secs = common::reached(&history, total - trailing).as_secs_f64();
    let (got, ok) = count(p, &tag);
    assert_eq!(got, n, "{got} of {n} messages arrived");
    assert!(ok, "the collector's store verifies");
    (n as f64 / secs, cpu * 1e6 / n as f64)
}

/// Tails the output and returns send→arrival latencies in µs.
fn latency(p: &Pipeline, rate: u64, seconds: u64) -> Vec<f64> {
    let tag = "lat";
    let n = rate * seconds;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let output = p.output.clone();
        let store = p.store;
        let stop = stop.clone();
        std::thread::spawn(move || tail(&output, store, tag, n, &stop))
    };
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    let _ = s.set_nodelay(true);
    let per_ms = (rate / 1000).max(1);
    let t0 = Instant::now();
    let mut i = 0u64;
    let mut buf = Vec::new();
    while i < n {
        let due = Duration::from_micros(i * 1000 / per_ms);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
        buf.clear();
        for _ in 0..per_ms {
            i += 1;
            frame(&mut buf, tag, i, now_ns());
        }
        s.write_all(&buf).expect("send");
    }
    let got = reader.join().expect("reader");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    got
}

fn tail(
    output: &Path,
    store: bool,
    tag: &str,
    n: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<f64> {
    let pat = format!("msg-{tag}-");
    let mut lat = Vec::with_capacity(n as usize);
    let mut files: Vec<(PathBuf, u64, Vec<u8>)> = Vec::new(); // path, offset read, partial
    let deadline = Instant::now() + Duration::from_secs(120);
    while (lat.len() as u64) < n
        && Instant::now() < deadline
        && !stop.load(std::sync::atomic::Ordering::SeqCst)
    {
        if store {
            if let Ok((fs, _)) = logseal::responder::verify_files::expand(&[output.to_path_buf()]) {
                for f in fs {
                    if !files.iter().any(|(p, _, _)| *p == f) {
                        files.push((f, 16, Vec::new()));
                    }
                }
            }
        } else if files.is_empty() && output.exists() {
            files.push((output.to_path_buf(), 0, Vec::new()));
        }
        for (path, off, partial) in files.iter_mut() {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            if f.seek(SeekFrom::Start(*off)).is_err() {
                continue;
            }
            let mut more = Vec::new();
            let _ = f.read_to_end(&mut more);
            if more.is_empty() {
                continue;
            }
            let seen = now_ns();
            *off += more.len() as u64;
            partial.extend_from_slice(&more);
            let mut used = 0;
            loop {
                let rest = &partial[used..];
                let item: Option<(usize, &[u8])> = if store {
                    if rest.len() < 8 {
                        None
                    } else {
                        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                        (rest.len() >= 8 + len).then(|| (8 + len, &rest[9..8 + len]))
                    }
                } else {
                    rest.iter()
                        .position(|&b| b == b'\n')
                        .map(|i| (i + 1, &rest[..i]))
                };
                let Some((consumed, body)) = item else { break };
                used += consumed;
                if let Some(at) = body.windows(pat.len()).position(|w| w == pat.as_bytes()) {
                    let s = String::from_utf8_lossy(&body[at..]);
                    if let Some(t) = s.split(" t=").nth(1).and_then(|r| r.split(' ').next()) {
                        if let Ok(t) = t.parse::<i64>() {
                            lat.push((seen - t) as f64 / 1000.0);
                        }
                    }
                }
            }
            partial.drain(..used);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    lat
}

/// This build of logseal.
const BIN: &str = env!("CARGO_BIN_EXE_logseal");

/// Median seconds `logseal verify` takes on a stopped store, against its
/// checkpoint log and with `--no-checkpoints` (alternating, after a run that
/// brings the files into the page cache).
fn verify_seconds(store: &Path) -> (f64, f64) {
    let time = |extra: &str| {
        let t = Instant::now();
        let ok = Command::new(BIN)
            .args(["verify", extra])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run verify");
        assert!(ok.success(), "the store verifies ({extra})");
        t.elapsed().as_secs_f64()
    };
    time("--no-checkpoints");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        with.push(time("--store"));
        without.push(time("--no-checkpoints"));
    }
    (median(with), median(without))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_u64("BENCH_MESSAGES", 1_000_000);
    let runs = env_u64("BENCH_RUNS", 3) as usize;
    let rate = env_u64("BENCH_RATE", 50_000);
    let secs = env_u64("BENCH_SECONDS", 10);
    let base = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir())
        .join(format!("logseal-ship-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");
    let pki = Pki::new(&base.join("pki"));
    let sng = syslog_ng_root();
    println!("{n} messages of {MSG_LEN} bytes, sender → forwarder → receiver over mutual TLS; {runs} throughput run(s); latency at {rate}/s for {secs} s");
    println!(
        "{:<34} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "pipeline", "events/s", "MB/s", "CPU µs/ev", "p50 ms", "p99 ms", "max ms"
    );
    let only = std::env::var("BENCH_PIPELINES").unwrap_or_default();
    // (pipeline, events/s, CPU µs per event), logseal first.
    let mut results: Vec<(&str, f64, f64)> = Vec::new();
    // Another build of logseal, for the cost of a change (same run, same
    // machine): BENCH_BASELINE=path/to/logseal.
    let baseline = std::env::var("BENCH_BASELINE").ok();
    let mut verify_times = (Vec::new(), Vec::new());
    for name in [
        "logseal agent → collector",
        "baseline agent → collector",
        "rsyslog → rsyslog (gtls)",
        "syslog-ng → syslog-ng (tls)",
    ] {
        let key = name.split(' ').next().unwrap_or("x");
        if (!only.is_empty() && !only.split(',').any(|o| o == key))
            || (key == "baseline" && baseline.is_none())
        {
            continue;
        }
        let start = |dir: &Path| -> Option<Pipeline> {
            std::fs::create_dir_all(dir).ok()?;
            match name.split(' ').next() {
                Some("logseal") => Some(logseal_pipeline(dir, &pki, BIN)),
                Some("baseline") => Some(logseal_pipeline(dir, &pki, baseline.as_deref()?)),
                Some("rsyslog") => rsyslog_pipeline(dir, &pki),
                _ => syslog_ng_pipeline(dir, &pki, sng.as_deref()?),
            }
        };
        let mut tps = Vec::new();
        let mut cpus = Vec::new();
        let mut available = true;
        for r in 0..runs {
            let dir = base.join(format!("{}-{r}", name.split(' ').next().unwrap_or("x")));
            let Some(p) = start(&dir) else {
                available = false;
                break;
            };
            let (tp, cpu) = throughput(&p, n, r);
            tps.push(tp);
            cpus.push(cpu);
            drop(p);
            if key == "logseal" {
                let (with, without) = verify_seconds(&dir.join("store"));
                verify_times.0.push(with);
                verify_times.1.push(without);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !available {
            println!(
                "{name:<34} not available (rsyslog + rsyslog-gnutls; syslog-ng: SYSLOG_NG_ROOT)"
            );
            continue;
        }
        let dir = base.join(format!("{}-lat", name.split(' ').next().unwrap_or("x")));
        let Some(p) = start(&dir) else { continue };
        let mut lat = latency(&p, rate, secs);
        drop(p);
        let _ = std::fs::remove_dir_all(&dir);
        let tp = median(tps);
        let cpu = median(cpus);
        results.push((key, tp, cpu));
        let arrived = lat.len();
        println!(
            "{name:<34} {tp:>10.0} {:>8.1} {cpu:>10.2} {:>10.1} {:>10.1} {:>10.1}{}",
            tp * MSG_LEN as f64 / 1e6,
            pct(&mut lat, 0.5) / 1000.0,
            pct(&mut lat, 0.99) / 1000.0,
            pct(&mut lat, 1.0) / 1000.0,
            if arrived as u64 == rate * secs {
                String::new()
            } else {
                format!("  (only {arrived} arrived)")
            }
        );
    }
    let find = |k: &str| results.iter().find(|r| r.0 == k).copied();
    if let (Some((_, tp, cpu)), Some((_, base_tp, base_cpu))) = (find("logseal"), find("baseline"))
    {
        println!(
            "logseal / baseline: throughput {:+.1} %, CPU per event {:+.1} %",
            (tp / base_tp - 1.0) * 100.0,
            (cpu / base_cpu - 1.0) * 100.0
        );
    }
    if !verify_times.0.is_empty() {
        let (with, without) = (median(verify_times.0), median(verify_times.1));
        println!(
            "verify STORE ({n} events): {with:.2} s against its checkpoint log, {without:.2} s with --no-checkpoints ({:+.1} %)",
            (with / without - 1.0) * 100.0
        );
    }
    // CPU µs/ev: user + system time of the pipeline's two processes (all
    // threads) over the throughput run, per event; the generator is not counted.
    if let Some(&("logseal", tp, cpu)) = results.first() {
        let peers = results[1..].iter().filter(|r| r.0 != "baseline");
        let fastest = peers.max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some(&(peer, best, peer_cpu)) = fastest {
            println!(
                "logseal / fastest peer ({peer}): throughput {:.2}x; CPU per event {:.2}x less",
                tp / best,
                peer_cpu / cpu
            );
        }
        required_work(cpu, fastest.map(|&(peer, _, peer_cpu)| (peer, peer_cpu)));
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// What the design makes logseal compute for every event, whatever the rest
/// of the pipeline costs, measured here in-process on this bench's record:
/// SHA-256 through `ring` four times (the leaf and the head, in the agent and
/// again in the collector, which must not trust the agent's hashes) and the
/// CRC32C of the frame three times (spool, its read-back, store). Printed
/// against logseal's CPU per event and against a third of the fastest peer's
/// (name, CPU µs per event).
fn required_work(cpu_us: f64, fastest_peer: Option<(&str, f64)>) {
    use logseal::chain::hash;
    use logseal::chain::record::{Body, ChainId, Payload, Record, Source};
    let mut msg = Vec::new();
    frame(&mut msg, "x", 1, now_ns());
    let raw = &msg[msg.iter().position(|&b| b == b' ').map_or(0, |i| i + 1)..];
    let record = Record {
        chain_id: ChainId([7; 16]),
        seq: 123_456,
        time_ns: now_ns(),
        body: Body::Event {
            source: Source::SyslogTcp,
            flags: 0,
            peer: "127.0.0.1:41234",
            original_len: None,
            payload: Payload::Raw(raw),
        },
    }
    .encode();
    let rounds = 400_000u32;
    let time = |f: &mut dyn FnMut(u32) -> u8| {
        let t = Instant::now();
        let mut acc = 0u8;
        for i in 0..rounds {
            acc ^= f(i);
        }
        std::hint::black_box(acc);
        t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    };
    let mut rec = record.clone();
    let leaf_us = time(&mut |i| {
        rec[20] = i as u8;
        hash::leaf(&rec)[0]
    });
    let mut prev = [1u8; 32];
    let head_us = time(&mut |i| {
        prev[0] = i as u8;
        hash::head(&prev, 2, &prev)[0]
    });
    // A frame's checksum covers its length, its type byte and the record.
    let mut body = vec![1u8];
    body.extend_from_slice(&record);
    let crc_us = time(&mut |i| {
        body[21] = i as u8;
        logseal::chain::frame::frame_crc(&body) as u8
    });
    // ring's block function alone, on 64 KiB: what the calls above would cost
    // without the per-call part.
    let big = vec![3u8; 64 << 10];
    let t = Instant::now();
    for _ in 0..200 {
        std::hint::black_box(hash::sha256(std::hint::black_box(&big)));
    }
    let per_block_us = t.elapsed().as_secs_f64() * 1e6 / (200.0 * 1024.0);
    let blocks = |len: usize| (len + 9).div_ceil(64) as f64;
    let sha = 2.0 * (leaf_us + head_us);
    let sha_blocks = 2.0 * (blocks(record.len() + 1) + blocks(65)) * per_block_us;
    let crc = 3.0 * crc_us;
    println!(
        "required per event ({}-byte record): SHA-256 ×4 {:.2} µs ({:.2} of it ring's per-call overhead), CRC32C ×3 {:.2} µs: {:.0} % of logseal's {cpu_us:.2} µs",
        record.len(),
        sha,
        sha - sha_blocks,
        crc,
        100.0 * (sha + crc) / cpu_us
    );
    if let Some((peer, peer_cpu)) = fastest_peer {
        println!(
            "3x {peer} allows {:.2} µs per event; after the required work {:.2} µs remain for two TCP hops, TLS, the spool and the store (logseal spends {:.2})",
            peer_cpu / 3.0,
            peer_cpu / 3.0 - sha - crc,
            cpu_us - sha - crc
        );
    }
}
