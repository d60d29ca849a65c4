//! Running `logseal agent` in tests, and the numbered-message oracle.
#![allow(dead_code)]

use super::bin;
use logseal::chain::record::{Body, Payload};
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Agent {
    pub child: Child,
    pub urls: Vec<String>,
    pub state: PathBuf,
    /// The URL of its `metrics URL` line, if it has `[metrics]`.
    pub metrics: Option<String>,
}

impl Agent {
    pub fn start(state: &Path, listen: &[String]) -> Agent {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--state".into(),
            state.into(),
            "--host".into(),
            "agent-test".into(),
        ];
        for l in listen {
            args.push("--listen".into());
            args.push(l.into());
        }
        Self::spawn(&args, state, None, listen.len())
    }

    /// Starts `logseal agent --config CONFIG` whose state is in `state`.
    pub fn start_config(
        config: &Path,
        state: &Path,
        errlog: Option<&Path>,
        inputs: usize,
    ) -> Agent {
        Self::spawn(&["--config".into(), config.into()], state, errlog, inputs)
    }

    /// Starts `logseal agent ARGS` (stderr to `errlog`, or discarded) and waits
    /// for its `listening URL` lines, one per input.
    pub fn spawn(
        args: &[std::ffi::OsString],
        state: &Path,
        errlog: Option<&Path>,
        inputs: usize,
    ) -> Agent {
        Self::spawn_env(args, state, errlog, inputs, &[])
    }

    /// [`spawn`](Self::spawn) with environment variables set for the agent.
    pub fn spawn_env(
        args: &[std::ffi::OsString],
        state: &Path,
        errlog: Option<&Path>,
        inputs: usize,
        env: &[(&str, &str)],
    ) -> Agent {
        let stderr = match errlog {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let mut child = Command::new(bin())
            .arg("agent")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut urls = Vec::new();
        let mut metrics = None;
        while urls.len() < inputs {
            let mut line = String::new();
            let n = out.read_line(&mut line).unwrap();
            let log = errlog
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .unwrap_or_default();
            assert!(n > 0, "agent exited before listening: {log}");
            if let Some(u) = line.trim().strip_prefix("listening ") {
                urls.push(u.to_string());
            }
            if let Some(u) = line.trim().strip_prefix("metrics ") {
                metrics = Some(u.to_string());
            }
        }
        Agent {
            child,
            urls,
            state: state.to_path_buf(),
            metrics,
        }
    }

    /// `ADDR:PORT` of the input with this scheme.
    pub fn addr(&self, scheme: &str) -> String {
        let u = self.urls.iter().find(|u| u.starts_with(scheme)).unwrap();
        u.split_once("://").unwrap().1.to_string()
    }

    pub fn port(&self, scheme: &str) -> String {
        let u = self.urls.iter().find(|u| u.starts_with(scheme)).unwrap();
        u.rsplit(':').next().unwrap().to_string()
    }

    pub fn stop(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "agent exit status {st:?}");
    }

    /// SIGTERM, and the exit status (whatever it is).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        self.child.wait().unwrap()
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// A test that fails leaves no agent running (as for [`super::collector::Collector`]).
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every Event in the spool of `state`: (peer, message text).
pub fn events(state: &Path) -> Vec<(String, String)> {
    events_in(&state.join("spool"))
}

/// Every Event in the segment files under `dir` (a spool, or a collector
/// store's `hosts` directory), in file order.
pub fn events_in(dir: &Path) -> Vec<(String, String)> {
    if !dir.exists() {
        return Vec::new();
    }
    let Ok((files, _)) = logseal::responder::verify_files::expand(&[dir.to_path_buf()]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in files {
        // A spool segment may be deleted (acknowledged) meanwhile.
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let mut r = SegmentReader::new(&bytes[..]).unwrap();
        while let Some(item) = r.next_item().unwrap() {
            let Item::Frame { payload, .. } = item else {
                continue;
            };
            let rec = Record::decode(payload).unwrap();
            if let Body::Event {
                peer,
                payload: Payload::Raw(m),
                ..
            } = rec.body
            {
                out.push((peer.to_string(), String::from_utf8_lossy(m).into_owned()));
            }
        }
    }
    out
}

/// The oracle: numbers of `msg-TAG-N` found, in spool order.
pub fn numbers(evs: &[(String, String)], tag: &str) -> Vec<u64> {
    let pat = format!("msg-{tag}-");
    evs.iter()
        .filter_map(|(_, m)| {
            m.find(&pat).map(|i| {
                m[i + pat.len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
        })
        .collect()
}

pub fn assert_exactly(evs: &[(String, String)], tag: &str, n: u64) {
    let got = numbers(evs, tag);
    let want: Vec<u64> = (1..=n).collect();
    if got != want {
        let set: HashSet<_> = got.iter().collect();
        let missing: Vec<_> = want.iter().filter(|x| !set.contains(x)).take(10).collect();
        panic!(
            "{tag}: {} chained of {n}; first missing {missing:?}; duplicates or disorder: {}",
            got.len(),
            got.windows(2).any(|w| w[0] >= w[1])
        );
    }
}

/// The oracle for senders that may reconnect (rsyslog): every number 1..=n
/// exactly once, in order within each connection (peer address).
pub fn assert_exactly_per_connection(evs: &[(String, String)], tag: &str, n: u64) {
    let pat = format!("msg-{tag}-");
    let mut by_peer: std::collections::HashMap<&str, Vec<u64>> = Default::default();
    for (peer, m) in evs {
        if let Some(i) = m.find(&pat) {
            let num: u64 = m[i + pat.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            by_peer.entry(peer.as_str()).or_default().push(num);
        }
    }
    let mut all: Vec<u64> = by_peer.values().flatten().copied().collect();
    all.sort_unstable();
    let want: Vec<u64> = (1..=n).collect();
    assert_eq!(all.len() as u64, n, "{tag}: {} chained of {n}", all.len());
    assert!(all == want, "{tag}: duplicates or missing numbers");
    for (peer, nums) in &by_peer {
        assert!(
            nums.windows(2).all(|w| w[0] < w[1]),
            "{tag}: out of order within the connection from {peer}"
        );
    }
}

pub fn numbered_file(dir: &Path, tag: &str, n: u64) -> PathBuf {
    let p = dir.join(format!("{tag}.txt"));
    let text: String = (1..=n)
        .map(|i| format!("msg-{tag}-{i} payload\n"))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

pub fn logger(args: &[&str]) {
    let st = Command::new("logger")
        .args(args)
        .status()
        .expect("logger (bsdutils) is needed");
    assert!(st.success(), "logger {args:?}");
}

pub fn wait_for(state: &Path, tag: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while numbers(&events(state), tag).len() < n as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An extracted `syslog-ng-core` package (for `loggen`): `$SYSLOG_NG_ROOT`, or
/// fetched with `apt-get download` into target/test-peers (it conflicts with
/// rsyslog as an installed package, so it is run from the extracted tree).
pub fn syslog_ng_root() -> PathBuf {
    if let Ok(r) = std::env::var("SYSLOG_NG_ROOT") {
        return PathBuf::from(r);
    }
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-peers");
    let root = peers.join("syslog-ng");
    if !root.join("usr/bin/loggen").exists() {
        std::fs::create_dir_all(&peers).unwrap();
        let st = Command::new("apt-get")
            .args(["download", "syslog-ng-core"])
            .current_dir(&peers)
            .status()
            .expect("apt-get");
        assert!(st.success(), "apt-get download syslog-ng-core failed");
        let deb = std::fs::read_dir(&peers)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.to_string_lossy().contains("syslog-ng-core")
                    && p.extension().is_some_and(|x| x == "deb")
            })
            .expect("downloaded .deb");
        let st = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success());
    }
    root
}

/// Runs loggen from `root` with `args`; panics with the reason if it fails.
pub fn loggen(root: &Path, args: &[&str]) {
    let o = Command::new(root.join("usr/bin/loggen"))
        .args(args)
        .env("SYSLOGNG_PREFIX", root.join("usr"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .output()
        .expect("loggen");
    assert!(
        o.status.success(),
        "loggen failed (its libraries: apt-get install libivykis0 libnet1 libpcre3 libwrap0 libjson-c5): {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub struct Rsyslog(pub Child);
impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `rsyslogd -n` in `work` with a unix socket input and `action`; returns
/// it and the socket path.
pub fn rsyslog(work: &Path, action: &str, global_extra: &str) -> (Rsyslog, PathBuf) {
    std::fs::create_dir_all(work).unwrap();
    let sock = work.join("log.sock");
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\" {global_extra})\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{s}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n\
             {action}\n",
            w = work.display(),
            s = sock.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (package rsyslog) is needed; .ci/run installs it");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Rsyslog(child), sock)
}

/// `logseal verify` of the agent's spool: one chain, intact, ended by a clean
/// shutdown (its final seal written).
pub fn assert_spool_intact_and_closed(state: &Path) {
    let o = Command::new(bin())
        .args(["verify", "--json"])
        .arg(state.join("spool"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chains"][0]["verdict"], "intact", "{v}");
    assert_eq!(v["chains"][0]["ended_cleanly"], true, "{v}");
}
