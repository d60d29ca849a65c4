//! Runs the verifier over files and directories of segments (the I/O edge of
//! `logseal verify`).
//!
//! Nothing here decides a verdict: it lists files, reads frames and hands them
//! to [`Verifier`]. Files the agent or collector write for their own use
//! (`acked`, `signer.state`, `tip.json`, …) are not evidence and are never read:
//! a host can write them, so they cannot vouch for anything.

use crate::chain::verify::{Options, Placement, Report, Verifier};
use crate::storage::segment::{self, Item, SegmentReader};
use std::io;
use std::path::{Path, PathBuf};

/// Error that stops verification (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A path given on the command line is neither a regular file nor a directory.
    #[error("{path}: {reason}")]
    NotSegment {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A directory holds no segment.
    #[error("{0}: no logseal segment files found")]
    Empty(PathBuf),
    /// The verification state outgrew its limit.
    #[error(
        "{path}: verification stopped at byte {offset}: it needs more than the {limit} MiB \
         of memory it may use (this input holds more chains, seals or findings than fit); \
         nothing was concluded. Verify fewer files or one host's directory at a time, or \
         raise the limit with --max-memory"
    )]
    MemoryLimit {
        /// The file being read.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// The limit, MiB.
        limit: u64,
    },
}

/// A file found in a directory and not verified, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was not read.
    pub why: SkipReason,
}

/// Why a file was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A refused batch in a collector's `quarantine/` (not part of any chain).
    Quarantined,
    /// Not a segment (no magic, no `.seg` name).
    NotSegment,
    /// A symbolic link (not followed inside a directory).
    Symlink,
    /// A FIFO, socket or device (never opened).
    NotRegular,
}

impl SkipReason {
    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Quarantined => {
                "quarantined batch (refused by the collector, not part of any chain; its .json says why)"
            }
            SkipReason::NotSegment => "not a logseal segment",
            SkipReason::Symlink => "symbolic link, not followed",
            SkipReason::NotRegular => "not a regular file (FIFO, socket or device), not opened",
        }
    }
}

/// Names of the agent's and collector's own state files: not evidence, not listed.
fn is_state_file(name: &str) -> bool {
    matches!(
        name,
        "signer.state"
            | "genesis.record"
            | "journal-cursor"
            | "losses.pending"
            | "acked"
            | "alerts.jsonl"
            | "status.json"
            | "tip.json"
            | "tips.json"
            | "crl-floor.json"
            | "lock"
    ) || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// Gives `f` every record frame's payload of `files`, in order, with the
/// file and the frame's offset, until it breaks; what it broke with.
pub fn each_record<B>(
    files: &[PathBuf],
    mut f: impl FnMut(&[u8], &Path, u64) -> std::ops::ControlFlow<B>,
) -> Result<Option<B>, InputError> {
    for path in files {
        let io = |source| InputError::Io {
            path: path.clone(),
            source,
        };
        let mut r = SegmentReader::open(path).map_err(io)?;
        while let Some(item) = r.next_item().map_err(io)? {
            if let Item::Frame {
                frame_type: crate::chain::frame::FRAME_RECORD,
                payload,
                offset,
            } = item
            {
                if let std::ops::ControlFlow::Break(b) = f(payload, path, offset) {
                    return Ok(Some(b));
                }
            }
        }
    }
    Ok(None)
}

/// Expands the paths given on the command line into segment files, in order:
/// files as given, directories recursively in name order. In a directory, a
/// file is verified if it starts with the segment magic or is named `*.seg`
/// (so a segment with a damaged header is reported, not skipped); other files
/// are returned as skipped, with the reason.
pub fn expand(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Skipped>), InputError> {
    expand_or_empty(paths, false)
}

/// [`expand`]; with `empty_ok`, a directory without segments is not an error.
pub fn expand_or_empty(
    paths: &[PathBuf],
    empty_ok: bool,
) -> Result<(Vec<PathBuf>, Vec<Skipped>), InputError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| InputError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let before = files.len();
            walk(p, &mut files, &mut skipped)?;
            if files.len() == before && !empty_ok {
                return Err(InputError::Empty(p.clone()));
            }
        } else if meta.is_file() {
            // A file named on the command line that is not a segment at all is
            // a usage error; one whose header is damaged is evidence (reported).
            if !segment::looks_like_segment(p) && !p.extension().is_some_and(|e| e == "seg") {
                return Err(InputError::NotSegment {
                    path: p.clone(),
                    reason: "not a logseal segment (it does not start with LSEALSEG)".into(),
                });
            }
            files.push(p.clone());
        } else {
            return Err(InputError::NotSegment {
                path: p.clone(),
                reason: "not a regular file or a directory (a FIFO, socket or device is not read)"
                    .into(),
            });
        }
    }
    Ok((files, skipped))
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e.file_type().map_err(io)?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            if is_store_dir(&path, crate::collector::checkpoints::DIR) {
                // The collector's own chain: verified apart (checkpoints.rs).
                continue;
            }
            if is_quarantine(&path) {
                let mut q = Vec::new();
                let mut qs = Vec::new();
                walk(&path, &mut q, &mut qs)?;
                skipped.extend(q.into_iter().map(|path| Skipped {
                    path,
                    why: SkipReason::Quarantined,
                }));
                continue;
            }
            walk(&path, files, skipped)?;
        } else if ft.is_symlink() {
            skipped.push(Skipped {
                path,
                why: SkipReason::Symlink,
            });
        } else if !ft.is_file() {
            skipped.push(Skipped {
                path,
                why: SkipReason::NotRegular,
            });
        } else if is_state_file(&name) {
            // The writers' own files: never read, whatever they hold.
        } else if is_agent_receipt(&path, &name) {
            // An agent's receipts (verify --receipt reads one when asked).
        } else if name.ends_with(".seg") || segment::looks_like_segment(&path) {
            files.push(path);
        } else {
            skipped.push(Skipped {
                path,
                why: SkipReason::NotSegment,
            });
        }
    }
    Ok(())
}

/// True for an agent's receipt file, `receipts/<chain>-<log>.receipt`, that
/// is not a segment in disguise.
fn is_agent_receipt(path: &Path, name: &str) -> bool {
    crate::transport::receipts::is_receipt_name(name)
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "receipts")
        && !segment::looks_like_segment(path)
}

/// True for the `quarantine` directory of a collector store.
pub fn is_quarantine(dir: &Path) -> bool {
    is_store_dir(dir, "quarantine")
}

/// True for the directory `name` of a collector store.
fn is_store_dir(dir: &Path, name: &str) -> bool {
    dir.file_name().is_some_and(|n| n == name) && dir.parent().is_some_and(is_store)
}

/// True for a collector store: a directory holding `hosts/`,
/// `checkpoints/` or `quarantine/`, or one of the files only a collector
/// writes there (so that renaming `hosts/` does not make a store look like a
/// plain directory). An agent's state directory has none of them.
pub fn is_store(dir: &Path) -> bool {
    ["hosts", crate::collector::checkpoints::DIR, "quarantine"]
        .iter()
        .any(|d| dir.join(d).is_dir())
        || ["alerts.jsonl", "crl-floor.json"]
            .iter()
            .any(|f| dir.join(f).is_file())
}

/// For a file in a collector store (`STORE/hosts/HOST/CHAIN/FILE`), the host
/// and chain its directory names.
fn placement(file: &Path) -> Option<Placement> {
    let chain_dir = file.parent()?;
    let host_dir = chain_dir.parent()?;
    let hosts = host_dir.parent()?;
    if hosts.file_name()? != "hosts" {
        return None;
    }
    // A name that is not UTF-8 is kept (lossily): it can name no host or
    // chain, so the file is misfiled, not unplaced.
    Some(Placement {
        host: host_dir.file_name()?.to_string_lossy().into_owned(),
        chain: chain_dir.file_name()?.to_string_lossy().into_owned(),
    })
}

/// Verifies `files` in order and returns the report. `progress(file index,
/// byte offset)` is called every 65 536 frames and at the end of each file.
pub fn verify(
    files: &[PathBuf],
    options: Options,
    mut progress: impl FnMut(usize, u64),
) -> Result<Report, InputError> {
    let limit = options
        .memory_limit
        .unwrap_or(crate::chain::verify::DEFAULT_MEMORY_LIMIT);
    let mut v = Verifier::new(options);
    for (i, path) in files.iter().enumerate() {
        let mut r = match SegmentReader::open(path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                v.bad_file(i, e.to_string());
                continue;
            }
            Err(source) => {
                return Err(InputError::Io {
                    path: path.clone(),
                    source,
                })
            }
        };
        v.begin_file(i, placement(path));
        let io = |source| InputError::Io {
            path: path.clone(),
            source,
        };
        let mut n = 0u64;
        while let Some(item) = r.next_item().map_err(io)? {
            match item {
                Item::Frame {
                    offset,
                    frame_type,
                    payload,
                } => v.frame(offset, frame_type, payload),
                Item::Corrupt {
                    offset,
                    skipped,
                    reason,
                } => v.damage(offset, skipped, reason, false),
                Item::TornTail {
                    offset,
                    bytes,
                    reason,
                } => v.damage(offset, bytes, reason, true),
            }
            if let Some(at) = v.exhausted() {
                return Err(InputError::MemoryLimit {
                    path: path.clone(),
                    offset: at.offset,
                    limit: limit >> 20,
                });
            }
            n += 1;
            if n % 65_536 == 0 {
                progress(i, r.position());
            }
        }
        progress(i, r.position());
    }
    Ok(v.finish())
}
