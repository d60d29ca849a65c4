//! Syslog ingest over TCP, side by side in one run: logseal agent (chaining,
//! sealing, group-committed fsync) vs rsyslog (imtcp → omfile) vs syslog-ng
//! (syslog() → file), all fed the same pre-framed file by the same minimal
//! sender (this process: one `write_all` of the whole buffer).
//!
//! Run: `cargo bench --bench ingest`. Env: `BENCH_MESSAGES` (default 3000000:
//! a few seconds per target, so that steady state dominates the start),
//! `BENCH_RUNS` (3), `BENCH_DIR` (temp dir), `SYSLOG_NG_ROOT` (an extracted
//! syslog-ng-core package; by default fetched into target/bench-peers with
//! `apt-get download`). Each target runs as its own process; CPU time and peak
//! RSS are read from /proc. Medians of the runs are printed.
//!
//! Done = the target's output stopped growing for 500 ms after the sender
//! finished. The measurement ends when the output reached its final size, for
//! logseal less the seal and shutdown records after the last event: those come
//! on the seal timer (up to `seal_interval`, 1 s, later), whatever the rate, and
//! would otherwise add up to a second to every run. Then the messages in the
//! output are counted (all must be there).

#![allow(clippy::disallowed_methods)] // peer config files, not state

mod common;
use common::{free_port, median, syslog_ng_root, wait_port};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MSG_LEN: usize = 200;

fn frames(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize * (MSG_LEN + 8));
    for i in 1..=n {
        let head =
            format!("<134>1 2026-11-28T12:00:00.000000Z web-01 app 4242 M1 - msg-bench-{i} ");
        let mut m = head.into_bytes();
        while m.len() < MSG_LEN {
            m.push(b'a' + (m.len() % 26) as u8);
        }
        out.extend_from_slice(format!("{} ", m.len()).as_bytes());
        out.extend_from_slice(&m);
    }
    out
}

fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

struct Target {
    name: &'static str,
    child: Child,
    output: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_logseal(dir: &Path, port: u16) -> Target {
    let child = Command::new(env!("CARGO_BIN_EXE_logseal"))
        .args([
            "agent",
            "--listen",
            &format!("tcp://127.0.0.1:{port}"),
            "--state",
        ])
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("logseal");
    Target {
        name: "logseal agent",
        child,
        output: dir.join("state/spool"),
    }
}

fn start_rsyslog(dir: &Path, port: u16) -> Option<Target> {
    let conf = dir.join("rsyslog.conf");
    let out = dir.join("out.log");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\" MaxSessions=\"10\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{o}\" template=\"raw\")\n",
            d = dir.display(),
            o = out.display()
        ),
    )
    .ok()?;
    let child = common::spawn_rsyslog(&conf, dir)?;
    Some(Target {
        name: "rsyslog imtcp→omfile",
        child,
        output: out,
    })
}

fn start_syslog_ng(dir: &Path, port: u16, root: &Path) -> Option<Target> {
    let conf = dir.join("syslog-ng.conf");
    let out = dir.join("out.log");
    std::fs::write(
        &conf,
        format!(
            "@version: 3.38\noptions {{ threaded(yes); use-dns(no); use-fqdn(no); keep-hostname(yes); chain-hostnames(no); log-fifo-size(200000); stats-freq(0); }};\n\
             source s {{ syslog(ip(\"127.0.0.1\") port({port}) transport(\"tcp\") flags(store-raw-message) log-iw-size(200000) max-connections(10)); }};\n\
             destination d {{ file(\"{o}\" template(\"$RAWMSG\\n\") flush-lines(1000)); }};\n\
             log {{ source(s); destination(d); }};\n",
            o = out.display()
        ),
    )
    .ok()?;
    let child = common::spawn_syslog_ng(root, &conf, dir)?;
    Some(Target {
        name: "syslog-ng syslog()→file",
        child,
        output: out,
    })
}

fn count_logseal(spool: &Path) -> u64 {
    let Ok((files, _)) = logseal::responder::verify_files::expand(&[spool.to_path_buf()]) else {
        return 0;
    };
    let r = logseal::responder::verify_files::verify(&files, Default::default(), |_, _| {})
        .expect("verify");
    r.chains.iter().map(|c| c.events).sum()
}

fn count_lines(p: &Path) -> u64 {
    std::fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

struct Run {
    rate: f64,
    cpu: f64,
    rss: f64,
}

fn measure(mut t: Target, port: u16, data: &[u8], n: u64, counter: impl Fn(&Path) -> u64) -> Run {
    wait_port(port);
    std::thread::sleep(Duration::from_millis(200));
    let pid = t.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(data).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let history = common::watch_growth(&t.output, t0, Duration::from_millis(500));
    // logseal: the end is when the last event was written; the seal after it
    // comes on the seal timer, up to `seal_interval` later at any rate.
    let trailing = if t.name.starts_with("logseal") {
        common::bytes_after_last_event(&t.output)
    } else {
        0
    };
    let total = history.last().map_or(0, |&(_, s)| s);
    let secs = common::reached(&history, total - trailing).as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = peak_rss_mib(pid);
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = t.child.wait();
    // Drop sees the process gone.
    let got = counter(&t.output);
    assert_eq!(got, n, "{}: {got} of {n} messages in its output", t.name);
    Run {
        rate: n as f64 / secs,
        cpu: cpu / secs * 100.0,
        rss,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let base = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let data = frames(n);
    println!("{n} RFC 5424 messages of {MSG_LEN} bytes over one TCP connection (octet-counted), {runs} run(s) per target");
    let sng = syslog_ng_root();
    let mut results: Vec<(&str, Vec<Run>)> = Vec::new();
    for target in ["logseal", "rsyslog", "syslog-ng"] {
        let mut rs = Vec::new();
        let mut name = "";
        for r in 0..runs {
            let dir = base.join(format!(
                "logseal-ingest-bench-{}-{target}-{r}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("bench dir");
            let port = free_port();
            let t = match target {
                "logseal" => Some(start_logseal(&dir, port)),
                "rsyslog" => start_rsyslog(&dir, port),
                _ => sng
                    .as_deref()
                    .and_then(|root| start_syslog_ng(&dir, port, root)),
            };
            let Some(t) = t else {
                println!("{target}: not available (rsyslog: apt-get install rsyslog; syslog-ng: apt-get download syslog-ng-core, and its libraries libivykis0 libnet1 libpcre3 libwrap0)");
                break;
            };
            name = t.name;
            let run = if target == "logseal" {
                measure(t, port, &data, n, count_logseal)
            } else {
                measure(t, port, &data, n, count_lines)
            };
            rs.push(run);
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !rs.is_empty() {
            results.push((name, rs));
        }
    }
    println!(
        "{:<26} {:>12} {:>9} {:>8} {:>10}",
        "target", "events/s", "MB/s", "CPU %", "peak RSS"
    );
    let mut rates = Vec::new();
    for (name, rs) in &results {
        let rate = median(rs.iter().map(|r| r.rate).collect());
        rates.push((*name, rate));
        println!(
            "{name:<26} {rate:>12.0} {:>9.1} {:>8.0} {:>7.1} MiB",
            rate * MSG_LEN as f64 / 1e6,
            median(rs.iter().map(|r| r.cpu).collect()),
            median(rs.iter().map(|r| r.rss).collect())
        );
    }
    if let Some((_, ours)) = rates.first() {
        let best_peer = rates.iter().skip(1).map(|r| r.1).fold(0.0, f64::max);
        if best_peer > 0.0 {
            println!("logseal / fastest peer: {:.2}x", ours / best_peer);
        }
    }
}
