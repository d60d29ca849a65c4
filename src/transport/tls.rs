//! Every rustls configuration logseal makes, with the ring provider:
//! shipping (TLS 1.3 only, certificates on both sides) and the syslog-over-TLS
//! input (RFC 5425: TLS 1.2 and 1.3, a client certificate if a CA is set).

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS configuration could not be made; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA file is not usable as trust roots.
    #[error("{what} {}: {reason}", path.display())]
    Ca {
        /// "CA" (of the peers' servers) or "client CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate and key do not make a usable pair.
    #[error("{} / {}: {source}", cert.display(), key.display())]
    CertKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The provider refused the protocol versions.
    #[error("{0}")]
    Protocol(rustls::Error),
}

fn pem(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Loads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(pem(path))?
        .collect::<Result<_, _>>()
        .map_err(pem(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn roots(what: &'static str, ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|e| TlsError::Ca {
            what,
            path: ca.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(pem(path))
}

fn client_verifier(
    ca: &Path,
    crls: Option<&super::crl::Crls>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut b = WebPkiClientVerifier::builder_with_provider(roots("client CA", ca)?, provider);
    if let Some(crls) = crls {
        b = b.with_crls(crls.ders.clone());
    }
    b.build().map_err(|e| TlsError::Ca {
        what: "client CA",
        path: ca.to_path_buf(),
        reason: e.to_string(),
    })
}

fn cert_key(cert: &Path, key: &Path) -> impl FnOnce(rustls::Error) -> TlsError {
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    move |source| TlsError::CertKey { cert, key, source }
}

/// The rustls server configuration of a syslog TLS input: TLS 1.2 and 1.3,
/// a client certificate from `client_ca` if one is given.
pub fn syslog_server_config(
    cert: &Path,
    key_path: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    // The certificate and key first: what a broken input reports first.
    let (chain, private) = (load_certs(cert)?, key(key_path)?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocol)?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, None, provider)?),
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(chain, private)
        .map_err(cert_key(cert, key_path))?;
    Ok(Arc::new(cfg))
}

/// The agent's client configuration: trusts `ca` for collectors, presents `cert`/`key`.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key_path: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots("CA", ca)?, provider.clone())
        .build()
        .map_err(|e| TlsError::Ca {
            what: "CA",
            path: ca.to_path_buf(),
            reason: e.to_string(),
        })?;
    let cfg = tls13(ClientConfig::builder_with_provider(provider))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(load_certs(cert)?, key(key_path)?);
    Ok(Arc::new(cfg.map_err(cert_key(cert, key_path))?))
}

/// The collector's server configuration: requires a client certificate from
/// `ca`, not revoked by `crls` (checked by [`Crls::load`]).
///
/// [`Crls::load`]: super::crl::Crls::load
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key_path: &Path,
    crls: Option<&super::crl::Crls>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = client_verifier(ca, crls, provider.clone())?;
    let cfg = tls13(ServerConfig::builder_with_provider(provider))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, key(key_path)?);
    Ok(Arc::new(cfg.map_err(cert_key(cert, key_path))?))
}

/// logseal's own sessions (agent to collector): TLS 1.3 only.
fn tls13<S: rustls::ConfigSide>(
    b: rustls::ConfigBuilder<S, rustls::WantsVersions>,
) -> Result<rustls::ConfigBuilder<S, rustls::WantsVerifier>, TlsError> {
    b.with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Protocol)
}

/// True if the (already verified) end-entity certificate is valid for `host`.
pub fn cert_names_host(cert: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}
