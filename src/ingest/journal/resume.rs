//! Where the journald input resumes: the cursor of the last journald entry
//! chained.
//!
//! The spool is the truth: its newest journald Event holds that cursor. When
//! every segment holding one was acknowledged and deleted, the `journal-cursor`
//! file in the state directory holds it: the stamper writes it (atomically)
//! before it deletes a segment, with the last cursor already fsynced in the
//! spool, so the file is never ahead of what was chained durably.

use crate::chain::frame::FRAME_RECORD;
use crate::chain::record::{Body, Payload, Record, Source};
use crate::storage::segment::{Item, SegmentReader};
use crate::storage::segment_log::segment_bases;
use std::io;
use std::path::Path;

/// Name of the cursor file in the agent's state directory.
pub const CURSOR_FILE: &str = "journal-cursor";

/// The cursor of the newest journald Event in the spool at `dir`.
pub fn newest_in_spool(dir: &Path) -> io::Result<Option<String>> {
    let bases = match segment_bases(dir) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for base in bases.iter().rev() {
        let path = dir.join(format!("{base:020}.seg"));
        let mut r = match SegmentReader::open(&path) {
            Ok(r) => r,
            // A last segment shorter than its header: nothing in it.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e),
        };
        let mut last = None;
        while let Some(item) = r.next_item()? {
            let Item::Frame {
                frame_type,
                payload,
                ..
            } = item
            else {
                continue;
            };
            if frame_type != FRAME_RECORD {
                continue;
            }
            if let Some(c) = journal_cursor_of(payload) {
                last = Some(c);
            }
        }
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

/// The `__CURSOR` of an encoded record, if it is a journald Event.
pub fn journal_cursor_of(record: &[u8]) -> Option<String> {
    // Cheap test before a full decode: kind byte 2 (Event), source byte 6.
    if record.get(1) != Some(&2) || record.get(34) != Some(&(Source::Journald as u8)) {
        return None;
    }
    let r = Record::decode(record).ok()?;
    let Body::Event {
        source: Source::Journald,
        payload: Payload::Fields(fields),
        ..
    } = r.body
    else {
        return None;
    };
    fields
        .iter()
        .find(|(k, _)| *k == super::F_CURSOR)
        .and_then(|(_, v)| String::from_utf8(v.to_vec()).ok())
}

/// The most a cursor file may hold (a journald cursor is about 150 bytes).
pub const MAX_CURSOR_FILE: u64 = 16 << 10;

/// Reads the cursor file; `None` if there is none. A damaged file is an error.
pub fn read_cursor_file(state_dir: &Path) -> io::Result<Option<String>> {
    let path = state_dir.join(CURSOR_FILE);
    let text = match crate::storage::fsutil::read_bounded_text(&path, MAX_CURSOR_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: damaged, not a logseal journal cursor file (expected \"v1 CRC32C CURSOR\"); \
                 it holds where the journald input resumes: remove it to start again at \
                 journald.start (entries may be chained twice or skipped)",
                path.display()
            ),
        )
    };
    let mut parts = text.trim_end_matches('\n').splitn(3, ' ');
    let (Some("v1"), Some(crc), Some(cursor)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if u32::from_str_radix(crc, 16).ok() != Some(crc32c::crc32c(cursor.as_bytes())) {
        return Err(bad());
    }
    Ok(Some(cursor.to_string()))
}

/// Writes the cursor file atomically (temp, fsync, rename, fsync dir).
pub fn write_cursor_file(state_dir: &Path, cursor: &str) -> io::Result<()> {
    let text = format!("v1 {:08x} {cursor}\n", crc32c::crc32c(cursor.as_bytes()));
    crate::storage::fsutil::write_atomic(
        &state_dir.join(CURSOR_FILE),
        text.as_bytes(),
        "journal-cursor",
    )
}

/// The cursor to resume after: the spool's newest, else the cursor file's.
pub fn resume_cursor(state_dir: &Path, spool_dir: &Path) -> io::Result<Option<String>> {
    if let Some(c) = newest_in_spool(spool_dir)? {
        return Ok(Some(c));
    }
    read_cursor_file(state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_file_round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("logseal-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(read_cursor_file(&dir).expect("absent"), None);
        write_cursor_file(&dir, "s=ab;i=1").expect("write");
        assert_eq!(
            read_cursor_file(&dir).expect("read").as_deref(),
            Some("s=ab;i=1")
        );
        let p = dir.join(CURSOR_FILE);
        let t = crate::storage::fsutil::read_bounded_text(&p, 4096).expect("read");
        crate::storage::fsutil::write_atomic(&p, t.replace("i=1", "i=2").as_bytes(), "test")
            .expect("tamper");
        let e = read_cursor_file(&dir).expect_err("crc");
        assert!(e.to_string().contains("journal-cursor"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
