//! The journald input's configuration (`[journald]` in the agent's config,
//! `--journal` on its command line), parsed into the reader's typed values.

use crate::util::units::serde_units;
use serde::Deserialize;
use std::path::PathBuf;

/// The journald input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// `system` (every journal file of the local system this agent may read,
    /// as `journalctl` without options), `namespace:NAME`, or a directory of
    /// journal files.
    #[serde(default = "d_journal")]
    pub journal: String,
    /// Where a chain that never read the journal starts: `head` (the oldest
    /// entry still there), `tail` (only entries written from now on), or an
    /// RFC 3339 time.
    #[serde(default = "d_start")]
    pub start: String,
    /// Only entries of these units (`_SYSTEMD_UNIT` or `UNIT`); empty: all.
    #[serde(default)]
    pub units: Vec<String>,
    /// Only entries with these `SYSLOG_IDENTIFIER`s; empty: all.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Only entries at this priority or more urgent (0-7 or emerg … debug).
    #[serde(default = "d_priority")]
    pub priority: String,
    /// Only entries matching one of these expressions (`FIELD=VALUE`, terms
    /// separated by spaces must all hold); empty: all.
    #[serde(default)]
    pub matches: Vec<String>,
    /// Keep only these fields of an entry; empty: every field.
    #[serde(default)]
    pub fields: Vec<String>,
    /// An entry larger than this (all fields) has its largest values cut and
    /// is flagged with its original size.
    #[serde(default = "d_entry", deserialize_with = "serde_units::size")]
    pub max_entry_size: u64,
    /// Stop the agent (cleanly) once the end of the journal is reached: for
    /// chaining a set of journal files, e.g. copied from a host under
    /// investigation.
    #[serde(default)]
    pub stop_at_end: bool,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        JournaldConfig {
            journal: d_journal(),
            start: d_start(),
            units: vec![],
            identifiers: vec![],
            priority: d_priority(),
            matches: vec![],
            fields: vec![],
            max_entry_size: d_entry(),
            stop_at_end: false,
        }
    }
}

fn d_journal() -> String {
    "system".into()
}
fn d_start() -> String {
    "head".into()
}
fn d_priority() -> String {
    "debug".into()
}
fn d_entry() -> u64 {
    1 << 20
}

/// Which journal to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalSource {
    /// The local system's journal files.
    System,
    /// The journal of a journald namespace.
    Namespace(String),
    /// Journal files in a directory.
    Directory(PathBuf),
}

impl JournalSource {
    /// Parses `system`, `namespace:NAME` or a directory path.
    pub fn parse(s: &str) -> Result<JournalSource, String> {
        if s == "system" {
            Ok(JournalSource::System)
        } else if let Some(n) = s.strip_prefix("namespace:") {
            if n.is_empty() || n.contains('/') {
                return Err(format!("journald.journal {s:?}: bad namespace name"));
            }
            Ok(JournalSource::Namespace(n.into()))
        } else if s.starts_with('/') || s.starts_with('.') {
            Ok(JournalSource::Directory(s.into()))
        } else {
            Err(format!(
                "journald.journal {s:?}: use \"system\", \"namespace:NAME\" or a directory path"
            ))
        }
    }
}

/// Where a new chain starts reading the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalStart {
    /// The oldest entry.
    Head,
    /// Entries written after the agent started.
    Tail,
    /// The first entry at or after this time (µs since the Unix epoch).
    Time(u64),
}

impl JournalStart {
    /// Parses `head`, `tail` or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<JournalStart, String> {
        match s {
            "head" => Ok(JournalStart::Head),
            "tail" => Ok(JournalStart::Tail),
            t => match crate::util::timefmt::parse_rfc3339(t) {
                Some(ns) if ns >= 0 => Ok(JournalStart::Time((ns / 1000) as u64)),
                _ => Err(format!(
                    "journald.start {t:?}: use head, tail or an RFC 3339 time like 2026-11-28T10:00:00Z"
                )),
            },
        }
    }
}
