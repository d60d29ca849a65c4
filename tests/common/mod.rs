//! Shared helpers: build real chains with the library writer, locate frames,
//! run the verifier on files.
#![allow(dead_code)]

pub mod agent;
pub mod collector;
pub mod journal;
pub mod nats;
pub mod pki;
pub mod relay;

use logseal::chain::frame;
use logseal::chain::record::Source;
use logseal::chain::verify::{Problem, Report, Verdict};
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};
use logseal::storage::writer::ChainWriter;
use std::path::{Path, PathBuf};

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir().join(format!(
            "logseal-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        TempDir(base)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    /// Removes the directory, unless `LOGSEAL_KEEP_TMP` is set (to read the
    /// logs of a failed test).
    fn drop(&mut self) {
        if std::env::var_os("LOGSEAL_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A small tmpfs mounted on a directory (a filesystem that fills up);
/// unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: "1m") on `dir`, creating it.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes a chain: genesis, `events` events (message `"<host> event N"`), a seal
/// after every `seal_every` events, then a clean shutdown. Returns the log path.
pub fn build_chain(dir: &Path, host: &str, events: u64, seal_every: u64) -> PathBuf {
    let log = dir.join(format!("{host}.seg"));
    let (mut w, _) =
        ChainWriter::open(&dir.join(format!("{host}.state")), &log, Some(host)).unwrap();
    for i in 1..=events {
        let msg = format!("{host} event {i}");
        w.append_event(
            logseal::util::timefmt::now_ns(),
            Source::Stdin,
            "",
            msg.as_bytes(),
        )
        .unwrap();
        if i % seal_every == 0 {
            w.seal().unwrap();
        }
    }
    w.shutdown("test end").unwrap();
    log
}

/// One frame of a segment file.
#[derive(Debug, Clone)]
pub struct FrameInfo {
    pub offset: usize,
    pub len: usize, // whole frame, header included
    pub seq: u64,
    pub kind: &'static str,
}

/// The frames of an intact segment file, in order.
pub fn frames(bytes: &[u8]) -> Vec<FrameInfo> {
    let mut r = SegmentReader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        match item {
            Item::Frame {
                offset, payload, ..
            } => {
                let rec = Record::decode(payload).unwrap();
                out.push(FrameInfo {
                    offset: offset as usize,
                    len: payload.len() + 9,
                    seq: rec.seq,
                    kind: rec.kind().name(),
                })
            }
            other => panic!("fixture is damaged: {other:?}"),
        }
    }
    out
}

/// Recomputes the CRC of the frame at `offset` (an attacker would).
pub fn fix_crc(bytes: &mut [u8], offset: usize) {
    let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    let crc = frame::frame_crc(&bytes[offset + 8..offset + 8 + len]);
    bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Verifies bytes as one file with the library verifier.
pub fn verify_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Report {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    logseal::responder::verify_files::verify(&[p], Default::default(), |_, _| {}).unwrap()
}

/// All problems of all chains (and unattributed ones).
pub fn problems(r: &Report) -> Vec<Problem> {
    let mut v: Vec<Problem> = r
        .chains
        .iter()
        .flat_map(|c| c.problems.iter().map(|f| f.problem.clone()))
        .collect();
    v.extend(r.unattributed.iter().filter_map(|u| match u {
        logseal::chain::verify::Unattributed::Frame { problem, .. } => Some(problem.clone()),
        _ => None,
    }));
    v
}

/// True if the report is broken and some problem names `seq`, or a range it
/// reports as unverified holds it, or it lies before an unanchored chain's start.
pub fn names_seq(r: &Report, seq: u64) -> bool {
    !r.intact()
        && (problems(r).iter().any(|p| {
            let (a, b) = p.seqs();
            a <= seq && seq <= b
        }) || r.chains.iter().any(|c| {
            c.unverified
                .iter()
                .any(|u| u.first_seq <= seq && seq <= u.last_seq)
                // An unanchored chain: its start, up to where it begins, is missing.
                || c.unanchored_from.is_some_and(|f| seq <= f)
        }))
}

pub fn verdict(r: &Report) -> Verdict {
    if r.intact() {
        Verdict::Intact
    } else {
        Verdict::Broken
    }
}

/// `cp -a FROM TO`, after removing TO: a copy of a state directory or a
/// file as an intruder (or a restore) would take it.
pub fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// Path of the built `logseal` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_logseal"))
}

/// Writes `text` to `path` and runs `logseal ROLE --check-config PATH`:
/// (exit code, stderr).
pub fn check_config(role: &str, path: &Path, text: &str) -> (Option<i32>, String) {
    std::fs::write(path, text).unwrap();
    let o = std::process::Command::new(bin())
        .args([role, "--check-config"])
        .arg(path)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts that `logseal verify PATH` finds everything intact (exit 0).
pub fn assert_intact(path: &Path) {
    let v = std::process::Command::new(bin())
        .arg("verify")
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
}
