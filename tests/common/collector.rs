//! Running `logseal collector` and shipping agents in tests, with a PKI made
//! by `logseal::cmd::pki` (the code behind `logseal pki`).
#![allow(dead_code)]

use super::agent::Agent;
use super::bin;
use logseal::cmd::pki::{self, Role};
use logseal::transport::proto::{self, Code, FrameReader, Msg};
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A CA directory with certificates issued on demand.
pub struct Ca {
    pub dir: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        Ca::named(dir, "test CA")
    }
    /// A CA whose certificates are valid a year (30 days or less would draw
    /// the expiry warnings every process gives 30 days ahead).
    pub fn named(dir: &Path, name: &str) -> Ca {
        pki::init(dir, name, 3650).unwrap();
        pki::issue(
            dir,
            "collector",
            Role::Collector,
            365,
            &["127.0.0.1".into(), "localhost".into()],
        )
        .unwrap();
        Ca {
            dir: dir.to_path_buf(),
        }
    }
    pub fn agent(&self, name: &str) -> (PathBuf, PathBuf) {
        let p = pki::Paths {
            dir: self.dir.clone(),
        };
        if !p.cert(name).exists() {
            pki::issue(&self.dir, name, Role::Agent, 365, &[]).unwrap();
        }
        (p.cert(name), p.key(name))
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
}

pub struct Collector {
    pub child: Child,
    pub addr: String,
    pub store: PathBuf,
    pub log: PathBuf,
    /// The URL of its `metrics URL` line, if it has `[metrics]`.
    pub metrics: Option<String>,
}

impl Collector {
    /// Starts a collector on `listen` (use "127.0.0.1:0" for an ephemeral port)
    /// with its store in `dir/store`; `extra` is appended to the config.
    pub fn start(dir: &Path, ca: &Ca, listen: &str, extra: &str) -> Collector {
        Self::start_env(dir, ca, listen, extra, &[])
    }

    /// [`start`](Self::start) with environment variables set for the collector.
    pub fn start_env(
        dir: &Path,
        ca: &Ca,
        listen: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Collector {
        Self::start_cert(dir, ca, listen, extra, env, "collector")
    }

    /// A collector named `name` (`name =` in its config), with a certificate
    /// of its own for that name (and 127.0.0.1, localhost), issued by `ca`
    /// as `logseal pki issue --role collector` issues it.
    pub fn start_named(dir: &Path, ca: &Ca, name: &str, listen: &str, extra: &str) -> Collector {
        let p = pki::Paths {
            dir: ca.dir.clone(),
        };
        if !p.cert(name).exists() {
            pki::issue(
                &ca.dir,
                name,
                Role::Collector,
                365,
                &["127.0.0.1".into(), "localhost".into()],
            )
            .unwrap();
        }
        let extra = format!("name = \"{name}\"\n{extra}");
        Self::start_cert(dir, ca, listen, &extra, &[], name)
    }

    #[allow(clippy::zombie_processes)] // the Collector's Drop waits for it
    fn start_cert(
        dir: &Path,
        ca: &Ca,
        listen: &str,
        extra: &str,
        env: &[(&str, &str)],
        cert: &str,
    ) -> Collector {
        std::fs::create_dir_all(dir).unwrap();
        let store = dir.join("store");
        let cfg = dir.join("collector.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"{listen}\"\nstore = \"{}\"\nlog_level = \"debug\"\n{extra}\n\
                 [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ncrl = \"{}\"\n",
                store.display(),
                ca.ca().display(),
                ca.dir.join(format!("{cert}.crt")).display(),
                ca.dir.join(format!("{cert}.key")).display(),
                ca.crl().display(),
            ),
        )
        .unwrap();
        let log = dir.join(format!(
            "collector-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(bin())
            .args(["collector", "--config"])
            .arg(&cfg)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut metrics = None;
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(
                n > 0 && Instant::now() < deadline,
                "collector did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if let Some(u) = line.trim().strip_prefix("metrics ") {
                metrics = Some(u.to_string());
            }
            if let Some(a) = line.trim().strip_prefix("listening ") {
                break Collector {
                    child,
                    addr: a.to_string(),
                    store,
                    log,
                    metrics,
                };
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(mut self) -> String {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "collector exit status {st:?}");
        self.log_text()
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an agent config: `inputs` (TOML `[[input]]` tables), shipping to
/// `collectors` with `ca`'s certificate for `host`.
pub fn agent_config(
    dir: &Path,
    ca: &Ca,
    host: &str,
    collectors: &[&str],
    inputs: &str,
    extra: &str,
) -> PathBuf {
    let (cert, key) = ca.agent(host);
    let state = dir.join("state");
    let cfg = dir.join("agent.toml");
    let list: Vec<String> = collectors.iter().map(|c| format!("\"{c}\"")).collect();
    std::fs::write(
        &cfg,
        format!(
            "host = \"{host}\"\nstate_dir = \"{}\"\nlog_level = \"debug\"\n\
             [spool]\nsegment_size = \"256KiB\"\n\
             {inputs}\n\
             [ship]\ncollectors = [{}]\nserver_name = \"collector\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nbackoff_max = \"500ms\"\ndrain_timeout = \"20s\"\n{extra}\n",
            state.display(),
            list.join(", "),
            ca.ca().display(),
            cert.display(),
            key.display(),
        ),
    )
    .unwrap();
    cfg
}

pub const TCP_INPUT: &str = "[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n";

/// Starts an agent from `agent_config` in `dir` with one input.
pub fn start_agent(dir: &Path, cfg: &Path) -> Agent {
    Agent::start_config(cfg, &dir.join("state"), Some(&dir.join("agent.log")), 1)
}

/// Events in a collector store.
pub fn store_events(store: &Path) -> Vec<(String, String)> {
    super::agent::events_in(&store.join("hosts"))
}

/// `logseal verify --json PATH`: (exit code, document).
pub fn verify_json(path: &Path) -> (i32, serde_json::Value) {
    let o = Command::new(bin())
        .args(["verify", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), doc)
}

/// Waits until `cond` holds (30 s at most).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: a small race, only for
/// tests that must start a collector after its agent).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The records of a segment file.
pub fn records(path: &Path) -> Vec<Vec<u8>> {
    use logseal::storage::segment::{Item, SegmentReader};
    let mut r = SegmentReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Frame { payload, .. } = item {
            out.push(payload.to_vec());
        }
    }
    out
}

/// The next message from a collector.
pub fn read_msg<S: std::io::Read>(t: &mut S) -> Result<Msg, String> {
    let mut fr = FrameReader::default();
    let (ty, body) = fr.next(t, 1 << 20).map_err(|e| e.to_string())?;
    Msg::decode(ty, body).map_err(|e| e.to_string())
}

/// Sends `recs` (records of one chain) as batch `id`; the collector's answer.
pub fn send_batch<S: std::io::Read + std::io::Write>(
    t: &mut S,
    id: u64,
    recs: &[Vec<u8>],
) -> Result<Msg, String> {
    let chain = logseal::chain::record::decode_header_only(&recs[0])
        .unwrap()
        .chain_id;
    let mut b = Vec::new();
    proto::begin_batch(&mut b, id, chain);
    for r in recs {
        proto::push_record(&mut b, r);
    }
    proto::finish_batch(&mut b, recs.len() as u32);
    proto::write_frame(t, proto::t::BATCH, &b)
        .and_then(|_| t.flush())
        .map_err(|e| e.to_string())?;
    read_msg(t)
}

/// `GET url` over plain HTTP/1.1 (the metrics endpoint): (status, body).
pub fn http_get(url: &str, headers: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    // HTTP/1.0: the server closes the connection after the body, unchunked.
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n{headers}\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// A scrape of a metrics URL (status 200 asserted).
pub fn scrape(url: &str) -> String {
    let (status, body) = http_get(url, "").unwrap_or_else(|e| panic!("scraping {url}: {e}"));
    assert_eq!(status, 200, "scraping {url}: {body}");
    body
}

/// The value of the sample `name` (with its labels as written, e.g.
/// `logseal_agent_events_total{source="syslog-tcp"}`) in a Prometheus text scrape.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Runs `promtool ARGS` (Debian's `prometheus` package): (success, output).
pub fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's prometheus package (.ci/run does)");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub fn tls_client(ca: &Ca, cert: Option<(&Path, &Path)>, addr: &str) -> std::io::Result<Tls> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls_pki_types::pem::PemObject;
    let cfg = match cert {
        Some((c, k)) => logseal::transport::tls::client_config(&ca.ca(), c, k).unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(ca.ca()).unwrap())
                .unwrap();
            let _ = PrivateKeyDer::from_pem_file(ca.dir.join("collector.key")).unwrap();
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        }
    };
    let conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("collector").unwrap()).unwrap();
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// Hello as `host`; the collector's answer.
pub fn hello<S: std::io::Read + Write>(t: &mut S, host: &str) -> Result<Msg, String> {
    Msg::Hello {
        min_version: proto::VERSION,
        max_version: proto::VERSION,
        host: host.into(),
        software: "test".into(),
    }
    .write(t)
    .and_then(|_| t.flush())
    .map_err(|e| e.to_string())?;
    read_msg(t)
}

pub fn error_code(m: &Result<Msg, String>) -> Option<Code> {
    match m {
        Ok(Msg::Error { code, .. }) => Code::from_u16(*code),
        _ => None,
    }
}

/// `logseal stamp --seal-every 2` of `lines` for `host` with the state in
/// `state`, appended to `out`.
pub fn stamp(state: &Path, out: &Path, host: &str, lines: &str) {
    let mut child = Command::new(bin())
        .args(["stamp", "--host", host, "--seal-every", "2", "--state"])
        .arg(state)
        .arg("--out")
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Sends `msg-TAG-i` for i in `from..=to` over TCP, LF-framed.
pub fn send_tcp(addr: &str, tag: &str, from: u64, to: u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = String::new();
    for i in from..=to {
        buf.push_str(&format!("<13>1 - h app - - - msg-{tag}-{i} shipped\n"));
        if buf.len() > 64 << 10 {
            s.write_all(buf.as_bytes()).unwrap();
            buf.clear();
        }
    }
    s.write_all(buf.as_bytes()).unwrap();
    s.flush().unwrap();
}

/// How many records `logseal inspect --json PATH` (a store, files, or a
/// `nats://` URL) shows whose message contains `needle`; it must succeed.
pub fn inspect_messages(path: impl AsRef<std::ffi::OsStr>, needle: &str) -> usize {
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    recs.as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["message"].as_str())
        .filter(|m| m.contains(needle))
        .count()
}
