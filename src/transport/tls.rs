//! TLS for shipping: TLS 1.3 only, rustls with the ring provider, certificates
//! on both sides.

use crate::ingest::tls::load_certs;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(Arc::new(roots))
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The agent's client configuration: trusts `ca` for collectors, presents `cert`/`key`.
pub fn client_config(ca: &Path, cert: &Path, key_path: &Path) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider.clone())
        .build()
        .map_err(|e| format!("CA {}: {e}", ca.display()))?;
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(load_certs(cert)?, key(key_path)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key_path.display()))?;
    Ok(Arc::new(cfg))
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
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut b = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone());
    if let Some(crls) = crls {
        b = b.with_crls(crls.ders.clone());
    }
    let verifier = b
        .build()
        .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, key(key_path)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key_path.display()))?;
    Ok(Arc::new(cfg))
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
