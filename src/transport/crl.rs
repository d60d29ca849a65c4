//! Certificate revocation lists, checked before they are used: a CRL file that
//! cannot be read, holds no CRL, is not signed by the client CA, or is older
//! than the one already loaded is an error, never "nothing is revoked".
//!
//! rustls applies the lists at each handshake; this module decides whether a
//! file may become the lists it applies, and answers "is this certificate
//! revoked?" for sessions opened before the list changed. Parsing and the
//! signature check are x509-parser's (signatures through `ring`).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Largest CRL file read (a CRL of a million entries is ~40 MB).
pub const MAX_CRL_FILE: u64 = 64 << 20;

/// Why a CRL file (or the floor a store keeps) was refused; each names the
/// file and the list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// Unreadable.
    #[error("CRL {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Not PEM.
    #[error("CRL {path}: not a PEM file of CRLs: {detail}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        detail: String,
    },
    /// No CRL in it.
    #[error(
        "CRL {path}: holds no CRL (an empty or garbled file would revoke nothing; \
         write the CRL `logseal pki` or your CA issued)"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A client CA certificate that does not parse.
    #[error("client CA certificate: {0}")]
    Ca(String),
    /// One list of the file is refused.
    #[error("CRL {n} in {path}: {problem}")]
    List {
        /// Its position in the file, from 1.
        n: usize,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The floor kept in the store does not parse.
    #[error("{0}")]
    Floor(String),
    /// The new file would roll the lists in use back.
    #[error("{0}")]
    Rollback(String),
}

/// The CRLs of one file, checked against the client CA.
#[derive(Debug, Clone)]
pub struct Crls {
    /// The lists as DER, for rustls.
    pub ders: Vec<CertificateRevocationListDer<'static>>,
    /// (issuer DER, serial) of every revoked certificate.
    revoked: HashSet<(Vec<u8>, Vec<u8>)>,
    /// Earliest nextUpdate among the lists, if any says one.
    pub next_update: Option<i64>,
    /// Per issuer (DER of its name): the list's age.
    issues: HashMap<Vec<u8>, Issue>,
}

/// How recent one issuer's list is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Issue {
    /// Its name, for messages.
    name: String,
    /// Its CRL number (big-endian), if it has one.
    number: Option<Vec<u8>>,
    /// Its thisUpdate (seconds since the epoch).
    this_update: i64,
}

impl Crls {
    /// Reads and checks `path` against the CA certificates in `ca`: every PEM
    /// block must be a CRL that parses whole and is signed by one of them.
    pub fn load(path: &Path, ca: &[CertificateDer<'_>]) -> Result<Crls, CrlError> {
        let bytes = crate::storage::fsutil::read_bounded(path, MAX_CRL_FILE).map_err(|cause| {
            CrlError::Read {
                path: path.into(),
                cause,
            }
        })?;
        let ders = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CrlError::NotPem {
                path: path.into(),
                detail: e.to_string(),
            })?;
        if ders.is_empty() {
            return Err(CrlError::Empty { path: path.into() });
        }
        let cas = ca
            .iter()
            .map(|c| {
                X509Certificate::from_der(c.as_ref())
                    .map(|(_, x)| x)
                    .map_err(|e| CrlError::Ca(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Crls {
            ders: Vec::with_capacity(ders.len()),
            revoked: HashSet::new(),
            next_update: None,
            issues: HashMap::new(),
        };
        for (i, der) in ders.into_iter().enumerate() {
            let bad = |problem: String| CrlError::List {
                n: i + 1,
                path: path.into(),
                problem,
            };
            let crl = match CertificateRevocationList::from_der(der.as_ref()) {
                Ok(([], c)) => c,
                Ok(_) => return Err(bad("trailing bytes after the CRL".into())),
                Err(e) => return Err(bad(format!("does not parse: {e}"))),
            };
            let issuer = crl.issuer().as_raw();
            let Some(ca) = cas.iter().find(|c| c.subject().as_raw() == issuer) else {
                return Err(bad(format!(
                    "issued by {}, which is not the client CA ({})",
                    crl.issuer(),
                    cas.iter()
                        .map(|c| c.subject().to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            };
            crl.verify_signature(ca.public_key()).map_err(|e| {
                bad(format!(
                    "its signature does not verify under the client CA's key ({e})"
                ))
            })?;
            // rustls applies the first list of an issuer it finds: a second one
            // (an old list left before the new one) would be believed instead.
            let issue = Issue {
                name: crl.issuer().to_string(),
                number: crl.crl_number().map(|n| n.to_bytes_be()),
                this_update: crl.last_update().timestamp(),
            };
            if out.issues.insert(issuer.to_vec(), issue).is_some() {
                return Err(bad(format!(
                    "a second CRL of {} in one file (give only the latest: \
                     which one is applied would depend on their order)",
                    crl.issuer()
                )));
            }
            if let Some(next) = crl.next_update() {
                let t = next.timestamp();
                out.next_update = Some(out.next_update.map_or(t, |u| u.min(t)));
            }
            for r in crl.iter_revoked_certificates() {
                out.revoked
                    .insert((issuer.to_vec(), r.raw_serial().to_vec()));
            }
            out.ders.push(der);
        }
        Ok(out)
    }

    /// How recent each issuer's list is, as text to keep (the *floor*): a
    /// collector restarted on an older CRL file refuses it too.
    pub fn floor_text(&self) -> String {
        let by_issuer: std::collections::BTreeMap<String, &Issue> = self
            .issues
            .iter()
            .map(|(k, v)| (crate::chain::hex::encode(k), v))
            .collect();
        serde_json::json!({ "crl_floor": by_issuer }).to_string() + "\n"
    }

    /// Reads a floor written by [`Crls::floor_text`]: lists of no certificate,
    /// only their issuers' ages, to be given to [`Crls::may_replace`].
    pub fn from_floor_text(text: &str) -> Result<Crls, CrlError> {
        #[derive(serde::Deserialize)]
        struct Floor {
            crl_floor: HashMap<String, Issue>,
        }
        let f: Floor = serde_json::from_str(text).map_err(|e| CrlError::Floor(e.to_string()))?;
        let mut issues = HashMap::new();
        for (k, v) in f.crl_floor {
            let k = crate::chain::hex::decode(&k)
                .ok_or_else(|| CrlError::Floor(format!("{k:?} is not hex")))?;
            issues.insert(k, v);
        }
        Ok(Crls {
            ders: Vec::new(),
            revoked: HashSet::new(),
            next_update: None,
            issues,
        })
    }

    /// Number of revoked certificates listed.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// True if no certificate is listed (the lists exist, and revoke nothing).
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// True if `cert` (DER) is listed as revoked by its issuer's CRL.
    pub fn revokes(&self, cert: &CertificateDer<'_>) -> bool {
        let Ok((_, c)) = X509Certificate::from_der(cert.as_ref()) else {
            return false;
        };
        self.revoked
            .contains(&(c.issuer().as_raw().to_vec(), c.raw_serial().to_vec()))
    }

    /// May `self` replace `current`? Not if, for any issuer of the lists in
    /// use, the new file has no list, or an older one (a lower CRL number or,
    /// without numbers, an earlier thisUpdate): a CRL rolled back to an
    /// earlier issue would re-admit certificates revoked since.
    pub fn may_replace(&self, current: &Crls) -> Result<(), CrlError> {
        for (issuer, cur) in &current.issues {
            let Some(new) = self.issues.get(issuer) else {
                return Err(CrlError::Rollback(format!(
                    "it holds no CRL of {}, whose CRL is in use: that would re-admit every \
                     certificate it revoked",
                    cur.name
                )));
            };
            if let (Some(n), Some(c)) = (&new.number, &cur.number) {
                if by_value(n) < by_value(c) {
                    return Err(CrlError::Rollback(format!(
                        "its CRL of {} is older than the one in use (CRL number {} < {}): a \
                         rollback would re-admit certificates revoked since",
                        cur.name,
                        crate::chain::hex::encode(n),
                        crate::chain::hex::encode(c)
                    )));
                }
            } else if new.this_update < cur.this_update {
                return Err(CrlError::Rollback(format!(
                    "its CRL of {} is older than the one in use (thisUpdate {} < {}): a \
                     rollback would re-admit certificates revoked since",
                    cur.name,
                    secs(new.this_update),
                    secs(cur.this_update)
                )));
            }
        }
        Ok(())
    }

    /// If the earliest nextUpdate has passed at `now` (seconds): a warning.
    pub fn stale(&self, now: i64) -> Option<String> {
        let next = self.next_update?;
        (next < now).then(|| {
            format!(
                "the CRL's nextUpdate ({}) has passed: the CA should have issued a newer one",
                secs(next)
            )
        })
    }
}

/// A big-endian unsigned number as a key that orders by value.
fn by_value(b: &[u8]) -> (usize, &[u8]) {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    (b.len() - start, &b[start..])
}

fn secs(t: i64) -> String {
    crate::util::timefmt::rfc3339(t.saturating_mul(1_000_000_000))
}
