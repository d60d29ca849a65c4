//! A test PKI made with rcgen: a CA, server and client certificates, and a
//! rogue CA with its own client certificate.
#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// Paths of the PEM files.
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

fn leaf(name: &str, issuer: &Issuer<'_, &KeyPair>, server: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    if server {
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes the PKI into `dir`.
pub fn make(dir: &Path) -> TestPki {
    std::fs::create_dir_all(dir).unwrap();
    let (ca_params, ca_key, ca_pem) = ca("logseal test CA");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let (server_pem, server_key) = leaf("localhost", &issuer, true);
    let (client_pem, client_key) = leaf("client-host", &issuer, false);
    let (rogue_params, rogue_ca_key, _) = ca("rogue CA");
    let rogue_issuer = Issuer::from_params(&rogue_params, &rogue_ca_key);
    let (rogue_pem, rogue_key) = leaf("client-host", &rogue_issuer, false);
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    TestPki {
        ca: w("ca.pem", &ca_pem),
        server_cert: w("server.pem", &server_pem),
        server_key: w("server.key", &server_key),
        client_cert: w("client.pem", &client_pem),
        client_key: w("client.key", &client_key),
        rogue_cert: w("rogue.pem", &rogue_pem),
        rogue_key: w("rogue.key", &rogue_key),
    }
}
