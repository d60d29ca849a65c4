//! Collectors whose store is a real NATS JetStream cluster (three
//! `nats-server` nodes, mutual TLS, the users of
//! packaging/examples/nats-logseal-authorization.conf): agents fail over
//! between collectors mid-chain with nothing lost, duplicated or forked; two
//! copies of one agent racing through two collectors leave one history; the
//! stream refuses deletes and purges; responders read it back (`verify`,
//! `inspect`, `store export` with `nats://`).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::*;
use common::nats::*;
use common::relay::Relay;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sends `msg-TAG-i` for i in `from..=to` over TCP, LF-framed.
fn send_tcp(addr: &str, tag: &str, from: u64, to: u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = String::new();
    for i in from..=to {
        buf.push_str(&format!("<13>1 - h app - - - msg-{tag}-{i} shipped\n"));
    }
    s.write_all(buf.as_bytes()).unwrap();
    s.flush().unwrap();
}

/// A client certificate of `ca` for `name`, and a password file.
fn client_files(d: &Path, ca: &Ca, name: &str, password: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (cert, key) = ca.agent(name);
    let pw = d.join(format!("{name}.password"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    (cert, key, pw)
}

/// The `[jetstream]` table of a collector on `nats`, as user `user`.
fn jetstream_toml(
    nats: &NatsCluster,
    d: &Path,
    ca: &Ca,
    user: &str,
    password: &str,
    extra: &str,
) -> String {
    let (cert, key, pw) = client_files(d, ca, &format!("nats-{user}"), password);
    format!(
        "[jetstream]\n{}\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nuser = \"{user}\"\npassword_file = \"{}\"\n{extra}\n",
        nats.servers_toml(),
        ca.ca().display(),
        cert.display(),
        key.display(),
        pw.display(),
    )
}

/// The `nats://` URL of the stream for the example's read-only user.
fn reader_url(nats: &NatsCluster, d: &Path, ca: &Ca) -> String {
    let (cert, key, pw) = client_files(d, ca, "nats-reader", READER_PASSWORD);
    format!(
        "nats://logseal-reader@{}/LOGSEAL?ca={}&cert={}&key={}&password_file={}",
        nats.hostports(),
        ca.ca().display(),
        cert.display(),
        key.display(),
        pw.display()
    )
}

/// Every Event the stream holds, read as a responder does: `logseal store
/// export` into a new directory.
fn stream_events(url: &str, d: &Path) -> (Vec<(String, String)>, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let to = d.join(format!(
        "export-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let o = Command::new(bin())
        .args(["store", "export", "--from", url, "--to"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "store export: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (events_in(&to.join("chains")), to)
}

/// An agent ships through two relays to collectors A and B sharing one
/// stream. It is moved from A to B (A cut off, still running, its cached tip
/// left behind), one NATS node is killed, then back to A (B killed): A must
/// catch up from the stream and go on. Every message is in the stream exactly
/// once, the exported store verifies intact, and `verify nats://` agrees.
#[test]
fn an_agent_fails_over_between_collectors_sharing_a_stream_mid_chain() {
    let d = TempDir::new("js-failover");
    let ca = Ca::new(&d.path().join("pki"));
    let mut nats = NatsCluster::start_secure(&d.path().join("nats"), &ca.dir);
    let js = jetstream_toml(
        &nats,
        d.path(),
        &ca,
        "logseal-collector",
        COLLECTOR_PASSWORD,
        "",
    );
    let (ra, rb) = (Relay::start(), Relay::start());
    let a = Collector::start(&d.path().join("a"), &ca, "127.0.0.1:0", &js);
    let b = Collector::start(&d.path().join("b"), &ca, "127.0.0.1:0", &js);
    ra.to(&a.addr);
    rb.to(&b.addr);
    let cfg = agent_config(
        d.path(),
        &ca,
        "web-js",
        &[&ra.addr, &rb.addr],
        TCP_INPUT,
        "",
    );
    let agent = start_agent(d.path(), &cfg);
    let url = reader_url(&nats, d.path(), &ca);
    let stored = |n: usize| {
        let d = d.path().to_path_buf();
        let url = url.clone();
        move || numbers(&stream_events(&url, &d).0, "fo").len() >= n
    };
    send_tcp(&agent.addr("tcp"), "fo", 1, 3000);
    wait_until("the first messages in the stream through A", stored(3000));
    // A is cut off (it keeps running with the tip it had): the agent moves to B.
    ra.cut();
    send_tcp(&agent.addr("tcp"), "fo", 3001, 6000);
    wait_until("the next messages in the stream through B", stored(6000));
    // One NATS node dies: the stream (3 replicas) goes on with two.
    nats.kill9(2);
    send_tcp(&agent.addr("tcp"), "fo", 6001, 9000);
    wait_until("messages stored with a node down", stored(9000));
    // Back to A, whose tip is behind the stream by everything B stored.
    ra.to(&a.addr);
    let b_log = b.log.clone();
    b.kill9();
    send_tcp(&agent.addr("tcp"), "fo", 9001, 12_000);
    wait_until("the last messages in the stream through A", stored(12_000));
    agent.stop();
    let url = reader_url(&nats, d.path(), &ca);
    wait_until("the shutdown seal in the stream", || {
        let (_, dir) = stream_events(&url, d.path());
        let (_, doc) = verify_json(&dir.join("chains"));
        doc["chains"][0]["ended_cleanly"] == true
    });
    let (evs, dir) = stream_events(&url, d.path());
    assert_exactly(&evs, "fo", 12_000);
    let (code, doc) = verify_json(&dir.join("chains"));
    assert_eq!(code, 0, "the exported stream verifies intact: {doc:#}");
    assert_eq!(doc["chains"].as_array().unwrap().len(), 1, "{doc:#}");
    // B took the chain up from the stream; A caught up with what B stored
    // rather than refusing the agent.
    let blog = std::fs::read_to_string(&b_log).unwrap();
    assert!(blog.contains("chain read from the stream"), "{blog}");
    let alog = a.log_text();
    assert!(
        alog.contains("caught up with records other collectors stored"),
        "{alog}"
    );
    assert!(!alog.contains("holds nothing of chain"), "{alog}");
    // `verify` and `inspect` read the stream itself.
    let o = Command::new(bin())
        .args(["verify", "--json", &url])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chains"][0]["host"], "web-js", "{v:#}");
    let o = Command::new(bin())
        .args(["inspect", "--json", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shown = recs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["message"].as_str().is_some_and(|m| m.contains("msg-fo-")))
        .count();
    assert_eq!(shown, 12_000);
    // Export refuses a directory that holds something.
    let o = Command::new(bin())
        .args(["store", "export", "--from", &url, "--to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    a.stop();
}
