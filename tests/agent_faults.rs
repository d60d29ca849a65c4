//! Faults: malformed input never crashes or wedges the agent and loses nothing;
//! a full filesystem back-pressures the sender without corrupting the spool,
//! and the agent resumes when space returns.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::*;
use logseal::chain::record::{Body, Payload};
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (flags, original_len, message) of an Event.
type Ev = (u8, Option<u64>, Vec<u8>);

/// Every Event in a spool.
fn raw_events(state: &Path) -> Vec<Ev> {
    let (files, _) = logseal::responder::verify_files::expand(&[state.join("spool")]).unwrap();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let mut r = SegmentReader::new(&bytes[..]).unwrap();
        while let Some(item) = r.next_item().unwrap() {
            let Item::Frame { payload, .. } = item else {
                panic!("damaged spool")
            };
            if let Body::Event {
                flags,
                original_len,
                payload: Payload::Raw(m),
                ..
            } = Record::decode(payload).unwrap().body
            {
                out.push((flags, original_len, m.to_vec()));
            }
        }
    }
    out
}

#[test]
fn malformed_input_is_chained_flagged_and_never_wedges_the_agent() {
    let d = TempDir::new("malformed");
    let state = d.path().join("state");
    let a = Agent::start(
        &state,
        &["tcp://127.0.0.1:0".into(), "udp://127.0.0.1:0".into()],
    );
    let addr = format!("127.0.0.1:{}", a.port("tcp"));

    // Binary garbage (no newline inside), then a newline.
    let garbage: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .filter(|&b| b != b'\n')
        .collect();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"<").unwrap(); // not a digit: LF framing
    s.write_all(&garbage).unwrap();
    s.write_all(b"\n").unwrap();
    drop(s);
    // A 10 MB line.
    let mut s = TcpStream::connect(&addr).unwrap();
    let big = vec![b'A'; 10 << 20];
    s.write_all(b"<13>").unwrap();
    s.write_all(&big).unwrap();
    s.write_all(b"\n<13>after the big one\n").unwrap();
    drop(s);
    // An absurd octet count, then a half frame and disconnect.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"99999999999 <13>absurd count\n40 <13>half a fra")
        .unwrap();
    drop(s);
    // UDP: invalid UTF-8 with a BOM.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(
        b"<13>1 - h app - - - \xef\xbb\xbfbom \xff\xfe invalid",
        format!("127.0.0.1:{}", a.port("udp")),
    )
    .unwrap();
    // Still alive and not wedged: a normal message gets through.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"<13>still alive\n").unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !raw_events(&state).iter().any(|e| e.2 == b"<13>still alive") {
        assert!(Instant::now() < deadline, "agent wedged");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    a.stop();

    let ev = raw_events(&state);
    let find = |pred: &dyn Fn(&Ev) -> bool| ev.iter().find(|e| pred(e)).cloned();
    let g = find(&|e| e.2.len() == garbage.len() + 1 && e.2[1..] == garbage[..])
        .expect("garbage chained as received");
    assert_eq!(
        g.0 & logseal::chain::record::FLAG_UNPARSED,
        logseal::chain::record::FLAG_UNPARSED
    );
    let b = find(&|e| e.2.starts_with(b"<13>AAAA")).unwrap();
    assert_eq!(
        (b.1, b.2.len()),
        (Some(4 + (10 << 20)), 64 << 10),
        "cut to 64 KiB, original length kept"
    );
    assert!(find(&|e| e.2 == b"<13>after the big one").is_some());
    assert!(find(&|e| e.2 == b"99999999999 <13>absurd count").is_some());
    let h = find(&|e| e.2 == b"<13>half a fra").unwrap();
    assert_eq!(h.1, Some(40));
    assert!(
        find(&|e| e.2 == b"<13>1 - h app - - - \xef\xbb\xbfbom \xff\xfe invalid").is_some(),
        "bytes kept exactly"
    );
    let o = Command::new(bin())
        .arg("verify")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn full_filesystem_back_pressures_then_resumes_without_loss() {
    let d = TempDir::new("diskfull");
    let mnt = d.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "1m");

    let state = mnt.join("state");
    let errlog = d.path().join("agent.log");
    let mut agent = Agent::spawn(
        &[
            "--listen".into(),
            "tcp://127.0.0.1:0".into(),
            "--state".into(),
            state.clone().into(),
        ],
        &state,
        Some(&errlog),
        1,
    );
    let port: u16 = agent.port("tcp").parse().unwrap();

    let n: u64 = 100_000; // about 18 MB of messages into a 1 MiB filesystem (socket buffers hold a few MB)
    let sent = Arc::new(AtomicU64::new(0));
    let sc = sent.clone();
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 1..=n {
            let m = format!("<13>1 - h app - - - msg-full-{i} {}", "x".repeat(150));
            s.write_all(format!("{} {m}", m.len()).as_bytes()).unwrap();
            sc.store(i, Ordering::Relaxed);
        }
    });
    // The sender must stall: the agent stops reading while it cannot write.
    let mut last = 0;
    let mut stalled_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::Relaxed);
        if now != last {
            last = now;
            stalled_since = Instant::now();
        } else if stalled_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(Instant::now() < deadline, "sender never stalled");
        assert!(
            now < n,
            "everything fit: the filesystem is too large for this test"
        );
    }
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "agent died on a full disk"
    );
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(
        log.contains("holding input until it succeeds"),
        "the agent says why: {log}"
    );
    // The spool is not corrupt while full. (A write being retried may show for
    // an instant as a partial frame at the very end, before the writer cuts it
    // back: read again then.)
    let mut tries = 0;
    loop {
        let o = Command::new(bin())
            .args(["verify", "--json"])
            .arg(&state)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let problems = v["chains"][0]["problems"].as_array().unwrap().clone();
        let torn_at_end = problems.iter().any(|p| p["kind"] == "truncated-tail");
        if torn_at_end && tries < 5 {
            tries += 1;
            std::thread::sleep(Duration::from_millis(37));
            continue;
        }
        for p in &problems {
            assert_eq!(
                p["kind"], "unsealed-tail",
                "only a not-yet-sealed tail while full: {p}"
            );
        }
        break;
    }

    // Space returns.
    let st = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while numbers(&events(&state), "full").len() < n as usize {
        assert!(Instant::now() < deadline, "agent did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.stop();
    let got = numbers(&events(&state), "full");
    assert_eq!(
        got,
        (1..=n).collect::<Vec<_>>(),
        "every message exactly once, in order"
    );
    assert_intact(&state);
    let log = std::fs::read_to_string(&errlog).unwrap();
    eprintln!("{log}");
    assert!(log.contains("writing to the spool again"), "{log}");
}

#[test]
fn spool_cap_stops_input_and_stopping_accounts_for_everything_received() {
    let d = TempDir::new("spoolcap");
    let state = d.path().join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[spool]\nsegment_size = \"4KiB\"\nmax_size = \"8KiB\"\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[[input]]\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    let errlog = d.path().join("agent.log");
    let agent = Agent::start_config(&cfg, &state, Some(&errlog), 2);
    let tcp = agent.addr("tcp");
    let udp = agent.addr("udp");
    let mut s = TcpStream::connect(&tcp).unwrap();
    for i in 1..=200 {
        let m = format!("<13>1 - h app - - - msg-cap-{i} {}", "y".repeat(150));
        s.write_all(format!("{} {m}", m.len()).as_bytes()).unwrap();
    }
    s.flush().unwrap();
    // Wait for the cap to be hit, then send UDP that cannot be written.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&errlog)
        .unwrap()
        .contains("spool full")
    {
        assert!(Instant::now() < deadline, "spool never reported full");
        std::thread::sleep(Duration::from_millis(50));
    }
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 1..=10 {
        u.send_to(
            format!("<13>1 - h app - - - msg-capudp-{i}").as_bytes(),
            &udp,
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let spool_bytes: u64 = std::fs::read_dir(state.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(spool_bytes < 16 << 10, "the cap holds: {spool_bytes} bytes");
    // Stopping must not hang on the full spool, and must account for what it received.
    let t = Instant::now();
    agent.stop();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    drop(s);
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let losses: Vec<&serde_json::Value> = recs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "loss")
        .collect();
    let udp_lost: u64 = losses
        .iter()
        .filter(|r| r["source"] == "syslog-udp")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        udp_lost, 10,
        "every UDP datagram received while full is accounted for: {losses:?}"
    );
    let chained_udp = numbers(&events(&state), "capudp").len();
    assert_eq!(chained_udp, 0);
    // TCP: a gap-free prefix was chained; what was read beyond the cap is in a Loss record.
    let tcp = numbers(&events(&state), "cap");
    assert!(
        !tcp.is_empty() && tcp == (1..=tcp.len() as u64).collect::<Vec<_>>(),
        "{tcp:?}"
    );
    let o = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "intact", "{v}");
    assert!(v["chains"][0]["ended_cleanly"].as_bool().unwrap());
}

#[test]
fn a_panic_in_an_input_stops_the_agent_with_an_error_and_a_sealed_chain() {
    let d = TempDir::new("input-panic");
    let state = d.path().join("state");
    let errlog = d.path().join("agent.log");
    let mut a = Agent::spawn_env(
        &[
            "--state".into(),
            state.clone().into(),
            "--host".into(),
            "panic-host".into(),
            "--listen".into(),
            "udp://127.0.0.1:0".into(),
            "--listen".into(),
            "tcp://127.0.0.1:0".into(),
        ],
        &state,
        Some(&errlog),
        2,
        // A simulated bug in the code serving a stream connection.
        &[("LOGSEAL_PANIC_AT", "input-stream")],
    );
    // Chained before the bug.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"<13>msg-pre-1 before the bug", a.addr("udp"))
        .unwrap();
    wait_for(&state, "pre", 1);
    assert_exactly(&events(&state), "pre", 1);
    // The TCP input's connection task panics: the agent does not go on with
    // a dead input, it stops, seals and says why.
    let _s = TcpStream::connect(a.addr("tcp")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = a.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the agent still runs after a panic: {}",
            std::fs::read_to_string(&errlog).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(!status.success(), "{status:?}: {log}");
    assert!(
        log.contains("LOGSEAL_PANIC_AT=input-stream") && log.contains("sealed its chain"),
        "{log}"
    );
    assert_spool_intact_and_closed(&state);
    assert_exactly(&events(&state), "pre", 1);
}

#[test]
fn a_flood_of_connections_cannot_take_the_descriptors_the_chain_needs() {
    use std::io::BufRead;
    let d = TempDir::new("fd-flood");
    let state = d.path().join("state");
    let errlog = d.path().join("agent.log");
    // A low open-file limit, as a small default would be: 200 descriptors.
    let mut child = Command::new("prlimit")
        .arg("--nofile=200:200")
        .arg(bin())
        .args(["agent", "--host", "fd-host", "--state"])
        .arg(&state)
        .args([
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "udp://127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut tcp, mut udp) = (String::new(), String::new());
    while tcp.is_empty() || udp.is_empty() {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "{}",
            std::fs::read_to_string(&errlog).unwrap_or_default()
        );
        if let Some(a) = line.trim().strip_prefix("listening tcp://") {
            tcp = a.to_string();
        } else if let Some(a) = line.trim().strip_prefix("listening udp://") {
            udp = a.to_string();
        }
    }
    // 400 connections, a byte each, held open: more than the limit.
    let flood: Vec<TcpStream> = (0..400)
        .map(|_| {
            let mut s = TcpStream::connect(&tcp).unwrap();
            s.write_all(b"<").unwrap();
            s
        })
        .collect();
    // Events still come in (UDP) and are chained and sealed.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 1..=20 {
        sock.send_to(format!("<13>msg-fd-{i} during the flood").as_bytes(), &udp)
            .unwrap();
    }
    wait_for(&state, "fd", 20);
    assert_exactly(&events(&state), "fd", 20);
    // The stop seals: it needs descriptors the flood does not have.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    drop(flood);
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(st.success(), "{st:?}: {log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("connections per listener lowered"), "{log}");
    assert_spool_intact_and_closed(&state);
}
