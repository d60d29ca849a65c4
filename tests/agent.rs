//! `logseal agent` with real senders (`logger` from util-linux/bsdutils) and a
//! numbered-message oracle: N sent, N chained, in order, exactly once, and the
//! spool verifies intact.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn logger_over_every_input_n_sent_n_chained_in_order() {
    let d = TempDir::new("agent");
    let state = d.path().join("state");
    let sock = d.path().join("log.sock");
    let ssock = d.path().join("stream.sock");
    let a = Agent::start(
        &state,
        &[
            "tcp://127.0.0.1:0".into(),
            "udp://127.0.0.1:0".into(),
            format!("unix-dgram://{}", sock.display()),
            format!("unix-stream://{}", ssock.display()),
        ],
    );
    let tcp = a.port("tcp");
    let udp = a.port("udp");
    let n = 2000;
    let f = numbered_file(d.path(), "octet5424", n);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-T",
        "--octet-count",
        "--rfc5424",
        "-t",
        "app",
        "-f",
        f.to_str().unwrap(),
    ]);
    let f = numbered_file(d.path(), "lf3164", n);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-T",
        "--rfc3164",
        "-t",
        "app",
        "-f",
        f.to_str().unwrap(),
    ]);
    // UDP in bursts of 50 (the kernel drops datagrams beyond the socket's
    // buffer on a loaded machine; that case is the Loss test's, not this one's).
    for burst in 0..10u64 {
        let f = d.path().join(format!("udp-{burst}.txt"));
        let text: String = (burst * 50 + 1..=burst * 50 + 50)
            .map(|i| format!("msg-udp-{i} payload\n"))
            .collect();
        std::fs::write(&f, text).unwrap();
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &udp,
            "-d",
            "-t",
            "app",
            "-f",
            f.to_str().unwrap(),
        ]);
        wait_for(&state, "udp", burst * 50 + 50);
    }
    let f = numbered_file(d.path(), "unix", 500);
    logger(&[
        "-u",
        sock.to_str().unwrap(),
        "-t",
        "app",
        "-f",
        f.to_str().unwrap(),
    ]);
    let f = numbered_file(d.path(), "ustream", 500);
    logger(&[
        "-u",
        ssock.to_str().unwrap(),
        "--socket-errors=on",
        "-T",
        "-t",
        "app",
        "-f",
        f.to_str().unwrap(),
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-T",
        "--rfc5424",
        "--sd-id",
        "meta@32473",
        "--sd-param",
        "k=\"v\"",
        "--msgid",
        "M1",
        "-t",
        "app",
        "msg-sd-1 structured",
    ]);
    wait_for(&state, "ustream", 500);
    wait_for(&state, "sd", 1);
    a.stop();

    let evs = events(&state);
    assert_exactly(&evs, "octet5424", n);
    assert_exactly(&evs, "lf3164", n);
    assert_exactly(&evs, "udp", 500);
    assert_exactly(&evs, "unix", 500);
    assert_exactly(&evs, "ustream", 500);
    assert_exactly(&evs, "sd", 1);
    // Raw bytes as sent: 5424 header and structured data kept verbatim.
    let sd = evs.iter().find(|(_, m)| m.contains("msg-sd-1")).unwrap();
    assert!(
        sd.1.starts_with("<13>1 ")
            && sd.1.contains("[meta@32473 k=\"v\"]")
            && sd.1.contains(" M1 "),
        "{}",
        sd.1
    );
    let lf = evs
        .iter()
        .find(|(_, m)| m.contains("msg-lf3164-1 "))
        .unwrap();
    assert!(lf.0.starts_with("127.0.0.1:"), "peer recorded: {}", lf.0);
    assert_intact(&state);
}

#[test]
fn restart_continues_the_chain_and_config_file_works() {
    let d = TempDir::new("agent");
    let state = d.path().join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nhost = \"cfg-host\"\n[chain]\nseal_interval = \"100ms\"\n[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    for round in 1..=3 {
        let agent = Agent::start_config(&cfg, &state, None, 1);
        let port = agent.port("tcp");
        let f = numbered_file(d.path(), &format!("round{round}"), 300);
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-T",
            "--octet-count",
            "-t",
            "app",
            "-f",
            f.to_str().unwrap(),
        ]);
        wait_for(&state, &format!("round{round}"), 300);
        agent.stop();
    }
    let evs = events(&state);
    for round in 1..=3 {
        assert_exactly(&evs, &format!("round{round}"), 300);
    }
    let o = Command::new(bin())
        .args(["verify", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "intact");
    assert_eq!(
        v["chains"].as_array().unwrap().len(),
        1,
        "one chain across restarts"
    );
    assert_eq!(v["chains"][0]["host"], "cfg-host");
    assert!(v["chains"][0]["ended_cleanly"].as_bool().unwrap());
}

#[test]
fn shipped_config_is_valid_and_bad_keys_are_named() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml");
    let o = Command::new(bin())
        .args(["agent", "--check-config"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg = logseal::agent::config::AgentConfig::load(&shipped).unwrap();
    assert_eq!(cfg.inputs.len(), 3);
    assert_eq!(cfg.spool.commit_interval, Duration::from_millis(10));
    // The [journald] table shows the defaults the code applies.
    let j = cfg
        .journald
        .as_ref()
        .expect("[journald] in the shipped config");
    let d = logseal::ingest::journal::config::JournaldConfig::default();
    assert_eq!(
        (
            &j.journal,
            &j.start,
            &j.priority,
            j.max_entry_size,
            j.stop_at_end
        ),
        (
            &d.journal,
            &d.start,
            &d.priority,
            d.max_entry_size,
            d.stop_at_end
        )
    );
    assert!(
        j.units.is_empty()
            && j.identifiers.is_empty()
            && j.matches.is_empty()
            && j.fields.is_empty()
    );

    let d = TempDir::new("agentcfg");
    let bad = d.path().join("bad.toml");
    let (code, err) = common::check_config(
        "agent",
        &bad,
        "host = \"x\"\n\n[spool]\nmax_sise = \"1GiB\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("max_sise") && err.contains("line 4"), "{err}");

    let (code, err) = common::check_config(
        "agent",
        &bad,
        "[[input]]\ntype = \"tcp\"\nlisten = \"localhost\"\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("\"localhost\" is not an address"));

    let (code, err) = common::check_config(
        "agent",
        &bad,
        "[journald]\nstart = \"head\"\nunit = [\"ssh.service\"]\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown field `unit`") && err.contains("line 3"),
        "{err}"
    );
    let (code, err) = common::check_config("agent", &bad, "[journald]\nstart = \"yesterday\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("journald.start \"yesterday\""), "{err}");

    let (_, err) = common::check_config("agent", &bad, "[chain]\nseal_interval = \"fast\"\n");
    assert!(
        err.contains("invalid duration") && err.contains("line 2"),
        "{err}"
    );
}

/// After a restart the spool verifies while the agent writes on: the only findings
/// allowed are the live, not-yet-sealed tail and, at the end of the file being
/// written, a frame the writer has not finished yet. Such a torn frame must move
/// on (or vanish) at the next look; one that stays put is crash residue the
/// restart failed to repair.
fn live_spool_verifies(state: &std::path::Path, round: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last_torn: Option<serde_json::Value> = None;
    loop {
        let o = Command::new(bin())
            .args(["verify", "--json"])
            .arg(state)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["chains"].as_array().unwrap().len(),
            1,
            "round {round}: one chain"
        );
        assert!(
            v["unattributed"].as_array().unwrap().is_empty(),
            "round {round}: {v}"
        );
        let mut torn = None;
        for p in v["chains"][0]["problems"].as_array().unwrap() {
            match p["kind"].as_str() {
                Some("unsealed-tail") => {}
                Some("truncated-tail") if torn.is_none() => torn = Some(p["at"].clone()),
                _ => panic!("round {round}: {p}"),
            }
        }
        let Some(at) = torn else { return };
        assert!(
            last_torn.as_ref() != Some(&at),
            "round {round}: a torn frame at {at} stays put while the agent runs"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "round {round}: the spool never verified without a torn tail: {v}"
        );
        last_torn = Some(at);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kill_9_while_a_tcp_sender_writes_loses_nothing_that_was_written() {
    let d = TempDir::new("agentkill");
    let state = d.path().join("state");
    // A fixed port for all restarts, so the sender can reconnect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    // The sender: numbered, octet-counted, reconnecting after every kill.
    let sender = std::thread::spawn(move || {
        let mut i = 0u64;
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            loop {
                let m = format!("<13>1 - h app - - - msg-kill-{} x", i + 1);
                let frame = format!("{} {m}", m.len());
                if s.write_all(frame.as_bytes()).is_err()
                    || st.load(std::sync::atomic::Ordering::Relaxed)
                {
                    break;
                }
                i += 1;
                if i % 5 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
    let mut seen_before: Vec<u64> = Vec::new();
    for round in 0..20 {
        let a = Agent::start(&state, std::slice::from_ref(&url));
        if round > 0 {
            live_spool_verifies(&state, round);
        }
        std::thread::sleep(Duration::from_millis(150 + (round % 5) * 40));
        // What the spool holds right before the kill (page cache survives kill -9).
        let before = numbers(&events(&a.state), "kill");
        a.kill9();
        let after_kill = numbers(&events(&state), "kill");
        assert!(
            after_kill.len() >= before.len(),
            "round {round}: records vanished"
        );
        seen_before = before;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let a = Agent::start(&state, std::slice::from_ref(&url));
    std::thread::sleep(Duration::from_millis(200));
    a.stop();
    sender.join().unwrap();
    let all = numbers(&events(&state), "kill");
    // Exactly once and in order; everything present before the last kill is still there.
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "duplicates or disorder"
    );
    let set: HashSet<u64> = all.iter().copied().collect();
    assert!(seen_before.iter().all(|x| set.contains(x)));
    assert!(all.len() > 1000, "the sender got through: {}", all.len());
    assert_intact(&state);
    // Each restart is recorded.
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let recovered = recs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "recovered")
        .count();
    assert!(recovered >= 20, "recovered lifecycle records: {recovered}");
}

#[test]
fn socket_activation_uses_the_passed_sockets() {
    // systemd-socket-activate (package systemd) binds, passes LISTEN_FDS and
    // starts the agent on the first connection, as a socket unit would.
    let d = TempDir::new("activate");
    let state = d.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let errlog = d.path().join("agent.log");
    let child = Command::new("systemd-socket-activate")
        .args(["-l", &addr])
        .arg(bin())
        .args(["agent", "--listen", &format!("tcp://{addr}"), "--state"])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .expect("systemd-socket-activate (package systemd) is needed");
    // Wait until the activator listens, then send (this starts the agent).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("activator not listening: {e}"),
        }
    };
    for i in 1..=100 {
        let m = format!("<13>1 - h app - - - msg-act-{i} x");
        s.write_all(format!("{} {m}", m.len()).as_bytes()).unwrap();
    }
    drop(s);
    wait_for(&state, "act", 100);
    // The activator execs the agent: the pid is the agent's.
    Agent {
        child,
        urls: vec![],
        state: state.clone(),
        metrics: None,
    }
    .stop();
    assert_exactly(&events(&state), "act", 100);
    let log = std::fs::read_to_string(&errlog).unwrap();
    assert!(log.contains("using sockets passed by systemd"), "{log}");
    assert_intact(&state);
}

#[test]
fn tells_systemd_ready_watchdog_and_stopping() {
    let d = TempDir::new("notify");
    let state = d.path().join("state");
    let nsock = d.path().join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&nsock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: exec keeps the shell's.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" agent --listen tcp://127.0.0.1:0 --state \"$1\"")
        .arg(bin())
        .arg(&state)
        .env("NOTIFY_SOCKET", &nsock)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !(got.iter().any(|m: &String| m.contains("READY=1"))
        && got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        let n = listener
            .recv(&mut buf)
            .expect("READY=1 and WATCHDOG=1 expected");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    Agent {
        child,
        urls: vec![],
        state,
        metrics: None,
    }
    .stop();
    let mut stopping = false;
    while let Ok(n) = listener.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 expected; got {got:?}");
}

#[test]
fn loggen_streams_numbered_messages_all_chained_once_in_order() {
    let root = syslog_ng_root();
    let d = TempDir::new("loggen");
    let state = d.path().join("state");
    let a = Agent::start(
        &state,
        &["tcp://127.0.0.1:0".into(), "udp://127.0.0.1:0".into()],
    );
    let tcp = a.port("tcp");
    let n = 20_000u64;
    // RFC 5424, octet-counted over TCP (-P), 200-byte messages.
    loggen(
        &root,
        &[
            "--inet",
            "--stream",
            "-P",
            "-s",
            "200",
            "-r",
            "200000",
            "-n",
            &n.to_string(),
            "127.0.0.1",
            &tcp,
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let seqs = |evs: &[(String, String)]| -> Vec<u64> {
        evs.iter()
            .filter_map(|(_, m)| {
                m.find("seq: ")
                    .map(|i| m[i + 5..i + 15].parse::<u64>().unwrap())
            })
            .collect()
    };
    while seqs(&events(&state)).len() < n as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "not all loggen messages chained"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.stop();
    let evs = events(&state);
    assert_eq!(
        seqs(&evs),
        (0..n).collect::<Vec<_>>(),
        "every loggen seq exactly once, in order"
    );
    // loggen puts a BOM before the message text: kept byte for byte.
    assert!(
        evs[0].1.contains("- - \u{feff}seq: 0000000000"),
        "{}",
        evs[0].1
    );
    assert_intact(&state);
}

#[test]
fn inspect_json_derives_syslog_fields_from_the_raw_bytes() {
    let d = TempDir::new("inspectsyslog");
    let state = d.path().join("state");
    let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
    let tcp = a.port("tcp");
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-T",
        "--octet-count",
        "--rfc5424",
        "-p",
        "auth.warning",
        "-t",
        "sshd",
        "--msgid",
        "LOGIN",
        "msg-fields-1 hello",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-T",
        "--rfc3164",
        "-p",
        "daemon.err",
        "-t",
        "cron",
        "msg-fields-2 bye",
    ]);
    wait_for(&state, "fields", 2);
    a.stop();
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let find = |tag: &str| {
        recs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["message"].as_str().is_some_and(|m| m.contains(tag)))
            .unwrap()
            .clone()
    };
    let a = find("msg-fields-1");
    assert_eq!(a["syslog"]["format"], "rfc5424");
    assert_eq!(
        (
            a["syslog"]["facility"].as_u64(),
            a["syslog"]["severity"].as_str()
        ),
        (Some(4), Some("warning"))
    );
    assert_eq!(
        (a["syslog"]["app"].as_str(), a["syslog"]["msgid"].as_str()),
        (Some("sshd"), Some("LOGIN"))
    );
    assert_eq!(a["syslog"]["msg"], "msg-fields-1 hello");
    let b = find("msg-fields-2");
    assert_eq!(b["syslog"]["format"], "rfc3164");
    assert_eq!(
        (
            b["syslog"]["facility"].as_u64(),
            b["syslog"]["severity"].as_str()
        ),
        (Some(3), Some("err"))
    );
    assert_eq!(b["syslog"]["app"], "cron");
    assert_eq!(b["syslog"]["msg"], "msg-fields-2 bye");
    // The derived 3164 timestamp is within a minute of the receive time.
    let ts =
        logseal::util::timefmt::parse_rfc3339(b["syslog"]["timestamp"].as_str().unwrap()).unwrap();
    assert!((ts - b["time_ns"].as_i64().unwrap()).abs() < 60_000_000_000);
}

#[test]
fn idle_timeout_connection_bound_and_heartbeat_seals() {
    let d = TempDir::new("limits");
    let state = d.path().join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[chain]\nheartbeat = \"300ms\"\n[limits]\nmax_connections = 2\nidle_timeout = \"500ms\"\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n",
            state.display()
        ),
    )
    .unwrap();
    let agent = Agent::start_config(&cfg, &state, None, 1);
    let addr = agent.addr("tcp");

    // Two connections take both slots; a third waits: its message is not read.
    let mut c1 = std::net::TcpStream::connect(&addr).unwrap();
    let mut c2 = std::net::TcpStream::connect(&addr).unwrap();
    c1.write_all(b"<13>msg-lim-1 first\n").unwrap();
    c2.write_all(b"<13>msg-lim-2 second\n").unwrap();
    wait_for(&state, "lim", 2);
    let mut c3 = std::net::TcpStream::connect(&addr).unwrap();
    c3.write_all(b"<13>msg-lim-3 third\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    assert_eq!(
        sorted(numbers(&events(&state), "lim")),
        vec![1, 2],
        "a third connection is not served while two are open"
    );
    // Idle connections are closed after 500 ms, which frees the slots.
    c1.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    use std::io::Read;
    assert_eq!(
        c1.read(&mut buf).unwrap(),
        0,
        "idle connection closed by the agent"
    );
    wait_for(&state, "lim", 3);
    assert_eq!(sorted(numbers(&events(&state), "lim")), vec![1, 2, 3]);
    drop((c2, c3));

    // Idle: heartbeat seals every 300 ms.
    let seals = |st: &Path| {
        let o = Command::new(bin())
            .args(["verify", "--json"])
            .arg(st)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["chains"][0]["seals"].as_u64().unwrap()
    };
    let before = seals(&state);
    std::thread::sleep(Duration::from_millis(2500));
    let after = seals(&state);
    assert!(
        after >= before + 3,
        "heartbeat seals while idle: {before} -> {after}"
    );
    agent.stop();
    assert_intact(&state);
}

/// A verifier run right after the agent started (or restarted) finds a sealed
/// chain: the Genesis and the start record do not wait for the heartbeat seal.
#[test]
fn the_start_is_sealed_at_once() {
    let d = TempDir::new("agent-start-seal");
    let state = d.path().join("state");
    for _run in 0..2 {
        let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
        assert_intact(&state);
        a.stop();
    }
}

/// One owner per state directory: a second agent (an operator running the
/// config by hand while the service runs) is refused with exit 2, naming the
/// first one's PID, and the chain is untouched.
#[test]
fn a_second_agent_on_the_same_state_is_refused() {
    let d = TempDir::new("agent-lock");
    let state = d.path().join("state");
    let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
    let pid = a.child.id();
    let spool_before = events(&state).len();
    let o = Command::new(bin())
        .args([
            "agent",
            "--host",
            "agent-test",
            "--listen",
            "tcp://127.0.0.1:0",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("in use by process {pid}")), "{err}");
    assert_eq!(events(&state).len(), spool_before);
    a.stop();
    assert_intact(&state);
    // The lock goes with its owner, even killed: a new agent starts.
    let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
    a.kill9();
    let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
    a.stop();
}

#[test]
fn a_second_stamp_on_the_same_state_is_refused() {
    let d = TempDir::new("stamp-lock");
    let state = d.path().join("state");
    let stamp = |input: Option<&str>| {
        let mut c = Command::new(bin())
            .args(["stamp", "--host", "h", "--out"])
            .arg(d.path().join("log.seg"))
            .arg("--state")
            .arg(&state)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(i) = input {
            // A refused stamp may exit before it reads: a broken pipe here is
            // its refusal arriving first, not a failure of the test.
            match c.stdin.take().unwrap().write_all(i.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.unwrap(),
            }
        }
        c
    };
    let mut first = stamp(None); // holds the state while it waits for input
    let lock = state.join("lock");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first stamp never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = stamp(Some("x\n")).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("in use by process {}", first.id())),
        "{err}"
    );
    first
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert_intact(&d.path().join("log.seg"));
}
