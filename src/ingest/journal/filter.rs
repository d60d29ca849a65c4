//! Which journal entries are chained, and which of their fields.
//!
//! The agent reads every entry and filters here, not with sd_journal matches:
//! it must see every seqnum to notice entries the journal lost.

use super::config::JournaldConfig;

/// A compiled `[journald]` filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    units: Vec<Vec<u8>>,
    identifiers: Vec<Vec<u8>>,
    max_priority: u8,
    /// OR of ANDs of (field, value).
    matches: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    keep: Vec<Vec<u8>>,
}

/// True for a valid journal field name: A–Z, 0–9 and `_`, not starting with a digit.
pub fn valid_field_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.as_bytes()[0].is_ascii_digit()
        && n.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Filter {
    /// Compiles the filter settings (parsed and checked at load).
    pub fn new(cfg: &JournaldConfig) -> Filter {
        let bytes = |s: &String| s.as_bytes().to_vec();
        Filter {
            units: cfg.units.iter().map(bytes).collect(),
            identifiers: cfg.identifiers.iter().map(bytes).collect(),
            max_priority: cfg.priority.0,
            matches: cfg
                .matches
                .iter()
                .map(|m| m.0.iter().map(|(k, v)| (bytes(&k.0), bytes(v))).collect())
                .collect(),
            keep: cfg.fields.iter().map(|k| bytes(&k.0)).collect(),
        }
    }

    /// True if an entry with these fields (`NAME=value` data) is chained.
    ///
    /// All set conditions must hold: its `_SYSTEMD_UNIT` (or `UNIT`, which
    /// systemd sets on its own messages about a unit) is one of `units`; its
    /// `SYSLOG_IDENTIFIER` one of `identifiers`; its `PRIORITY` at most
    /// `priority` (entries without one pass); and one of the `matches`
    /// expressions holds (each term of it).
    pub fn wants(&self, fields: &[(&[u8], &[u8])]) -> bool {
        fn values<'a>(
            fields: &'a [(&'a [u8], &'a [u8])],
            name: &'a [u8],
        ) -> impl Iterator<Item = &'a [u8]> + 'a {
            fields
                .iter()
                .filter(move |(n, _)| *n == name)
                .map(|(_, v)| *v)
        }
        let get = |name: &'static [u8]| values(fields, name);
        if !self.units.is_empty()
            && !get(b"_SYSTEMD_UNIT")
                .chain(get(b"UNIT"))
                .any(|v| self.units.iter().any(|u| u == v))
        {
            return false;
        }
        if !self.identifiers.is_empty()
            && !get(b"SYSLOG_IDENTIFIER").any(|v| self.identifiers.iter().any(|u| u == v))
        {
            return false;
        }
        if self.max_priority < 7 {
            if let Some(p) = get(b"PRIORITY").next() {
                let p = std::str::from_utf8(p)
                    .ok()
                    .and_then(|s| s.parse::<u8>().ok());
                if p.is_some_and(|p| p > self.max_priority) {
                    return false;
                }
            }
        }
        if !self.matches.is_empty()
            && !self.matches.iter().any(|all| {
                all.iter()
                    .all(|(k, v)| values(fields, k).any(|x| x == v.as_slice()))
            })
        {
            return false;
        }
        true
    }

    /// True if a field is kept in the chained entry.
    pub fn keeps(&self, name: &[u8]) -> bool {
        self.keep.is_empty() || self.keep.iter().any(|k| k == name)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{MatchExpr, Priority};
    use super::*;

    fn cfg(f: impl FnOnce(&mut JournaldConfig)) -> Filter {
        let mut c = JournaldConfig::default();
        f(&mut c);
        Filter::new(&c)
    }

    const SSHD: &[(&[u8], &[u8])] = &[
        (b"_SYSTEMD_UNIT", b"ssh.service"),
        (b"SYSLOG_IDENTIFIER", b"sshd"),
        (b"PRIORITY", b"6"),
        (b"MESSAGE", b"Accepted publickey"),
    ];
    const KERNEL: &[(&[u8], &[u8])] = &[
        (b"_TRANSPORT", b"kernel"),
        (b"PRIORITY", b"3"),
        (b"MESSAGE", b"oops"),
    ];

    #[test]
    fn default_takes_everything() {
        let f = cfg(|_| {});
        assert!(f.wants(SSHD) && f.wants(KERNEL) && f.wants(&[]));
        assert!(f.keeps(b"ANYTHING"));
    }

    #[test]
    fn units_identifiers_priority_and_matches() {
        let f = cfg(|c| c.units = vec!["ssh.service".into()]);
        assert!(f.wants(SSHD) && !f.wants(KERNEL));
        let f = cfg(|c| c.identifiers = vec!["sshd".into(), "sudo".into()]);
        assert!(f.wants(SSHD) && !f.wants(KERNEL));
        let f = cfg(|c| c.priority = "err".parse().unwrap());
        assert!(!f.wants(SSHD) && f.wants(KERNEL));
        assert!(f.wants(&[(b"MESSAGE", b"no priority")]));
        let f = cfg(|c| c.priority = Priority(6));
        assert!(f.wants(SSHD));
        let f = cfg(|c| {
            c.matches = ["_TRANSPORT=kernel", "SYSLOG_IDENTIFIER=sshd PRIORITY=3"]
                .map(|m| m.parse::<MatchExpr>().unwrap())
                .to_vec()
        });
        assert!(f.wants(KERNEL), "first expression");
        assert!(!f.wants(SSHD), "second expression needs both terms");
        let f = cfg(|c| c.fields = vec!["MESSAGE".parse().unwrap()]);
        assert!(f.keeps(b"MESSAGE") && !f.keeps(b"_PID"));
    }

    #[test]
    fn bad_settings_are_named() {
        for (text, key, why) in [
            ("matches = [\"_COMM\"]", "journald.matches", "FIELD=VALUE"),
            (
                "matches = [\"comm=x\"]",
                "journald.matches",
                "not a journal field name",
            ),
            ("matches = [\" \"]", "journald.matches", "empty"),
            ("priority = \"loud\"", "journald.priority", "\"loud\""),
            (
                "fields = [\"message\"]",
                "journald.fields",
                "not a journal field name",
            ),
            (
                "journal = \"namespace:\"",
                "journald.journal",
                "bad namespace",
            ),
            ("start = \"yesterday\"", "journald.start", "RFC 3339"),
        ] {
            let e = toml::from_str::<JournaldConfig>(text)
                .expect_err(text)
                .to_string();
            assert!(
                e.contains(key) && e.contains(why) && e.contains("line 1"),
                "{text}: {e}"
            );
        }
    }
}
