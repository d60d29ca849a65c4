//! `logseal pki`: a small certificate authority for agents and collectors (rcgen).
//!
//! ```text
//! DIR/ca.crt  DIR/ca.key (0600)     the CA (ECDSA P-256)
//! DIR/NAME.crt  DIR/NAME.key (0600) one per issued host; SAN = NAME (+ extra names)
//! DIR/crl.pem                       the CRL, re-signed at every revocation
//! DIR/index.json                    what was issued: serials, roles, validity, revocations
//! ```
//!
//! Validity is always set explicitly (rcgen's default runs to the year 4096):
//! the CA 10 years, a host certificate 397 days (the longest the CA/Browser
//! forum allows, a sensible ceiling for machines too). Nothing is overwritten:
//! re-issuing a name means revoking it and choosing another, or deleting the
//! files on purpose.

use crate::storage::fsutil;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Default validity of the CA.
pub const CA_DAYS: u32 = 3650;
/// Default validity of a host certificate.
pub const HOST_DAYS: u32 = 397;
/// A CRL is valid this long; `pki revoke` (or `pki crl`) re-signs it.
pub const CRL_DAYS: i64 = 30;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A client certificate: an agent shipping to collectors.
    Agent,
    /// A collector: a server certificate, and a client one for witnessing peers.
    Collector,
}

#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    name: String,
    role: Role,
    serial: String,
    not_before: i64,
    not_after: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    ca_name: String,
    crl_number: u64,
    issued: Vec<Issued>,
}

/// Paths of a CA directory.
pub struct Paths {
    /// The directory.
    pub dir: PathBuf,
}

impl Paths {
    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The CRL.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    fn index(&self) -> PathBuf {
        self.dir.join("index.json")
    }
    /// Certificate of `name`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    /// Private key of `name`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

/// Errors of `logseal pki`.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file that would be written exists.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// No CA in the directory.
    #[error("no CA in {0} (run `logseal pki init --dir {0}` first)")]
    NoCa(PathBuf),
    /// A host name that cannot be a certificate name.
    #[error("{0:?} is not a usable host name: lower-case letters, digits, '-' and '.', as in DNS, no trailing dot")]
    BadName(String),
    /// `revoke` of a name never issued.
    #[error("no certificate was issued for {0:?} by this CA")]
    NotIssued(String),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A damaged index.
    #[error("{path}: {reason}")]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse_existing(paths: &[PathBuf]) -> Result<(), PkiError> {
    for p in paths {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    Ok(())
}

/// Checks that `name` is a DNS-style host name (it becomes the certificate's SAN
/// and a file name).
pub fn check_name(name: &str) -> Result<(), PkiError> {
    crate::chain::hostname::check(name).map_err(|_| PkiError::BadName(name.to_string()))
}

fn ca_params(ca_name: &str, not_before: OffsetDateTime, days: u32) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, ca_name);
    p.distinguished_name
        .push(DnType::OrganizationName, "logseal");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.not_before = not_before;
    p.not_after = not_before + time::Duration::days(i64::from(days));
    p
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    let rng = ring::rand::SystemRandom::new();
    let _ = ring::rand::SecureRandom::fill(&rng, &mut b);
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // and 16 bytes long
    SerialNumber::from_slice(&b)
}

fn read_index(p: &Paths) -> Result<Index, PkiError> {
    let path = p.index();
    let text = fsutil::read_bounded_text(&path, 64 << 20).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PkiError::NoCa(p.dir.clone())
        } else {
            PkiError::Io {
                path: path.clone(),
                source: e,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| PkiError::BadIndex {
        path,
        reason: e.to_string(),
    })
}

fn write_index(p: &Paths, idx: &Index) -> Result<(), PkiError> {
    let text = serde_json::to_string_pretty(idx).unwrap_or_default();
    fsutil::write_atomic(&p.index(), text.as_bytes(), "pki-index").map_err(io_err(&p.index()))
}

fn load_ca(p: &Paths) -> Result<(Index, KeyPair), PkiError> {
    let idx = read_index(p)?;
    let key_pem = fsutil::read_bounded_text(&p.ca_key(), 64 << 10).map_err(io_err(&p.ca_key()))?;
    let key = KeyPair::from_pem(&key_pem)?;
    Ok((idx, key))
}

/// `pki init`: creates the CA in `dir`. Returns the CA certificate's path.
pub fn init(dir: &Path, ca_name: &str, days: u32) -> Result<PathBuf, PkiError> {
    let p = Paths {
        dir: dir.to_path_buf(),
    };
    refuse_existing(&[p.ca_key(), p.ca_cert(), p.index()])?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    let key = KeyPair::generate()?;
    let now = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let mut params = ca_params(ca_name, now, days);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
    fsutil::write_secret(&p.ca_key(), key_pem.as_bytes(), "pki-ca-key")
        .map_err(io_err(&p.ca_key()))?;
    fsutil::write_atomic(&p.ca_cert(), cert.pem().as_bytes(), "pki-ca-cert")
        .map_err(io_err(&p.ca_cert()))?;
    let mut idx = Index {
        ca_name: ca_name.to_string(),
        crl_number: 0,
        issued: Vec::new(),
    };
    write_crl(&p, &mut idx, &key)?;
    write_index(&p, &idx)?;
    Ok(p.ca_cert())
}

/// What `issue` wrote.
pub struct IssuedFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (0600).
    pub key: PathBuf,
    /// Last day of validity (RFC 3339).
    pub not_after: String,
}

/// `pki issue`: a key and certificate for `name`, with `name` (and `extra`
/// names: DNS names or IP addresses) as subject alternative names.
pub fn issue(
    dir: &Path,
    name: &str,
    role: Role,
    days: u32,
    extra: &[String],
) -> Result<IssuedFiles, PkiError> {
    issue_at(dir, name, role, OffsetDateTime::now_utc(), days, extra)
}

/// Like [`issue`], with an explicit start of validity (tests use it to make
/// expired certificates).
pub fn issue_at(
    dir: &Path,
    name: &str,
    role: Role,
    not_before: OffsetDateTime,
    days: u32,
    extra: &[String],
) -> Result<IssuedFiles, PkiError> {
    check_name(name)?;
    let p = Paths {
        dir: dir.to_path_buf(),
    };
    let (mut idx, ca_key) = load_ca(&p)?;
    refuse_existing(&[p.cert(name), p.key(name)])?;
    let issuer_params = ca_params(&idx.ca_name, not_before, 1);
    let issuer = Issuer::from_params(&issuer_params, &ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::DnsName(
        name.try_into()
            .map_err(|_| PkiError::BadName(name.into()))?,
    )];
    for e in extra {
        if let Ok(ip) = e.parse::<std::net::IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        } else {
            check_name(e)?;
            params.subject_alt_names.push(SanType::DnsName(
                e.as_str()
                    .try_into()
                    .map_err(|_| PkiError::BadName(e.clone()))?,
            ));
        }
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // A collector is a client too when it witnesses a peer collector.
    params.extended_key_usages = match role {
        Role::Agent => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Role::Collector => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial();
    params.serial_number = Some(serial.clone());
    let not_before = not_before - time::Duration::minutes(5);
    params.not_before = not_before;
    params.not_after = not_before + time::Duration::days(i64::from(days));
    let cert = params.signed_by(&key, &issuer)?;

    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
    fsutil::write_secret(&p.key(name), key_pem.as_bytes(), "pki-key")
        .map_err(io_err(&p.key(name)))?;
    fsutil::write_atomic(&p.cert(name), cert.pem().as_bytes(), "pki-cert")
        .map_err(io_err(&p.cert(name)))?;
    idx.issued.push(Issued {
        name: name.to_string(),
        role,
        serial: crate::chain::hex::encode(&serial.to_bytes()),
        not_before: not_before.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
        revoked: None,
    });
    write_index(&p, &idx)?;
    Ok(IssuedFiles {
        cert: p.cert(name),
        key: p.key(name),
        not_after: crate::util::timefmt::rfc3339(params.not_after.unix_timestamp() * 1_000_000_000),
    })
}

/// `pki revoke`: adds every certificate issued for `name` to the CRL and
/// re-signs it. Returns the number of certificates newly revoked.
pub fn revoke(dir: &Path, name: &str) -> Result<usize, PkiError> {
    let p = Paths {
        dir: dir.to_path_buf(),
    };
    let (mut idx, ca_key) = load_ca(&p)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut n = 0;
    let mut found = false;
    for i in idx.issued.iter_mut().filter(|i| i.name == name) {
        found = true;
        if i.revoked.is_none() {
            i.revoked = Some(now);
            n += 1;
        }
    }
    if !found {
        return Err(PkiError::NotIssued(name.to_string()));
    }
    write_crl(&p, &mut idx, &ca_key)?;
    write_index(&p, &idx)?;
    Ok(n)
}

/// `pki crl`: re-signs the CRL (it expires after [`CRL_DAYS`]).
pub fn refresh_crl(dir: &Path) -> Result<PathBuf, PkiError> {
    let p = Paths {
        dir: dir.to_path_buf(),
    };
    let (mut idx, ca_key) = load_ca(&p)?;
    write_crl(&p, &mut idx, &ca_key)?;
    write_index(&p, &idx)?;
    Ok(p.crl())
}

fn write_crl(p: &Paths, idx: &mut Index, ca_key: &KeyPair) -> Result<(), PkiError> {
    let now = OffsetDateTime::now_utc();
    let issuer_params = ca_params(&idx.ca_name, now, 1);
    let issuer = Issuer::from_params(&issuer_params, ca_key);
    idx.crl_number += 1;
    let mut revoked = Vec::new();
    for i in &idx.issued {
        if let Some(t) = i.revoked {
            let serial =
                crate::chain::hex::decode(&i.serial).ok_or_else(|| PkiError::BadIndex {
                    path: p.index(),
                    reason: format!("bad serial for {}", i.name),
                })?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(t)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            });
        }
    }
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(5),
        next_update: now + time::Duration::days(CRL_DAYS),
        crl_number: SerialNumber::from(idx.crl_number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    fsutil::write_atomic(&p.crl(), crl.pem()?.as_bytes(), "pki-crl").map_err(io_err(&p.crl()))
}

/// The subcommands of `logseal pki`.
#[derive(clap::Subcommand, Debug)]
pub enum PkiCmd {
    /// Create a CA (ca.crt, ca.key, an empty crl.pem) in a new directory.
    Init {
        /// The CA directory (created, mode 0700).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "logseal CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
    },
    /// Issue a key and certificate for a host (NAME.crt, NAME.key).
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Host name: the certificate's subject alternative name. For an agent it
        /// must be the host name its chain carries.
        #[arg(long)]
        name: String,
        /// agent (client certificate) or collector (server and client certificate: it witnesses peers).
        #[arg(long, value_enum)]
        role: Role,
        /// Further names the certificate is valid for (DNS names or IP
        /// addresses, e.g. the address agents dial); repeatable.
        #[arg(long = "san", value_name = "NAME|IP")]
        san: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = HOST_DAYS)]
        days: u32,
    },
    /// Revoke every certificate issued for a host and re-sign crl.pem.
    Revoke {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Host name.
        #[arg(long)]
        name: String,
    },
    /// Re-sign crl.pem (it is valid for 30 days).
    Crl {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs a `logseal pki` subcommand and says what it wrote.
pub fn run(cmd: PkiCmd) -> anyhow::Result<()> {
    match cmd {
        PkiCmd::Init { dir, name, days } => {
            let ca = init(&dir, &name, days)?;
            println!("CA certificate: {}", ca.display());
            println!("CRL:            {}", dir.join("crl.pem").display());
            println!("keep {} private", dir.join("ca.key").display());
        }
        PkiCmd::Issue {
            dir,
            name,
            role,
            san,
            days,
        } => {
            let f = issue(&dir, &name, role, days, &san)?;
            println!("certificate: {}", f.cert.display());
            println!("key:         {} (mode 0600)", f.key.display());
            println!("valid until: {}", f.not_after);
        }
        PkiCmd::Revoke { dir, name } => {
            let n = revoke(&dir, &name)?;
            println!(
                "revoked {n} certificate(s) of {name}; CRL: {}",
                dir.join("crl.pem").display()
            );
        }
        PkiCmd::Crl { dir } => {
            println!("CRL: {}", refresh_crl(&dir)?.display());
        }
    }
    Ok(())
}
