//! `logseal status`: is this agent or collector sealing and shipping?
//!
//! Both processes write a `status.json` (the agent in its state directory,
//! the collector in its store) every few seconds and once more when they
//! stop, atomically; `status` reads it (bounded), checks that the process
//! that wrote it is still alive, and judges. It works while the process runs
//! and after it stopped, needs no network, and exits as a Nagios plugin does:
//! 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no status to read).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Name of the status file, in the agent's state directory and the store.
pub const FILE: &str = "status.json";
/// How often the agent rewrites its status file.
pub const AGENT_INTERVAL: Duration = Duration::from_secs(5);
/// Largest status file read.
const MAX: u64 = 16 << 20;
/// Backlog age that makes an agent's status a warning.
pub const LAG_WARNING: Duration = Duration::from_secs(15 * 60);

/// One input of an agent's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputStatus {
    /// `udp://ADDR`, `tcp://ADDR`, …
    pub input: String,
    /// Messages it could not hand over since the start.
    pub dropped: u64,
}

/// The journald input of an agent's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Entries read since the start.
    pub read: u64,
    /// Entries passed to the stamper since the start.
    pub sent: u64,
    /// How far the chain is behind the journal: seconds of the entries'
    /// wall-clock time from the last entry chained to the journal's newest
    /// (0: everything chained; absent: not known yet).
    pub lag_seconds: Option<f64>,
}

/// What an agent writes into `STATE/status.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    /// When this was written (RFC 3339).
    pub time: String,
    /// The logseal version.
    pub version: String,
    /// The agent's process id.
    pub pid: u32,
    /// False in the file written when the agent stopped cleanly.
    pub running: bool,
    /// How often the file is rewritten while running.
    pub interval_secs: u64,
    /// Host name of the chain.
    pub host: String,
    /// Chain id.
    pub chain: String,
    /// The chain's heartbeat.
    pub heartbeat_secs: u64,
    /// Time of the last seal (RFC 3339).
    pub last_seal_time: Option<String>,
    /// Records appended since the last seal.
    pub unsealed_records: u64,
    /// Events chained since the start.
    pub events: u64,
    /// Spool size and cap.
    pub spool_bytes: u64,
    /// `[spool] max_size`.
    pub spool_limit_bytes: u64,
    /// Whether `[ship]` is set.
    pub shipping: bool,
    /// A session with a collector is up.
    pub collector_up: bool,
    /// Time of the last acknowledgement in this run.
    pub last_ack_time: Option<String>,
    /// Spool bytes durable and not acknowledged.
    pub unacknowledged_bytes: u64,
    /// Records of this run durable and not acknowledged.
    pub unacknowledged_records: u64,
    /// When the oldest record not acknowledged became durable.
    pub oldest_unacknowledged_time: Option<String>,
    /// Every syslog input.
    pub inputs: Vec<InputStatus>,
    /// The journald input, when `[journald]` is set.
    #[serde(default)]
    pub journal: Option<JournalStatus>,
    /// When the certificates it uses expire.
    #[serde(default)]
    pub certificates: Vec<crate::monitor::expiry::Deadline>,
}

impl AgentStatus {
    /// Writes it into `dir/status.json` (atomically).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut doc = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        doc.push(b'\n');
        crate::storage::fsutil::write_atomic(&dir.join(FILE), &doc, "status")
    }
}

/// What `logseal status` looks at.
#[derive(Debug)]
pub enum Target {
    /// An agent's state directory.
    Agent(PathBuf),
    /// A collector's store.
    Collector(PathBuf),
}

/// A judgement: Nagios levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Healthy.
    Ok = 0,
    /// Needs a look.
    Warning = 1,
    /// Evidence at risk now.
    Critical = 2,
    /// Nothing to judge.
    Unknown = 3,
}

/// The verdict and why.
#[derive(Debug, Serialize)]
struct Verdict {
    level: Level,
    role: &'static str,
    /// What `level` rests on, worst first.
    problems: Vec<(Level, String)>,
    /// The status file read.
    file: String,
    /// Whether the process that wrote it runs now.
    running: bool,
    status: serde_json::Value,
}

impl Verdict {
    fn add(&mut self, level: Level, what: String) {
        self.level = self.level.max(level);
        self.problems.push((level, what));
    }
}

/// Whether process `pid` holds the lock of `dir` (the state directory or the
/// store) now: the agent and the collector hold it from start to exit, so a
/// PID reused by another process, or written into a forged status file, is
/// not taken for them. Read from /proc/locks (whatever the binary is called).
fn alive(dir: &Path, pid: u32) -> bool {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(dir.join(crate::storage::fsutil::LOCK_FILE)) else {
        return false;
    };
    if pid == 0 || !m.is_file() {
        return false;
    }
    let mut text = String::new();
    let Ok(f) = std::fs::File::open("/proc/locks") else {
        return false;
    };
    if f.take(MAX).read_to_string(&mut text).is_err() {
        return false;
    }
    // "1: FLOCK  ADVISORY  WRITE 6035 08:01:1234 0 EOF" (device in hex, inode
    // in decimal); "1: -> FLOCK …" lines are waiters, not holders.
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK")
            && f.get(4).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
            && f.get(5)
                .and_then(|d| d.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok())
                == Some(m.ino())
    })
}

/// The longest status interval believed (a collector's status_interval is
/// at most an hour): a forged file cannot turn the staleness check off.
const MAX_INTERVAL: u64 = 3600;

/// A time more than a minute ahead of this machine's clock: a clock stepped
/// back (or a forged file) would otherwise look fresh until it caught up.
fn future(v: &mut Verdict, what: &str, age: Option<f64>) {
    if let Some(a) = age.filter(|a| *a < -60.0) {
        v.add(
            Level::Warning,
            format!(
                "{what} is dated {} in the future (a clock stepped back?)",
                secs(-a)
            ),
        );
    }
}

/// Seconds from RFC 3339 `t` to `now_ns` (None if absent or unreadable).
fn age(t: Option<&str>, now_ns: i64) -> Option<f64> {
    let ns = crate::util::timefmt::parse_rfc3339(t?)?;
    Some(now_ns.saturating_sub(ns) as f64 / 1e9)
}

/// A duration in words a person reads at a glance: `42s`, `5m03s`, `3h07m`, `2d04h`.
fn secs(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    match t {
        0..120 => format!("{t}s"),
        120..7200 => format!("{}m{:02}s", t / 60, t % 60),
        7200..172_800 => format!("{}h{:02}m", t / 3600, t % 3600 / 60),
        _ => format!("{}d{:02}h", t / 86400, t % 86400 / 3600),
    }
}

/// Runs `logseal status`; prints a summary (or JSON) and returns the Nagios exit code.
pub fn run(target: Target, json: bool) -> ExitCode {
    let v = match &target {
        Target::Agent(dir) => judge_file::<AgentStatus>(dir),
        Target::Collector(store) => judge_file::<CollectorDoc>(store),
    };
    let mut out = if json {
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into()) + "\n"
    } else {
        render(&v)
    };
    if json {
        // (serde_json escapes control characters; the text is escaped in render.)
        out.shrink_to_fit();
    }
    // One write, its error ignored: a reader that went away (`| head`) is
    // not a reason to panic.
    {
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
    }
    ExitCode::from(v.level as u8)
}

fn unknown(role: &'static str, file: &Path, why: String) -> Verdict {
    Verdict {
        level: Level::Unknown,
        role,
        problems: vec![(Level::Unknown, why)],
        file: file.display().to_string(),
        running: false,
        status: serde_json::Value::Null,
    }
}

fn read(role: &'static str, file: &Path) -> Result<serde_json::Value, Verdict> {
    let bytes = crate::storage::fsutil::read_bounded(file, MAX).map_err(|e| {
        unknown(
            role,
            file,
            format!(
                "cannot read {}: {e} (has the {role} run with this {}?)",
                file.display(),
                if role == "agent" {
                    "state directory"
                } else {
                    "store"
                }
            ),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        unknown(
            role,
            file,
            format!("{}: not a status file: {e}", file.display()),
        )
    })
}

/// Certificates that expired or expire within 30 days, CRLs overdue, files
/// that cannot be read: from a status file's `certificates`.
fn judge_certificates(v: &mut Verdict, doc: &serde_json::Value, now_ns: i64) {
    let Ok(list) = serde_json::from_value::<Vec<crate::monitor::expiry::Deadline>>(
        doc["certificates"].clone(),
    ) else {
        return;
    };
    for d in list {
        let warn = if d.crl {
            crate::monitor::expiry::CRL_WARN_BEFORE
        } else {
            crate::monitor::expiry::WARN_BEFORE
        }
        .as_secs_f64();
        if let Some(e) = &d.error {
            v.add(Level::Warning, format!("{}: {e}", d.what));
            continue;
        }
        let Some(left) = age(d.until.as_deref(), now_ns).map(|a| -a) else {
            continue;
        };
        let until = d.until.as_deref().unwrap_or("?");
        match (d.crl, left) {
            (false, l) if l <= 0.0 => v.add(
                Level::Critical,
                format!("{} {} expired at {until}", d.what, d.file),
            ),
            (true, l) if l <= 0.0 => v.add(
                Level::Warning,
                format!(
                    "{} {} was due to be re-signed at {until} (`logseal pki crl`)",
                    d.what, d.file
                ),
            ),
            (_, l) if l <= warn => v.add(
                Level::Warning,
                format!(
                    "{} {} {} in {} ({until})",
                    d.what,
                    d.file,
                    if d.crl {
                        "is due to be re-signed"
                    } else {
                        "expires"
                    },
                    secs(l)
                ),
            ),
            _ => {}
        }
    }
}

/// The status file of `dir` (a state directory or a store) judged now, or
/// the verdict on why it cannot be read.
fn judge_file<T: StatusDoc>(dir: &Path) -> Verdict {
    let file = dir.join(FILE);
    match read(T::ROLE, &file) {
        Ok(doc) => judge_doc::<T>(&file, doc, crate::util::timefmt::now_ns(), &|pid| {
            alive(dir, pid)
        }),
        Err(v) => v,
    }
}

/// What a status file says, whatever its role: its process, then the role's
/// own findings.
trait StatusDoc: serde::de::DeserializeOwned {
    /// `agent` or `collector`.
    const ROLE: &'static str;
    /// With its article, for messages.
    const A_ROLE: &'static str;
    /// Times in the file that must not lie in the future: (what, age).
    fn clocks(&self, now: i64) -> Vec<(String, Option<f64>)>;
    /// The role's own findings (`running`: the process is alive).
    fn judge(&self, v: &mut Verdict, now: i64, running: bool);
}

/// A status document judged at `now` (ns); `alive` says whether a PID holds
/// the lock of the file's directory.
fn judge_doc<T: StatusDoc>(
    file: &Path,
    doc: serde_json::Value,
    now: i64,
    alive: &dyn Fn(u32) -> bool,
) -> Verdict {
    let role = T::ROLE;
    let (s, p) = match T::deserialize(&doc).and_then(|s| Ok((s, ProcessDoc::deserialize(&doc)?))) {
        Ok(sp) => sp,
        Err(e) => {
            let why = format!("{}: not {} status file: {e}", file.display(), T::A_ROLE);
            return unknown(role, file, why);
        }
    };
    let ProcessDoc {
        time,
        pid,
        running: said_running,
        interval_secs: interval,
    } = p;
    let running = said_running && alive(pid);
    let mut v = Verdict {
        level: Level::Ok,
        role,
        problems: Vec::new(),
        file: file.display().to_string(),
        running,
        status: doc,
    };
    let written = age(Some(&time), now).unwrap_or(f64::MAX);
    future(&mut v, "the status file", Some(written));
    for (what, a) in s.clocks(now) {
        future(&mut v, &what, a);
    }
    if !said_running {
        v.add(
            Level::Critical,
            format!("not running: stopped cleanly at {time}"),
        );
    } else if !running {
        v.add(
            Level::Critical,
            format!("not running: process {pid} is gone without a clean stop (last status {time})"),
        );
    } else if written > 3.0 * interval.clamp(1, MAX_INTERVAL) as f64 {
        v.add(
            Level::Critical,
            format!(
                "process {pid} has not updated its status for {} (stuck?)",
                secs(written)
            ),
        );
    }
    s.judge(&mut v, now, running);
    v
}

impl StatusDoc for AgentStatus {
    const ROLE: &'static str = "agent";
    const A_ROLE: &'static str = "an agent";

    fn clocks(&self, now: i64) -> Vec<(String, Option<f64>)> {
        vec![(
            "the last seal".into(),
            age(self.last_seal_time.as_deref(), now),
        )]
    }

    fn judge(&self, v: &mut Verdict, now: i64, running: bool) {
        let s = self;
        let certs = v.status.clone();
        judge_certificates(v, &certs, now);
        if running {
            match age(s.last_seal_time.as_deref(), now) {
                Some(a) if a > 2.0 * s.heartbeat_secs.max(1) as f64 => v.add(
                    Level::Critical,
                    format!(
                        "last seal {} ago, more than twice the heartbeat ({}s)",
                        secs(a),
                        s.heartbeat_secs
                    ),
                ),
                Some(_) => {}
                None => v.add(Level::Critical, "no seal yet".into()),
            }
            if s.shipping && !s.collector_up {
                v.add(Level::Warning, "no session with a collector".into());
            }
            if let Some(a) = age(s.oldest_unacknowledged_time.as_deref(), now) {
                if a > LAG_WARNING.as_secs_f64() {
                    v.add(
                        Level::Warning,
                        format!("records unacknowledged for {}", secs(a)),
                    );
                }
            }
            let fill = s.spool_bytes as f64 / s.spool_limit_bytes.max(1) as f64;
            if fill >= 0.98 {
                v.add(
                    Level::Critical,
                    format!("spool full ({:.0} %)", fill * 100.0),
                );
            } else if fill >= 0.8 {
                v.add(Level::Warning, format!("spool {:.0} % full", fill * 100.0));
            }
            if let Some(l) = s.journal.as_ref().and_then(|j| j.lag_seconds) {
                if l > LAG_WARNING.as_secs_f64() {
                    v.add(
                        Level::Warning,
                        format!(
                            "the journal reader is {} behind the journal's newest entry",
                            secs(l)
                        ),
                    );
                }
            }
        }
    }
}

impl StatusDoc for CollectorDoc {
    const ROLE: &'static str = "collector";
    const A_ROLE: &'static str = "a collector";

    fn clocks(&self, now: i64) -> Vec<(String, Option<f64>)> {
        let last_seal = |h: &HostDoc| age(h.last_seal_time.as_deref(), now);
        let host = |h: &HostDoc| (format!("host {}'s last seal", h.host), last_seal(h));
        self.hosts.iter().map(host).collect()
    }

    fn judge(&self, v: &mut Verdict, now: i64, _running: bool) {
        let c = self;
        let silent: Vec<&str> = c
            .hosts
            .iter()
            .filter(|h| h.silent)
            .map(|h| h.host.as_str())
            .collect();
        if !silent.is_empty() {
            v.add(
                Level::Critical,
                format!("silent hosts: {}", silent.join(", ")),
            );
        }
        for h in &c.hosts {
            for ch in &h.chains {
                if let Some(why) = &ch.damaged {
                    v.add(
                        Level::Critical,
                        format!("host {} chain {}: damaged: {why}", h.host, ch.chain),
                    );
                }
            }
        }
        let doc = v.status.clone();
        judge_certificates(v, &doc, now);
        if c.quarantined_batches > 0 {
            v.add(
                Level::Warning,
                format!(
                "{} batches quarantined since the start (see STORE/quarantine and alerts.jsonl)",
                c.quarantined_batches
            ),
            );
        }
    }
}

/// What every status file says of its process: when it was written, by
/// which process, whether that process said it was running, and how often it
/// rewrites the file.
#[derive(Debug, Deserialize)]
struct ProcessDoc {
    time: String,
    pid: u32,
    running: bool,
    interval_secs: u64,
}

/// A collector's `status.json` as `logseal status` reads it (with its
/// [`ProcessDoc`]): the types are checked, so a file that is not one is
/// UNKNOWN, never a guess.
#[derive(Debug, Deserialize)]
struct CollectorDoc {
    #[serde(default)]
    quarantined_batches: u64,
    hosts: Vec<HostDoc>,
}

#[derive(Debug, Deserialize)]
struct HostDoc {
    host: String,
    silent: bool,
    #[serde(default)]
    last_seal_time: Option<String>,
    #[serde(default)]
    chains: Vec<ChainDoc>,
}

#[derive(Debug, Deserialize)]
struct ChainDoc {
    chain: String,
    #[serde(default)]
    damaged: Option<String>,
}

/// What `logseal status` says of a status file holding `bytes` (of an agent
/// or a collector), judged at `now` (ns) with its process taken as alive:
/// the exit code and the text, then the JSON. For the fuzz target: any bytes
/// get an answer, never a panic, and the text holds no control character
/// but the newline.
#[doc(hidden)]
pub fn judge_bytes(agent: bool, bytes: &[u8], now: i64) -> (u8, String, String) {
    let file = Path::new(FILE);
    let role = if agent { "agent" } else { "collector" };
    let v = match serde_json::from_slice(bytes) {
        Ok(doc) if agent => judge_doc::<AgentStatus>(file, doc, now, &|_| true),
        Ok(doc) => judge_doc::<CollectorDoc>(file, doc, now, &|_| true),
        Err(e) => unknown(role, file, format!("not a status file: {e}")),
    };
    let json = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into());
    (v.level as u8, render(&v), json)
}

/// Control characters of a file's text shown escaped (a host name is the
/// sender's choice: it must not drive the terminal, nor reorder what is
/// shown). Quotes stay as they are.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // Plain text; everything else as Rust's escape_debug shows it
            // (control and bidirectional characters, backslashes).
            '\'' | '"' => out.push(c),
            _ => out.extend(c.escape_debug()),
        }
    }
    out
}

/// A number from the status file as text; anything else as `?` (never the
/// file's own text unescaped).
fn n(v: &serde_json::Value) -> String {
    v.as_u64()
        .map(|x| x.to_string())
        .or_else(|| v.as_f64().map(|x| x.to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Writes a line into `$out` (a `String`).
macro_rules! line {
    ($out:expr, $($t:tt)*) => {{
        use std::fmt::Write;
        let _ = writeln!($out, $($t)*);
    }};
}

/// An agent's chain, spool, shipping, inputs and journal.
fn agent_lines(out: &mut String, s: &serde_json::Value, ago: &dyn Fn(&str) -> String) {
    line!(
        out,
        "  chain        host {} chain {}",
        clean(s["host"].as_str().unwrap_or("?")),
        clean(s["chain"].as_str().unwrap_or("?"))
    );
    line!(
        out,
        "  last seal    {}; {} records since (heartbeat {}s)",
        ago("last_seal_time"),
        n(&s["unsealed_records"]),
        n(&s["heartbeat_secs"])
    );
    line!(
        out,
        "  spool        {} of {} bytes; {} events chained since the start",
        n(&s["spool_bytes"]),
        n(&s["spool_limit_bytes"]),
        n(&s["events"])
    );
    if s["shipping"] == true {
        line!(
            out,
            "  shipping     collector {}; last ack {}",
            if s["collector_up"] == true {
                "connected"
            } else {
                "NOT connected"
            },
            ago("last_ack_time")
        );
        line!(
            out,
            "  backlog      {} bytes, {} records unacknowledged; oldest {}",
            n(&s["unacknowledged_bytes"]),
            n(&s["unacknowledged_records"]),
            ago("oldest_unacknowledged_time")
        );
    } else {
        line!(out, "  shipping     off (no [ship] table)");
    }
    for i in s["inputs"].as_array().into_iter().flatten() {
        line!(
            out,
            "  input        {} ({} dropped)",
            clean(i["input"].as_str().unwrap_or("?")),
            n(&i["dropped"])
        );
    }
    let j = &s["journal"];
    if j.is_object() {
        line!(
            out,
            "  journal      {} entries read, {} handed to the chain; {}",
            n(&j["read"]),
            n(&j["sent"]),
            match j["lag_seconds"].as_f64() {
                Some(l) if l > 0.0 => format!("{} behind the newest entry", secs(l)),
                Some(_) => "caught up".into(),
                None => "lag not known yet".into(),
            }
        );
    }
}

/// The certificates and CRLs a process uses.
fn certificate_lines(out: &mut String, s: &serde_json::Value) {
    for c in s["certificates"].as_array().into_iter().flatten() {
        line!(
            out,
            "  {:<12} {} {} {}",
            if c["crl"] == true {
                "crl"
            } else {
                "certificate"
            },
            clean(c["what"].as_str().unwrap_or("?")),
            clean(c["file"].as_str().unwrap_or("?")),
            match (c["until"].as_str(), c["error"].as_str()) {
                (_, Some(e)) => format!("unreadable: {}", clean(e)),
                (Some(u), None) if c["crl"] == true => format!("next update {}", clean(u)),
                (Some(u), None) => format!("valid until {}", clean(u)),
                (None, None) => "no next update".into(),
            }
        );
    }
}

/// A collector's store and hosts.
fn collector_lines(out: &mut String, s: &serde_json::Value, now: i64) {
    let hosts = s["hosts"].as_array().cloned().unwrap_or_default();
    line!(
        out,
        "  store        {} bytes; {} hosts; quarantine {} bytes, {} batches since the start",
        n(&s["store_bytes"]),
        hosts.len(),
        n(&s["quarantine_bytes"]),
        n(&s["quarantined_batches"])
    );
    for h in &hosts {
        let state = if h["silent"] == true {
            "SILENT"
        } else if h["stopped_cleanly"] == true {
            "stopped"
        } else {
            "sealing"
        };
        line!(
            out,
            "  host         {:<24} {state:<8} last seal {}",
            clean(h["host"].as_str().unwrap_or("?")),
            match age(h["last_seal_time"].as_str(), now) {
                Some(a) => format!("{} ago", secs(a)),
                None => "never".into(),
            }
        );
    }
}

/// The verdict and the status as text (control characters escaped).
fn render(v: &Verdict) -> String {
    let mut out = String::new();
    let out = &mut out;
    let level = match v.level {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
        Level::Unknown => "UNKNOWN",
    };
    let first = v
        .problems
        .iter()
        .max_by_key(|p| p.0)
        .map(|p| clean(&p.1))
        .unwrap_or_else(|| "healthy".into());
    line!(out, "LOGSEAL {} {level} - {first}", v.role.to_uppercase());
    for (l, p) in v.problems.iter().filter(|p| clean(&p.1) != first) {
        line!(out, "  {l:?}: {}", clean(p));
    }
    let s = &v.status;
    if s.is_null() {
        return std::mem::take(out);
    }
    let now = crate::util::timefmt::now_ns();
    let ago = |k: &str| match age(s[k].as_str(), now) {
        Some(a) => format!("{} ago ({})", secs(a), clean(s[k].as_str().unwrap_or(""))),
        None => "never".into(),
    };
    line!(
        out,
        "  status file  {} (written {})",
        clean(&v.file),
        ago("time")
    );
    line!(
        out,
        "  process      {}",
        if v.running {
            format!("running, pid {}", n(&s["pid"]))
        } else {
            "not running".into()
        }
    );
    if v.role == "agent" {
        agent_lines(out, s, &ago);
    }
    certificate_lines(out, s);
    if v.role == "collector" {
        collector_lines(out, s, now);
    }
    std::mem::take(out)
}

#[cfg(test)]
mod tests {
    use super::judge_bytes;

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn at(secs_before: i64) -> String {
        crate::util::timefmt::rfc3339(NOW - secs_before * 1_000_000_000)
    }

    #[test]
    fn any_bytes_get_an_answer_and_hostile_text_is_escaped() {
        for (agent, bytes) in [
            (true, &b""[..]),
            (true, b"{"),
            (false, b"[]"),
            (false, b"{\"time\": 5}"),
            (true, b"\xff\xfe"),
        ] {
            let (code, text, _) = judge_bytes(agent, bytes, NOW);
            assert_eq!(code, 3, "{text}");
            assert!(text.contains("UNKNOWN"), "{text}");
        }
        let doc = format!(
            r#"{{"time": "{}", "pid": 1, "running": true, "interval_secs": 10,
                "hosts": [{{"host": "evil\u001b[2J\nhost\u202e'q", "silent": true,
                "chains": [{{"chain": "c\u0007", "damaged": "bad-link\r"}}]}}],
                "store_bytes": "\u009b31m\u202e", "quarantine_bytes": "x\u007fy"}}"#,
            at(1)
        );
        let (code, text, json) = judge_bytes(false, doc.as_bytes(), NOW);
        assert_eq!(code, 2, "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("silent hosts: evil"), "{text}");
        assert!(
            !text.contains('\u{202e}') && text.contains("\\u{202e}'q"),
            "{text}"
        );
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
    }

    #[test]
    fn a_journal_far_behind_is_a_warning() {
        let doc = |lag: f64| {
            format!(
                r#"{{"time": "{now}", "version": "x", "pid": 1, "running": true,
                "interval_secs": 5, "host": "h", "chain": "c", "heartbeat_secs": 60,
                "last_seal_time": "{now}", "unsealed_records": 0, "events": 0,
                "spool_bytes": 0, "spool_limit_bytes": 100, "shipping": false,
                "collector_up": false, "last_ack_time": null, "unacknowledged_bytes": 0,
                "unacknowledged_records": 0, "oldest_unacknowledged_time": null,
                "inputs": [], "journal": {{"read": 5, "sent": 5, "lag_seconds": {lag}}}}}"#,
                now = at(1)
            )
        };
        let (code, text, _) = judge_bytes(true, doc(60.0).as_bytes(), NOW);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("60s behind the newest entry"), "{text}");
        let (code, text, _) = judge_bytes(true, doc(3600.0).as_bytes(), NOW);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("the journal reader is 60m00s behind the journal's newest entry"),
            "{text}"
        );
    }
}
