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
