//! Certificates and CRLs that are about to run out: read from the files a
//! process uses, warned about in the log [`WARN_BEFORE`] ahead (a CRL
//! [`CRL_WARN_BEFORE`] ahead; at start, at each reload and once a day), by
//! `logseal status`, and reported in the metrics as
//! `logseal_certificate_expiry_timestamp_seconds{file, what}` (the earliest
//! notAfter in a PEM file: a leaf, its chain or a CA) and
//! `logseal_crl_next_update_timestamp_seconds{file, what}`.

use crate::monitor::families::*;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use std::path::PathBuf;
use std::time::Duration;
use x509_parser::prelude::FromDer;

/// How long before a certificate expires the log and `logseal status` warn.
pub const WARN_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long before a CRL's nextUpdate they warn: less, as `logseal pki crl`
/// signs a CRL for 30 days (a 30-day warning would start with every new one).
pub const CRL_WARN_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);

impl Kind {
    /// How far ahead a deadline of this kind is warned about.
    pub fn warn_before(self) -> Duration {
        match self {
            Kind::Certificate => WARN_BEFORE,
            Kind::Crl => CRL_WARN_BEFORE,
        }
    }
}
/// How often a running process looks again (besides its reloads).
pub const RECHECK: Duration = Duration::from_secs(24 * 3600);
/// Largest PEM file read.
const MAX_PEM: u64 = 1 << 20;

/// What a watched file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Certificates: the earliest notAfter counts.
    Certificate,
    /// CRLs: the earliest nextUpdate counts.
    Crl,
}

/// A file a process depends on, and what the configuration calls it.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The key that names it (`ship.cert`, `tls.crl`, …).
    pub what: String,
    /// Its path.
    pub path: PathBuf,
    /// Certificates or CRLs.
    pub kind: Kind,
}

impl Watched {
    /// A certificate file.
    pub fn cert(what: impl Into<String>, path: impl Into<PathBuf>) -> Watched {
        Watched {
            what: what.into(),
            path: path.into(),
            kind: Kind::Certificate,
        }
    }

    /// A CRL file.
    pub fn crl(what: impl Into<String>, path: impl Into<PathBuf>) -> Watched {
        Watched {
            what: what.into(),
            path: path.into(),
            kind: Kind::Crl,
        }
    }

    /// The earliest notAfter (certificates) or nextUpdate (CRLs) in the file,
    /// seconds since the Unix epoch; None if no CRL says when it is next updated.
    pub fn deadline(&self) -> Result<Option<i64>, DeadlineError> {
        let bad = |problem: String| DeadlineError {
            what: self.what.clone(),
            path: self.path.clone(),
            problem,
        };
        let bytes = crate::storage::fsutil::read_bounded(&self.path, MAX_PEM)
            .map_err(|e| bad(e.to_string()))?;
        let mut earliest: Option<i64> = None;
        let mut seen = 0;
        for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
            let pem = pem.map_err(|e| bad(format!("not PEM: {e}")))?;
            let t = match (self.kind, pem.label.as_str()) {
                (Kind::Certificate, "CERTIFICATE") => {
                    let (_, c) = x509_parser::certificate::X509Certificate::from_der(&pem.contents)
                        .map_err(|e| bad(e.to_string()))?;
                    Some(c.validity().not_after.timestamp())
                }
                (Kind::Crl, "X509 CRL") => {
                    let (_, c) = x509_parser::revocation_list::CertificateRevocationList::from_der(
                        &pem.contents,
                    )
                    .map_err(|e| bad(e.to_string()))?;
                    c.next_update().map(|t| t.timestamp())
                }
                _ => continue,
            };
            seen += 1;
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        if seen == 0 {
            return Err(bad(format!(
                "holds no {}",
                match self.kind {
                    Kind::Certificate => "certificate",
                    Kind::Crl => "CRL",
                }
            )));
        }
        Ok(earliest)
    }
}

/// Why a watched file's deadline could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} {}: {problem}", path.display())]
pub struct DeadlineError {
    /// The setting that names the file.
    pub what: String,
    /// The file.
    pub path: PathBuf,
    /// What is wrong: unreadable, not PEM, no certificate or CRL in it.
    pub problem: String,
}

/// [`warn_expiring`] as of the clock.
pub fn warn_expiring_now(files: &[Watched]) -> usize {
    warn_expiring(files, crate::util::timefmt::now_ns() / 1_000_000_000)
}

/// A running process's timer to look again, every [`RECHECK`] from now.
pub fn recheck() -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK)
}

/// Logs a warning for each file whose deadline is within [`Kind::warn_before`]
/// of `now` (seconds) or past; returns how many.
pub fn warn_expiring(files: &[Watched], now: i64) -> usize {
    let mut n = 0;
    for f in files {
        let Ok(Some(t)) = f.deadline() else { continue };
        let left = t.saturating_sub(now);
        if left > f.kind.warn_before().as_secs() as i64 {
            continue;
        }
        n += 1;
        let when = crate::util::timefmt::rfc3339(t.saturating_mul(1_000_000_000));
        let (verb, fix) = match f.kind {
            Kind::Certificate => (
                "expires",
                "issue a new one (`logseal pki issue`, see `logseal pki --help`) and reload (SIGHUP)",
            ),
            Kind::Crl => (
                "is due to be re-signed",
                "re-sign it (`logseal pki crl`); the collector reads it again within a second",
            ),
        };
        if left <= 0 {
            tracing::error!(file = %f.path.display(), what = f.what, at = when, "{} {verb}: the time has passed; {fix}", f.what);
        } else {
            tracing::warn!(file = %f.path.display(), what = f.what, at = when, days = left / 86400, "{} {verb} in {} days; {fix}", f.what, left / 86400);
        }
    }
    n
}

/// The metrics of the watched files, read at each scrape.
#[derive(Debug)]
pub struct ExpiryMetrics(pub Vec<Watched>);

impl Collector for ExpiryMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = |kind: Kind| {
            self.0
                .iter()
                .filter(|w| w.kind == kind)
                .filter_map(|w| {
                    let t = w.deadline().ok()??;
                    Some((
                        [
                            ("file", w.path.display().to_string()),
                            ("what", w.what.clone()),
                        ],
                        t as f64,
                    ))
                })
                .collect::<Vec<_>>()
        };
        CERTIFICATE_EXPIRY_TIMESTAMP.gauges(&mut enc, rows(Kind::Certificate))?;
        let crls = rows(Kind::Crl);
        if !crls.is_empty() {
            CRL_NEXT_UPDATE_TIMESTAMP.gauges(&mut enc, crls)?;
        }
        Ok(())
    }
}

/// A watched file's deadline, for status files.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Deadline {
    /// The key that names it.
    pub what: String,
    /// Its path.
    pub file: String,
    /// Its earliest notAfter or nextUpdate (RFC 3339), if known.
    pub until: Option<String>,
    /// Why it could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A CRL (its nextUpdate), not a certificate.
    #[serde(default)]
    pub crl: bool,
}

/// The deadlines of `files` now.
pub fn deadlines(files: &[Watched]) -> Vec<Deadline> {
    files
        .iter()
        .map(|w| {
            let d = w.deadline();
            Deadline {
                what: w.what.clone(),
                file: w.path.display().to_string(),
                until: d
                    .as_ref()
                    .ok()
                    .copied()
                    .flatten()
                    .map(|t| crate::util::timefmt::rfc3339(t.saturating_mul(1_000_000_000))),
                error: d.err().map(|e| e.to_string()),
                crl: w.kind == Kind::Crl,
            }
        })
        .collect()
}
