//! The journald input: every journal entry chained once, as an Event with
//! `source = journald` and `format = 1` (its fields, in order), with the
//! entry's cursor, seqnum, seqnum id and boot id as the first fields.
//!
//! The live journal is read through libsystemd's sd-journal (the `reader`
//! module, behind the default-on `journald` cargo feature): it follows new
//! entries, survives rotation and vacuuming and decompresses whatever
//! libsystemd was built for. What does not need libsystemd lives here: the
//! cursor, the filters, the entry encoding and finding where to resume.
//!
//! Exactly once: the cursor of the last journald entry chained is found again
//! at start — in the spool (newest segment first), or, when the segments
//! holding journald entries were acknowledged and deleted, in the
//! `journal-cursor` state file the stamper writes (atomically, with a cursor
//! already fsynced in the spool) before it deletes any segment. The reader
//! seeks there and skips that entry.

pub mod config;
pub mod cursor;
pub mod filter;
#[cfg(feature = "journald")]
pub mod reader;
pub mod resume;

/// Why `journal = "system"` would read nothing, if it would: no journald
/// listening on its socket and no journal file in the system's journal
/// directories (a container or a host without systemd). The agent warns: it
/// would otherwise wait for entries that never come, silently.
pub fn system_journal_missing() -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    const SOCKET: &str = "/run/systemd/journal/socket";
    const DIRS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];
    if std::fs::symlink_metadata(SOCKET).is_ok_and(|m| m.file_type().is_socket()) {
        return None;
    }
    // Journal files sit in DIR/MACHINE-ID/*.journal (or DIR itself);
    // DIR/MACHINE-ID.NAMESPACE/ holds a namespace's, which "system" does not read.
    let has_journal = |d: &std::path::Path| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let p = e.path();
                let namespace = e.file_name().to_string_lossy().contains('.');
                p.extension()
                    .is_some_and(|x| x == "journal" || x == "journal~")
                    || (p.is_dir()
                        && !namespace
                        && std::fs::read_dir(&p).is_ok_and(|sub| {
                            sub.flatten().any(|f| {
                                f.path()
                                    .extension()
                                    .is_some_and(|x| x == "journal" || x == "journal~")
                            })
                        }))
            })
        })
    };
    if DIRS.iter().any(|d| has_journal(std::path::Path::new(d))) {
        return None;
    }
    Some(format!(
        "journal = \"system\": no journald listens on {SOCKET} and {} hold no journal file: \
         nothing will be read until journald runs here (in a container, read the host's \
         journal directory instead: journal = \"/var/log/journal\")",
        DIRS.join(" and ")
    ))
}

/// Counters of the journald reader (for logs, tests and the metrics).
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Entries read.
    pub read: std::sync::atomic::AtomicU64,
    /// Entries passed to the stamper.
    pub sent: std::sync::atomic::AtomicU64,
    /// Wall-clock time of the last entry read, µs since the Unix epoch (0:
    /// none read yet).
    pub last_read_usec: std::sync::atomic::AtomicU64,
    /// Wall-clock time of the journal's newest entry, µs: while the reader is
    /// behind, as of its last look (at most a second old); once it has read
    /// everything, that of the last entry read.
    pub newest_usec: std::sync::atomic::AtomicU64,
    /// The reader has read everything the journal holds and handed it over.
    pub caught_up: std::sync::atomic::AtomicBool,
    /// Wall-clock time of the entry the reader started after (the last one
    /// chained before this run, or where a `tail` or time start put it), µs.
    pub start_usec: std::sync::atomic::AtomicU64,
    /// Wall-clock time of the last entry the filters dropped while nothing
    /// read before it waited in the reader, µs: handled once the entries sent
    /// before it ([`Self::skipped_after`] of them) are chained.
    pub skipped_usec: std::sync::atomic::AtomicU64,
    /// [`Self::sent`] when that entry was dropped.
    pub skipped_after: std::sync::atomic::AtomicU64,
}

impl ReaderStats {
    /// How far the chain is behind the journal, in seconds of the entries'
    /// wall-clock time: from the last entry handled (chained, or dropped by
    /// the filters after everything before it was chained) to the journal's
    /// newest. `chained_usec` is the time of the last entry chained in this
    /// run (0: none yet), `chained` how many entries were chained in this
    /// run. 0 once the reader has read everything and all it sent is
    /// chained; None while not known.
    pub fn lag_seconds(&self, chained_usec: u64, chained: u64) -> Option<f64> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.caught_up.load(Relaxed) && chained >= self.sent.load(Relaxed) {
            return Some(0.0);
        }
        let mut handled = chained_usec.max(self.start_usec.load(Relaxed));
        if chained >= self.skipped_after.load(Relaxed) {
            handled = handled.max(self.skipped_usec.load(Relaxed));
        }
        let newest = self
            .newest_usec
            .load(Relaxed)
            .max(self.last_read_usec.load(Relaxed));
        (handled > 0 && newest > 0).then(|| newest.saturating_sub(handled) as f64 / 1e6)
    }
}

pub use cursor::Cursor;
pub use filter::Filter;

/// Address fields put before an entry's own fields (the `__` prefix is
/// reserved by journald for them, so they cannot collide with entry fields).
pub const F_CURSOR: &str = "__CURSOR";
/// Wall-clock time the entry was written, µs since the Unix epoch (decimal).
pub const F_REALTIME: &str = "__REALTIME_TIMESTAMP";
/// Monotonic time of the entry within its boot, µs (decimal).
pub const F_MONOTONIC: &str = "__MONOTONIC_TIMESTAMP";
/// The entry's sequence number (decimal).
pub const F_SEQNUM: &str = "__SEQNUM";
/// The 128-bit id of the sequence its seqnum belongs to (32 hex digits).
pub const F_SEQNUM_ID: &str = "__SEQNUM_ID";
/// The boot the monotonic time refers to (32 hex digits).
pub const F_BOOT_ID: &str = "__BOOT_ID";

/// Appends one field in the Event payload's format-1 layout
/// (`name:str | value:bytes`, lengths u32 big-endian) to `out`.
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// Splits fields written by [`push_field`] back into (name, value) pairs.
/// Names that are not UTF-8 (journald never writes them) are skipped.
pub fn split_fields<'a>(mut b: &'a [u8], out: &mut Vec<(&'a str, &'a [u8])>) {
    out.clear();
    fn take<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let v = b.get(4..4 + n)?;
        *b = &b[4 + n..];
        Some(v)
    }
    while !b.is_empty() {
        let (Some(name), Some(value)) = (take(&mut b), take(&mut b)) else {
            return;
        };
        if let Ok(name) = std::str::from_utf8(name) {
            out.push((name, value));
        }
    }
}

/// The value of the first field `name` in encoded fields.
pub fn field<'a>(b: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut v = Vec::new();
    split_fields(b, &mut v);
    v.into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_binary_and_repeated() {
        let mut b = Vec::new();
        push_field(&mut b, b"MESSAGE", b"hi");
        push_field(&mut b, b"BIN", &[0, 1, 255, b'\n']);
        push_field(&mut b, b"TAG", b"a");
        push_field(&mut b, b"TAG", b"b");
        let mut v = Vec::new();
        split_fields(&b, &mut v);
        assert_eq!(
            v,
            vec![
                ("MESSAGE", &b"hi"[..]),
                ("BIN", &[0, 1, 255, b'\n'][..]),
                ("TAG", &b"a"[..]),
                ("TAG", &b"b"[..])
            ]
        );
        assert_eq!(field(&b, "TAG"), Some(&b"a"[..]));
        assert_eq!(field(&b, "NOPE"), None);
        // A cut buffer yields the whole fields before the cut only.
        split_fields(&b[..b.len() - 1], &mut v);
        assert_eq!(v.len(), 3);
    }
}
