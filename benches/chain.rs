//! Stamp and verify throughput, one core, 200-byte messages.
//!
//! Run: `cargo bench --bench chain` (options via env: `BENCH_RECORDS`, default
//! 1000000; `BENCH_RUNS`, default 5; `BENCH_DIR`, default the temp dir).
//! Each measurement runs in a fresh child process so that its peak RSS
//! (VmHWM) is its own. Prints the median of the runs. Stamp and verify run
//! twice: on tmpfs (`/dev/shm`: the chain's CPU cost, the figure the targets
//! are about) and in `BENCH_DIR` (what the filesystem adds, including the fsync
//! of the final seal).

#![allow(clippy::disallowed_methods)] // benchmarks read /proc and write scratch files
use logseal::chain::hash;
use logseal::chain::record::Source;
use logseal::storage::writer::ChainWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MSG_LEN: usize = 200;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// A 200-byte RFC 5424 message with a running number in it.
fn message(i: u64, buf: &mut Vec<u8>) {
    buf.clear();
    let head = format!(
        "<134>1 2026-11-28T12:00:00.000000Z web-01 app 4242 M{} - ",
        i % 1000
    );
    buf.extend_from_slice(head.as_bytes());
    let tail = format!(" seq={i:012}");
    while buf.len() + tail.len() < MSG_LEN {
        buf.push(b'a' + (buf.len() % 26) as u8);
    }
    buf.extend_from_slice(tail.as_bytes());
}

fn phase_stamp(dir: &Path, n: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bench dir");
    let (mut w, _) =
        ChainWriter::open(&dir.join("state"), &dir.join("log.seg"), Some("bench")).expect("open");
    // Messages are made before the clock starts: the generator is not measured.
    let pool: Vec<Vec<u8>> = (0..4096u64)
        .map(|i| {
            let mut b = Vec::with_capacity(MSG_LEN);
            message(i, &mut b);
            b
        })
        .collect();
    let t0 = Instant::now();
    let mut last_seal = Instant::now();
    let mut in_seal = Duration::ZERO;
    for i in 0..n {
        let buf = &pool[(i % 4096) as usize];
        w.append_event(
            1_795_824_000_000_000_000 + i as i64,
            Source::SyslogTcp,
            "",
            buf,
        )
        .expect("append");
        // Seal on time (≤ 1/s while events flow), as the agent does.
        if i % 4096 == 0 && last_seal.elapsed() >= Duration::from_secs(1) {
            let ts = Instant::now();
            w.seal().expect("seal");
            in_seal += ts.elapsed();
            last_seal = Instant::now();
        }
    }
    let ts = Instant::now();
    w.shutdown("bench").expect("shutdown");
    in_seal += ts.elapsed();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"records_per_s\":{:.0},\"mb_per_s\":{:.1},\"peak_rss_kib\":{},\"seal_s\":{:.3},\"secs\":{:.3}}}",
        n as f64 / secs,
        (n as usize * MSG_LEN) as f64 / secs / 1e6,
        peak_rss_kib(),
        in_seal.as_secs_f64(),
        secs
    );
}

fn phase_verify(file: &Path) {
    let size = std::fs::metadata(file).expect("file").len();
    let t0 = Instant::now();
    let r = logseal::responder::verify_files::verify(
        &[file.to_path_buf()],
        Default::default(),
        |_, _| {},
    )
    .expect("verify");
    let secs = t0.elapsed().as_secs_f64();
    assert!(r.intact(), "bench chain must verify");
    let n = r.chains[0].records;
    println!(
        "{{\"records_per_s\":{:.0},\"mb_per_s\":{:.1},\"peak_rss_kib\":{},\"file_mb\":{:.0}}}",
        n as f64 / secs,
        size as f64 / secs / 1e6,
        peak_rss_kib(),
        size as f64 / 1e6
    );
}

fn child(args: &[&str]) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .env("LOGSEAL_BENCH_PHASE", args.join(" "))
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.lines().last().unwrap_or("{}")).expect("child output")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn report(name: &str, runs: &[serde_json::Value]) {
    let get = |k: &str| {
        runs.iter()
            .map(|r| r[k].as_f64().unwrap_or(0.0))
            .collect::<Vec<_>>()
    };
    println!(
        "{name:<34} {:>12.0} records/s {:>8.1} MB/s   peak RSS {:>7.1} MiB   (median of {})",
        median(get("records_per_s")),
        median(get("mb_per_s")),
        median(get("peak_rss_kib")) / 1024.0,
        runs.len()
    );
}

fn main() {
    if let Ok(phase) = std::env::var("LOGSEAL_BENCH_PHASE") {
        let parts: Vec<&str> = phase.split(' ').collect();
        match parts.as_slice() {
            ["stamp", dir, n] => phase_stamp(Path::new(dir), n.parse().expect("n")),
            ["verify", file] => phase_verify(Path::new(file)),
            _ => panic!("unknown phase {phase}"),
        }
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run when asked.
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let base = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!("logseal-bench-{}", std::process::id()));

    // Reference: one chain step (leaf + head) on a 200-byte record, in-process.
    let rec = vec![0x5au8; MSG_LEN];
    let mut head = [0u8; 32];
    let steps = 2_000_000u32;
    let t0 = Instant::now();
    for _ in 0..steps {
        head = hash::head(&head, hash::kind_of(&rec), &hash::leaf(&rec));
    }
    let ns = t0.elapsed().as_nanos() as f64 / f64::from(steps);
    println!(
        "chain step (SHA-256 leaf+head, 200 B): {ns:.0} ns = {:.2} M/s  [{}]",
        1e3 / ns,
        head[0]
    );

    println!("{n} records of {MSG_LEN} bytes, {runs} runs each, one core");
    // The chain's own cost: the log on tmpfs, so that neither the disk nor this
    // virtual machine's page-cache allocation (free pages are handed back to the
    // host and fault in again when reused) is measured. Then the same on BENCH_DIR.
    let mem = Path::new("/dev/shm");
    if mem.is_dir() {
        let mem_dir = mem.join(format!("logseal-bench-{}", std::process::id()));
        let stamps: Vec<_> = (0..runs)
            .map(|_| child(&["stamp", mem_dir.to_str().unwrap_or(""), &n.to_string()]))
            .collect();
        report("stamp → tmpfs", &stamps);
        let file = mem_dir.join("log.seg");
        let verifies: Vec<_> = (0..runs)
            .map(|_| child(&["verify", file.to_str().unwrap_or("")]))
            .collect();
        report("verify ← tmpfs", &verifies);
        let _ = std::fs::remove_dir_all(&mem_dir);
    }
    let stamp_dir = dir.join("s");
    let stamps: Vec<_> = (0..runs)
        .map(|_| child(&["stamp", stamp_dir.to_str().unwrap_or(""), &n.to_string()]))
        .collect();
    report("stamp → BENCH_DIR", &stamps);
    println!(
        "  of which the final seal's fsync: {:.0} ms (median)",
        median(
            stamps
                .iter()
                .map(|r| r["seal_s"].as_f64().unwrap_or(0.0) * 1e3)
                .collect()
        )
    );
    let file = stamp_dir.join("log.seg");
    let verifies: Vec<_> = (0..runs)
        .map(|_| child(&["verify", file.to_str().unwrap_or("")]))
        .collect();
    report("verify ← BENCH_DIR (page cache)", &verifies);

    // Memory is flat in the file size: verify a file 4x as large.
    let big_dir = dir.join("b");
    child(&[
        "stamp",
        big_dir.to_str().unwrap_or(""),
        &(4 * n).to_string(),
    ]);
    let big = child(&["verify", big_dir.join("log.seg").to_str().unwrap_or("")]);
    println!(
        "verify peak RSS: {:.1} MiB on a {:.0} MB file, {:.1} MiB on a {:.0} MB file",
        verifies[0]["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        verifies[0]["file_mb"].as_f64().unwrap_or(0.0),
        big["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        big["file_mb"].as_f64().unwrap_or(0.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
