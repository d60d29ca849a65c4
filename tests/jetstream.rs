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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// A CA, a secure three-node cluster, and the `[jetstream]` table of a
/// collector on it as the example's collectors' user.
fn secure_cluster(d: &Path) -> (Ca, NatsCluster, String) {
    let ca = Ca::new(&d.join("pki"));
    let nats = NatsCluster::start_secure(&d.join("nats"), &ca.dir);
    let js = jetstream_toml(&nats, d, &ca, "logseal-collector", COLLECTOR_PASSWORD, "");
    (ca, nats, js)
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
/// export` into a new directory; `None` if the export failed (a node just
/// killed: the stream is electing a leader).
fn try_stream_events(url: &str, d: &Path) -> Option<(Vec<(String, String)>, PathBuf)> {
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
    if !o.status.success() {
        eprintln!("store export: {}", String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some((events_in(&to.join("chains")), to))
}

/// [`try_stream_events`], which must succeed.
fn stream_events(url: &str, d: &Path) -> (Vec<(String, String)>, PathBuf) {
    try_stream_events(url, d).expect("store export")
}

/// Whether the stream holds at least `n` messages tagged `tag`.
fn stream_holds(url: &str, d: &Path, tag: &str, n: usize) -> bool {
    try_stream_events(url, d).is_some_and(|(evs, _)| numbers(&evs, tag).len() >= n)
}

/// An agent ships through two relays to collectors A and B sharing one
/// stream. It is moved from A to B (A cut off, still running, its cached tip
/// left behind), one NATS node is killed, then back to A (B killed): A must
/// catch up from the stream and go on. Every message is in the stream exactly
/// once, the exported store verifies intact, and `verify nats://` agrees.
#[test]
fn an_agent_fails_over_between_collectors_sharing_a_stream_mid_chain() {
    let d = TempDir::new("js-failover");
    let (ca, mut nats, js) = secure_cluster(d.path());
    let js = format!("{js}[liveness]\nstatus_interval = \"200ms\"\n");
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
        move || stream_holds(&url, &d, "fo", n)
    };
    send_tcp(&agent.addr("tcp"), "fo", 1, 3000);
    wait_until("the first messages in the stream through A", stored(3000));
    // A is cut off (it keeps running with the tip it had): the agent moves to B.
    ra.cut();
    send_tcp(&agent.addr("tcp"), "fo", 3001, 6000);
    wait_until("the next messages in the stream through B", stored(6000));
    // A, cut off, still knows where the host stands: its status follows
    // what B stored (A itself stored fewer than 6000 records).
    let a_status = a.store.join("status.json");
    wait_until("A's status following the stream", || {
        std::fs::read(&a_status)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["hosts"][0]["chains"][0]["next_seq"].as_u64())
            .is_some_and(|n| n >= 6000)
    });
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
        try_stream_events(&url, d.path()).is_some_and(|(_, dir)| {
            verify_json(&dir.join("chains")).1["chains"][0]["ended_cleanly"] == true
        })
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
    assert_eq!(inspect_messages(&url, "msg-fo-"), 12_000);
    // Exported as a store with A's checkpoint log: verified as a store.
    let with_log = d.path().join("with-log");
    let o = Command::new(bin())
        .args(["store", "export", "--from", &url, "--to"])
        .arg(&with_log)
        .arg("--checkpoints-from")
        .arg(&a.store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!with_log.join("checkpoints/signer.state").exists());
    let (code, doc) = verify_json(&with_log);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        !doc["checkpoint_log"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
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

/// What each of the example's users may do to the stream, tried for real:
/// the stream itself refuses message deletes and purges (and unsetting
/// either flag) whoever asks; the collectors' user cannot delete or
/// reconfigure the stream either; the readers' user cannot publish. After
/// all of it the stream holds every record and verifies intact. A stream
/// that is not write-once is refused by the collector at start.
#[test]
fn the_stream_refuses_deletes_and_purges_and_a_loose_stream_is_refused() {
    use async_nats::jetstream;
    let d = TempDir::new("js-deny");
    let (ca, nats, js) = secure_cluster(d.path());
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", &js);
    let cfg = agent_config(d.path(), &ca, "web-deny", &[&c.addr], TCP_INPUT, "");
    let agent = start_agent(d.path(), &cfg);
    send_tcp(&agent.addr("tcp"), "deny", 1, 500);
    let url = reader_url(&nats, d.path(), &ca);
    wait_until("messages in the stream", || {
        stream_holds(&url, d.path(), "deny", 500)
    });
    agent.stop();
    let options = |user: &str, password: &str| {
        let (cert, key, _) = client_files(d.path(), &ca, &format!("nats-{user}"), password);
        async_nats::ConnectOptions::new()
            .add_root_certificates(ca.ca())
            .add_client_certificate(cert, key)
            .require_tls(true)
            .user_and_password(user.into(), password.into())
            .request_timeout(Some(Duration::from_secs(3)))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let as_user = |user: &str, password: &str| {
            let o = options(user, password);
            let servers = nats.clients.clone();
            async move {
                let client = o.connect(servers).await.unwrap();
                jetstream::ContextBuilder::new()
                    .timeout(Duration::from_secs(3))
                    .build(client)
            }
        };
        let admin = as_user("admin", ADMIN_PASSWORD).await;
        let collector = as_user("logseal-collector", COLLECTOR_PASSWORD).await;
        let reader = as_user("logseal-reader", READER_PASSWORD).await;
        let stream = admin.get_stream("LOGSEAL").await.unwrap();
        let config = stream.cached_info().config.clone();
        assert!(config.deny_delete && config.deny_purge, "{config:?}");
        assert_eq!(config.num_replicas, 3);
        assert_eq!(config.discard, jetstream::stream::DiscardPolicy::New);
        // The stream's own refusals, whoever asks (codes of nats-server).
        let e = stream.delete_message(1).await.unwrap_err().to_string();
        assert!(e.contains("10057"), "message delete: {e}");
        let e = stream.purge().await.unwrap_err().to_string();
        assert!(e.contains("10110"), "purge: {e}");
        for unset in [
            |c: &mut jetstream::stream::Config| c.deny_delete = false,
            |c: &mut jetstream::stream::Config| c.deny_purge = false,
        ] {
            let mut loose = config.clone();
            unset(&mut loose);
            let e = admin.update_stream(&loose).await.unwrap_err().to_string();
            assert!(e.contains("10052"), "unsetting a deny flag: {e}");
        }
        // The collectors' user: no stream delete, purge or update at all.
        let cs = collector.get_stream("LOGSEAL").await.unwrap();
        assert!(cs.delete_message(1).await.is_err());
        assert!(cs.purge().await.is_err());
        assert!(collector.delete_stream("LOGSEAL").await.is_err());
        let mut more = config.clone();
        more.description = Some("changed".into());
        assert!(collector.update_stream(&more).await.is_err());
        // The readers' user cannot add a message.
        let ack = match reader
            .publish("logseal.chain.web-deny.00", "x".into())
            .await
        {
            Ok(f) => f.await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(ack.is_err(), "a reader published");
        // Nothing was lost: the stream is as it was.
        let after = admin.get_stream("LOGSEAL").await.unwrap();
        assert_eq!(
            after.cached_info().state.messages,
            stream.cached_info().state.messages
        );
        // A stream that may lose evidence, made by the admin.
        admin
            .create_stream(jetstream::stream::Config {
                name: "LOOSE".into(),
                subjects: vec!["loose.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let (evs, dir) = stream_events(&url, d.path());
    assert_exactly(&evs, "deny", 500);
    let (code, doc) = verify_json(&dir.join("chains"));
    assert_eq!(code, 0, "{doc:#}");
    c.stop();
    // A collector told to use the loose stream refuses to start, naming it.
    let loose = jetstream_toml(
        &nats,
        d.path(),
        &ca,
        "admin",
        ADMIN_PASSWORD,
        "stream = \"LOOSE\"",
    );
    let cfg = d.path().join("loose.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{loose}",
            d.path().join("loose-store").display(),
            ca.ca().display(),
            ca.dir.join("collector.crt").display(),
            ca.dir.join("collector.key").display(),
        ),
    )
    .unwrap();
    let o = Command::new(bin())
        .args(["collector", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stream LOOSE") && err.contains("deny_delete"),
        "{err}"
    );
    // Whoever can publish on the stream (the collectors' credentials, taken)
    // adds junk to the chain and a subject in another spelling: `verify` of
    // the stream fails, naming both, though the chain's records before the
    // junk still verify.
    let chain_dir = std::fs::read_dir(dir.join("chains/web-deny"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    rt.block_on(async {
        let o = options("logseal-collector", COLLECTOR_PASSWORD);
        let client = o.connect(nats.clients.clone()).await.unwrap();
        let ctx = jetstream::new(client);
        for subject in [
            format!("logseal.chain.web-deny.{chain_dir}"),
            format!("logseal.chain.web-deny.{}", chain_dir.to_uppercase()),
        ] {
            ctx.publish(subject, "not a record".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    let o = Command::new(bin()).args(["verify", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("payload frame 0"), "{err}");
    assert!(err.contains("name no chain"), "{err}");
    let o = Command::new(bin())
        .args(["inspect", &url])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// One host's state restored from a copy (so two histories under one key
/// after a common prefix) sends both at once, one through collector A and
/// one through collector B, batch by batch, on the same stream: five races,
/// each on a chain of its own. In each, exactly one history is acknowledged
/// past the fork, the other is refused as a conflict, and the stream holds
/// exactly the winner's records, verifying intact: collectors racing on a
/// chain never interleave or fork it.
#[test]
fn two_histories_racing_through_two_collectors_leave_one_in_the_stream() {
    use logseal::transport::proto::{Code, Msg};
    let d = TempDir::new("js-race");
    let (ca, nats, js) = secure_cluster(d.path());
    let a = Collector::start(&d.path().join("a"), &ca, "127.0.0.1:0", &js);
    let b = Collector::start(&d.path().join("b"), &ca, "127.0.0.1:0", &js);
    let prefix: String = (0..300).map(|i| format!("common {i}\n")).collect();
    let (tail_a, tail_b): (String, String) = (
        (0..300).map(|i| format!("history a {i}\n")).collect(),
        (0..300).map(|i| format!("history b {i}\n")).collect(),
    );
    let mut histories = Vec::new();
    for round in 0..5 {
        let host = format!("race-{round}");
        let w = d.path().join(&host);
        let (state, log) = (w.join("state"), w.join("a.seg"));
        stamp(&state, &log, &host, &prefix);
        let (state2, log2) = (w.join("state2"), w.join("b.seg"));
        copy_tree(&state, &state2);
        copy_tree(&log, &log2);
        stamp(&state, &log, &host, &tail_a);
        stamp(&state2, &log2, &host, &tail_b);
        let (ra, rb) = (records(&log), records(&log2));
        assert_ne!(ra, rb);
        // Both at once, in batches of 40 records, each through its collector.
        let _ = ca.agent(&host);
        let barrier = std::sync::Barrier::new(2);
        let send = |addr: &str, recs: &[Vec<u8>]| {
            let (cert, key) = ca.agent(&host);
            let t = tls_client(&ca, Some((&cert, &key)), addr).map_err(|e| e.to_string());
            let t = t.and_then(|mut t| hello(&mut t, &host).map(|m| (t, m)));
            // Both wait here whatever happened (a panic before it would
            // leave the other thread waiting for ever).
            barrier.wait();
            let (mut t, welcome) = t.unwrap();
            assert!(matches!(welcome, Msg::Welcome { .. }), "{welcome:?}");
            for (i, chunk) in recs.chunks(40).enumerate() {
                let m = send_batch(&mut t, i as u64 + 1, chunk);
                match &m {
                    Ok(Msg::Ack { .. }) => {}
                    _ => return Some(error_code(&m)),
                }
            }
            None
        };
        let (out_a, out_b) = std::thread::scope(|s| {
            let ta = s.spawn(|| send(&a.addr, &ra));
            let tb = s.spawn(|| send(&b.addr, &rb));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let (winner, loser) = match (&out_a, &out_b) {
            (None, Some(_)) => (&ra, &out_b),
            (Some(_), None) => (&rb, &out_a),
            _ => {
                let errors = |t: String| -> String {
                    t.lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                panic!(
                    "round {round}: exactly one history must be acknowledged: {out_a:?} {out_b:?}\nA:\n{}\nB:\n{}",
                    errors(a.log_text()),
                    errors(b.log_text())
                )
            }
        };
        assert_eq!(
            *loser,
            Some(Some(Code::Conflict)),
            "round {round}: the other history is refused as a conflict"
        );
        histories.push((host, winner.clone()));
    }
    // A batch larger than one message of the server (max_payload 1 MiB):
    // cut into several, each at the chain's tip, and acknowledged whole.
    let host = "big-batch".to_string();
    let w = d.path().join(&host);
    let log = w.join("big.seg");
    let lines: String = (0..8000).map(|i| format!("a small record {i}\n")).collect();
    stamp(&w.join("state"), &log, &host, &lines);
    let big = records(&log);
    let bytes: usize = big.iter().map(|r| r.len() + 9).sum();
    assert!(bytes > 1 << 20, "{bytes} bytes: more than one message");
    let (cert, key) = ca.agent(&host);
    let mut t = tls_client(&ca, Some((&cert, &key)), &a.addr).unwrap();
    assert!(matches!(hello(&mut t, &host), Ok(Msg::Welcome { .. })));
    let m = send_batch(&mut t, 1, &big);
    assert!(
        matches!(m, Ok(Msg::Ack { next_seq, .. }) if next_seq == big.len() as u64),
        "{m:?}"
    );
    histories.push((host, big));
    let url = reader_url(&nats, d.path(), &ca);
    let (_, dir) = stream_events(&url, d.path());
    let (code, doc) = verify_json(&dir.join("chains"));
    assert_eq!(code, 0, "{doc:#}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("export.json")).unwrap()).unwrap();
    let big_messages = manifest["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["host"] == "big-batch")
        .unwrap()["messages"]
        .as_u64()
        .unwrap();
    assert!(big_messages >= 2, "{manifest:#}");
    for (host, winner) in &histories {
        let (files, _) =
            logseal::responder::verify_files::expand(&[dir.join("chains").join(host)]).unwrap();
        let stored: Vec<Vec<u8>> = files.iter().flat_map(|f| records(f)).collect();
        assert!(
            stored == *winner,
            "{host}: the stream holds exactly the acknowledged history ({} records, {} acknowledged)",
            stored.len(),
            winner.len()
        );
    }
    a.stop();
    b.stop();
}

/// A server that accepts the connection and never says a word: `verify`
/// of its URL ends with an error naming it (timeout 10 s, so within 20 s),
/// it does not hang.
#[test]
fn a_silent_server_is_an_error_not_a_hang() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}/X?plaintext=yes", l.local_addr().unwrap());
    let mut child = Command::new(bin())
        .args(["verify", &url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("verify of a silent server still runs after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("connecting to NATS"), "{err}");
    drop(l);
}
