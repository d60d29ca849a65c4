//! Runs the verifier over files and directories of segments (the I/O edge of
//! `logseal verify`).

use crate::chain::verify::{Report, Verifier};
use crate::segment::{self, Item, SegmentReader};
use std::collections::HashSet;
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
    /// A file given by name is not a segment.
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
}

/// Expands the paths given on the command line into segment files, in order:
/// files as given, directories recursively in name order (files that do not start
/// with the segment magic are skipped and returned separately).
pub fn expand(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), InputError> {
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
            if files.len() == before {
                return Err(InputError::Empty(p.clone()));
            }
        } else {
            files.push(p.clone());
        }
    }
    Ok((files, skipped))
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<PathBuf>,
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
        if ft.is_dir() {
            if is_quarantine(&path) {
                // A collector's refused batches are not part of its chains;
                // they are listed, and can be verified by name.
                let mut q = Vec::new();
                walk(&path, &mut q, &mut Vec::new())?;
                skipped.extend(q);
                continue;
            }
            walk(&path, files, skipped)?;
        } else if ft.is_file() {
            if segment::looks_like_segment(&path) {
                files.push(path);
            } else if !matches!(
                e.file_name().to_str(),
                Some(
                    "signer.state"
                        | "genesis.record"
                        | "journal-cursor"
                        | "acked"
                        | "alerts.jsonl"
                        | "status.json"
                )
            ) {
                // (The agent's and collector's own state files are not evidence;
                // anything else is listed.)
                skipped.push(path);
            }
        }
    }
    Ok(())
}

/// Indexes of `files` that are the first remaining segment of an agent spool
/// whose earlier segments were deleted after acknowledgement: the segment is
/// named by its base position (`<20 digits>.seg`), it is the lowest in its
/// directory, its base is above 0, and the directory's `acked` file records a
/// position at or beyond that base.
fn trimmed_spool_starts(files: &[PathBuf]) -> HashSet<usize> {
    let mut out = HashSet::new();
    let mut dirs: std::collections::HashMap<PathBuf, (Option<u64>, Option<u64>)> =
        Default::default();
    for (i, f) in files.iter().enumerate() {
        let (Some(dir), Some(name)) = (f.parent(), f.file_name().and_then(|n| n.to_str())) else {
            continue;
        };
        let Some(base) = name
            .strip_suffix(".seg")
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if base == 0 {
            continue;
        }
        // Once per directory: its lowest base and its acknowledged position.
        let (lowest, acked) = *dirs.entry(dir.to_path_buf()).or_insert_with(|| {
            (
                crate::spool::segment_bases(dir)
                    .ok()
                    .and_then(|b| b.first().copied()),
                crate::spool::read_acked_position(dir).ok().flatten(),
            )
        });
        if lowest == Some(base) && acked.is_some_and(|a| a >= base) {
            out.insert(i);
        }
    }
    out
}

/// True for the `quarantine` directory of a collector store.
pub fn is_quarantine(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "quarantine")
        && dir.parent().is_some_and(|p| p.join("hosts").is_dir())
}

/// Verifies `files` in order and returns the report. `progress(file index,
/// byte offset)` is called every 65 536 frames and at the end of each file.
pub fn verify(
    files: &[PathBuf],
    trusted: HashSet<[u8; 32]>,
    mut progress: impl FnMut(usize, u64),
) -> Result<Report, InputError> {
    let mut v = Verifier::new(trusted);
    let trimmed = trimmed_spool_starts(files);
    for (i, path) in files.iter().enumerate() {
        let mut r = SegmentReader::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => InputError::NotSegment {
                path: path.clone(),
                reason: e.to_string(),
            },
            _ => InputError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        if trimmed.contains(&i) {
            v.begin_trimmed_file(i);
        } else {
            v.begin_file(i);
        }
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
            n += 1;
            if n % 65_536 == 0 {
                progress(i, r.position());
            }
        }
        progress(i, r.position());
    }
    Ok(v.finish())
}
