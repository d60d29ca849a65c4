//! The TLS input (RFC 5425): a rustls client and rsyslog (gtls, mutual TLS)
//! as senders; wrong CA, missing client certificate and garbage are refused at
//! the handshake and nothing from them is chained. rsyslog over plain TCP too.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn start_with_config(dir: &Path, inputs: &str) -> (Agent, std::path::PathBuf) {
    let state = dir.join("state");
    let cfg = dir.join("agent.toml");
    let errlog = dir.join("agent.log");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nhost = \"tls-test\"\n{inputs}",
            state.display()
        ),
    )
    .unwrap();
    let want = inputs.matches("[[input]]").count();
    (
        Agent::start_config(&cfg, &state, Some(&errlog), want),
        errlog,
    )
}

fn client(
    pki: &pki::TestPki,
    cert: Option<(&Path, &Path)>,
    port: &str,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(c).unwrap()],
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let sock = TcpStream::connect(format!("127.0.0.1:{port}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

fn send_numbered(s: &mut impl Write, tag: &str, n: u64) -> std::io::Result<()> {
    for i in 1..=n {
        let m = format!("<13>1 2026-11-28T12:00:00Z h app - - - msg-{tag}-{i} over tls");
        s.write_all(format!("{} {m}", m.len()).as_bytes())?;
    }
    s.flush()
}

#[test]
fn tls_input_with_client_certificates() {
    let d = TempDir::new("tls");
    let pki = pki::make(&d.path().join("pki"));
    let (a, errlog) = start_with_config(
        d.path(),
        &format!(
            "[[input]]\ntype = \"tls\"\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ),
    );
    let port = a.port("tls");

    // A valid client certificate: every message chained.
    let mut s = client(&pki, Some((&pki.client_cert, &pki.client_key)), &port).unwrap();
    send_numbered(&mut s, "good", 1000).unwrap();
    // Close gracefully: close_notify, then read until the server closes (so that
    // unread session tickets do not turn our close into a reset).
    s.conn.send_close_notify();
    let _ = s.flush();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    drop(s);

    // A certificate from another CA, and none at all: refused at the handshake.
    for (tag, cert) in [
        (
            "rogue",
            Some((pki.rogue_cert.as_path(), pki.rogue_key.as_path())),
        ),
        ("nocert", None),
    ] {
        let mut s = client(&pki, cert, &port).unwrap();
        let _ = send_numbered(&mut s, tag, 10);
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf);
        assert!(
            !matches!(r, Ok(n) if n > 0),
            "{tag}: the server answered with data"
        );
    }
    // Plain text on the TLS port.
    let mut raw = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let _ = raw.write_all(b"<13>plain text is not TLS\n");
    drop(raw);

    let deadline = Instant::now() + Duration::from_secs(30);
    while numbers(&events(&a.state), "good").len() < 1000 {
        assert!(
            Instant::now() < deadline,
            "not all chained: {}",
            std::fs::read_to_string(&errlog).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let state = a.state.clone();
    a.stop();
    let evs = events(&state);
    assert_exactly(&evs, "good", 1000);
    assert!(numbers(&evs, "rogue").is_empty() && numbers(&evs, "nocert").is_empty());
    assert!(!evs.iter().any(|(_, m)| m.contains("plain text")));
    assert!(evs
        .iter()
        .all(|(p, _)| p.contains("client certificate verified")));
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(log.matches("TLS handshake refused").count() >= 3, "{log}");
    assert_intact(&state);
}

/// `packaging/examples/FILE` with each (from, to) replaced (each must occur:
/// a snippet that changed fails here rather than testing something else).
fn example(file: &str, edits: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/examples")
        .join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{file} no longer holds {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// Sends `msg-TAG-i` for i in 1..=n with `logger -u sock` (through a relay
/// such as rsyslog) and waits until the agent in `state` chained them all;
/// `log` tells why if not.
fn forward_through(
    sock: &Path,
    dir: &Path,
    state: &Path,
    tag: &str,
    n: u64,
    relay: &str,
    log: impl Fn() -> String,
) {
    let text: String = (1..=n)
        .map(|i| format!("msg-{tag}-{i} via {relay}\n"))
        .collect();
    let f = dir.join(format!("msgs-{tag}.txt"));
    std::fs::write(&f, text).unwrap();
    let st = Command::new("logger")
        .arg("-u")
        .arg(sock)
        .args(["-t", "app", "-f"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while (numbers(&events(state), tag).len() as u64) < n {
        assert!(
            Instant::now() < deadline,
            "{relay} forwarded only {} of {n}: {}",
            numbers(&events(state), tag).len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn through_rsyslog(tag: &str, tls: bool) {
    let d = TempDir::new("rsyslog");
    let pki = pki::make(&d.path().join("pki"));
    let input = if tls {
        format!(
            "[[input]]\ntype = \"tls\"\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        )
    } else {
        "[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n".to_string()
    };
    let (a, _) = start_with_config(d.path(), &input);
    let port = a.port(if tls { "tls" } else { "tcp" });
    // The forwarding snippet the package ships, as an operator installs it:
    // only its addresses, port and file names changed for this test.
    let (file, edits): (&str, Vec<(&str, String)>) = if tls {
        (
            "rsyslog-logseal-tls.conf",
            vec![
                ("/etc/logseal/pki/ca.crt", pki.ca.display().to_string()),
                (
                    "/etc/logseal/pki/rsyslog.crt",
                    pki.client_cert.display().to_string(),
                ),
                (
                    "/etc/logseal/pki/rsyslog.key",
                    pki.client_key.display().to_string(),
                ),
                ("target=\"logs.example.org\"", "target=\"127.0.0.1\"".into()),
                (
                    "PermittedPeers=\"logs.example.org\"",
                    "PermittedPeers=\"localhost\"".into(),
                ),
                ("port=\"6515\"", format!("port=\"{port}\"")),
            ],
        )
    } else {
        (
            "rsyslog-logseal-tcp.conf",
            vec![("port=\"5514\"", format!("port=\"{port}\""))],
        )
    };
    let action = example(file, &edits);
    let (rs, sock) = rsyslog(&d.path().join("rsyslog"), &action, "");
    let n = 500;
    forward_through(&sock, d.path(), &a.state, tag, n, "rsyslog", String::new);
    drop(rs);
    let state = a.state.clone();
    a.stop();
    let evs = events(&state);
    // rsyslog may reconnect under load: order holds within each connection.
    assert_exactly_per_connection(&evs, tag, n);
    let m = &evs
        .iter()
        .find(|(_, m)| m.contains(&format!("msg-{tag}-1 ")))
        .unwrap()
        .1;
    assert!(
        m.starts_with("<13>1 "),
        "RFC 5424 from rsyslog, kept verbatim: {m}"
    );
    assert_intact(&state);
}

#[test]
fn rsyslog_forwards_over_mutual_tls() {
    through_rsyslog("rstls", true);
}

#[test]
fn rsyslog_forwards_over_tcp_octet_counted() {
    through_rsyslog("rstcp", false);
}

#[test]
fn syslog_ng_forwards_with_the_shipped_snippet() {
    let root = syslog_ng_root();
    let d = TempDir::new("syslog-ng-fwd");
    let (a, _) = start_with_config(
        d.path(),
        "[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let port = a.port("tcp");
    let dir = d.path().join("syslog-ng");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("log.sock");
    let conf = dir.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            "@version: 3.38\noptions {{ use-dns(no); use-fqdn(no); stats-freq(0); }};\n\
             source s_src {{ unix-dgram(\"{}\"); }};\n{}",
            sock.display(),
            example(
                "syslog-ng-logseal.conf",
                &[("port(5514)", format!("port({port})"))]
            )
        ),
    )
    .unwrap();
    let mut child = Command::new(root.join("usr/sbin/syslog-ng"))
        .args(["-F", "--no-caps", "-f"])
        .arg(&conf)
        .arg("-R")
        .arg(dir.join("persist"))
        .arg("-p")
        .arg(dir.join("pid"))
        .arg("-c")
        .arg(dir.join("ctl"))
        .env("SYSLOGNG_PREFIX", root.join("usr"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "syslog-ng did not start: {}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = 300;
    forward_through(&sock, d.path(), &a.state, "sng", n, "syslog-ng", || {
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    });
    let _ = child.kill();
    let _ = child.wait();
    let state = a.state.clone();
    a.stop();
    let evs = events(&state);
    assert_exactly_per_connection(&evs, "sng", n);
    // RFC 5424, octet-counted: each message chained without its length prefix.
    let m = &evs
        .iter()
        .find(|(_, m)| m.contains("msg-sng-1 "))
        .unwrap()
        .1;
    assert!(
        m.starts_with("<13>1 "),
        "RFC 5424 from syslog-ng, kept verbatim: {m}"
    );
    assert_intact(&state);
}
