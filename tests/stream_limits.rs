//! Stream connections under pressure: idle peers make room for new senders,
//! the memory of all connections together stays within `limits.stream_memory`,
//! and what a connection had read when the agent stopped is chained or counted.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::wait_until;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Raises this process's soft open-file limit to its hard limit (the tests
/// open a thousand sockets).
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    setrlimit(Resource::Nofile, l).unwrap();
}

/// TCP sockets of /proc/net/tcp whose local port is `port`: (state, rx_queue).
/// A listening socket's rx_queue is its accept queue (connections waiting to
/// be accepted); a connected one's is the bytes not read yet.
fn tcp_sockets(port: u16) -> Vec<(u8, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = f[1].rsplit(':').next().unwrap();
        if u16::from_str_radix(local_port, 16).unwrap() != port {
            continue;
        }
        let st = u8::from_str_radix(f[3], 16).unwrap();
        let rx = u64::from_str_radix(f[4].split(':').nth(1).unwrap(), 16).unwrap();
        out.push((st, rx));
    }
    out
}

/// Bytes the senders of connections to `port` have not delivered yet (the
/// tx_queue of sockets whose remote port is `port`).
fn unsent_to(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let p = u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok()?;
            (p == port).then(|| u64::from_str_radix(f[4].split(':').next()?, 16).ok())?
        })
        .sum()
}

/// Opens `conns` connections to `addr` and sends `line(c, 1)` on each; once
/// the agent has read those (each connection then waits to hand its line
/// over, the stamper being blocked), sends `line(c, 2..=per_conn)`, and
/// waits until the agent's kernel holds all of it (received, not read).
fn held_back(
    addr: &str,
    port: u16,
    conns: u64,
    per_conn: u64,
    line: impl Fn(u64, u64) -> String,
) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for c in 0..conns {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(line(c, 1).as_bytes()).unwrap();
        out.push(s);
    }
    wait_all_read(port);
    for (c, s) in out.iter_mut().enumerate() {
        for j in 2..=per_conn {
            s.write_all(line(c as u64, j).as_bytes()).unwrap();
        }
    }
    wait_until("the agent's kernel to hold every line sent", || {
        unsent_to(port) == 0
    });
    out
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_LISTEN: u8 = 10;

/// Waits until the agent on `port` has accepted every connection and read
/// every byte sent to it.
fn wait_all_read(port: u16) {
    wait_until("the agent to accept and read everything sent", || {
        tcp_sockets(port)
            .iter()
            .all(|&(st, rx)| rx == 0 || !matches!(st, TCP_ESTABLISHED | TCP_LISTEN))
    });
}

/// Stream sockets the process holds open.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// An agent with one TCP input and the config tables `tables` (TOML).
fn agent_with(d: &TempDir, tables: &str) -> (Agent, std::path::PathBuf, std::path::PathBuf) {
    let state = d.path().join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nhost = \"limits-host\"\n{tables}\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    let errlog = d.path().join("agent.log");
    let agent = Agent::start_config(&cfg, &state, Some(&errlog), 1);
    (agent, state, errlog)
}

/// Every record of the agent's spool, as `inspect --json` shows them.
fn inspect(state: &Path) -> Vec<serde_json::Value> {
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(state.join("spool"))
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A listener with every slot taken by peers that send nothing closes the
/// one silent the longest for a new sender, whose messages are chained at
/// once (before: it waited in the backlog for `idle_timeout`). The closed
/// peer's half message is chained as received.
#[test]
fn idle_peers_make_room_for_a_new_sender() {
    let d = TempDir::new("idle-room");
    let (agent, state, errlog) =
        agent_with(&d, "[limits]\nmax_connections = 20\nidle_timeout = \"10m\"");
    let addr = agent.addr("tcp");
    let port: u16 = agent.port("tcp").parse().unwrap();
    let pid = agent.child.id();
    let before = sockets_of(pid);
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 1..=20 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(format!("<13>msg-idle-{i} half a line").as_bytes())
            .unwrap();
        idle.push(s);
        if i == 1 {
            // The first is heard before the others connect: silent the longest.
            wait_until("the first idle peer to be read", || {
                sockets_of(pid) > before && tcp_sockets(port).iter().all(|s| s.1 == 0)
            });
        }
    }
    wait_until("the agent to accept the 20 idle peers", || {
        sockets_of(pid) >= before + 20
    });
    // A new sender, every slot taken: it is served as soon as a peer has been
    // silent for a second, not after ten minutes.
    let mut s = TcpStream::connect(&addr).unwrap();
    for i in 1..=5 {
        s.write_all(format!("<13>msg-new-{i} from a real sender\n").as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while numbers(&events(&state), "new").len() < 5 {
        assert!(
            Instant::now() < deadline,
            "the new sender was not served: {}",
            std::fs::read_to_string(&errlog).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The closed peer is the one silent the longest, and its half line is
    // chained as received.
    let idle_chained = numbers(&events(&state), "idle");
    assert_eq!(idle_chained, vec![1], "{idle_chained:?}");
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(
        log.contains("closing the connection silent the longest to make room"),
        "{log}"
    );
    // The sender keeps its connection: more messages go through it.
    s.write_all(b"<13>msg-new-6 still connected\n").unwrap();
    wait_for(&state, "new", 6);
    agent.stop();
    drop(idle);
    assert_exactly(&events(&state), "new", 6);
    assert_spool_intact_and_closed(&state);
    // The state directory verifies with nothing skipped: its own files
    // (losses.pending among them) are not evidence and not listed.
    let (_, v) = common::collector::verify_json(&state);
    assert_eq!(v["skipped_files"], serde_json::json!([]), "{v}");
}

/// A thousand connections each holding most of a 60 KiB line: the agent's
/// memory grows by about `limits.stream_memory` (here 4 MiB), not by a
/// thousand buffers (before: 64 KiB read buffer + 60 KiB held each, about
/// 120 MiB). Lines that did not fit are cut where their room ended and keep
/// their length; none is lost; once the flood is gone a long line is whole.
#[test]
fn the_memory_of_all_connections_together_is_bounded() {
    raise_nofile();
    let d = TempDir::new("stream-memory");
    let (agent, state, errlog) = agent_with(&d, "[limits]\nstream_memory = \"4MiB\"");
    let addr = agent.addr("tcp");
    let port: u16 = agent.port("tcp").parse().unwrap();
    let pid = agent.child.id();
    let base = rss_kib(pid);
    const N: usize = 1000;
    const HALF: usize = 60 << 10;
    let mut flood = Vec::new();
    for i in 1..=N {
        let mut s = TcpStream::connect(&addr).unwrap();
        let head = format!("<13>msg-half-{i} ");
        let mut m = head.into_bytes();
        m.resize(HALF, b'h');
        s.write_all(&m).unwrap();
        flood.push(s);
    }
    wait_all_read(port);
    let grown = rss_kib(pid).saturating_sub(base);
    eprintln!("agent memory grew by {grown} KiB holding {N} half lines");
    // README: 2 x 4 MiB (buffers, and batches on their way) + 64 KiB per
    // connection (its small buffers and batch, task, socket).
    let bound = 2 * 4096 + N as u64 * 64;
    assert!(
        grown < bound,
        "memory grew by {grown} KiB, more than {bound} KiB"
    );
    // The flood goes away: every half line is chained once, whole or cut with
    // its length.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(60);
    while numbers(&events(&state), "half").len() < N {
        assert!(Instant::now() < deadline, "half lines not all chained");
        std::thread::sleep(Duration::from_millis(100));
    }
    // With the budget back, a line longer than all the free rooms is whole.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut long = b"<13>msg-long-1 ".to_vec();
    long.resize(50 << 10, b'l');
    for piece in long.chunks(1000) {
        s.write_all(piece).unwrap();
    }
    s.write_all(b"\n").unwrap();
    wait_for(&state, "long", 1);
    agent.stop();
    let log = std::fs::read_to_string(&errlog).unwrap();
    let recs = inspect(&state);
    let mut cut = 0;
    for r in recs.iter().filter(|r| r["kind"] == "event") {
        let msg = r["message"].as_str().unwrap_or_default();
        if msg.contains("msg-half-") {
            match r["original_len"].as_u64() {
                None => assert_eq!(msg.len(), HALF, "a whole line"),
                Some(n) => {
                    assert_eq!(n, HALF as u64, "the length it had");
                    assert!(msg.len() < HALF);
                    cut += 1;
                }
            }
        }
        if msg.contains("msg-long-") {
            assert_eq!(r["original_len"], serde_json::Value::Null);
            assert_eq!(msg.len(), long.len(), "the long line is whole");
        }
    }
    assert!(
        cut > 0,
        "4 MiB cannot hold 1 000 x 60 KiB: some lines are cut"
    );
    assert!(log.contains("limits.stream_memory used up"), "{log}");
    // (Connections end in any order: each its one line.)
    assert_exactly_per_connection(&events(&state), "half", N as u64);
    assert_spool_intact_and_closed(&state);
}

/// Datagrams waiting in the kernel for the agent's UDP socket on `port`.
fn udp_unread(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let p = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            (p == port).then(|| u64::from_str_radix(f[4].split(':').nth(1)?, 16).ok())?
        })
        .sum()
}

/// Sum of the counts of the Loss records of `source` in a spool.
fn lost(recs: &[serde_json::Value], source: &str) -> u64 {
    recs.iter()
        .filter(|r| r["kind"] == "loss" && r["source"] == source)
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

/// A stop on a full disk cannot write its last records: the Loss records it
/// chained (datagrams dropped while it could not write), the events it had
/// chained but not written, and the batches stream connections were waiting
/// to hand over are all counted, kept in `losses.pending`, and chained by the
/// next start. Every message sent to the agent is in the chain or in a Loss
/// record's count (before: the counts vanished and verify said "losses 0").
/// Datagrams the kernel dropped count too, also those dropped before the UDP
/// task first ran (found here: a flood right after the address was printed
/// met the default receive buffer, and its drops were taken as the baseline).
#[test]
fn a_stop_on_a_full_disk_keeps_every_count_for_the_next_start() {
    let d = TempDir::new("full-stop");
    let mnt = d.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "2m");
    let state = mnt.join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nhost = \"full-host\"\n\
             [[input]]\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    let errlog = d.path().join("agent.log");
    let mut agent = Agent::start_config(&cfg, &state, Some(&errlog), 2);
    let udp_port: u16 = agent.port("udp").parse().unwrap();
    let tcp_port: u16 = agent.port("tcp").parse().unwrap();
    // The file system fills up.
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    const UDP: u64 = 3000;
    const CONNS: u64 = 40;
    const PER_CONN: u64 = 50;
    const TCP: u64 = CONNS * PER_CONN;
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 1..=UDP {
        u.send_to(
            format!("<13>msg-fulludp-{i} while the disk is full").as_bytes(),
            agent.addr("udp"),
        )
        .unwrap();
    }
    // Stream connections, a line at a time: those that find the channel full
    // wait to hand their batch over, and what they send next stays in the
    // agent's kernel buffers (received, not read).
    wait_until("the agent to read every datagram", || {
        udp_unread(udp_port) == 0
    });
    let line = |c: u64, j: u64| {
        let i = c * PER_CONN + j;
        format!("<13>msg-fulltcp-{i} while the disk is full\n")
    };
    let conns = held_back(&agent.addr("tcp"), tcp_port, CONNS, PER_CONN, line);
    let st = agent.terminate();
    drop(conns);
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(!st.success(), "the final seal cannot be written: {log}");
    assert!(log.contains("kept for the next start"), "{log}");
    // Space returns; the next start chains what the stop could not.
    std::fs::remove_file(&filler).unwrap();
    let errlog2 = d.path().join("agent2.log");
    let agent = Agent::start_config(&cfg, &state, Some(&errlog2), 2);
    agent.stop();
    let recs = inspect(&state);
    let evs = events(&state);
    let (udp_chained, udp_lost) = (
        numbers(&evs, "fulludp").len() as u64,
        lost(&recs, "syslog-udp"),
    );
    let (tcp_chained, tcp_lost) = (
        numbers(&evs, "fulltcp").len() as u64,
        lost(&recs, "syslog-tcp"),
    );
    let log2 = std::fs::read_to_string(&errlog2).unwrap();
    eprintln!("udp {udp_chained} + {udp_lost}, tcp {tcp_chained} + {tcp_lost}");
    assert_eq!(
        (udp_chained + udp_lost, tcp_chained + tcp_lost),
        (UDP, TCP),
        "every message received is chained or counted: udp {udp_chained} + {udp_lost}, \
         tcp {tcp_chained} + {tcp_lost}\n{log}\n{log2}"
    );
    assert!(
        udp_lost > 0 && tcp_lost > 0,
        "udp {udp_lost}, tcp {tcp_lost}"
    );
    // They were lost because writing failed (the disk was full), not because
    // the spool reached its cap: the reason says so. (On a loaded machine the
    // kernel may also drop datagrams on the UDP socket's full buffer: those
    // are `udp-overrun`, and only for the UDP input.)
    let losses: Vec<&serde_json::Value> = recs.iter().filter(|r| r["kind"] == "loss").collect();
    let write_failed: Vec<&&serde_json::Value> = losses
        .iter()
        .filter(|r| r["reason"] == "write-failed")
        .collect();
    assert!(!write_failed.is_empty(), "{losses:?}");
    assert!(
        losses.iter().all(|r| r["reason"] == "write-failed"
            || (r["reason"] == "udp-overrun" && r["source"] == "syslog-udp")),
        "{losses:?}"
    );
    assert!(
        write_failed.iter().any(|r| r["source"] == "syslog-tcp"),
        "{losses:?}"
    );
    assert_spool_intact_and_closed(&state);
    // Chained once: a third start adds no Loss record, even if the write
    // that cleared the file was torn by a crash (its other slot then names
    // the seqs of the records the second start chained).
    let pending = state.join("losses.pending");
    let mut bytes = std::fs::read(&pending).unwrap();
    let slot = 8 << 10;
    let generation =
        |i: usize| u64::from_be_bytes(bytes[i * slot + 8..i * slot + 16].try_into().unwrap());
    let newest = if generation(0) > generation(1) { 0 } else { 1 };
    bytes[newest * slot + 20] ^= 0xff;
    std::fs::write(&pending, &bytes).unwrap();
    let errlog3 = d.path().join("agent3.log");
    let agent = Agent::start_config(&cfg, &state, Some(&errlog3), 2);
    agent.stop();
    let recs = inspect(&state);
    assert_eq!(
        (lost(&recs, "syslog-udp"), lost(&recs, "syslog-tcp")),
        (udp_lost, tcp_lost)
    );
    let log3 = std::fs::read_to_string(&errlog3).unwrap();
    assert!(
        log3.contains("slot of the loss counts"),
        "the damage is said: {log3}"
    );
}

/// Stopping while the spool is full: stream connections waiting to hand a
/// batch over count it, and what their peers sent since, which the agent's
/// kernel holds but nobody read, is read and counted too (before: it went
/// with the connection, counted nowhere).
#[test]
fn a_stop_with_the_spool_full_accounts_for_what_the_kernel_holds() {
    raise_nofile();
    let d = TempDir::new("full-spool-stop");
    let (mut agent, state, errlog) =
        agent_with(&d, "[spool]\nsegment_size = \"4KiB\"\nmax_size = \"8KiB\"");
    let port: u16 = agent.port("tcp").parse().unwrap();
    // More connections than the channel and the stamper's queues hold
    // batches: once the spool is full, most wait to hand their first line over.
    const CONNS: u64 = 400;
    const PER_CONN: u64 = 10;
    let line = |c: u64, j: u64| format!("<13>msg-cap-{} {}\n", c * PER_CONN + j, "c".repeat(60));
    let conns = held_back(&agent.addr("tcp"), port, CONNS, PER_CONN, line);
    assert!(
        tcp_sockets(port)
            .iter()
            .any(|&(st, rx)| st == TCP_ESTABLISHED && rx > 0),
        "some lines wait unread in the agent's kernel (else this tests nothing)"
    );
    let st = agent.terminate();
    drop(conns);
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(st.success(), "{log}");
    let recs = inspect(&state);
    let chained = numbers(&events(&state), "cap").len() as u64;
    let counted = lost(&recs, "syslog-tcp");
    assert_eq!(
        chained + counted,
        CONNS * PER_CONN,
        "every line received is chained or counted: {chained} + {counted}\n{log}"
    );
    assert_spool_intact_and_closed(&state);
}

/// Peers that hold every slot with blank lines (LF or CRLF) are silent: a real sender gets a slot, and keeps it while it sends a
/// line now and then (a complete message is what counts as activity).
#[test]
fn empty_lines_do_not_hold_a_slot_against_a_real_sender() {
    let d = TempDir::new("empty-flood");
    let (agent, state, errlog) =
        agent_with(&d, "[limits]\nmax_connections = 10\nidle_timeout = \"10m\"");
    let addr = agent.addr("tcp");
    let pid = agent.child.id();
    let before = sockets_of(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every slot, held with an empty line every 100 ms; a connection closed
    // by the agent is opened again at once.
    let flood = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = (0..10)
                .map(|_| TcpStream::connect(&addr).unwrap())
                .collect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, s) in conns.iter_mut().enumerate() {
                    // Blank lines, LF and CRLF ones (a bare "\r" is chained,
                    // but it says nothing).
                    let blank: &[u8] = if i % 2 == 0 { b"\n" } else { b"\r\n" };
                    if s.write_all(blank).is_err() {
                        *s = TcpStream::connect(&addr).unwrap();
                    }
                }
                std::thread::sleep(Duration::from_millis(100)); // the attack's pace
            }
        })
    };
    wait_until("the flood to hold every slot", || {
        sockets_of(pid) >= before + 10
    });
    let mut s = TcpStream::connect(&addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..=8 {
        // (Never closed: every line is written on the first connection.)
        s.write_all(format!("<13>msg-real-{i} between empty lines\n").as_bytes())
            .unwrap();
        while numbers(&events(&state), "real").len() < i {
            assert!(
                Instant::now() < deadline,
                "line {i} of the real sender not chained: {}",
                std::fs::read_to_string(&errlog).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    agent.stop();
    assert_exactly(&events(&state), "real", 8);
    assert_spool_intact_and_closed(&state);
}

/// Tiny messages (two bytes each: a 24-byte entry apiece in a batch) from
/// many connections while the spool is full: batches waiting for the stamper
/// take their memory from a budget too, so the agent's memory stays within
/// 2 x `stream_memory` + 64 KiB per connection (before: each connection kept
/// a batch of up to 13 times what it read, and the channel 128 of them).
#[test]
fn tiny_messages_and_a_full_spool_stay_within_the_memory_bound() {
    raise_nofile();
    let d = TempDir::new("tiny-memory");
    let (agent, state, _) = agent_with(
        &d,
        "[spool]\nsegment_size = \"4KiB\"\nmax_size = \"8KiB\"\n[limits]\nstream_memory = \"4MiB\"",
    );
    let pid = agent.child.id();
    let base = rss_kib(pid);
    const N: u64 = 300;
    let tiny = b"a\n".repeat(32 << 10);
    let mut conns: Vec<TcpStream> = (0..N)
        .map(|_| {
            let s = TcpStream::connect(agent.addr("tcp")).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Each writes until its socket takes no more: the agent reads until it
    // cannot hand over, then stops reading and the kernel buffers fill.
    let mut full = vec![false; conns.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while full.iter().any(|f| !f) {
        for (s, f) in conns.iter_mut().zip(full.iter_mut()) {
            if *f {
                continue;
            }
            match s.write(&tiny) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => *f = true,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the senders were never held back"
        );
    }
    let grown = rss_kib(pid).saturating_sub(base);
    let bound = 2 * 4096 + N * 64;
    eprintln!("agent memory grew by {grown} KiB (bound {bound} KiB)");
    assert!(
        grown < bound,
        "memory grew by {grown} KiB, more than {bound} KiB"
    );
    drop(conns);
    agent.stop();
    assert_spool_intact_and_closed(&state);
}
