//! journald ingest: `logseal agent --journal DIR --stop-at-journal-end`
//! (read every entry through sd-journal, chain it, seal, fsync) next to
//! `journalctl -D DIR -o export > /dev/null` reading the same journal, in the
//! same run, alternating.
//!
//! The journal is written once by systemd-journal-remote from generated
//! export-format entries shaped like real ones (≈ 15 fields, ≈ 450 bytes
//! exported). Run: `cargo bench --bench journal --features journald`. Env: `BENCH_ENTRIES`
//! (default 300000), `BENCH_RUNS` (5), `BENCH_DIR` (temp dir). Prints entries/s,
//! MB/s of export-format data and peak RSS (VmHWM, polled) per run and the
//! medians, and the ratio of the medians.

#![allow(clippy::disallowed_methods)] // bench scratch files, not state

mod common;
use common::median;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn export_entries(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize * 500);
    let t0 = 1_795_000_000_000_000u64;
    for i in 0..n {
        let unit = [
            "ssh.service",
            "cron.service",
            "nginx.service",
            "sudo.service",
        ][(i % 4) as usize];
        let _ = write!(
            out,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _MACHINE_ID=fedcba9876543210fedcba9876543210\n_HOSTNAME=web-01\n_TRANSPORT=syslog\n\
             PRIORITY={}\nSYSLOG_FACILITY=4\nSYSLOG_IDENTIFIER={}\nSYSLOG_PID={}\n_PID={}\n_UID=0\n_GID=0\n\
             _COMM={}\n_SYSTEMD_UNIT={unit}\nMESSAGE=bench entry {i}: session opened for user u{} by (uid=0) from 10.0.{}.{}\n\n",
            t0 + i * 10,
            1_000_000 + i * 10,
            i % 8,
            &unit[..unit.len() - 8],
            1000 + i % 5000,
            1000 + i % 5000,
            &unit[..unit.len() - 8],
            i % 977,
            i % 256,
            i % 251,
        );
    }
    out
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|k| k / 1024.0)
}

/// Runs a command to completion; (seconds, peak RSS MiB polled every 5 ms).
fn timed(mut cmd: Command) -> (f64, f64) {
    let t = Instant::now();
    let mut c = cmd.spawn().expect("spawn");
    let mut peak = 0f64;
    loop {
        if let Some(p) = peak_rss_mib(c.id()) {
            peak = peak.max(p);
        }
        if let Some(st) = c.try_wait().expect("wait") {
            assert!(st.success(), "{cmd:?}: {st:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (t.elapsed().as_secs_f64(), peak)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_u64("BENCH_ENTRIES", 300_000);
    let runs = env_u64("BENCH_RUNS", 5);
    let base = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("logseal-bench-journal-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&base);
    let jdir = base.join("journal");
    std::fs::create_dir_all(&jdir).expect("mkdir");
    let export = export_entries(n);
    let mut jr = Command::new("/lib/systemd/systemd-journal-remote")
        .arg(format!("--output={}", jdir.join("bench.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-journal-remote (package systemd-journal-remote)");
    jr.stdin
        .take()
        .expect("stdin")
        .write_all(&export)
        .expect("write");
    assert!(jr.wait().expect("wait").success());
    // What journalctl exports (cursor etc. included): the MB/s basis.
    let exported = Command::new("journalctl")
        .arg("-D")
        .arg(&jdir)
        .args(["-o", "export"])
        .output()
        .expect("journalctl");
    let mb = exported.stdout.len() as f64 / 1e6;
    println!(
        "journal: {n} entries, {:.1} MB in export format, {} file(s)",
        mb,
        std::fs::read_dir(&jdir).map(|d| d.count()).unwrap_or(0)
    );
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_logseal"));
    let (mut jt, mut lt, mut jm, mut lm) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let mut j = Command::new("journalctl");
        j.arg("-D")
            .arg(&jdir)
            .args(["-o", "export"])
            .stdout(Stdio::null());
        let (t, m) = timed(j);
        jt.push(t);
        jm.push(m);
        let state = base.join(format!("state-{r}"));
        let mut a = Command::new(&bin);
        a.args(["agent", "--journal"])
            .arg(&jdir)
            .arg("--state")
            .arg(&state)
            .args(["--host", "bench", "--stop-at-journal-end"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (t2, m2) = timed(a);
        lt.push(t2);
        lm.push(m2);
        check(&bin, &state, n);
        let _ = std::fs::remove_dir_all(&state);
        println!(
            "run {r}: journalctl -o export {:>8.0} entries/s {:>6.1} MB/s {:>5.1} MiB | logseal agent {:>8.0} entries/s {:>6.1} MB/s {:>5.1} MiB",
            n as f64 / t,
            mb / t,
            m,
            n as f64 / t2,
            mb / t2,
            m2
        );
    }
    let (j, l) = (median(jt), median(lt));
    println!(
        "median: journalctl -o export {:.0} entries/s ({:.1} MB/s, peak {:.1} MiB); logseal agent {:.0} entries/s ({:.1} MB/s, peak {:.1} MiB); logseal/journalctl = {:.2}",
        n as f64 / j,
        mb / j,
        median(jm),
        n as f64 / l,
        mb / l,
        median(lm),
        j / l
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Every entry was chained: `logseal verify` intact, event count = n.
fn check(bin: &Path, state: &Path, n: u64) {
    let o = Command::new(bin)
        .args(["verify", "--json"])
        .arg(state)
        .output()
        .expect("verify");
    assert_eq!(
        o.status.code(),
        Some(0),
        "verify: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let events = doc["chains"][0]["events"].as_u64();
    assert_eq!(events, Some(n), "events chained");
}
