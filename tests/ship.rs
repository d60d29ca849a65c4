//! Agent → collector over mutual TLS: numbered messages end to end, a
//! collector that is down or killed, an agent that is killed, and everything a
//! collector must refuse (each with a log line, while it keeps serving others).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::*;
use common::*;
use logseal::chain::ChainId;
use logseal::transport::proto::{self, Code, FrameReader, Msg};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn store_numbers(store: &Path, tag: &str) -> Vec<u64> {
    numbers(&store_events(store), tag)
}

fn assert_store_exactly(store: &Path, tag: &str, n: u64) {
    assert_exactly(&store_events(store), tag, n);
}

fn assert_store_intact(store: &Path) -> serde_json::Value {
    let (code, doc) = verify_json(store);
    assert_eq!(code, 0, "store verifies intact: {doc:#}");
    doc
}

/// Waits (`what`) until the store holds `n` messages tagged `tag`, stops the
/// agent, checks that each arrived exactly once and that the store verifies
/// intact; returns the verification document.
fn stop_when_stored(what: &str, a: Agent, store: &Path, tag: &str, n: u64) -> serde_json::Value {
    wait_until(what, || store_numbers(store, tag).len() as u64 >= n);
    a.stop();
    assert_store_exactly(store, tag, n);
    assert_store_intact(store)
}

#[test]
fn numbered_messages_reach_the_collector_exactly_once() {
    let d = TempDir::new("ship-e2e");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-01", &[&c.addr], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    let n = 30_000;
    send_tcp(&a.addr("tcp"), "e2e", 1, n);
    let state = a.state.clone();
    let doc = stop_when_stored("all messages stored", a, &c.store, "e2e", n);
    // `logseal inspect` reads the store as well: every message, once.
    let shown = inspect_messages(&c.store, "msg-e2e-") as u64;
    assert_eq!(shown, n, "inspect shows each stored message once");
    let chains = doc["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0]["host"], "web-01");
    assert_eq!(
        chains[0]["ended_cleanly"], true,
        "the shutdown seal was shipped too"
    );
    // Acknowledged segments were deleted from the spool; the rest is acknowledged.
    let segs = logseal::storage::segment_log::segment_bases(&state.join("spool")).unwrap();
    assert!(
        segs.len() <= 2,
        "acknowledged spool segments are deleted ({} left)",
        segs.len()
    );
    // The trimmed spool is unanchored on the agent host (its start is at the
    // collector): checked as far as it can be, never intact, and its `acked`
    // file (the host's own word) changes nothing.
    let (code, doc) = verify_json(&state);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["chains"][0]["verdict"], "unanchored", "{doc:#}");
    assert_eq!(doc["result"], "unanchored", "{doc:#}");
    let from = doc["chains"][0]["unanchored_from"]
        .as_u64()
        .expect("unanchored_from");
    assert!(from > 0, "{doc:#}");
    let copy = d.path().join("spool-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(state.join("spool")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
        }
    }
    let (code, doc2) = verify_json(&copy);
    assert_eq!(code, 1, "{doc2:#}");
    assert_eq!(doc2["chains"][0]["verdict"], "unanchored");
    assert_eq!(
        doc2["chains"][0]["unverified"],
        doc["chains"][0]["unverified"]
    );
    let log = c.stop();
    assert!(log.contains("new host: genesis key pinned"), "{log}");
}

#[test]
fn collector_down_agent_spools_fails_over_and_catches_up() {
    let d = TempDir::new("ship-down");
    let ca = Ca::new(&d.path().join("pki"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let dead = format!("127.0.0.1:{}", free_port());
    // The first collector in the list never answers: the agent moves on.
    let cfg = agent_config(d.path(), &ca, "web-02", &[&dead, &listen], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "down", 1, 5000);
    wait_for(&a.state, "down", 5000);
    std::thread::sleep(Duration::from_millis(500));
    let c = Collector::start(&d.path().join("c"), &ca, &listen, "");
    send_tcp(&a.addr("tcp"), "down", 5001, 10_000);
    stop_when_stored("catch-up", a, &c.store, "down", 10_000);
    let alog = std::fs::read_to_string(d.path().join("agent.log")).unwrap();
    assert!(alog.contains("shipping interrupted"), "{alog}");
    c.stop();
}

/// The collector's store fills up: the write fails on its writer thread, the
/// batch is answered `Error storage` (never acknowledged), the agent keeps its
/// spool and retries; once there is room, every record arrives exactly once and
/// the stored chain verifies.
#[test]
fn full_store_refuses_without_ack_then_catches_up() {
    let d = TempDir::new("ship-full");
    let ca = Ca::new(&d.path().join("pki"));
    let store = d.path().join("c").join("store");
    let _fs = Tmpfs::mount(&store, "4m");
    // Leave about 1 MiB: far less than the chain needs.
    let filler = store.join("filler");
    std::fs::write(&filler, vec![7u8; 3 << 20]).unwrap();
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-07", &[&c.addr], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    let n = 20_000;
    send_tcp(&a.addr("tcp"), "full", 1, n);
    wait_for(&a.state, "full", n);
    wait_until("the collector reports the full store", || {
        c.log_text().contains("No space left on device")
    });
    let held = store_numbers(&c.store, "full").len() as u64;
    assert!(held < n, "the store cannot hold all of it yet ({held})");
    // Nothing unacknowledged left the agent's spool: it still holds the rest.
    let spooled = numbers(&events(&a.state), "full");
    assert_eq!(
        spooled.last(),
        Some(&n),
        "the spool keeps what was not acknowledged"
    );
    std::fs::remove_file(&filler).unwrap();
    stop_when_stored("catch-up after room returned", a, &c.store, "full", n);
    let alog = std::fs::read_to_string(d.path().join("agent.log")).unwrap();
    assert!(
        alog.contains("storage"),
        "the agent logs the collector's answer: {alog}"
    );
    let log = c.stop();
    assert!(
        log.contains("fsync of the store failed") || log.contains("appending to the store"),
        "{log}"
    );
}

/// A failed fdatasync, in the agent's spool and in the collector's store.
/// The fault is simulated (`LOGSEAL_FSYNC_FAIL`, a hardware fault that cannot
/// be had here): the call fails and the bytes written since the last good
/// sync are overwritten with 0xEE, as a disk that lost them may show them.
/// Retrying the fdatasync and believing it would keep that garbage (the
/// shipper would stop at a checksum mismatch, the store would not verify);
/// writing those bytes again before the next sync loses nothing.
#[test]
fn failed_fsync_writes_the_unsynced_bytes_again() {
    let d = TempDir::new("ship-fsync");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start_env(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "",
        &[("LOGSEAL_FSYNC_FAIL", "4:2")],
    );
    let cfg = agent_config(d.path(), &ca, "web-08", &[&c.addr], TCP_INPUT, "");
    let a = Agent::spawn_env(
        &["--config".into(), cfg.into()],
        &d.path().join("state"),
        Some(&d.path().join("agent.log")),
        1,
        &[("LOGSEAL_FSYNC_FAIL", "6:2")],
    );
    let n = 30_000;
    for k in 0..10 {
        send_tcp(&a.addr("tcp"), "fs", k * n / 10 + 1, (k + 1) * n / 10);
        std::thread::sleep(Duration::from_millis(30));
    }
    stop_when_stored("every message in the store", a, &c.store, "fs", n);
    let alog = std::fs::read_to_string(d.path().join("agent.log")).unwrap();
    // (The second failure may come while input is already held, unlogged.)
    assert!(
        alog.contains("simulated by LOGSEAL_FSYNC_FAIL, call 6") && alog.contains("holding input"),
        "the agent's spool fsync failed and the agent said so: {alog}"
    );
    let log = c.stop();
    assert!(
        log.contains("simulated by LOGSEAL_FSYNC_FAIL, call 4"),
        "the store's fsync failed and the collector said so: {log}"
    );
}

#[test]
fn collector_killed_20_times_nothing_lost_or_duplicated() {
    let d = TempDir::new("ship-kill-c");
    let ca = Ca::new(&d.path().join("pki"));
    let listen = format!("127.0.0.1:{}", free_port());
    let cdir = d.path().join("c");
    let cfg = agent_config(d.path(), &ca, "web-03", &[&listen], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    let addr = a.addr("tcp");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), addr.clone());
        std::thread::spawn(move || {
            // One connection: the agent keeps order per connection, not across them.
            let mut s = TcpStream::connect(&addr).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let chunk: String = (i + 1..=i + 200)
                    .map(|k| format!("<13>1 - h app - - - msg-kc-{k} shipped\n"))
                    .collect();
                s.write_all(chunk.as_bytes()).unwrap();
                i += 200;
                sent.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut rng = 0x9e3779b97f4a7c15u64;
    for _ in 0..20 {
        let c = Collector::start(&cdir, &ca, &listen, "");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(100 + rng % 300));
        c.kill9();
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let n = sent.load(Ordering::SeqCst);
    let c = Collector::start(&cdir, &ca, &listen, "");
    wait_for(&a.state, "kc", n);
    a.stop();
    assert_store_exactly(&c.store, "kc", n);
    assert_store_intact(&c.store);
    c.stop();
}

#[test]
fn agent_killed_20_times_store_holds_its_whole_chain_once() {
    let d = TempDir::new("ship-kill-a");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-04", &[&c.addr], TCP_INPUT, "");
    let mut next = 1u64;
    let mut rng = 0x2545f4914f6cdd1du64;
    for _ in 0..20 {
        let a = start_agent(d.path(), &cfg);
        let addr = a.addr("tcp");
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let from = next;
        let sender = std::thread::spawn(move || {
            // One connection; messages after the kill are simply not received.
            let Ok(mut s) = TcpStream::connect(&addr) else {
                return from;
            };
            let mut i = from;
            while !s2.load(Ordering::SeqCst) {
                let m = format!("<13>1 - h app - - - msg-ka-{i} shipped\n");
                if s.write_all(m.as_bytes()).is_err() {
                    break;
                }
                i += 1;
            }
            i
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 400));
        a.kill9();
        stop.store(true, Ordering::SeqCst);
        next = sender.join().unwrap();
    }
    // A last clean run: the agent ships everything its chain holds, then stops.
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "fin", 1, 1000);
    wait_for(&a.state, "fin", 1000);
    a.stop();
    assert_store_exactly(&c.store, "fin", 1000);
    // Numbers from the killed runs: strictly increasing (no duplicate, no
    // reordering); the store's chain is intact, ends with the clean shutdown
    // seal, and so holds every record the agent chained.
    let ka = store_numbers(&c.store, "ka");
    assert!(
        ka.len() > 100,
        "messages from the killed runs: {}",
        ka.len()
    );
    let bad: Vec<_> = ka.windows(2).filter(|w| w[0] >= w[1]).take(5).collect();
    assert!(
        bad.is_empty(),
        "no duplicates or disorder: {bad:?}\n{}",
        verify_json(&c.store).1
    );
    let doc = assert_store_intact(&c.store);
    let chains = doc["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "kill -9 never starts a new chain");
    assert_eq!(chains[0]["ended_cleanly"], true);
    c.stop();
}

#[test]
fn rsyslog_to_agent_to_collector() {
    let d = TempDir::new("ship-rsyslog");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-05", &[&c.addr], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    let port = a.port("tcp");
    let action = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" \
         TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" \
         queue.type=\"LinkedList\" queue.filename=\"fwdq\" action.resumeRetryCount=\"-1\")"
    );
    let (rs, sock) = rsyslog(&d.path().join("rsyslog"), &action, "");
    let n = 2000;
    let f = numbered_file(d.path(), "rsc", n);
    let st = Command::new("logger")
        .arg("-u")
        .arg(&sock)
        .args(["-t", "app", "-f"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("rsyslog → agent → collector", || {
        store_numbers(&c.store, "rsc").len() as u64 >= n
    });
    drop(rs);
    a.stop();
    // rsyslog may reconnect under load: order holds within each connection.
    assert_exactly_per_connection(&store_events(&c.store), "rsc", n);
    assert_store_intact(&c.store);
    c.stop();
}

// ---- Refusals ----------------------------------------------------------------

#[test]
fn refusals_are_logged_and_the_collector_keeps_serving() {
    let d = TempDir::new("ship-refuse");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    // A good agent ships throughout.
    let good_dir = d.path().join("good");
    std::fs::create_dir_all(&good_dir).unwrap();
    let cfg = agent_config(&good_dir, &ca, "good-host", &[&c.addr], TCP_INPUT, "");
    let good = start_agent(&good_dir, &cfg);
    send_tcp(&good.addr("tcp"), "good", 1, 1000);

    let log_has = |needle: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.log_text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "expected {count}× {needle:?} in the collector log:\n{}",
                c.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // 1. No client certificate.
    let mut t = tls_client(&ca, None, &c.addr).unwrap();
    assert!(hello(&mut t, "good-host").is_err());
    log_has("TLS handshake failed", 1);
    // 2. A certificate from another CA.
    let rogue = Ca::named(&d.path().join("rogue"), "rogue CA");
    let (rc, rk) = rogue.agent("good-host");
    let mut t = tls_client(&ca, Some((&rc, &rk)), &c.addr).unwrap();
    assert!(hello(&mut t, "good-host").is_err());
    log_has("UnknownIssuer", 1);
    // 3. An expired certificate.
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let exp = logseal::cmd::pki::issue_at(
        &ca.dir,
        "old-host",
        logseal::cmd::pki::Role::Agent,
        past,
        30,
        &[],
    )
    .unwrap();
    let mut t = tls_client(&ca, Some((&exp.cert, &exp.key)), &c.addr).unwrap();
    assert!(hello(&mut t, "old-host").is_err());
    log_has("certificate expired", 1);
    // 4. A revoked certificate (the collector re-reads the CRL when it changes).
    let (vc, vk) = ca.agent("revoked-host");
    let mut t = tls_client(&ca, Some((&vc, &vk)), &c.addr).unwrap();
    assert!(matches!(
        hello(&mut t, "revoked-host"),
        Ok(Msg::Welcome { .. })
    ));
    drop(t);
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime for the CRL
    logseal::cmd::pki::revoke(&ca.dir, "revoked-host").unwrap();
    let mut t = tls_client(&ca, Some((&vc, &vk)), &c.addr).unwrap();
    assert!(hello(&mut t, "revoked-host").is_err());
    log_has("Revoked", 1);
    // 5. Host A's certificate claiming host B, and pushing host B's chain.
    let (ac, ak) = ca.agent("host-a");
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    let m = hello(&mut t, "host-b");
    assert_eq!(error_code(&m), Some(Code::NotYourChain), "{m:?}");
    log_has("is not valid for host", 1);
    let chain_b = records(&build_chain(d.path(), "host-b", 10, 5));
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    let m = send_batch(&mut t, 1, &chain_b);
    assert_eq!(error_code(&m), Some(Code::NotYourChain), "{m:?}");
    log_has("the certificate of host-a may not write it", 1);
    // 6. Plain TCP and random bytes on the TLS port.
    let mut s = TcpStream::connect(&c.addr).unwrap();
    s.write_all(b"<13>Nov 28 12:00:00 h app: plain text\n")
        .unwrap();
    drop(s);
    let mut s = TcpStream::connect(&c.addr).unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write_all(&junk).unwrap();
    drop(s);
    log_has("TLS handshake failed", 3);
    // 7. An oversized frame.
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    t.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    t.write_all(&[proto::t::BATCH]).unwrap();
    t.flush().unwrap();
    let m = read_msg(&mut t);
    assert_eq!(error_code(&m), Some(Code::FrameTooLarge), "{m:?}");
    log_has("exceeds the maximum", 1);
    // 8. A broken link and a forged seal: quarantined, chain not advanced.
    let chain_a = records(&build_chain(d.path(), "host-a", 10, 5));
    let mut broken = chain_a.clone();
    let l = broken[3].len();
    broken[3][l - 1] ^= 0x20; // inside an event's message
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    let m = send_batch(&mut t, 1, &broken);
    assert_eq!(error_code(&m), Some(Code::Rejected), "{m:?}");
    let mut forged = chain_a.clone();
    let seal = 6; // genesis, 5 events, then the first seal
    let l = forged[seal].len();
    forged[seal][l - 1] ^= 1;
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    let m = send_batch(&mut t, 1, &forged);
    assert_eq!(error_code(&m), Some(Code::Rejected), "{m:?}");
    log_has("quarantined", 2);
    let q: Vec<PathBuf> = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let reasons: Vec<String> = q
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{q:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("signs a head that differs")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("signature does not verify")),
        "{reasons:?}"
    );
    assert_eq!(
        q.iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .count(),
        2
    );
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(alerts.matches("\"quarantined\"").count() >= 2, "{alerts}");
    // The chain did not advance: the intact chain is still accepted from Genesis,
    // a re-sent batch is idempotent.
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    let n = chain_a.len() as u64;
    assert!(
        matches!(send_batch(&mut t, 1, &chain_a), Ok(Msg::Ack { next_seq, .. }) if next_seq == n)
    );
    assert!(
        matches!(send_batch(&mut t, 2, &chain_a), Ok(Msg::Ack { next_seq, .. }) if next_seq == n)
    );
    // A record differing from a stored one (a fork) is a conflict, quarantined.
    let mut fork = chain_a[..4].to_vec();
    let l = fork[3].len();
    fork[3][l - 1] ^= 0x20;
    let m = send_batch(&mut t, 3, &fork);
    assert_eq!(error_code(&m), Some(Code::Conflict), "{m:?}");

    // A malformed batch right after a good one on the same connection (both
    // pass through the connection's leaf thread): the good one is acknowledged,
    // then the malformed one is refused as a protocol error.
    let mut t = tls_client(&ca, Some((&ac, &ak)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "host-a"), Ok(Msg::Welcome { .. })));
    let chain_id_a = logseal::chain::record::decode_header_only(&chain_a[0])
        .unwrap()
        .chain_id;
    let mut ok = Vec::new();
    proto::begin_batch(&mut ok, 1, chain_id_a);
    for r in &chain_a {
        proto::push_record(&mut ok, r);
    }
    proto::finish_batch(&mut ok, chain_a.len() as u32);
    let mut bad = Vec::new();
    proto::begin_batch(&mut bad, 2, chain_id_a);
    proto::push_record(&mut bad, &chain_a[1]);
    proto::finish_batch(&mut bad, 5); // says 5 records, holds 1
    proto::write_frame(&mut t, proto::t::BATCH, &ok).unwrap();
    proto::write_frame(&mut t, proto::t::BATCH, &bad).unwrap();
    t.flush().unwrap();
    let mut fr = FrameReader::default();
    let (ty, body) = fr.next(&mut t, 1 << 20).unwrap();
    let first = Msg::decode(ty, body);
    assert!(
        matches!(first, Ok(Msg::Ack { batch: 1, next_seq, .. }) if next_seq == n),
        "{first:?}"
    );
    let (ty, body) = fr.next(&mut t, 1 << 20).unwrap();
    let second = Msg::decode(ty, body).map_err(|e| e.to_string());
    assert_eq!(error_code(&second), Some(Code::Protocol), "{second:?}");
    assert!(
        format!("{second:?}").contains("malformed batch"),
        "{second:?}"
    );
    log_has("malformed batch", 1);

    // The good agent was served throughout.
    send_tcp(&good.addr("tcp"), "good", 1001, 2000);
    wait_until("good agent's messages", || {
        store_numbers(&c.store, "good").len() >= 2000
    });
    good.stop();
    assert_store_exactly(&c.store, "good", 2000);
    // Quarantined batches are listed, not verified as chains; the store is intact.
    let doc = assert_store_intact(&c.store);
    let hosts: Vec<&str> = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.contains(&"good-host") && hosts.contains(&"host-a"),
        "{hosts:?}"
    );
    assert!(!hosts.contains(&"host-b"));
    let _ = ChainId([0; 16]);
    // The metrics count each refusal by its reason, as sent above, and the
    // batches kept in quarantine (counted on disk).
    let m = scrape(c.metrics.as_deref().unwrap());
    let refused = |reason: &str| {
        sample(
            &m,
            &format!("logseal_collector_refusals_total{{reason=\"{reason}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(refused("not-your-chain"), 2.0, "{m}");
    assert_eq!(refused("frame-too-large"), 1.0, "{m}");
    assert_eq!(refused("rejected"), 2.0, "{m}");
    assert_eq!(refused("conflict"), 1.0, "{m}");
    assert_eq!(refused("protocol"), 1.0, "{m}");
    let kept = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(kept >= 3, "{kept}");
    assert_eq!(
        sample(&m, "logseal_collector_quarantined_batches_total"),
        Some(kept as f64),
        "{m}"
    );
    c.stop();
}

#[test]
fn strict_enrollment_new_chains_and_silent_hosts() {
    let d = TempDir::new("ship-enroll");
    let ca = Ca::new(&d.path().join("pki"));
    // Make the enrolled host's chain first (no shipping yet), print its genesis.
    let edir = d.path().join("enrolled");
    std::fs::create_dir_all(&edir).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = agent_config(&edir, &ca, "enrolled-host", &[&listen], TCP_INPUT, "");
    let a = start_agent(&edir, &cfg);
    a.stop();
    let o = Command::new(bin())
        .args(["agent", "--print-genesis", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success());
    let line = String::from_utf8(o.stdout).unwrap();
    // One trust-anchor format everywhere: `HOST KEY`, the full genesis key.
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{line}");
    assert_eq!(fields[0], "enrolled-host");
    assert!(
        fields[1].len() == 64 && fields[1].bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
    let enrolled = d.path().join("enrolled.txt");
    std::fs::write(&enrolled, format!("# host key\n{line}")).unwrap();
    let extra = format!(
        "[enrollment]\nmode = \"strict\"\nenrolled = \"{}\"\n[liveness]\nheartbeat = \"1s\"\nsilent_after = 2\nstatus_interval = \"200ms\"\n",
        enrolled.display()
    );
    let c = Collector::start(&d.path().join("c"), &ca, &listen, &extra);
    let a = start_agent(&edir, &cfg);
    send_tcp(&a.addr("tcp"), "en", 1, 100);
    wait_until("enrolled host stored", || {
        store_numbers(&c.store, "en").len() >= 100
    });

    // A host that is not enrolled is refused.
    let odir = d.path().join("other");
    std::fs::create_dir_all(&odir).unwrap();
    let ocfg = agent_config(&odir, &ca, "other-host", &[&listen], TCP_INPUT, "");
    let o = start_agent(&odir, &ocfg);
    wait_until("not-enrolled refusal", || {
        c.log_text().contains("is not enrolled")
    });
    o.kill9();

    // The enrolled host is killed (no clean stop): after two missed heartbeats
    // the collector reports it silent.
    a.kill9();
    wait_until("silent host in status.json", || {
        let s = std::fs::read_to_string(c.store.join("status.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        v["hosts"].as_array().is_some_and(|h| {
            h.iter()
                .any(|h| h["host"] == "enrolled-host" && h["silent"] == true)
        })
    });
    assert!(c.log_text().contains("host is silent"));
    c.stop();

    // First-use enrollment: a host that loses its state starts a new chain,
    // which is accepted and raises an alert.
    let c = Collector::start(&d.path().join("c2"), &ca, &listen, "");
    let fdir = d.path().join("first-use");
    std::fs::create_dir_all(&fdir).unwrap();
    let fcfg = agent_config(&fdir, &ca, "fu-host", &[&listen], TCP_INPUT, "");
    let a = start_agent(&fdir, &fcfg);
    send_tcp(&a.addr("tcp"), "fu", 1, 10);
    wait_until("first chain", || store_numbers(&c.store, "fu").len() >= 10);
    a.stop();
    std::fs::remove_file(fdir.join("state/signer.state")).unwrap();
    let a = start_agent(&fdir, &fcfg);
    send_tcp(&a.addr("tcp"), "fu2", 1, 10);
    wait_until("second chain", || {
        store_numbers(&c.store, "fu2").len() >= 10
    });
    a.stop();
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("new-chain-for-known-host"), "{alerts}");
    let doc = assert_store_intact(&c.store);
    assert_eq!(doc["chains"].as_array().unwrap().len(), 2);
    c.stop();
}

#[test]
fn quickstart_runs_ships_and_verifies_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let d = TempDir::new("quickstart");
    let port = free_port();
    let qdir = d.path().join("qs");
    let mut child = Command::new(bin())
        .args(["quickstart", "--dir"])
        .arg(&qdir)
        .args(["--syslog-addr", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text.contains("Ctrl-C stops") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "quickstart output: {text}"
        );
        assert!(Instant::now() < deadline);
        text.push_str(&line);
    }
    let logger_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("logger "))
        .unwrap()
        .to_string();
    assert!(logger_line.contains(&port.to_string()), "{text}");
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--udp",
        "msg-qs-1 hello",
    ]);
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tcp",
        "msg-qs-2 hello",
    ]);
    wait_until("quickstart message in the store", || {
        store_numbers(&qdir.join("store"), "qs").len() >= 2
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{text}{rest}");
    assert!(rest.contains("RESULT: intact"), "{rest}");
    assert!(rest.contains("clean shutdown"), "{rest}");
    // Once each; one came over UDP, one over TCP: their order is not given.
    let mut got = store_numbers(&qdir.join("store"), "qs");
    got.sort_unstable();
    assert_eq!(got, vec![1, 2]);
    for f in ["pki/ca.key", "pki/collector.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(qdir.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[test]
fn pki_rotation_as_documented_leaves_the_new_certificate_valid_and_the_old_revoked() {
    // The steps `logseal pki --help` gives for a key that may be compromised:
    // revoke, move the old files aside, issue anew. openssl is the judge.
    let d = TempDir::new("pki-rotate");
    let dir = d.path().join("ca");
    let pki = |args: &[&str]| {
        let o = Command::new(bin())
            .arg("pki")
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    pki(&["init"]);
    pki(&[
        "issue", "--name", "web-01", "--role", "agent", "--days", "10",
    ]);
    // Issuing again without moving the files aside is refused.
    let again = Command::new(bin())
        .args([
            "pki", "issue", "--name", "web-01", "--role", "agent", "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    pki(&["revoke", "--name", "web-01"]);
    for ext in ["crt", "key"] {
        std::fs::rename(
            dir.join(format!("web-01.{ext}")),
            dir.join(format!("web-01.{ext}.old")),
        )
        .unwrap();
    }
    pki(&["issue", "--name", "web-01", "--role", "agent"]);
    let help = Command::new(bin())
        .args(["pki", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Rotation") && help.contains("mv D/HOST.crt"),
        "{help}"
    );
    let both = d.path().join("ca-and-crl.pem");
    let mut pem = std::fs::read(dir.join("ca.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("crl.pem")).unwrap());
    std::fs::write(&both, pem).unwrap();
    let verify = |cert: &str| {
        Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(&both)
            .arg(dir.join(cert))
            .output()
            .unwrap()
    };
    let new = verify("web-01.crt");
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stdout)
    );
    let old = verify("web-01.crt.old");
    assert!(!old.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&old.stdout),
        String::from_utf8_lossy(&old.stderr)
    );
    assert!(said.contains("revoked"), "{said}");
}

#[test]
fn pki_cli_issues_revokes_and_refuses_to_overwrite() {
    let d = TempDir::new("pki");
    let dir = d.path().join("ca");
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("pki")
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let o = run(&["issue", "--name", "web-9", "--role", "agent"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let e = &idx["issued"][0];
    let days = (e["not_after"].as_i64().unwrap() - e["not_before"].as_i64().unwrap()) / 86400;
    assert_eq!(days, 397, "explicit validity");
    use std::os::unix::fs::PermissionsExt;
    for k in ["ca.key", "web-9.key"] {
        let mode = std::fs::metadata(dir.join(k)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{k}");
    }
    let o = run(&["issue", "--name", "web-9", "--role", "agent"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists; refusing to overwrite"));
    let o = run(&["init"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["issue", "--name", "bad_name!", "--role", "agent"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a usable host name"));
    let crl_before = std::fs::read(dir.join("crl.pem")).unwrap();
    assert!(run(&["revoke", "--name", "web-9"]).status.success());
    assert_ne!(std::fs::read(dir.join("crl.pem")).unwrap(), crl_before);
    let o = run(&["revoke", "--name", "nobody"]);
    assert_eq!(o.status.code(), Some(2));
    // The CRL parses, is signed by the CA and lists one serial.
    let ca = logseal::transport::tls::load_certs(&dir.join("ca.crt")).unwrap();
    let crls = logseal::transport::crl::Crls::load(&dir.join("crl.pem"), &ca).unwrap();
    assert_eq!(crls.len(), 1);
}

/// The commented example of `table` in a shipped config, uncommented: from
/// its `# [table]` line to the next blank line, without its comments.
fn commented_example(text: &str, table: &str) -> String {
    text.lines()
        .skip_while(|l| *l != format!("# {table}"))
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn shipped_collector_config_and_ship_section_parse_and_bad_keys_are_named() {
    use logseal::collector::config::CollectorConfig;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every documented default is the built-in default.
    let text = std::fs::read_to_string(root.join("config/collector.toml")).unwrap();
    let cfg: CollectorConfig = toml::from_str(&text).unwrap();
    let minimal: CollectorConfig =
        toml::from_str("[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n").unwrap();
    assert_eq!(format!("{:?}", cfg.limits), format!("{:?}", minimal.limits));
    assert_eq!(
        format!("{:?}", cfg.liveness),
        format!("{:?}", minimal.liveness)
    );
    assert_eq!((cfg.listen, &cfg.store), (minimal.listen, &minimal.store));
    // The commented [witness] example, uncommented, is valid (and checked).
    let witness = commented_example(&text, "[witness]");
    let with = CollectorConfig::parse(
        &format!("{witness}[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n"),
        Path::new("collector.toml"),
    )
    .unwrap();
    assert_eq!(with.witness.peers.len(), 1, "{witness}");
    assert_eq!(
        format!("{:?}", with.witness.every),
        format!("{:?}", minimal.witness.every),
        "the documented default is the built-in one"
    );
    // So is the commented [jetstream] example (its defaults the built-in ones).
    let jet = commented_example(&text, "[jetstream]");
    let with = CollectorConfig::parse(
        &format!("[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n{jet}"),
        Path::new("collector.toml"),
    )
    .unwrap();
    let j = with.jetstream.expect("[jetstream]");
    assert_eq!(j.servers.len(), 3, "{jet}");
    let url = format!(
        "nats://{}?plaintext=yes",
        j.servers[0].trim_start_matches("tls://")
    );
    let bare = logseal::storage::jetstream::JetStreamConfig::from_url(&url).unwrap();
    assert_eq!(
        (j.stream, j.replicas, j.timeout),
        (bare.stream, bare.replicas, bare.timeout),
        "the documented defaults are the built-in ones"
    );
    // Bad [jetstream] values are named.
    for (bad, key) in [
        ("servers = []", "jetstream.servers"),
        ("servers = [\"a:1,b:2\"]", "jetstream.servers"),
        ("servers = [\"a:1\"]\nstream = \"a.b\"", "jetstream.stream"),
        ("servers = [\"a:1\"]\nreplicas = 0", "jetstream.replicas"),
        ("servers = [\"a:1\"]\ncert = \"c\"", "jetstream.cert"),
        (
            "servers = [\"a:1\"]\nallow_plaintext = true\ntimeout = \"500ms\"",
            "jetstream.timeout",
        ),
        ("servers = [\"a:1\"]", "TLS is required"),
    ] {
        let e = CollectorConfig::parse(
            &format!("[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[jetstream]\n{bad}\n"),
            Path::new("collector.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
    // The commented [ship] example of agent.toml, uncommented, is valid.
    let agent = std::fs::read_to_string(root.join("config/agent.toml")).unwrap();
    let ship: String = agent
        .lines()
        .skip_while(|l| !l.starts_with("# [ship]"))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with('#') && !l.starts_with(' '))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(ship.contains("collectors = "), "{ship}");
    let a = logseal::agent::config::AgentConfig::parse(&ship, Path::new("ship")).unwrap();
    let s = a.ship.unwrap();
    // Its values are the code's defaults.
    let minimal = "[ship]\ncollectors = [\"c:6514\"]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
    let d = logseal::agent::config::AgentConfig::parse(minimal, Path::new("minimal"))
        .unwrap()
        .ship
        .unwrap();
    assert_eq!(
        (
            s.window,
            s.batch_records,
            s.batch_size,
            s.keepalive,
            s.backoff_max
        ),
        (
            d.window,
            d.batch_records,
            d.batch_size,
            d.keepalive,
            d.backoff_max
        )
    );
    assert_eq!((s.window, s.batch_records), (32, 4096));
    // Errors name the key and the line; a missing file is named.
    let d = TempDir::new("collcfg");
    let bad = d.path().join("c.toml");
    let (code, err) = common::check_config(
        "collector",
        &bad,
        "listen = \"127.0.0.1:1\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\ncrl_file = \"x\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("crl_file") && err.contains("line 6"), "{err}");
    let (code, err) = common::check_config(
        "collector",
        &bad,
        "[tls]\nca = \"/nonexistent/ca.crt\"\ncert = \"b\"\nkey = \"c\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("tls.ca") && err.to_lowercase().contains("no such file"),
        "{err}"
    );
}

#[test]
fn collector_restart_uses_the_saved_tip_or_reads_the_chain_back() {
    let d = TempDir::new("ship-tip");
    let ca = Ca::new(&d.path().join("pki"));
    let listen = format!("127.0.0.1:{}", free_port());
    let cdir = d.path().join("c");
    let cfg = agent_config(d.path(), &ca, "web-06", &[&listen], TCP_INPUT, "");
    let c = Collector::start(&cdir, &ca, &listen, "");
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "tip", 1, 1000);
    wait_until("first part", || {
        store_numbers(&c.store, "tip").len() >= 1000
    });
    c.stop();
    let tips = cdir.join("store/tips.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tips).unwrap()).unwrap();
    assert_eq!(
        saved["tips"].as_array().map(Vec::len),
        Some(1),
        "a clean stop saves the tip: {saved}"
    );
    // Unchanged store: the tip is used.
    let c = Collector::start(&cdir, &ca, &listen, "");
    send_tcp(&a.addr("tcp"), "tip", 1001, 2000);
    wait_until("second part", || {
        store_numbers(&c.store, "tip").len() >= 2000
    });
    let log = c.stop();
    assert!(log.contains("chain resumed from its saved tip"), "{log}");
    // A tip whose position is not where a frame begins (one byte before the
    // end of the last record) is not trusted, and nothing is cut there: the
    // chain is read back from its Genesis.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tips).unwrap()).unwrap();
    let p = v["tips"][0]["position"].as_u64().unwrap();
    v["tips"][0]["position"] = serde_json::json!(p - 1);
    std::fs::write(&tips, v.to_string()).unwrap();
    let c = Collector::start(&cdir, &ca, &listen, "");
    send_tcp(&a.addr("tcp"), "tip", 2001, 3000);
    wait_until("third part", || {
        store_numbers(&c.store, "tip").len() >= 3000
    });
    a.stop();
    let log = c.stop();
    assert!(
        log.contains("does not fit its files: reading the chain back"),
        "{log}"
    );
    assert!(!log.contains("torn tail"), "{log}");
    assert_store_exactly(&cdir.join("store"), "tip", 3000);
    assert_store_intact(&cdir.join("store"));
}

/// The agent killed while it records a collector's acknowledgement (the
/// `acked` file's atomic write): restarted, it ships the rest once, and the
/// store holds a gap-free prefix of what was sent, each message once.
#[test]
fn agent_killed_while_recording_an_ack() {
    use std::os::unix::process::ExitStatusExt;
    for point in ["spool-acked.temp-written:3", "spool-acked.renamed:3"] {
        let d = TempDir::new("ship-ack-crash");
        let ca = Ca::new(&d.path().join("pki"));
        let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
        let cfg = agent_config(d.path(), &ca, "web-01", &[&c.addr], TCP_INPUT, "");
        let state = d.path().join("state");
        let args: Vec<std::ffi::OsString> = vec!["--config".into(), cfg.clone().into()];
        let mut a = Agent::spawn_env(
            &args,
            &state,
            Some(&d.path().join("agent.log")),
            1,
            &[(logseal::storage::faults::ENV, point)],
        );
        // Several spool segments' worth, in pieces so that acks come in between.
        let addr = a.addr("tcp");
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = a.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "{point}: the crash point was not reached"
            );
            if let Ok(mut s) = TcpStream::connect(&addr) {
                let mut buf = String::new();
                for i in sent + 1..=sent + 2000 {
                    buf.push_str(&format!("<13>1 - h app - - - msg-k1-{i} shipped\n"));
                }
                if s.write_all(buf.as_bytes()).is_ok() {
                    sent += 2000;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.signal(), Some(9), "{point}: {status:?}");
        let a = start_agent(d.path(), &cfg);
        send_tcp(&a.addr("tcp"), "k2", 1, 500);
        stop_when_stored(
            &format!("{point}: second run stored"),
            a,
            &c.store,
            "k2",
            500,
        );
        let k1 = store_numbers(&c.store, "k1");
        let want: Vec<u64> = (1..=k1.len() as u64).collect();
        assert_eq!(
            k1, want,
            "{point}: the store holds a gap-free prefix, each once"
        );
        assert!(!k1.is_empty(), "{point}: nothing of the first run arrived");
        c.stop();
    }
}

#[test]
fn a_second_collector_on_the_same_store_is_refused() {
    let d = TempDir::new("collector-lock");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let o = Command::new(bin())
        .args(["collector", "--config"])
        .arg(d.path().join("c/collector.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("in use by process {}", c.child.id())),
        "{err}"
    );
    c.stop();
}

/// A host whose chain has not sealed yet is not "silent" at once (only once
/// `silent_after` has passed since the collector first knew it), and an
/// alert repeated by an agent's retries is written once, then counted.
#[test]
fn new_hosts_are_not_silent_at_once_and_repeated_alerts_are_counted() {
    let d = TempDir::new("ship-liveness");
    let ca = Ca::new(&d.path().join("pki"));
    // A chain whose first batch is its Genesis alone (no seal yet).
    let sd = d.path().join("stamp");
    std::fs::create_dir_all(&sd).unwrap();
    let o = Command::new(bin())
        .args(["stamp", "--host", "new-host", "--state"])
        .arg(sd.join("state"))
        .arg("--out")
        .arg(sd.join("log.seg"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let genesis = records(&sd.join("log.seg"))[..1].to_vec();
    let (cert, key) = ca.agent("new-host");

    let liveness =
        "[liveness]\nheartbeat = \"10s\"\nsilent_after = 3\nstatus_interval = \"100ms\"\n";
    let c = Collector::start(&d.path().join("c1"), &ca, "127.0.0.1:0", liveness);
    let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "new-host"), Ok(Msg::Welcome { .. })));
    assert!(matches!(
        send_batch(&mut t, 1, &genesis),
        Ok(Msg::Ack { .. })
    ));
    let mut host = serde_json::Value::Null;
    wait_until("the new host in status.json", || {
        let s = std::fs::read_to_string(c.store.join("status.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        if let Some(h) = v["hosts"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["host"] == "new-host"))
        {
            host = h.clone();
            return true;
        }
        false
    });
    assert_eq!(
        host["silent"], false,
        "{host}: silent 30 s before it could be"
    );
    assert!(!c.log_text().contains("host is silent"), "{}", c.log_text());
    drop(t);
    c.stop();

    // Strict enrollment without this host: every retry is refused, one alert.
    let enrolled = d.path().join("enrolled.txt");
    std::fs::write(&enrolled, format!("other-host {}\n", "11".repeat(32))).unwrap();
    let extra = format!(
        "[enrollment]\nmode = \"strict\"\nenrolled = \"{}\"\n",
        enrolled.display()
    );
    let c = Collector::start(&d.path().join("c2"), &ca, "127.0.0.1:0", &extra);
    for i in 0..3 {
        let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
        assert!(matches!(hello(&mut t, "new-host"), Ok(Msg::Welcome { .. })));
        let r = send_batch(&mut t, 1, &genesis);
        assert_eq!(error_code(&r), Some(Code::NotEnrolled), "try {i}: {r:?}");
    }
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert_eq!(
        alerts.matches("not-enrolled").count(),
        1,
        "one line for the same alert repeated: {alerts}"
    );
    c.stop();
}

/// `logseal stamp` of `lines` onto the chain in `state`, appended to `out`.
/// A host's state restored from a copy re-seals epochs it had sealed: the
/// collector refuses the other history, keeps it in quarantine with the
/// proof — the stored seal and the received one of the same epoch, by the
/// same key, both signatures valid (checked here with `ring` directly) — and
/// raises a `fork` alert.
#[test]
fn a_restored_key_resealing_an_epoch_is_refused_with_the_proof() {
    let d = TempDir::new("ship-fork");
    let ca = Ca::new(&d.path().join("pki"));
    let (state, log) = (d.path().join("state"), d.path().join("log.seg"));
    stamp(&state, &log, "fork-host", "a\nb\nc\n");
    // The copy, then the original history and the one run on from the copy.
    let (state2, log2) = (d.path().join("state2"), d.path().join("log2.seg"));
    copy_tree(&state, &state2);
    copy_tree(&log, &log2);
    stamp(&state, &log, "fork-host", "d\ne\nf\n");
    stamp(&state2, &log2, "fork-host", "x\ny\nz\n");
    let (original, forked) = (records(&log), records(&log2));
    assert_eq!(original.len(), forked.len());

    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let (cert, key) = ca.agent("fork-host");
    let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
    assert!(matches!(
        hello(&mut t, "fork-host"),
        Ok(Msg::Welcome { .. })
    ));
    let n = original.len() as u64;
    assert!(
        matches!(send_batch(&mut t, 1, &original), Ok(Msg::Ack { next_seq, .. }) if next_seq == n)
    );
    let m = send_batch(&mut t, 2, &forked);
    assert_eq!(error_code(&m), Some(Code::Conflict), "{m:?}");

    let proofs: Vec<serde_json::Value> = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(proofs.len(), 1, "{proofs:?}");
    let fork = &proofs[0]["fork"];
    let bytes = |k: &str| {
        let h = fork[k].as_str().unwrap_or_else(|| panic!("{k}: {fork}"));
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let (stored, received, key) = (bytes("stored_seal"), bytes("received_seal"), bytes("key"));
    assert_ne!(stored, received);
    // Both are seals (kind 3) of the same epoch (after the 34-byte header).
    for seal in [&stored, &received] {
        assert_eq!(seal[1], 3, "a seal");
        assert_eq!(seal[34..42], stored[34..42], "one epoch");
        // Signed by `key` over "logseal/seal/v1\0" and the seal without its signature.
        let (body, sig) = seal.split_at(seal.len() - 64);
        let msg = [b"logseal/seal/v1\0".as_slice(), body].concat();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
            .verify(&msg, sig)
            .expect("a valid signature by the key the proof names");
        // The signer field (after epoch and covers_head) is that key.
        assert_eq!(seal[74..106], key[..]);
    }
    assert!(original.contains(&stored) && forked.contains(&received));
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(
        alerts.contains("\"fork\"") && alerts.contains("signed by one key"),
        "{alerts}"
    );
    let store = c.store.clone();
    c.stop();

    // The checkpoint log records the fork with its proof (FORMAT.md §7.3):
    // `verify STORE` fails on it, naming the host, the epoch and both seals,
    // though the stored chain itself is intact; the independent verifier
    // (written from the spec) agrees.
    let (code, doc) = verify_json(&store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["chains"][0]["verdict"], "intact", "{doc:#}");
    let found = doc["unattributed"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{doc:#}");
    let f = &found[0];
    assert_eq!(f["kind"], "fork-recorded", "{doc:#}");
    assert_eq!(f["host"], "fork-host");
    assert_eq!(f["chain"], doc["chains"][0]["chain"]);
    for k in ["epoch", "stored_seq", "received_seq"] {
        assert_eq!(f[k], fork[k], "{k}: {doc:#}");
    }
    let o = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_verify.py"))
        .arg(&store)
        .output()
        .unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{theirs:#}");
    assert_eq!(theirs["unattributed"], serde_json::json!(["fork-recorded"]));
}

/// Any authenticated peer may ask a collector for its newest checkpoint
/// seal (protocol version 3, docs/PROTOCOL.md step 8): the block `logseal
/// checkpoint` prints for the same store. In version 2 the message is refused.
#[test]
fn the_newest_checkpoint_is_published_in_version_3_only() {
    let d = TempDir::new("ship-published");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let (cert, key) = ca.agent("web-01");
    let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "web-01"), Ok(Msg::Welcome { .. })));
    Msg::Checkpoint.write(&mut t).unwrap();
    t.flush().unwrap();
    let Ok(Msg::Published { block }) = read_msg(&mut t) else {
        panic!("no block")
    };
    let store = c.store.clone();
    c.stop();
    // The store's own newest seal, as `logseal checkpoint` reads it (nothing
    // moved since: the block published was the newest).
    let o = std::process::Command::new(bin())
        .args(["checkpoint", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let printed = String::from_utf8(o.stdout).unwrap();
    let seal = |b: &str| {
        b.lines()
            .find(|l| l.starts_with("seal "))
            .map(str::to_string)
    };
    let published = seal(&block).expect("a seal line");
    // The stop's checkpoint and shutdown come after: at or before it.
    let (chain, seq) = published.split_at(published.rfind(' ').unwrap());
    let newest = seal(&printed).unwrap();
    assert!(newest.starts_with(chain), "{newest} / {published}");
    assert!(
        seq.trim().parse::<u64>().unwrap() <= newest.rsplit(' ').next().unwrap().parse().unwrap()
    );
    assert!(
        block.starts_with("logseal checkpoint v1\ncollector "),
        "{block}"
    );

    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
    Msg::Hello {
        min_version: 2,
        max_version: 2,
        host: "web-01".into(),
        software: "test".into(),
    }
    .write(&mut t)
    .unwrap();
    t.flush().unwrap();
    assert!(matches!(
        read_msg(&mut t),
        Ok(Msg::Welcome { version: 2, .. })
    ));
    Msg::Checkpoint.write(&mut t).unwrap();
    t.flush().unwrap();
    let m = read_msg(&mut t);
    assert_eq!(error_code(&m), Some(Code::Protocol), "{m:?}");
    c.stop();
}
