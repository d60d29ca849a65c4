//! Trust anchors: which genesis key each host's chains must start from.
//!
//! One format everywhere — written by `logseal agent --print-genesis`, read by
//! `logseal verify --trust-file` and by the collector's `enrolled` file:
//!
//! ```text
//! # comment
//! HOST KEY
//! ```
//!
//! `HOST` is the host name the Genesis record names; `KEY` is its 32-byte
//! Ed25519 genesis public key as 64 hex digits, or (as older enrolled files
//! have it) its fingerprint `SHA256:` + 32 hex digits. A host may have several
//! lines (one per chain it started). A chain is anchored only by a line of its
//! own host: a key listed for another host does not count.

use super::hash;
use std::collections::HashMap;

/// Longest trust file read, in bytes (a fleet of 100 000 hosts fits).
pub const MAX_TRUST_FILE: u64 = 16 << 20;

/// How a genesis key is named in a trust file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRef {
    Key([u8; 32]),
    Fingerprint(String),
}

/// The set of trusted (host, genesis key) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    by_host: HashMap<String, Vec<KeyRef>>,
}

/// A line of a trust file that is not `HOST KEY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason} (expected `HOST KEY`: a host name and its genesis key as 64 hex digits, as `logseal agent --print-genesis` prints)")]
pub struct TrustParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: AnchorError,
}

/// Why a trust anchor (`HOST KEY`, or `HOST=KEY` on the command line) was
/// refused; each shows the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// A key without its host.
    #[error("{0:?} names no host: a trust anchor is bound to the host its Genesis names")]
    NoHost(String),
    /// Not two fields.
    #[error("{0:?} is not two fields")]
    Fields(String),
    /// The host is not a host name.
    #[error(transparent)]
    Host(#[from] super::hostname::HostNameError),
    /// `SHA256:` without 32 hex digits after it.
    #[error("{0:?} is not a fingerprint (SHA256: and 32 hex digits)")]
    Fingerprint(String),
    /// Not hex.
    #[error("{0:?} is not hex")]
    Hex(String),
    /// Hex of another length than a key's.
    #[error("{0:?}: a genesis key is 32 bytes (64 hex digits)")]
    KeyLength(String),
}

impl TrustAnchors {
    /// No anchors: genesis keys are taken from the data (and reported so).
    pub fn none() -> TrustAnchors {
        TrustAnchors::default()
    }

    /// True if no anchor was given.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// Number of (host, key) pairs.
    pub fn len(&self) -> usize {
        self.by_host.values().map(Vec::len).sum()
    }

    /// Parses a trust file's text.
    pub fn parse(text: &str) -> Result<TrustAnchors, TrustParseError> {
        let mut t = TrustAnchors::default();
        t.extend_from(text)?;
        Ok(t)
    }

    /// Adds the anchors of a trust file's text.
    pub fn extend_from(&mut self, text: &str) -> Result<(), TrustParseError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            self.add_pair(line).map_err(|reason| TrustParseError {
                line: i + 1,
                reason,
            })?;
        }
        Ok(())
    }

    /// Adds one `HOST=KEY` pair (`--trust-key`).
    pub fn add_arg(&mut self, arg: &str) -> Result<(), AnchorError> {
        match arg.split_once('=') {
            Some((host, key)) if !host.trim().is_empty() => {
                self.add_pair(&format!("{} {}", host.trim(), key.trim()))
            }
            _ => Err(AnchorError::NoHost(arg.into())),
        }
    }

    /// Adds one `HOST KEY` pair (the text of a trust file line).
    fn add_pair(&mut self, line: &str) -> Result<(), AnchorError> {
        let mut parts = line.split_whitespace();
        let mut next = || parts.find(|s| !s.is_empty());
        let (host, key) = match (next(), next(), next()) {
            (Some(h), Some(k), None) => (h, k),
            (Some(_), None, None) => return Err(AnchorError::NoHost(line.into())),
            _ => return Err(AnchorError::Fields(line.into())),
        };
        super::hostname::check(host)?;
        let key = parse_key(key)?;
        self.by_host.entry(host.to_string()).or_default().push(key);
        Ok(())
    }

    /// True if `pk0` is a trusted genesis key of `host`.
    pub fn trusts(&self, host: &str, pk0: &[u8; 32]) -> bool {
        let Some(keys) = self.by_host.get(host) else {
            return false;
        };
        let fp = hash::fingerprint(pk0);
        keys.iter().any(|k| match k {
            KeyRef::Key(k) => k == pk0,
            KeyRef::Fingerprint(f) => *f == fp,
        })
    }

    /// True if `host` has at least one anchor.
    pub fn has_host(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }
}

fn parse_key(s: &str) -> Result<KeyRef, AnchorError> {
    if let Some(hexpart) = s.strip_prefix("SHA256:") {
        if hexpart.len() == 32 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(KeyRef::Fingerprint(format!(
                "SHA256:{}",
                hexpart.to_ascii_lowercase()
            )));
        }
        return Err(AnchorError::Fingerprint(s.into()));
    }
    let b = crate::hex::decode(s).ok_or_else(|| AnchorError::Hex(s.into()))?;
    let k: [u8; 32] = b.try_into().map_err(|_| AnchorError::KeyLength(s.into()))?;
    Ok(KeyRef::Key(k))
}

/// The trust-file line for a chain's Genesis.
pub fn line(host: &str, pk0: &[u8; 32]) -> String {
    format!("{host} {}", crate::hex::encode(pk0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bound_to_hosts() {
        let k = [7u8; 32];
        let t = TrustAnchors::parse(&format!("# fleet\n{}\n\n", line("web-1", &k))).unwrap();
        assert!(t.trusts("web-1", &k));
        assert!(!t.trusts("web-2", &k));
        assert!(!t.trusts("web-1", &[8; 32]));
        let fp = hash::fingerprint(&k);
        let t = TrustAnchors::parse(&format!("web-1 {fp}")).unwrap();
        assert!(t.trusts("web-1", &k));
        let mut t = TrustAnchors::none();
        t.add_arg(&format!("web-1={}", crate::hex::encode(&k)))
            .unwrap();
        assert!(t.trusts("web-1", &k));
        assert!(t.add_arg(&crate::hex::encode(&k)).is_err());
        // In a file, `=` is not a separator.
        assert!(TrustAnchors::parse(&format!("web-1={}", crate::hex::encode(&k))).is_err());
    }

    #[test]
    fn refuses_lines_without_a_host() {
        let e = TrustAnchors::parse(&format!("\n{}\n", crate::hex::encode(&[1; 32]))).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(e.reason, AnchorError::NoHost(_)), "{e}");
        assert!(TrustAnchors::parse("h 1234").is_err());
        assert!(TrustAnchors::parse("h SHA256:zz").is_err());
        assert!(TrustAnchors::parse("h k extra").is_err());
    }
}
