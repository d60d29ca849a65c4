//! Helpers shared by the benchmarks: ports, peers (rsyslog, syslog-ng) and
//! statistics.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something listens on `port` (20 s at most).
pub fn wait_port(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Median (the middle element after sorting).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// An extracted `syslog-ng-core` package: `$SYSLOG_NG_ROOT`, or fetched with
/// `apt-get download` into target/bench-peers.
pub fn syslog_ng_root() -> Option<PathBuf> {
    if let Ok(r) = std::env::var("SYSLOG_NG_ROOT") {
        return Some(PathBuf::from(r));
    }
    let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-peers");
    let root = peers.join("syslog-ng");
    if root.join("usr/sbin/syslog-ng").exists() {
        return Some(root);
    }
    std::fs::create_dir_all(&peers).ok()?;
    let st = Command::new("apt-get")
        .args(["download", "syslog-ng-core"])
        .current_dir(&peers)
        .status()
        .ok()?;
    if !st.success() {
        return None;
    }
    let deb = std::fs::read_dir(&peers)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))?;
    Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .ok()?;
    root.join("usr/sbin/syslog-ng").exists().then_some(root)
}

/// Starts `syslog-ng -F` from the extracted package with the config `conf`,
/// its state files in `dir`.
pub fn spawn_syslog_ng(root: &Path, conf: &Path, dir: &Path) -> Option<Child> {
    Command::new(root.join("usr/sbin/syslog-ng"))
        .args(["-F", "--no-caps", "-f"])
        .arg(conf)
        .arg("-R")
        .arg(dir.join("persist"))
        .arg("-p")
        .arg(dir.join("pid"))
        .arg("-c")
        .arg(dir.join("ctl"))
        .env("SYSLOGNG_PREFIX", root.join("usr"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Starts `rsyslogd -n` with the config `conf`, its pid file in `dir`.
pub fn spawn_rsyslog(conf: &Path, dir: &Path) -> Option<Child> {
    Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(conf)
        .arg("-i")
        .arg(dir.join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Bytes of the files under `p` (or of `p` itself).
pub fn tree_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    };
    rd.filter_map(|e| e.ok())
        .map(|e| tree_size(&e.path()))
        .sum()
}

/// Polls the size of `output` every 10 ms until it has not changed for
/// `quiet`; returns each change as (time since `t0`, size).
pub fn watch_growth(output: &Path, t0: Instant, quiet: Duration) -> Vec<(Duration, u64)> {
    let mut history = vec![(t0.elapsed(), tree_size(output))];
    let mut last_change = Instant::now();
    while last_change.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(10));
        let now = tree_size(output);
        if history.last().is_some_and(|&(_, s)| s != now) {
            history.push((t0.elapsed(), now));
            last_change = Instant::now();
        }
    }
    history
}

/// When the output first held `size` bytes or more (the last change if never).
pub fn reached(history: &[(Duration, u64)], size: u64) -> Duration {
    history
        .iter()
        .find(|&&(_, s)| s >= size)
        .or(history.last())
        .map_or(Duration::ZERO, |&(t, _)| t)
}

/// Bytes that follow the last Event record in the newest segment of each
/// directory under `p` (a spool or a collector's store): the seals and
/// lifecycle records written after the events, on the seal timer. The end of
/// a run is when the last *event* was written, not the next seal (which comes
/// up to `seal_interval` later whatever the rate).
pub fn bytes_after_last_event(p: &Path) -> u64 {
    let mut newest: std::collections::BTreeMap<PathBuf, PathBuf> = Default::default();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "seg") {
                let slot = newest.entry(d.clone()).or_insert_with(|| path.clone());
                if path > *slot {
                    *slot = path;
                }
            }
        }
    }
    let mut after = 0;
    for seg in newest.values() {
        let Ok(mut r) = logseal::storage::segment::SegmentReader::open(seg) else {
            continue;
        };
        let mut end_of_event = None;
        loop {
            let is_event = match r.next_item() {
                Ok(Some(logseal::storage::segment::Item::Frame { payload, .. })) => {
                    logseal::chain::Record::decode(payload)
                        .is_ok_and(|rec| rec.kind() == logseal::chain::Kind::Event)
                }
                Ok(Some(_)) => false,
                _ => break,
            };
            if is_event {
                end_of_event = Some(r.position());
            }
        }
        let len = std::fs::metadata(seg).map(|m| m.len()).unwrap_or(0);
        if let Some(end) = end_of_event {
            after += len.saturating_sub(end);
        }
    }
    after
}
