//! Operating the agent and the collector: signals and reload, failed starts
//! that leave the chain alone, and revocation that fails closed (issue 14).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::Agent;
use common::collector::*;
use common::*;
use logseal::transport::proto::{Code, Msg};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn signal(child: &std::process::Child, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), sig).unwrap();
}

/// Waits until `path`'s text contains `needle` `count` times.
fn log_has(path: &Path, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count}× {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir` with its bytes (sorted by path).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap() != "lock" {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// `logseal ROLE --check-config PATH`.
fn check_config_of(role: &str, path: &Path) -> Output {
    Command::new(bin())
        .args([role, "--check-config"])
        .arg(path)
        .output()
        .unwrap()
}

fn agent_cmd(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("agent")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_failed_start_leaves_the_chain_untouched() {
    let d = TempDir::new("failed-start");
    let state = d.path().join("state");
    let s = state.to_str().unwrap();
    // A port in use: the agent cannot bind it.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_url = format!("tcp://{}", busy.local_addr().unwrap());

    // On a new state directory: no chain is created.
    let o = agent_cmd(&["--state", s, "--host", "h", "--listen", &busy_url]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("binding tcp://"),
        "{o:?}"
    );
    assert!(
        snapshot(&state).is_empty(),
        "a start that failed wrote {:?}",
        snapshot(&state).iter().map(|f| &f.0).collect::<Vec<_>>()
    );

    // On an existing chain: nothing is appended (no `recovered`/`start` record).
    let a = Agent::start(&state, &["tcp://127.0.0.1:0".into()]);
    a.stop();
    let before = snapshot(&state);
    let o = agent_cmd(&["--state", s, "--host", "h", "--listen", &busy_url]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    #[cfg(feature = "journald")]
    {
        let missing = d.path().join("no-such-journal");
        let o = agent_cmd(&[
            "--state",
            s,
            "--host",
            "h",
            "--journal",
            missing.to_str().unwrap(),
        ]);
        assert_ne!(o.status.code(), Some(0), "{o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not a directory"),
            "{o:?}"
        );
    }
    // A [ship] table whose certificate does not exist.
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{s}\"\nhost = \"h\"\n[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
             [ship]\ncollectors = [\"127.0.0.1:1\"]\nca = \"{0}/none.crt\"\ncert = \"{0}/none.crt\"\nkey = \"{0}/none.key\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let o = agent_cmd(&["--config", cfg.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(before, snapshot(&state), "a failed start changed the state");
    assert_intact(&state.join("spool"));
}

#[test]
fn sighup_reloads_the_agent_and_the_collector_and_stops_neither() {
    let d = TempDir::new("sighup");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let adir = d.path().join("a");
    std::fs::create_dir_all(&adir).unwrap();
    let cfg = agent_config(&adir, &ca, "hup-host", &[&c.addr], TCP_INPUT, "");
    let errlog = adir.join("agent.log");
    let mut a = Agent::start_config(&cfg, &adir.join("state"), Some(&errlog), 1);

    // A setting changed in the file meanwhile is named: it needs a restart.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[limits]\nmax_connections = 7\n");
    std::fs::write(&cfg, text).unwrap();
    signal(&a.child, rustix::process::Signal::HUP);
    log_has(&errlog, "SIGHUP: reloading", 1);
    log_has(&errlog, "shipping certificates reloaded", 1);
    log_has(&errlog, "taking effect at the next restart: [limits]", 1);
    signal(&c.child, rustix::process::Signal::HUP);
    log_has(&c.log, "TLS configuration reloaded", 1);
    // Both still serve: an event sent now is chained and stored.
    let mut s = TcpStream::connect(a.addr("tcp")).unwrap();
    s.write_all(b"<13>Nov 29 12:00:00 h app: msg-hup-1 after the reload\n")
        .unwrap();
    drop(s);
    wait_until("the event in the store", || {
        store_events(&c.store)
            .iter()
            .any(|(_, m)| m.contains("msg-hup-1"))
    });
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the agent"
    );
    a.stop();
    let log = c.stop();
    assert!(!log.contains("panicked"), "{log}");
    // The agent sealed its stop (a clean end), which it cannot do when a
    // signal kills it.
    let (code, v) = verify_json(&adir.join("state").join("spool"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["chains"][0]["ended_cleanly"], true, "{v}");
}

// ---- Revocation -------------------------------------------------------------

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(ca: &Ca, host: &str, addr: &str) -> std::io::Result<Tls> {
    let (cert, key) = ca.agent(host);
    let cfg = logseal::transport::tls::client_config(&ca.ca(), &cert, &key).unwrap();
    let conn = rustls::ClientConnection::new(
        cfg,
        rustls::pki_types::ServerName::try_from("collector").unwrap(),
    )
    .unwrap();
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// Hello as `host` with the certificate of `cert_host`: the collector's answer.
fn hello_as(ca: &Ca, cert_host: &str, host: &str, addr: &str) -> Result<Msg, String> {
    let mut t = connect(ca, cert_host, addr).map_err(|e| e.to_string())?;
    hello(&mut t, host)
}

/// A session as `host`, welcomed.
fn session(ca: &Ca, host: &str, addr: &str) -> Tls {
    let mut t = connect(ca, host, addr).unwrap();
    let m = hello(&mut t, host);
    assert!(matches!(m, Ok(Msg::Welcome { .. })), "{m:?}");
    t
}

/// Hello as `host`: true if the collector answered Welcome.
fn welcomed(ca: &Ca, host: &str, addr: &str) -> bool {
    matches!(hello_as(ca, host, host, addr), Ok(Msg::Welcome { .. }))
}

/// The collector's config file written by `Collector::start` in `dir`.
fn collector_toml(dir: &Path) -> PathBuf {
    dir.join("collector.toml")
}

#[test]
fn a_crl_that_does_not_check_out_refuses_the_start_and_never_replaces_the_one_in_use() {
    let d = TempDir::new("crl");
    let ca = Ca::new(&d.path().join("pki"));
    // Readable by the service user, which --check-config checks when run as root.
    assert!(Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&ca.dir)
        .status()
        .unwrap()
        .success());
    ca.agent("bad-host");
    ca.agent("ok-host");
    let crl_before_revocation = std::fs::read(ca.crl()).unwrap();
    logseal::cmd::pki::revoke(&ca.dir, "bad-host").unwrap();
    let good_crl = std::fs::read(ca.crl()).unwrap();
    let rogue = Ca::named(&d.path().join("rogue"), "test CA"); // same name, other key
    let other = Ca::named(&d.path().join("other"), "other CA");

    let cdir = d.path().join("c");
    let c = Collector::start(&cdir, &ca, "127.0.0.1:0", "");
    assert!(!welcomed(&ca, "bad-host", &c.addr));
    assert!(welcomed(&ca, "ok-host", &c.addr));
    c.stop();
    let cfg = collector_toml(&cdir);

    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not a CRL\n".to_vec(), "holds no CRL"),
        ("empty", Vec::new(), "holds no CRL"),
        (
            "bad PEM body",
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".to_vec(),
            "does not parse",
        ),
        (
            "another CA's",
            std::fs::read(other.crl()).unwrap(),
            "not the client CA",
        ),
        (
            "same CA name, another key",
            std::fs::read(rogue.crl()).unwrap(),
            "signature does not verify",
        ),
        (
            // rustls would apply the first (old) one and re-admit bad-host.
            "an old and the new CRL in one file",
            [crl_before_revocation.clone(), good_crl.clone()].concat(),
            "a second CRL",
        ),
    ];
    // At start: refused, by --check-config and by the collector itself.
    for (what, bytes, expect) in &bad {
        std::fs::write(ca.crl(), bytes).unwrap();
        for args in [vec!["--check-config"], vec!["--config"]] {
            let o = Command::new(bin())
                .arg("collector")
                .args(&args)
                .arg(&cfg)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_ne!(o.status.code(), Some(0), "{what} {args:?}: {err}");
            assert!(
                err.contains("crl") && err.contains(expect),
                "{what} {args:?}: {err}"
            );
        }
    }
    // A FIFO in place of the CRL: refused, not a hang.
    std::fs::remove_file(ca.crl()).unwrap();
    assert!(Command::new("mkfifo")
        .arg(ca.crl())
        .status()
        .unwrap()
        .success());
    let o = check_config_of("collector", &cfg);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{o:?}"
    );
    std::fs::remove_file(ca.crl()).unwrap();

    // While running: each bad file is refused, the CRL in use stays, an alert
    // is raised; a CRL rolled back to before the revocation is refused too.
    std::fs::write(ca.crl(), &good_crl).unwrap();
    let c = Collector::start(&cdir, &ca, "127.0.0.1:0", "");
    let mut refused = 0;
    let rollback = (
        "rolled back",
        crl_before_revocation,
        "older than the one in use",
    );
    for (what, bytes, expect) in bad.iter().chain(std::iter::once(&rollback)) {
        std::fs::write(ca.crl(), bytes).unwrap();
        refused += 1;
        log_has(&c.log, "reload refused", refused);
        assert!(c.log_text().contains(expect), "{what}: {}", c.log_text());
        assert!(
            !welcomed(&ca, "bad-host", &c.addr),
            "{what}: the revoked host got in"
        );
        assert!(welcomed(&ca, "ok-host", &c.addr), "{what}");
    }
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("tls-reload-failed"), "{alerts}");
    c.stop();
}

#[test]
fn revoking_a_certificate_ends_its_open_session() {
    let d = TempDir::new("revoke-session");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let mut t = session(&ca, "victim", &c.addr);
    Msg::Ping(1).write(&mut t).unwrap();
    t.flush().unwrap();
    assert!(matches!(read_msg(&mut t), Ok(Msg::Pong(1))));

    logseal::cmd::pki::revoke(&ca.dir, "victim").unwrap();
    // The session is told and closed, without the agent sending anything.
    match read_msg(&mut t) {
        Ok(Msg::Error { code, .. }) => assert_eq!(Code::from_u16(code), Some(Code::Revoked)),
        other => panic!("expected a `revoked` error, got {other:?}"),
    }
    let _ = Msg::Ping(2).write(&mut t).and_then(|_| t.flush());
    assert!(
        !matches!(read_msg(&mut t), Ok(Msg::Pong(2))),
        "the session went on"
    );
    log_has(&c.log, "certificate revoked: ending its session", 1);
    assert!(!welcomed(&ca, "victim", &c.addr));
    c.stop();
}

/// The processes whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap() {
        let name = e.unwrap().file_name();
        let Ok(p) = name.to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        // state, then ppid
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            out.push(p);
        }
    }
    out
}

#[test]
fn quickstart_takes_its_children_with_it() {
    use std::io::{BufRead, BufReader};
    let d = TempDir::new("qs-hup");
    let qdir = d.path().join("qs");
    let start = |qdir: &Path| {
        let mut child = Command::new(bin())
            .args(["quickstart", "--dir"])
            .arg(qdir)
            .args(["--syslog-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        while !text.contains("Ctrl-C stops") {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "quickstart: {text}");
            text.push_str(&line);
        }
        let kids = children_of(child.id());
        assert_eq!(kids.len(), 2, "agent and collector: {kids:?}");
        (child, out, kids)
    };
    let gone = |kids: &[i32]| {
        wait_until("quickstart's children to exit", || {
            kids.iter().all(|p| {
                // A zombie (exited, not yet reaped by init) counts as gone.
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .map_or(true, |s| s.contains(") Z "))
            })
        })
    };
    // Its terminal closes: SIGHUP stops it cleanly, children first.
    let (mut child, mut out, kids) = start(&qdir);
    signal(&child, rustix::process::Signal::HUP);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("RESULT: intact"), "{rest}");
    gone(&kids);
    // Killed outright: the kernel stops its children.
    let (mut child, _out, kids) = start(&qdir);
    child.kill().unwrap();
    child.wait().unwrap();
    gone(&kids);
    // Neither run left anything behind that a new quickstart trips over.
    let (mut child, mut out, _) = start(&qdir);
    signal(&child, rustix::process::Signal::INT);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("RESULT: intact"), "{rest}");
}

#[test]
fn a_full_spool_never_blocks_datagram_senders_and_every_drop_is_counted() {
    use std::os::unix::net::UnixDatagram;
    let d = TempDir::new("dgram-full");
    let state = d.path().join("state");
    let sock = d.path().join("log.sock");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nhost = \"full-host\"\n\
             [spool]\nsegment_size = \"64KiB\"\nmax_size = \"256KiB\"\n\
             [[input]]\ntype = \"unix-dgram\"\npath = \"{}\"\n",
            state.display(),
            sock.display()
        ),
    )
    .unwrap();
    let errlog = d.path().join("agent.log");
    let a = Agent::start_config(&cfg, &state, Some(&errlog), 1);
    // No [ship] table: the operator is told that nothing leaves the host.
    log_has(&errlog, "no [ship] table", 1);
    // A program calling syslog(3): its send must never wait on the agent. The
    // spool holds a few hundred of these; the rest must be dropped and counted.
    let tx = UnixDatagram::unbound().unwrap();
    tx.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let pad = "x".repeat(400);
    let n = 60_000u64;
    for i in 0..n {
        let m = format!("<13>Nov 29 12:00:00 h app: msg-full-{i} {pad}");
        if let Err(e) = tx.send_to(m.as_bytes(), &sock) {
            panic!("datagram {i} of {n}: the sender was blocked ({e})");
        }
    }
    log_has(&errlog, "spool full", 1);
    a.stop();
    let (_, v) = verify_json(&state.join("spool"));
    let c = &v["chains"][0];
    let events = c["events"].as_u64().unwrap();
    let lost = c["lost_events"].as_u64().unwrap();
    assert!(
        lost > 0,
        "nothing was dropped: the test did not fill the spool: {v}"
    );
    assert_eq!(
        events + lost,
        n,
        "sent {n}, chained {events}, counted lost {lost}: {v}"
    );
    assert!(c["problems"].as_array().unwrap().is_empty(), "{v}");
}

/// Clock ticks of CPU a process has used (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_collector_backs_off_and_recovers() {
    let d = TempDir::new("emfile");
    let ca = Ca::new(&d.path().join("pki"));
    // Limits on unauthenticated clients above the descriptors it will have.
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[limits]\nmax_unauthenticated = 1000\nmax_unauthenticated_per_address = 1000\n",
    );
    let pid = c.child.id();
    // A real descriptor limit on the running collector.
    let st = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=40:40"])
        .status()
        .unwrap();
    assert!(st.success());
    // Connections that never start their handshake hold descriptors until the
    // handshake timeout; the ones beyond the limit wait in the backlog, and
    // accept(2) fails with EMFILE.
    let held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&c.addr).unwrap())
        .collect();
    log_has(&c.log, "cannot accept a connection", 1);
    // It waits between attempts instead of spinning a core: over two seconds
    // (200 ticks) a spinning accept loop uses nearly all of them.
    let before = cpu_ticks(pid);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 100,
        "the collector used {used} ticks of CPU in 2 s with accept(2) failing"
    );
    drop(held);
    // Once descriptors are free again, agents get in.
    wait_until("a hello answered after the descriptors came back", || {
        welcomed(&ca, "fd-host", &c.addr)
    });
    c.stop();
}

/// A pids cgroup (v1 or v2) for one test, removed when dropped.
struct PidsCgroup {
    dir: PathBuf,
    root: PathBuf,
}

impl PidsCgroup {
    fn new(tag: &str) -> Option<PidsCgroup> {
        let name = format!("logseal-test-{tag}-{}", std::process::id());
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            let root = PathBuf::from(root);
            let dir = root.join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                if dir.join("pids.max").exists() {
                    return Some(PidsCgroup { dir, root });
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        None
    }
    /// Moves `pid` in; false if this machine does not let us.
    fn enter(&self, pid: u32) -> bool {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }
    fn set_max(&self, max: &str) {
        std::fs::write(self.dir.join("pids.max"), max).unwrap();
    }
    fn current(&self) -> String {
        std::fs::read_to_string(self.dir.join("pids.current"))
            .unwrap()
            .trim()
            .to_string()
    }
    fn leave(&self, pid: u32) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), pid.to_string());
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.split_whitespace() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A session is a task, not a thread: a collector that may not start one
/// more thread (its pids cgroup full) still serves new agents, as many as
/// its limits allow. (With a thread per connection, each was refused.)
#[test]
fn at_its_thread_limit_a_collector_still_serves_new_agents() {
    let Some(cg) = PidsCgroup::new("pids") else {
        eprintln!(
            "SKIPPED: no writable pids cgroup on this machine (needs root and a pids controller)"
        );
        return;
    };
    let d = TempDir::new("pids");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[limits]\nmax_connections = 8\n",
    );
    let pid = c.child.id();
    if !cg.enter(pid) {
        eprintln!("SKIPPED: cannot move a process into a pids cgroup on this machine");
        return;
    }
    cg.set_max(&cg.current());
    // Held open together: each is a session at once.
    let held: Vec<_> = (0..6)
        .map(|i| {
            let host = format!("pid-host-{i}");
            let (cert, key) = ca.agent(&host);
            let mut t = tls_client(&ca, Some((&cert, &key)), &c.addr).unwrap();
            let m = hello(&mut t, &host);
            assert!(
                matches!(m, Ok(Msg::Welcome { .. })),
                "session {i} at the thread limit: {m:?}\n{}",
                c.log_text()
            );
            t
        })
        .collect();
    drop(held);
    cg.set_max("max");
    cg.leave(pid);
    c.stop();
}

// ---- Unauthenticated clients ---------------------------------------------------

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: &str, to: &str) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType};
    let from: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    let to: std::net::SocketAddr = to.parse().unwrap();
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&fd, &from).unwrap();
    rustix::net::connect(&fd, &to).unwrap();
    TcpStream::from(fd)
}

#[test]
fn clients_without_a_certificate_cannot_hold_places_or_lock_agents_out() {
    let d = TempDir::new("preauth");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[limits]\nhandshake_timeout = \"2s\"\nmax_connections = 4\nmax_unauthenticated_per_address = 3\n",
    );
    // 1. A client that trickles a byte every 300 ms (a TLS record header
    //    announcing 512 bytes, then its body, slowly) is closed at the
    //    deadline, not kept while bytes keep coming.
    let mut s = TcpStream::connect(&c.addr).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let t0 = Instant::now();
    let closed_after = loop {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(&[0]).is_err() {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "a trickling client was kept open for 20 s (handshake_timeout 2 s)"
        );
    };
    assert!(closed_after >= Duration::from_secs(2), "{closed_after:?}");
    log_has(&c.log, "did not finish within limits.handshake_timeout", 1);

    // 2. Idle connections from one address get 3 places; the rest are closed
    //    at once, and agents (from another address) still get in although
    //    there are more idle clients than max_connections.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| connect_from("127.0.0.2", &c.addr))
        .collect();
    log_has(&c.log, "from this address", 1);
    for i in 0..6 {
        assert!(
            welcomed(&ca, &format!("agent-{i}"), &c.addr),
            "agent {i} locked out by idle clients: {}",
            c.log_text()
        );
    }
    // The refusals are not logged one line each.
    let lines = c.log_text().matches("from this address").count();
    assert!(lines <= 5, "{lines} lines for 17 refusals");
    drop(idle);
    c.stop();
}

#[test]
fn a_host_name_has_one_form_everywhere() {
    let d = TempDir::new("hostname");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    // The collector: web-02's certificate cannot speak for `WEB-02` or `web-02.`.
    for alias in ["WEB-02", "web-02.", "Web-02"] {
        match hello_as(&ca, "web-02", alias, &c.addr) {
            Ok(Msg::Error { code, message, .. }) => {
                assert_eq!(
                    Code::from_u16(code),
                    Some(Code::NotYourChain),
                    "{alias}: {message}"
                );
                assert!(message.contains("canonical"), "{alias}: {message}");
            }
            other => panic!("{alias}: {other:?}"),
        }
    }
    assert!(welcomed(&ca, "web-02", &c.addr));
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("bad-host-name"), "{alerts}");
    c.stop();

    // A writer given `WEB-02.` chains as `web-02`.
    let state = d.path().join("st");
    let out = d.path().join("log.seg");
    let mut child = Command::new(bin())
        .args(["stamp", "--host", "WEB-02.", "--state"])
        .arg(&state)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"one\n").unwrap();
    assert!(child.wait().unwrap().success());
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["host"], "web-02", "{v}");
    // Names that cannot be made canonical are refused, naming the rule.
    let o = Command::new(bin())
        .args(["stamp", "--host", "web_02", "--state"])
        .arg(d.path().join("st2"))
        .arg("--out")
        .arg(d.path().join("log2.seg"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("labels of a-z"),
        "{o:?}"
    );
    // A trust anchor for `WEB-02` would never match a Genesis: refused.
    let trust = d.path().join("trust");
    std::fs::write(&trust, format!("WEB-02 {}\n", "00".repeat(32))).unwrap();
    let o = Command::new(bin())
        .args(["verify", "--trust-file"])
        .arg(&trust)
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("canonical"),
        "{o:?}"
    );
}

#[test]
fn the_quarantine_is_bounded_per_host_and_says_so_when_full() {
    let d = TempDir::new("quota");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[limits]\nquarantine_per_host = \"64KiB\"\n",
    );
    // A chain with a broken link (~15 KiB), sent again and again: the quota
    // holds it a few times.
    let chain = records(&build_chain(d.path(), "flood-host", 150, 10));
    let mut broken = chain.clone();
    let l = broken[3].len();
    broken[3][l - 1] ^= 0x20;
    let mut t = session(&ca, "flood-host", &c.addr);
    let mut sent = 0u64;
    for id in 0..60 {
        let m = send_batch(&mut t, id, &broken);
        assert!(matches!(m, Ok(Msg::Error { .. })), "{m:?}");
        sent += broken.iter().map(|r| r.len() as u64).sum::<u64>();
        // The collector closes the session after a refusal: reconnect.
        t = session(&ca, "flood-host", &c.addr);
    }
    let kept: u64 = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(sent > 10 * 65536, "the test sent too little: {sent}");
    // The .seg files within the quota (their .json beside them are small).
    let segs: u64 = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        segs <= 64 << 10,
        "{segs} bytes kept for one host (quota 64 KiB)"
    );
    assert!(kept < sent / 4, "{kept} of {sent}");
    let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("quarantine-full"), "{alerts}");
    c.stop();
    // A restart counts what is already kept: the quota still holds.
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[limits]\nquarantine_per_host = \"64KiB\"\n",
    );
    let mut t = session(&ca, "flood-host", &c.addr);
    let _ = send_batch(&mut t, 1, &broken);
    let after: u64 = std::fs::read_dir(c.store.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(
        after, segs,
        "a restarted collector forgot what its quarantine holds"
    );
    c.stop();
}

#[test]
fn a_certificate_revoked_during_its_handshake_gets_no_session() {
    let d = TempDir::new("revoke-race");
    let ca = Ca::new(&d.path().join("pki"));
    let (cert, key) = ca.agent("slow-host");
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    // Connected (its TLS configuration taken) before the revocation ...
    let sock = TcpStream::connect(&c.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    log_has(&c.log, "connection accepted", 1);
    logseal::cmd::pki::revoke(&ca.dir, "slow-host").unwrap();
    log_has(&c.log, "TLS configuration reloaded", 1);
    // ... its handshake and hello after it.
    let cfg = logseal::transport::tls::client_config(&ca.ca(), &cert, &key).unwrap();
    let conn = rustls::ClientConnection::new(
        cfg,
        rustls::pki_types::ServerName::try_from("collector").unwrap(),
    )
    .unwrap();
    let mut t = rustls::StreamOwned::new(conn, sock);
    match hello(&mut t, "slow-host") {
        Ok(Msg::Error { code, .. }) => assert_eq!(Code::from_u16(code), Some(Code::Revoked)),
        other => panic!("a certificate revoked during its handshake got {other:?}"),
    }
    c.stop();
}

#[test]
fn a_second_agent_does_not_take_over_or_delete_a_live_socket() {
    use std::os::unix::net::UnixDatagram;
    let d = TempDir::new("sock-takeover");
    let sock = d.path().join("log.sock");
    let url = format!("unix-dgram://{}", sock.display());
    let a = Agent::start(&d.path().join("a"), std::slice::from_ref(&url));
    let o = agent_cmd(&[
        "--state",
        d.path().join("b").to_str().unwrap(),
        "--host",
        "h",
        "--listen",
        &url,
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("served by another process"),
        "{o:?}"
    );
    // The first agent's socket is still there, and still its own.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(
            b"<13>Nov 29 12:00:00 h app: msg-sock-1 still reachable",
            &sock,
        )
        .unwrap();
    common::agent::wait_for(&d.path().join("a"), "sock", 1);
    a.stop();
    let evs = common::agent::events(&d.path().join("a"));
    assert_eq!(common::agent::numbers(&evs, "sock"), vec![1]);
    // A socket file left by a process that died is taken over.
    let dead = d.path().join("dead.sock");
    drop(UnixDatagram::bind(&dead).unwrap());
    assert!(dead.exists());
    let a = Agent::start(
        &d.path().join("c"),
        &[format!("unix-dgram://{}", dead.display())],
    );
    a.stop();
}

#[test]
fn check_config_opens_and_parses_every_file_and_reports_every_problem_at_once() {
    let d = TempDir::new("checkcfg");
    let ca = Ca::new(&d.path().join("pki"));
    let (cert_a, _) = ca.agent("host-a");
    let (_, key_b) = ca.agent("host-b");
    let missing = d.path().join("missing.pem");
    // Readable by everyone here (the service-user check is tried at the end).
    assert!(Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&ca.dir)
        .status()
        .unwrap()
        .success());
    let agent_toml = d.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "state_dir = \"{state}\"\nhost = \"host-a\"\n\
             [[input]]\ntype = \"tls\"\nlisten = \"127.0.0.1:16514\"\ncert = \"{cert_a}\"\nkey = \"{key_b}\"\n\
             [[input]]\ntype = \"tcp\"\nlisten = \"0.0.0.0:16514\"\n\
             [[input]]\ntype = \"udp\"\nlisten = \"127.0.0.1:16514\"\n\
             [ship]\ncollectors = [\"c:6514\"]\nca = \"{ca}\"\ncert = \"{cert_a}\"\nkey = \"{missing}\"\n",
            state = d.path().join("state").display(),
            cert_a = cert_a.display(),
            key_b = key_b.display(),
            ca = ca.ca().display(),
            missing = missing.display(),
        ),
    )
    .unwrap();
    let o = check_config_of("agent", &agent_toml);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // The key of another certificate, two inputs on one TCP port (the
    // wildcard address included), the missing ship key: all in one run.
    assert!(
        err.contains("input 1 (tls://127.0.0.1:16514)") && err.contains("Mismatch"),
        "{err}"
    );
    assert!(
        err.contains("input 2 (tcp://0.0.0.0:16514): the same address as input 1"),
        "{err}"
    );
    assert!(
        !err.contains("input 3"),
        "UDP and TCP ports are different spaces: {err}"
    );
    assert!(
        err.contains("ship.key") && err.contains("No such file"),
        "{err}"
    );
    // Each cause once: the path is not repeated on one line.
    for line in err.lines() {
        assert!(
            line.matches(missing.to_str().unwrap()).count() <= 1,
            "{line}"
        );
    }
    assert!(
        !d.path().join("state").exists(),
        "a check created the state"
    );
    // Run as root, a key only root can read is named for the service user.
    let root = rustix::process::geteuid().is_root();
    let user = Command::new("id")
        .arg("logseal")
        .output()
        .unwrap()
        .status
        .success();
    if root && user {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_b, std::fs::Permissions::from_mode(0o600)).unwrap();
        let o = check_config_of("agent", &agent_toml);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("user logseal cannot read it"), "{err}");
    } else {
        eprintln!("service-user check not tried: needs root and a `logseal` user");
    }

    // The collector: a garbled CRL and a missing key, both.
    let cdir = d.path().join("c");
    let c = Collector::start(&cdir, &ca, "127.0.0.1:0", "");
    c.stop();
    let text = std::fs::read_to_string(cdir.join("collector.toml")).unwrap();
    std::fs::write(ca.crl(), "garbage").unwrap();
    let key = ca.dir.join("collector.key");
    let bad = text.replace(key.to_str().unwrap(), missing.to_str().unwrap());
    std::fs::write(cdir.join("bad.toml"), bad).unwrap();
    let o = check_config_of("collector", &cdir.join("bad.toml"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tls.key") && err.contains("No such file"),
        "{err}"
    );
    assert!(
        err.contains("tls.crl") || err.contains("holds no CRL"),
        "{err}"
    );
}

#[test]
fn hellos_with_ever_new_bad_names_cannot_flood_the_alerts_or_the_log() {
    let d = TempDir::new("alert-flood");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    // A certificate holder sends 60 hellos, each naming another long,
    // non-canonical host.
    for i in 0..60 {
        let name = format!("{i}-{}", "X".repeat(20_000));
        let m = hello_as(&ca, "web-02", &name, &c.addr);
        assert!(matches!(m, Ok(Msg::Error { .. })), "{m:?}");
    }
    assert!(
        welcomed(&ca, "web-02", &c.addr),
        "the collector stopped serving"
    );
    let store = c.store.clone();
    let log = c.stop();
    let alerts = std::fs::read_to_string(store.join("alerts.jsonl")).unwrap();
    let lines = alerts
        .lines()
        .filter(|l| l.contains("bad-host-name"))
        .count();
    assert!(
        lines <= 30,
        "{lines} alert lines for one kind within a minute"
    );
    assert!(alerts.len() < 64 << 10, "{} bytes of alerts", alerts.len());
    assert!(log.len() < 256 << 10, "{} bytes of log", log.len());
}

#[test]
fn a_collector_restarted_on_an_older_crl_refuses_it() {
    let d = TempDir::new("crl-floor");
    let ca = Ca::new(&d.path().join("pki"));
    ca.agent("gone-host");
    let old = std::fs::read(ca.crl()).unwrap();
    logseal::cmd::pki::revoke(&ca.dir, "gone-host").unwrap();
    let cdir = d.path().join("c");
    let c = Collector::start(&cdir, &ca, "127.0.0.1:0", "");
    assert!(!welcomed(&ca, "gone-host", &c.addr));
    c.stop();
    // The old CRL (before the revocation), validly signed, put back while the
    // collector was down: the restart refuses it, naming why.
    std::fs::write(ca.crl(), &old).unwrap();
    let o = Command::new(bin())
        .args(["collector", "--config"])
        .arg(cdir.join("collector.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("older than the one in use") && err.contains("crl-floor.json"),
        "{err}"
    );
    // The store holds the floor; verify does not list it (among its files
    // or the skipped ones).
    let (_, v) = verify_json(&cdir.join("store"));
    assert!(v.is_object(), "{v}");
    assert!(!v.to_string().contains("crl-floor.json"), "{v}");
}

#[test]
fn numbers_out_of_range_are_refused_at_load_naming_the_key() {
    let d = TempDir::new("ranges");
    let f = d.path().join("agent.toml");
    for (text, key) in [
        // Passed the check before and panicked in the listener task.
        ("[limits]\nmax_connections = 3000000000000000000\n", "limits.max_connections"),
        // Wrapped the size check.
        (
            "[spool]\nsegment_size = 9223372036854775808\nmax_size = 9223372036854775808\n",
            "spool.segment_size",
        ),
        ("[chain]\nseal_interval = \"0.0000000001ms\"\n", "chain.seal_interval"),
        ("[chain]\nheartbeat = \"9999h\"\n", "chain.heartbeat"),
        // Said what was wrong, not "did not match any variant of untagged enum".
        ("[spool]\nmax_size = -5\n", "a size cannot be negative (-5)"),
        ("[spool]\nmax_size = 1.5\n", "expected a size"),
        ("[[input]]\ntype = \"unix-dgram\"\npath = \"\"\n", "absolute path"),
        ("[limits]\nstream_memory = \"100KiB\"\n", "limits.stream_memory"),
        (
            "[limits]\nmax_message = \"8MiB\"\nstream_memory = \"10MiB\"\n",
            "limits.stream_memory must be at least twice limits.max_message",
        ),
        (
            "[ship]\ncollectors = [\"c:6514\"]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nwindow = 1000000000\n",
            "ship.window",
        ),
    ] {
        let (code, err) = check_config("agent", &f, text);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
        assert!(!err.contains("panicked"), "{text}: {err}");
    }
    // The collector's too (heartbeat × silent_after overflowed a Duration).
    let f = d.path().join("collector.toml");
    let base = "store = \"/tmp/s\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n";
    for (extra, key) in [
        (
            "[liveness]\nheartbeat = \"1000000h\"\nsilent_after = 4000000000\n",
            "liveness.heartbeat",
        ),
        (
            "[liveness]\nsilent_after = 4000000000\n",
            "liveness.silent_after",
        ),
        ("[limits]\nsegment_size = 0\n", "limits.segment_size"),
        (
            "[limits]\nidle_timeout = \"0.001ms\"\n",
            "limits.idle_timeout",
        ),
    ] {
        let text = format!("{base}{extra}");
        let (code, err) = check_config("collector", &f, &text);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
        assert!(!err.contains("panicked"), "{text}: {err}");
    }
}

#[test]
fn a_config_that_is_a_fifo_is_refused_not_waited_on() {
    let d = TempDir::new("cfg-fifo");
    let f = d.path().join("agent.toml");
    assert!(Command::new("mkfifo").arg(&f).status().unwrap().success());
    for role in ["agent", "collector"] {
        // Nobody writes the FIFO: a reader that waited would never return.
        let o = check_config_of(role, &f);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{role}: {err}");
        assert_eq!(
            err.matches("not a regular file").count(),
            1,
            "{role}: {err}"
        );
    }
}

/// A CRL made by `openssl ca -gencrl`, signed by `ca`'s key, with the given
/// lastUpdate and nextUpdate (`YYYYMMDDHHMMSSZ`).
fn openssl_crl(ca: &Ca, work: &Path, last: &str, next: &str) -> Vec<u8> {
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join("index.txt"), "").unwrap();
    std::fs::write(work.join("crlnumber"), "01\n").unwrap();
    let conf = work.join("ca.cnf");
    std::fs::write(
        &conf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\n",
            work.join("index.txt").display(),
            work.join("crlnumber").display()
        ),
    )
    .unwrap();
    let out = work.join("crl.pem");
    let o = Command::new("openssl")
        .arg("ca")
        .arg("-config")
        .arg(&conf)
        .arg("-gencrl")
        .arg("-cert")
        .arg(ca.ca())
        .arg("-keyfile")
        .arg(ca.dir.join("ca.key"))
        .args(["-crl_lastupdate", last, "-crl_nextupdate", next, "-out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl ca -gencrl: {o:?}");
    std::fs::read(&out).unwrap()
}

#[test]
fn a_crl_past_its_next_update_is_used_with_a_warning_and_an_alert() {
    let d = TempDir::new("crl-stale");
    let ca = Ca::new(&d.path().join("pki"));
    ca.agent("ok-host");
    assert!(Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&ca.dir)
        .status()
        .unwrap()
        .success());
    // Valid and signed by the CA, but its nextUpdate passed long ago.
    let stale = openssl_crl(
        &ca,
        &d.path().join("openssl"),
        "20200101000000Z",
        "20200108000000Z",
    );
    std::fs::write(ca.crl(), &stale).unwrap();
    let cdir = d.path().join("c");
    let c = Collector::start(&cdir, &ca, "127.0.0.1:0", "");
    // It is used (a stale CRL still lists what it lists), and said.
    assert!(welcomed(&ca, "ok-host", &c.addr));
    log_has(&c.log, "nextUpdate (2020-01-08", 1);
    let store = c.store.clone();
    let alerts = || std::fs::read_to_string(store.join("alerts.jsonl")).unwrap_or_default();
    wait_until("a crl-stale alert", || alerts().contains("crl-stale"));
    // --check-config says it too, and still calls the config valid.
    let o = check_config_of("collector", &collector_toml(&cdir));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("nextUpdate (2020-01-08"),
        "{err}"
    );
    // A fresh CRL (CRL number 2, after openssl's 1) reloads without the warning.
    let said = c.log_text().matches("nextUpdate (").count();
    logseal::cmd::pki::refresh_crl(&ca.dir).unwrap();
    signal(&c.child, rustix::process::Signal::HUP);
    log_has(&c.log, "TLS configuration reloaded", 1);
    let log = c.stop();
    assert_eq!(log.matches("nextUpdate (").count(), said, "{log}");
    assert_eq!(alerts().matches("crl-stale").count(), 1, "{}", alerts());
}

#[test]
fn log_format_json_gives_one_object_per_line_and_log_level_overrides_the_config() {
    let d = TempDir::new("log-json");
    let state = d.path().join("state");
    let errlog = d.path().join("agent.log");
    let args: Vec<std::ffi::OsString> = vec![
        "--listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--state".into(),
        state.clone().into(),
        "--log-format".into(),
        "json".into(),
        "--log-level".into(),
        "debug".into(),
    ];
    let a = Agent::spawn(&args, &state, Some(&errlog), 1);
    // A message with control characters in its sender's peer name cannot
    // break a line: send one, then stop.
    let mut s = TcpStream::connect(a.addr("tcp")).unwrap();
    s.write_all(b"<13>hello\x1b[2J\r\n").unwrap();
    drop(s);
    // Stopped only once the message is chained (the connection's lines
    // logged), not while it may still be in flight.
    wait_until("the message chained", || {
        common::agent::events(&state)
            .iter()
            .any(|(_, m)| m.contains("hello"))
    });
    a.stop();
    let log = std::fs::read_to_string(&errlog).unwrap();
    let mut levels = std::collections::HashSet::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        levels.insert(level.to_string());
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(levels.contains("INFO"), "{log}");
    // --log-level debug: debug lines (the default level, info, has none).
    assert!(levels.contains("DEBUG"), "{log}");
    assert!(log.contains("agent stopped cleanly"), "{log}");

    // A bad level is refused before anything starts, naming the option.
    let o = Command::new(bin())
        .args([
            "agent",
            "--listen",
            "tcp://127.0.0.1:0",
            "--log-level",
            "loud",
            "--state",
        ])
        .arg(d.path().join("state2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--log-level") && err.contains("loud"), "{err}");
    assert!(!d.path().join("state2/genesis.record").exists());
    // The collector takes the same options.
    let o = Command::new(bin())
        .args(["collector", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--log-format") && help.contains("--log-level"),
        "{help}"
    );
}
