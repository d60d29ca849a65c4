//! A real journald (a namespace instance of Debian's systemd-journald, no
//! systemd as PID 1 needed), journal files written by systemd-journal-remote,
//! journalctl's export format as the oracle, and the journald entries an
//! agent chained.
#![allow(dead_code)]

use super::bin;
use logseal::chain::record::{Body, Payload, Source};
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Fields = Vec<(String, Vec<u8>)>;

pub fn machine_id() -> String {
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    if id.trim().len() == 32 {
        return id.trim().to_string();
    }
    let st = Command::new("systemd-machine-id-setup")
        .stdout(Stdio::null())
        .status()
        .expect("systemd-machine-id-setup");
    assert!(st.success());
    std::fs::read_to_string("/etc/machine-id")
        .unwrap()
        .trim()
        .to_string()
}

/// A journald namespace instance.
pub struct Journald {
    pub name: String,
    /// Its journal directory (/var/log/journal/MACHINE-ID.NAME).
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    sock: std::os::unix::net::UnixDatagram,
}

impl Journald {
    pub fn start(tag: &str) -> Journald {
        let name = format!(
            "ls{tag}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let dir = PathBuf::from(format!("/var/log/journal/{}.{name}", machine_id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all("/var/log/journal").unwrap();
        // No rate limit: every datagram a test sends must be kept.
        let conf = PathBuf::from(format!("/etc/systemd/journald@{name}.conf"));
        std::fs::create_dir_all("/etc/systemd").unwrap();
        std::fs::write(&conf, "[Journal]\nStorage=persistent\nRateLimitBurst=0\n").unwrap();
        let mut j = Journald {
            name,
            dir,
            conf,
            child: None,
            sock: std::os::unix::net::UnixDatagram::unbound().unwrap(),
        };
        j.ensure_running();
        j
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.name))
    }

    /// (Re)starts journald if it is not running (a namespace instance exits
    /// when idle for a while).
    pub fn ensure_running(&mut self) {
        if let Some(c) = &mut self.child {
            if c.try_wait().unwrap().is_none() {
                return;
            }
        }
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("/lib/systemd/systemd-journald")
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald (package systemd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(self.socket().exists() && self.dir.join("system.journal").exists()) {
            assert!(
                Instant::now() < deadline,
                "journald {} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one entry over journald's native protocol (binary-safe).
    pub fn send(&mut self, fields: &[(&str, &[u8])]) {
        let mut d = Vec::new();
        for (k, v) in fields {
            // The native protocol needs the binary form only for a newline.
            push_field(&mut d, k, v, v.contains(&b'\n'));
        }
        for attempt in 0.. {
            match self.sock.send_to(&d, self.socket()) {
                Ok(_) => return,
                Err(e) if attempt < 100 => {
                    // Restarting after an idle exit.
                    let _ = e;
                    self.ensure_running();
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("sending to journald: {e}"),
            }
        }
    }

    /// Sends `n` numbered entries: MESSAGE, TEST_RUN, TEST_SEQ.
    pub fn send_numbered(&mut self, run: &str, from: u64, n: u64) {
        self.ensure_running();
        for i in from..from + n {
            let msg = format!("{run} message {i}");
            let seq = i.to_string();
            self.send(&[
                ("MESSAGE", msg.as_bytes()),
                ("TEST_RUN", run.as_bytes()),
                ("TEST_SEQ", seq.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"numbered"),
            ]);
        }
    }

    /// Waits until journalctl sees `n` entries of `run`.
    pub fn wait_written(&self, run: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = export_dir(&self.dir)
                .iter()
                .filter(|e| get(e, "TEST_RUN") == Some(run.as_bytes()))
                .count();
            if got >= n {
                return;
            }
            assert!(Instant::now() < deadline, "journald wrote {got} of {n}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rotates the journal (SIGUSR2) and waits for the archived file.
    pub fn rotate(&mut self) {
        self.ensure_running();
        let before = self.archived().len();
        let pid = self.child.as_ref().unwrap().id();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::USR2,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.archived().len() <= before {
            assert!(Instant::now() < deadline, "journald did not rotate");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Archived journal files, oldest first.
    pub fn archived(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy().to_string();
                        n.starts_with("system@") && n.ends_with(".journal")
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.conf);
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.name));
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One field as journald's native protocol and the export format both write
/// it: `NAME=value\n`, or in binary form `NAME\n` + le64 length + value + `\n`.
fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8], binary: bool) {
    out.extend_from_slice(name.as_bytes());
    if binary {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes entries in journal export format (binary-safe form where needed).
pub fn export_format(entries: &[Fields]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (k, v) in e {
            let binary = v
                .iter()
                .any(|&b| b == b'\n' || b < 0x20 && b != b'\t' || b >= 0x80);
            push_field(&mut out, k, v, binary);
        }
        out.push(b'\n');
    }
    out
}

/// Parses journal export format.
pub fn parse_export(mut b: &[u8]) -> Vec<Fields> {
    let mut out = Vec::new();
    let mut cur = Fields::new();
    while !b.is_empty() {
        let nl = b.iter().position(|&c| c == b'\n').expect("export line");
        let line = &b[..nl];
        if line.is_empty() {
            out.push(std::mem::take(&mut cur));
            b = &b[1..];
            continue;
        }
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            cur.push((
                String::from_utf8(line[..eq].to_vec()).unwrap(),
                line[eq + 1..].to_vec(),
            ));
            b = &b[nl + 1..];
        } else {
            let name = String::from_utf8(line.to_vec()).unwrap();
            let rest = &b[nl + 1..];
            let n = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            cur.push((name, rest[8..8 + n].to_vec()));
            assert_eq!(rest[8 + n], b'\n');
            b = &rest[9 + n..];
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `journalctl -D DIR -o export`, parsed: the oracle.
pub fn export_dir(dir: &Path) -> Vec<Fields> {
    let o = Command::new("journalctl")
        .arg("-D")
        .arg(dir)
        .args(["-o", "export"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "journalctl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    parse_export(&o.stdout)
}

/// `journalctl --file=F -o export`, parsed.
pub fn export_file(f: &Path) -> Vec<Fields> {
    let o = Command::new("journalctl")
        .arg(format!("--file={}", f.display()))
        .args(["-o", "export"])
        .output()
        .unwrap();
    assert!(o.status.success());
    parse_export(&o.stdout)
}

/// Builds a journal file from entries with systemd-journal-remote (zstd,
/// compact layout: its defaults).
pub fn write_journal_file(out: &Path, entries: &[Fields]) {
    write_journal_file_with(out, entries, &[], &[]);
}

/// Like [`write_journal_file`] with more arguments and environment, e.g.
/// `--compress=no` and `SYSTEMD_JOURNAL_COMPACT=0` for the old layout.
pub fn write_journal_file_with(
    out: &Path,
    entries: &[Fields],
    args: &[&str],
    env: &[(&str, &str)],
) {
    let mut c = Command::new("/lib/systemd/systemd-journal-remote")
        .arg(format!("--output={}", out.display()))
        .args(args)
        .envs(env.iter().copied())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-journal-remote (package systemd-journal-remote)");
    c.stdin
        .take()
        .unwrap()
        .write_all(&export_format(entries))
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub fn get<'a>(e: &'a Fields, name: &str) -> Option<&'a [u8]> {
    e.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
}

pub fn get_str<'a>(e: &'a Fields, name: &str) -> &'a str {
    std::str::from_utf8(get(e, name).unwrap_or_else(|| panic!("no {name} in {e:?}"))).unwrap()
}

/// What an agent chained from the journal, in chain order.
#[derive(Debug, Clone)]
pub enum Chained {
    Entry {
        fields: Fields,
        original_len: Option<u64>,
        flags: u8,
    },
    Loss {
        count: u64,
        detail: String,
    },
}

/// Journald Events and journald Loss records in the spool of `state`.
pub fn chained(state: &Path) -> Vec<Chained> {
    let dir = state.join("spool");
    let Ok(bases) = logseal::storage::segment_log::segment_bases(&dir) else {
        return Vec::new();
    };
    let files: Vec<PathBuf> = bases
        .iter()
        .map(|b| dir.join(format!("{b:020}.seg")))
        .collect();
    chained_in_files(&files)
}

/// The same for every segment file under `dir` (a collector's store).
pub fn chained_in(dir: &Path) -> Vec<Chained> {
    let (files, _) = logseal::responder::verify_files::expand(&[dir.to_path_buf()]).unwrap();
    chained_in_files(&files)
}

fn chained_in_files(files: &[PathBuf]) -> Vec<Chained> {
    let mut out = Vec::new();
    for f in files {
        let Ok(mut r) = SegmentReader::open(f) else {
            continue;
        };
        while let Ok(Some(item)) = r.next_item() {
            let Item::Frame {
                frame_type: 1,
                payload,
                ..
            } = item
            else {
                break; // a live spool's unfinished tail
            };
            let rec = Record::decode(payload).unwrap();
            match rec.body {
                Body::Event {
                    source: Source::Journald,
                    payload: Payload::Fields(f),
                    original_len,
                    flags,
                    ..
                } => out.push(Chained::Entry {
                    fields: f.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
                    original_len,
                    flags,
                }),
                Body::Loss {
                    source: Source::Journald,
                    count,
                    detail,
                    ..
                } => out.push(Chained::Loss {
                    count,
                    detail: detail.to_string(),
                }),
                _ => {}
            }
        }
    }
    out
}

pub fn entries(c: &[Chained]) -> Vec<Fields> {
    c.iter()
        .filter_map(|x| match x {
            Chained::Entry { fields, .. } => Some(fields.clone()),
            _ => None,
        })
        .collect()
}

/// `logseal agent --journal J --state S [extra]`, started; waits for its
/// "reading journal" line.
#[allow(clippy::zombie_processes)] // returned to the caller, who waits for it
pub fn start_agent(journal: &str, state: &Path, extra: &[&str], errlog: &Path) -> Child {
    let mut c = Command::new(bin())
        .args(["agent", "--journal", journal, "--state"])
        .arg(state)
        .args(["--host", "journal-test"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(errlog).unwrap()))
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            let _ = c.wait();
            panic!(
                "agent exited before reading the journal: {}",
                std::fs::read_to_string(errlog).unwrap_or_default()
            );
        }
        if line.starts_with("reading journal ") {
            return c;
        }
    }
}

/// Runs the agent until it reached the end of the journal; asserts exit 0.
pub fn run_to_end(journal: &str, state: &Path, errlog: &Path) {
    let mut c = start_agent(journal, state, &["--stop-at-journal-end"], errlog);
    let st = c.wait().unwrap();
    assert!(
        st.success(),
        "agent: {st:?}: {}",
        std::fs::read_to_string(errlog).unwrap_or_default()
    );
}

/// The `__CURSOR` of each entry, in order.
pub fn cursors(entries: &[Fields]) -> Vec<String> {
    entries
        .iter()
        .map(|e| get_str(e, "__CURSOR").to_string())
        .collect()
}

/// The TEST_SEQ numbers of `run` among entries, in order.
pub fn seqs(entries: &[Fields], run: &str) -> Vec<u64> {
    entries
        .iter()
        .filter(|e| get(e, "TEST_RUN") == Some(run.as_bytes()))
        .map(|e| get_str(e, "TEST_SEQ").parse().unwrap())
        .collect()
}

/// The fields of a chained entry as journalctl exports them: without the
/// agent's __SEQNUM, __SEQNUM_ID and __BOOT_ID (journalctl 252 prints none
/// of them; it prints _BOOT_ID from the entry header and skips that data
/// field), and without _BOOT_ID.
pub fn as_exported(e: &Fields) -> Fields {
    e.iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "__SEQNUM" | "__SEQNUM_ID" | "__BOOT_ID" | "_BOOT_ID"
            )
        })
        .cloned()
        .collect()
}

/// An exported entry without _BOOT_ID.
pub fn without_boot(e: &Fields) -> Fields {
    e.iter().filter(|(k, _)| k != "_BOOT_ID").cloned().collect()
}

/// The "Incompatible flags" line of `journalctl --header` for a file.
pub fn header_flags(f: &Path) -> String {
    let o = Command::new("journalctl")
        .arg("--header")
        .arg(format!("--file={}", f.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("Incompatible flags:"))
        .unwrap_or("")
        .to_string()
}

/// The system journal for a test: the running system journald if there is
/// one, otherwise one started here (journald without a namespace, serving
/// /run/systemd/journal/socket), stopped and its runtime files removed on drop.
pub struct SystemJournald {
    ours: Option<Child>,
    created_runtime: Option<PathBuf>,
}

pub const SYSTEM_SOCKET: &str = "/run/systemd/journal/socket";

impl SystemJournald {
    pub fn ensure() -> SystemJournald {
        let sock = Path::new(SYSTEM_SOCKET);
        let probe = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let running = sock.exists() && probe.send_to(b"MESSAGE=logseal test probe\n", sock).is_ok();
        if running {
            return SystemJournald {
                ours: None,
                created_runtime: None,
            };
        }
        let runtime_dir = PathBuf::from(format!("/run/log/journal/{}", machine_id()));
        let created_runtime = (!runtime_dir.exists()).then_some(runtime_dir);
        let c = Command::new("/lib/systemd/systemd-journald")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::collector::wait_until("the system journald", || {
            probe.send_to(b"MESSAGE=logseal test probe\n", sock).is_ok()
        });
        SystemJournald {
            ours: Some(c),
            created_runtime,
        }
    }
}

impl Drop for SystemJournald {
    fn drop(&mut self) {
        if let Some(mut c) = self.ours.take() {
            let _ = c.kill();
            let _ = c.wait();
            if let Some(d) = &self.created_runtime {
                let _ = std::fs::remove_dir_all(d);
            }
            let _ = std::fs::remove_dir_all("/run/systemd/journal");
        }
    }
}
