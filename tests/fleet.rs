//! What a collector costs per host: no thread per connection (sessions are
//! tasks on a runtime of a few threads) or per chain (the write-behind is one
//! pool), and no wake-up of an idle session. `benches/fleet.rs` measures it at
//! scale; these tests hold the properties that make it flat.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures

mod common;
use common::agent::Agent;
use common::collector::*;
use common::*;
use logseal::transport::proto::{Code, Msg};
use std::time::{Duration, Instant};

/// The collector's threads by name (`/proc/PID/task/*/comm`) and the context
/// switches of those named `name`.
fn threads(pid: u32) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let switches: u64 = status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .map(|v| v.trim().parse::<u64>().unwrap())
            .sum();
        let tid = t.file_name().to_string_lossy().into_owned();
        out.push((comm.trim().to_string(), switches, tid));
    }
    out
}

fn named(ts: &[(String, u64, String)], name: &str) -> (usize, u64) {
    let of: Vec<_> = ts.iter().filter(|t| t.0 == name).collect();
    (of.len(), of.iter().map(|t| t.1).sum())
}

/// A session as `host` (its own certificate) that stored a small chain.
fn host_with_a_chain(dir: &std::path::Path, ca: &Ca, host: &str, addr: &str) -> Tls {
    let seg = build_chain(dir, host, 5, 5);
    let recs = records(&seg);
    let (cert, key) = ca.agent(host);
    let mut t = tls_client(ca, Some((&cert, &key)), addr).unwrap();
    assert!(matches!(hello(&mut t, host), Ok(Msg::Welcome { .. })));
    let m = send_batch(&mut t, 1, &recs);
    assert!(matches!(m, Ok(Msg::Ack { batch: 1, .. })), "{host}: {m:?}");
    t
}

#[test]
fn hosts_cost_no_thread_and_idle_sessions_never_wake() {
    use logseal::collector::{BLOCKING_THREADS, SESSION_THREADS};
    // More hosts than the runtime can have threads: a thread per connection
    // (or per chain) would show.
    const HOSTS: usize = SESSION_THREADS + BLOCKING_THREADS + 8;
    let d = TempDir::new("fleet-threads");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let pid = c.child.id();
    let idle_threads = threads(pid).len();
    let sessions: Vec<Tls> = (0..HOSTS)
        .map(|i| host_with_a_chain(d.path(), &ca, &format!("fleet-{i:02}"), &c.addr))
        .collect();

    let before = threads(pid);
    let (runtime, _) = named(&before, "logseal-session");
    assert!(
        runtime <= SESSION_THREADS + BLOCKING_THREADS,
        "{runtime} runtime threads for {HOSTS} connections: {before:?}"
    );
    // Every chain is open for appending; their writes share one pool.
    let writers = named(&before, "logseal-writer").0;
    assert!(
        (1..=logseal::storage::writebehind::POOL_THREADS).contains(&writers),
        "{writers} write-behind threads for {HOSTS} chains: {before:?}"
    );
    assert!(
        before.len() < idle_threads + HOSTS,
        "{} threads with {HOSTS} hosts, {idle_threads} before them: {before:?}",
        before.len()
    );

    // Idle, a session waits for input: no thread is woken for it (a thread
    // per connection was woken twice a second to look for the stop and the
    // idle timeout).
    std::thread::sleep(Duration::from_secs(3));
    let after = threads(pid);
    // Threads present in both samples (a runtime thread may end meanwhile).
    let woken: u64 = after
        .iter()
        .filter(|t| t.0 == "logseal-session")
        .filter_map(|t| {
            let was = before.iter().find(|b| b.2 == t.2)?;
            Some(t.1.saturating_sub(was.1))
        })
        .sum();
    assert!(
        woken < HOSTS as u64,
        "{HOSTS} idle sessions woke the runtime {woken} times in 3 s"
    );
    drop(sessions);
    c.stop();
}

#[test]
fn an_ack_comes_when_its_fsync_ends_not_on_a_timer() {
    // Twenty round trips (batch, fsync, ack) on one session. Were the wake-up
    // from the write-behind lost, each would wait for the session's fallback
    // look (1 s) and the whole for 20 s or more.
    let d = TempDir::new("fleet-acks");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let seg = build_chain(d.path(), "acked", 40, 2);
    let recs = records(&seg);
    let (cert, key) = ca.agent("acked");
    let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
    assert!(matches!(hello(&mut t, "acked"), Ok(Msg::Welcome { .. })));
    let per = recs.len().div_ceil(20);
    let t0 = Instant::now();
    for (i, part) in recs.chunks(per).enumerate() {
        let id = i as u64 + 1;
        let m = send_batch(&mut t, id, part);
        assert!(
            matches!(m, Ok(Msg::Ack { batch, .. }) if batch == id),
            "{m:?}"
        );
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "20 acknowledged batches took {took:?}: acks wait for a timer"
    );
    c.stop();
}

#[test]
fn at_the_stop_an_idle_session_is_told_at_once() {
    let d = TempDir::new("fleet-stop");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let mut t = host_with_a_chain(d.path(), &ca, "stopping", &c.addr);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &c.child.id().to_string()])
        .status();
    // The session sleeps in poll(2) with no timer: the stop must wake it.
    match read_msg(&mut t) {
        Ok(Msg::Error { code, message, .. }) => {
            assert_eq!(Code::from_u16(code), Some(Code::Unavailable), "{message}");
            assert!(message.contains("shutting down"), "{message}");
        }
        other => panic!("expected the collector to say it stops, got {other:?}"),
    }
    let log = c.stop();
    assert!(log.contains("collector stopped"), "{log}");
}

/// The chain id of a record list's Genesis.
fn chain_of(recs: &[Vec<u8>]) -> logseal::chain::ChainId {
    logseal::chain::record::decode_header_only(&recs[0])
        .unwrap()
        .chain_id
}

/// A session as `host`, welcomed, that asked where the collector stands on
/// the chain of `recs`: its next seq (`None`: unknown).
fn position(ca: &Ca, addr: &str, host: &str, recs: &[Vec<u8>]) -> (Tls, Option<u64>) {
    let (cert, key) = ca.agent(host);
    let mut t = tls_client(ca, Some((&cert, &key)), addr).unwrap();
    assert!(matches!(hello(&mut t, host), Ok(Msg::Welcome { .. })));
    Msg::Position {
        chain: chain_of(recs),
    }
    .write(&mut t)
    .unwrap();
    std::io::Write::flush(&mut t).unwrap();
    match read_msg(&mut t) {
        Ok(Msg::Resume {
            known, next_seq, ..
        }) => (t, known.then_some(next_seq)),
        other => panic!("{host}: expected Resume, got {other:?}"),
    }
}

/// Flips a byte of the first occurrence of `needle` in the chain's segment
/// files under `store` (damage at rest, before the saved tip).
fn damage(store: &std::path::Path, host: &str, needle: &str) {
    let dir = store.join("hosts").join(host);
    for chain in std::fs::read_dir(&dir).unwrap().flatten() {
        for f in std::fs::read_dir(chain.path()).unwrap().flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "seg") {
                let mut b = std::fs::read(&p).unwrap();
                if let Some(i) = b.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    b[i] ^= 0x20;
                    std::fs::write(&p, b).unwrap();
                    return;
                }
            }
        }
    }
    panic!("{needle:?} is not in {}", dir.display());
}

fn alerts(store: &std::path::Path) -> String {
    std::fs::read_to_string(store.join("alerts.jsonl")).unwrap_or_default()
}

/// `verify --json STORE`: the problems' kinds of `host`'s chain.
fn problems_of(doc: &serde_json::Value, host: &str) -> Vec<String> {
    let chain = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["host"] == host)
        .unwrap_or_else(|| panic!("no chain of {host}: {doc:#}"));
    chain["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The collector's start after a stop or a crash reads a chain only from its
/// saved tip on. The proof: a byte changed at rest before the tip goes
/// unnoticed by the start (which read the whole chain, and refused to extend
/// it, before `tips.json`), while `logseal verify` still finds it.
fn start_reads_only_after_the_saved_tips(crash: bool) {
    let d = TempDir::new(if crash {
        "fleet-tips-crash"
    } else {
        "fleet-tips-stop"
    });
    let ca = Ca::new(&d.path().join("pki"));
    let dir = d.path().join("c");
    let c = Collector::start(&dir, &ca, "127.0.0.1:0", "");
    let store = c.store.clone();
    let recs = records(&build_chain(d.path(), "resumer", 60, 10));
    let other = records(&build_chain(d.path(), "bystander", 20, 10));
    let (half, more) = (recs.len() / 2, recs.len() * 3 / 4);
    let (mut t, known) = position(&ca, &c.addr, "resumer", &recs);
    assert_eq!(known, None);
    assert!(matches!(
        send_batch(&mut t, 1, &recs[..half]),
        Ok(Msg::Ack { .. })
    ));
    let (mut b, _) = position(&ca, &c.addr, "bystander", &other);
    assert!(matches!(send_batch(&mut b, 1, &other), Ok(Msg::Ack { .. })));
    if crash {
        // The tips saved while running (every 10 s) name both chains; what
        // comes after is read back at the next start.
        wait_until("tips.json names both chains", || {
            std::fs::read_to_string(store.join("tips.json"))
                .is_ok_and(|s| s.contains("\"resumer\"") && s.contains("\"bystander\""))
        });
    }
    assert!(matches!(
        send_batch(&mut t, 2, &recs[half..more]),
        Ok(Msg::Ack { .. })
    ));
    drop((t, b));
    if crash {
        c.kill9();
    } else {
        let _ = c.stop();
        assert!(store.join("tips.json").exists());
    }
    damage(&store, "resumer", "resumer event 3");

    let c = Collector::start(&dir, &ca, "127.0.0.1:0", "");
    let log = c.log_text();
    assert!(log.contains("chain resumed from its saved tip"), "{log}");
    assert!(
        !alerts(&store).contains("stored-chain-damaged"),
        "{}",
        alerts(&store)
    );
    // Everything acknowledged is known, and the chain goes on from there.
    let (mut t, known) = position(&ca, &c.addr, "resumer", &recs);
    assert_eq!(known, Some(more as u64), "{log}");
    assert!(matches!(
        send_batch(&mut t, 1, &recs[more..]),
        Ok(Msg::Ack { .. })
    ));
    drop(t);
    let _ = c.stop();

    let (code, doc) = verify_json(&store);
    assert_eq!(code, 1, "{doc:#}");
    let found = problems_of(&doc, "resumer");
    assert!(
        found.iter().any(|k| k != "unsealed-tail"),
        "verify must find the damage: {found:?}"
    );
    assert_eq!(problems_of(&doc, "bystander"), Vec::<String>::new());
}

#[test]
fn after_a_clean_stop_the_start_reads_no_record() {
    start_reads_only_after_the_saved_tips(false);
}

#[test]
fn after_kill_9_the_start_reads_only_what_came_after_the_saved_tips() {
    start_reads_only_after_the_saved_tips(true);
}

#[test]
fn an_idle_agent_sleeps() {
    // A TCP and a UDP input, shipping to a collector, connected; events sent,
    // stored and sealed; then nothing. Until the next heartbeat seal (an hour
    // here) or keepalive ping (30 s), an idle agent has nothing to do: it woke
    // 14 times a second (a 100 ms tick for a watchdog it did not have, the
    // stamper and the UDP input every second, the shipper every 500 ms).
    let d = TempDir::new("fleet-idle-agent");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let inputs = format!("{TCP_INPUT}[[input]]\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n");
    let cfg = agent_config(
        d.path(),
        &ca,
        "idle-host",
        &[&c.addr],
        &inputs,
        "[chain]\nheartbeat = \"1h\"\n",
    );
    let a = Agent::start_config(
        &cfg,
        &d.path().join("state"),
        Some(&d.path().join("agent.log")),
        2,
    );
    send_tcp(&a.addr("tcp"), "idle", 1, 20);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"<13>1 - - - - - - one datagram", a.addr("udp"))
        .unwrap();
    wait_until("the events are stored and sealed", || {
        store_events(&c.store).len() >= 21
    });
    // Past the stamper's watch for late losses (5 s after the last input).
    std::thread::sleep(Duration::from_secs(7));
    // Three windows of 3 s: `status.json` is written every 5 s (its fsyncs
    // count as context switches), so at least one window has no such write;
    // there, an idle agent has nothing to do.
    let pid = a.child.id();
    let total = |ts: &[(String, u64, String)]| ts.iter().map(|t| t.1).sum::<u64>();
    let mut samples = vec![threads(pid)];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(3));
        samples.push(threads(pid));
    }
    let woken: Vec<u64> = samples
        .windows(2)
        .map(|w| total(&w[1]).saturating_sub(total(&w[0])))
        .collect();
    eprintln!("idle agent: context switches per 3 s window: {woken:?}");
    let least = *woken.iter().min().unwrap();
    assert!(
        least <= 6,
        "an idle agent woke {woken:?} times in three windows of 3 s (at most 2 a second): {samples:?}"
    );
    a.stop();
    c.stop();
}

/// A collector in `d/c` that stored `host`'s whole chain of `events`, then
/// stopped cleanly: (its directory, its store, the CA, the chain's records).
fn stored_then_stopped(
    d: &TempDir,
    host: &str,
    events: u64,
) -> (std::path::PathBuf, std::path::PathBuf, Ca, Vec<Vec<u8>>) {
    let ca = Ca::new(&d.path().join("pki"));
    let dir = d.path().join("c");
    let c = Collector::start(&dir, &ca, "127.0.0.1:0", "");
    let store = c.store.clone();
    let recs = records(&build_chain(d.path(), host, events, 10));
    let (mut t, _) = position(&ca, &c.addr, host, &recs);
    assert!(matches!(send_batch(&mut t, 1, &recs), Ok(Msg::Ack { .. })));
    drop(t);
    let _ = c.stop();
    (dir, store, ca, recs)
}

#[test]
fn acknowledged_records_missing_at_start_raise_an_alert() {
    // A clean stop saved the chain's tip; then the files lose their last
    // records (a restore from an older copy, a truncation): the start reads
    // the chain whole and says that records it stored are gone.
    let d = TempDir::new("fleet-tips-missing");
    let (dir, store, ca, _) = stored_then_stopped(&d, "shrunk", 30);
    // Cut the segment in the middle of the chain, at a frame boundary.
    let chain_dir = std::fs::read_dir(store.join("hosts/shrunk"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seg = std::fs::read_dir(&chain_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut r = logseal::storage::segment::SegmentReader::open(&seg).unwrap();
    let mut ends = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        if let logseal::storage::segment::Item::Frame { .. } = item {
            ends.push(r.position());
        }
    }
    let cut = ends[ends.len() / 2];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let c = Collector::start(&dir, &ca, "127.0.0.1:0", "");
    let log = c.stop();
    let alerts = alerts(&store);
    assert!(
        alerts.contains("stored-chain-damaged")
            && alerts.contains("records this collector stored are missing"),
        "{alerts}\n{log}"
    );
}

#[test]
fn a_tips_file_that_is_a_fifo_is_not_waited_on_and_the_chains_are_read_whole() {
    let d = TempDir::new("fleet-tips-fifo");
    let (dir, store, ca, recs) = stored_then_stopped(&d, "fifo-host", 10);
    std::fs::remove_file(store.join("tips.json")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(store.join("tips.json"))
        .status()
        .unwrap();
    assert!(st.success());
    // Starts (Collector::start waits for `listening` with a deadline), reads
    // the chain whole, and knows it.
    let c = Collector::start(&dir, &ca, "127.0.0.1:0", "");
    let (_t, known) = position(&ca, &c.addr, "fifo-host", &recs);
    assert_eq!(known, Some(recs.len() as u64));
    let log = c.stop();
    assert!(log.contains("the saved tips cannot be read"), "{log}");
}
