//! The journald input's configuration (`[journald]` in the agent's config,
//! `--journal` on its command line), parsed into the reader's typed values.

use crate::util::config::ValueError;
use crate::util::units::serde_units;
use serde::Deserialize;
use std::path::PathBuf;

/// The journald input. A key left out takes its value from the
/// [`Default`] impl.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournaldConfig {
    /// `system` (every journal file of the local system this agent may read,
    /// as `journalctl` without options), `namespace:NAME`, or a directory of
    /// journal files.
    pub journal: JournalSource,
    /// Where a chain that never read the journal starts: `head` (the oldest
    /// entry still there), `tail` (only entries written from now on), or an
    /// RFC 3339 time.
    pub start: JournalStart,
    /// Only entries of these units (`_SYSTEMD_UNIT` or `UNIT`); empty: all.
    pub units: Vec<String>,
    /// Only entries with these `SYSLOG_IDENTIFIER`s; empty: all.
    pub identifiers: Vec<String>,
    /// Only entries at this priority or more urgent (0-7 or emerg … debug).
    pub priority: Priority,
    /// Only entries matching one of these expressions (`FIELD=VALUE`, terms
    /// separated by spaces must all hold); empty: all.
    pub matches: Vec<MatchExpr>,
    /// Keep only these fields of an entry; empty: every field.
    pub fields: Vec<FieldName>,
    /// An entry larger than this (all fields) has its largest values cut and
    /// is flagged with its original size.
    #[serde(deserialize_with = "serde_units::size")]
    pub max_entry_size: u64,
    /// Stop the agent (cleanly) once the end of the journal is reached: for
    /// chaining a set of journal files, e.g. copied from a host under
    /// investigation.
    pub stop_at_end: bool,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        JournaldConfig {
            journal: JournalSource::default(),
            start: JournalStart::default(),
            units: vec![],
            identifiers: vec![],
            priority: Priority::default(),
            matches: vec![],
            fields: vec![],
            max_entry_size: d_entry(),
            stop_at_end: false,
        }
    }
}

fn d_entry() -> u64 {
    1 << 20
}

crate::util::config::parsed_from_string!(
    JournalSource,
    JournalStart,
    Priority,
    MatchExpr,
    FieldName
);

/// Which journal to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum JournalSource {
    /// The local system's journal files.
    #[default]
    System,
    /// The journal of a journald namespace.
    Namespace(String),
    /// Journal files in a directory.
    Directory(PathBuf),
}

impl std::str::FromStr for JournalSource {
    type Err = ValueError;

    /// Parses `system`, `namespace:NAME` or a directory path (absolute, or
    /// relative starting with `.`).
    fn from_str(s: &str) -> Result<JournalSource, ValueError> {
        if s.starts_with('/') || s.starts_with('.') {
            Ok(JournalSource::Directory(s.into()))
        } else {
            Self::parse_name(s).ok_or_else(|| {
                ValueError::refused(
                    "journald.journal",
                    format!("{s:?}: use \"system\", \"namespace:NAME\" or a directory path"),
                )
            })?
        }
    }
}

impl JournalSource {
    /// `--journal`: `system`, `namespace:NAME`, or else any path, relative
    /// ones included.
    pub fn from_arg(s: &str) -> Result<JournalSource, ValueError> {
        Self::parse_name(s).unwrap_or_else(|| Ok(JournalSource::Directory(s.into())))
    }

    /// `system` or `namespace:NAME`; None for anything else.
    fn parse_name(s: &str) -> Option<Result<JournalSource, ValueError>> {
        if s == "system" {
            Some(Ok(JournalSource::System))
        } else {
            let n = s.strip_prefix("namespace:")?;
            Some(if n.is_empty() || n.contains('/') {
                Err(ValueError::refused(
                    "journald.journal",
                    format!("{s:?}: bad namespace name"),
                ))
            } else {
                Ok(JournalSource::Namespace(n.into()))
            })
        }
    }
}

impl std::fmt::Display for JournalSource {
    /// As it is written in the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalSource::System => f.write_str("system"),
            JournalSource::Namespace(n) => write!(f, "namespace:{n}"),
            JournalSource::Directory(d) => d.display().fmt(f),
        }
    }
}

/// Where a new chain starts reading the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum JournalStart {
    /// The oldest entry.
    #[default]
    Head,
    /// Entries written after the agent started.
    Tail,
    /// The first entry at or after this time (µs since the Unix epoch).
    Time(u64),
}

impl std::str::FromStr for JournalStart {
    type Err = ValueError;

    /// Parses `head`, `tail` or an RFC 3339 time.
    fn from_str(s: &str) -> Result<JournalStart, ValueError> {
        match s {
            "head" => Ok(JournalStart::Head),
            "tail" => Ok(JournalStart::Tail),
            t => match crate::util::timefmt::parse_rfc3339(t) {
                Some(ns) if ns >= 0 => Ok(JournalStart::Time((ns / 1000) as u64)),
                _ => Err(ValueError::refused(
                    "journald.start",
                    format!("{t:?}: use head, tail or an RFC 3339 time like 2026-11-28T10:00:00Z"),
                )),
            },
        }
    }
}

/// A journal priority: entries at it or more urgent are chained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Priority(pub u8);

impl Default for Priority {
    /// `debug`: every entry.
    fn default() -> Self {
        Priority(7)
    }
}

impl std::str::FromStr for Priority {
    type Err = ValueError;

    /// Parses a name (`err`, `warning`, …) or a number 0–7.
    fn from_str(s: &str) -> Result<Priority, ValueError> {
        // Journal priorities are syslog severities.
        if let Some(i) = crate::ingest::syslog::SEVERITIES
            .iter()
            .position(|p| *p == s)
        {
            return Ok(Priority(i as u8));
        }
        match s.parse::<u8>() {
            Ok(n) if n <= 7 => Ok(Priority(n)),
            _ => Err(ValueError::refused(
                "journald.priority",
                format!("{s:?}: use 0-7 or emerg, alert, crit, err, warning, notice, info, debug"),
            )),
        }
    }
}

/// One `journald.matches` expression: `FIELD=VALUE` terms that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MatchExpr(pub Vec<(FieldName, String)>);

impl std::str::FromStr for MatchExpr {
    type Err = ValueError;

    /// Parses `FIELD=VALUE [FIELD=VALUE…]`.
    fn from_str(m: &str) -> Result<MatchExpr, ValueError> {
        let bad = |why: String| ValueError::refused("journald.matches", format!("{m:?}: {why}"));
        let mut all = Vec::new();
        for term in m.split_whitespace() {
            let (k, v) = term
                .split_once('=')
                .ok_or_else(|| bad(format!("{term:?} is not FIELD=VALUE")))?;
            let k = k
                .parse::<FieldName>()
                .map_err(|_| bad(format!("{k:?} is not a journal field name (A-Z, 0-9, _)")))?;
            all.push((k, v.to_string()));
        }
        if all.is_empty() {
            return Err(bad("an empty expression".into()));
        }
        Ok(MatchExpr(all))
    }
}

/// A journal field name: A–Z, 0–9 and `_`, not starting with a digit, at
/// most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FieldName(pub String);

impl std::str::FromStr for FieldName {
    type Err = ValueError;

    /// Parses a field name.
    fn from_str(n: &str) -> Result<FieldName, ValueError> {
        if super::filter::valid_field_name(n) {
            Ok(FieldName(n.to_string()))
        } else {
            Err(ValueError::refused(
                "journald.fields",
                format!("{n:?} is not a journal field name (A-Z, 0-9, _)"),
            ))
        }
    }
}
