//! The metrics endpoints of the agent and the collector, scraped for real:
//! what they say follows what was chained, shipped and refused; the shipped
//! rules and dashboard use only metrics a real scrape has, and load into a
//! real Prometheus server that scrapes a running agent and collector.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::*;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const METRICS: &str = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Sends `n` LF-framed messages tagged `tag` over TCP; every `plain`-th one
/// does not start like syslog.
fn send(addr: &str, tag: &str, n: u64, plain: u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = String::new();
    for i in 1..=n {
        if plain > 0 && i % plain == 0 {
            buf.push_str(&format!("plain msg-{tag}-{i}\n"));
        } else {
            buf.push_str(&format!("<13>1 - h app - - - msg-{tag}-{i} metrics\n"));
        }
    }
    s.write_all(buf.as_bytes()).unwrap();
}

/// Waits until the sample `name` of a scrape of `url` satisfies `ok`; returns the scrape.
fn wait_sample(url: &str, name: &str, ok: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(url);
        if sample(&text, name).is_some_and(&ok) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} at {url}; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value(text: &str, name: &str) -> f64 {
    sample(text, name).unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

fn check_metrics(what: &str, text: &str) {
    let (ok, out) = promtool(&["check", "metrics"], Some(text));
    assert!(
        ok,
        "promtool check metrics on the {what} scrape:\n{out}\n{text}"
    );
}

#[test]
fn agent_and_collector_metrics_follow_what_is_chained_shipped_and_lost() {
    let d = TempDir::new("metrics-e2e");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", METRICS);
    let curl = c
        .metrics
        .clone()
        .expect("the collector printed its metrics URL");
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(&ad, &ca, "metrics-host", &[&c.addr], TCP_INPUT, METRICS);
    let a = start_agent(&ad, &cfg);
    let aurl = a
        .metrics
        .clone()
        .expect("the agent printed its metrics URL");

    // 500 messages, every 10th not syslog: counted by source, 50 unparsed.
    send(&a.addr("tcp"), "m", 500, 10);
    let tcp = "logseal_agent_events_total{source=\"syslog-tcp\"}";
    wait_sample(&aurl, tcp, |v| v >= 500.0);
    // Everything acknowledged: nothing waits, the collector is up.
    let t = wait_sample(&aurl, "logseal_agent_unacknowledged_bytes", |v| v == 0.0);
    assert_eq!(value(&t, tcp), 500.0);
    assert_eq!(value(&t, "logseal_agent_unparsed_events_total"), 50.0);
    assert_eq!(value(&t, "logseal_agent_collector_up"), 1.0);
    assert_eq!(
        value(&t, "logseal_agent_oldest_unacknowledged_age_seconds"),
        0.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_ack = value(&t, "logseal_agent_last_ack_timestamp_seconds");
    assert!(
        (now - last_ack).abs() < 120.0,
        "last ack {last_ack}, now {now}"
    );
    let seal = value(&t, "logseal_agent_last_seal_timestamp_seconds");
    assert!((now - seal).abs() < 120.0, "last seal {seal}, now {now}");
    // Acknowledged records need not be sealed yet (the start's seal is made
    // before the stamper counts): the first counted seal follows within
    // seal_interval.
    wait_sample(&aurl, "logseal_agent_seals_total", |v| v >= 1.0);
    let msg_bytes: usize = (1..=500u64)
        .map(|i| {
            if i % 10 == 0 {
                format!("plain msg-m-{i}").len()
            } else {
                format!("<13>1 - h app - - - msg-m-{i} metrics").len()
            }
        })
        .sum();
    assert_eq!(
        value(&t, "logseal_agent_event_bytes_total{source=\"syslog-tcp\"}"),
        msg_bytes as f64
    );
    check_metrics("agent", &t);

    // The collector: the host, its last seal and batch, what it stored.
    let host = "{host=\"metrics-host\"}";
    let ct = wait_sample(&curl, "logseal_collector_records_total", |v| v >= 500.0);
    assert!(
        value(
            &ct,
            &format!("logseal_collector_host_last_seal_timestamp_seconds{host}")
        ) > 0.0
    );
    assert!(
        value(
            &ct,
            &format!("logseal_collector_host_last_batch_timestamp_seconds{host}")
        ) > 0.0
    );
    assert_eq!(
        value(&ct, &format!("logseal_collector_host_silent{host}")),
        0.0
    );
    assert_eq!(value(&ct, "logseal_collector_hosts"), 1.0);
    assert!(value(&ct, "logseal_collector_batches_total") >= 1.0);
    assert!(value(&ct, "logseal_collector_ack_seconds_count") >= 1.0);
    assert!(value(&ct, "logseal_collector_fsync_seconds_count") >= 1.0);
    assert_eq!(
        value(&ct, "logseal_collector_connections{state=\"session\"}"),
        1.0
    );
    let on_disk: u64 = walk(&c.store.join("hosts"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let stored = value(&ct, "logseal_collector_store_bytes");
    assert!(
        stored > 0.0 && stored <= on_disk as f64,
        "store bytes {stored}, segment files {on_disk}"
    );
    check_metrics("collector", &ct);

    // The collector dies: the agent says so, and its backlog grows and ages.
    c.kill9();
    send(&a.addr("tcp"), "n", 100, 0);
    let t = wait_sample(&aurl, "logseal_agent_unacknowledged_records", |v| {
        v >= 100.0
    });
    assert_eq!(value(&t, "logseal_agent_collector_up"), 0.0);
    assert!(value(&t, "logseal_agent_unacknowledged_bytes") > 0.0);
    let t = wait_sample(
        &aurl,
        "logseal_agent_oldest_unacknowledged_age_seconds",
        |v| v >= 1.0,
    );
    assert!(value(&t, "logseal_agent_unacknowledged_records") >= 100.0);
    a.stop();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn udp_drops_are_counted_per_input_and_the_chain_accounts_for_them() {
    // A spool cap below what is sent: UDP is dropped and counted, and the
    // Loss records chained say how many (the chain is the oracle).
    let d = TempDir::new("metrics-loss");
    let cfg = d.path().join("agent.toml");
    let state = d.path().join("state");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[spool]\nmax_size = \"64KiB\"\nsegment_size = \"16KiB\"\n\
             [[input]]\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n{METRICS}",
            state.display()
        ),
    )
    .unwrap();
    let a = Agent::start_config(&cfg, &state, Some(&d.path().join("agent.log")), 1);
    let url = a.metrics.clone().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let msg = format!("<13>1 - h app - - - {}", "x".repeat(400));
    let input = format!(
        "logseal_agent_input_dropped_total{{input=\"udp://{}\"}}",
        a.addr("udp")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while sample(&scrape(&url), &input).unwrap_or(0.0) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "no drop counted:\n{}",
            scrape(&url)
        );
        for _ in 0..200 {
            let _ = sock.send_to(msg.as_bytes(), a.addr("udp"));
        }
    }
    // Dropped while the channel or the spool was full: the Loss records in
    // the chain (chained meanwhile or at the stop) account for at least what
    // the scrape said.
    let t = scrape(&url);
    check_metrics("agent", &t);
    a.stop();
    let lost: u64 = loss_counts(&state)
        .iter()
        .filter(|(r, _)| r == "udp-overrun")
        .map(|(_, n)| n)
        .sum();
    let dropped = value(&t, &input) as u64;
    assert!(
        lost >= dropped && dropped > 0,
        "Loss records in the chain account for {lost}, the counter said {dropped} at the scrape"
    );
}

/// (reason, count) of every Loss record in an agent's spool.
fn loss_counts(state: &Path) -> Vec<(String, u64)> {
    use logseal::chain::record::Body;
    let mut out = Vec::new();
    for p in walk(&state.join("spool")) {
        if p.extension().map_or(true, |e| e != "seg") {
            continue;
        }
        for r in records(&p) {
            let rec = logseal::chain::Record::decode(&r).unwrap();
            if let Body::Loss { reason, count, .. } = rec.body {
                out.push((reason.name().to_string(), count));
            }
        }
    }
    out
}

#[test]
fn the_endpoint_answers_only_scrapes_and_idle_connections_do_not_block_it() {
    let d = TempDir::new("metrics-http");
    let state = d.path().join("state");
    let cfg = d.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[[input]]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n{METRICS}",
            state.display()
        ),
    )
    .unwrap();
    let a = Agent::start_config(&cfg, &state, Some(&d.path().join("agent.log")), 1);
    let url = a.metrics.clone().unwrap();
    let base = url.trim_end_matches("/metrics");
    assert_eq!(http_get(&format!("{base}/nothing"), "").unwrap().0, 404);
    // OpenMetrics when asked for, with its end marker.
    let (st, om) = http_get(
        &url,
        "Accept: application/openmetrics-text; version=1.0.0\r\n",
    )
    .unwrap();
    assert_eq!(st, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    // Not GET: 405. A head beyond 8 KiB: 431, and the process goes on.
    let addr = base.trim_start_matches("http://");
    let raw = |req: &[u8]| {
        use std::io::Read;
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(raw(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(vec![b'a'; 20 << 10]);
    assert!(raw(&big).starts_with("HTTP/1.1 431"));
    // A thousand idle connections: the endpoint closes the ones beyond its
    // slots at once and the others after the head timeout; a scrape gets
    // through within seconds, and the agent keeps chaining.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let scraped = loop {
        if let Ok((200, body)) = http_get(&url, "") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape answered with 1000 idle connections open"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(scraped.contains("logseal_agent_seal_age_seconds"));
    drop(idle);

    // A client that keeps more connections open than there are places, and
    // opens a new one as fast as it can: every scrape still gets through
    // (at most three tries each; before idle connections made room, nearly
    // every one was closed unanswered).
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let opened = std::sync::Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, opened, addr) = (stop.clone(), opened.clone(), addr.to_string());
        std::thread::spawn(move || {
            let mut held = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = TcpStream::connect(&addr) {
                    held.push_back(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                if held.len() > 64 {
                    held.pop_front();
                }
            }
        })
    };
    // The flood is under way (every place taken, and more) before scraping.
    let deadline = Instant::now() + Duration::from_secs(30);
    while opened.load(Ordering::Relaxed) <= 100 {
        assert!(Instant::now() < deadline, "the flood did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..10 {
        let ok = (0..3).any(|_| matches!(http_get(&url, ""), Ok((200, _))));
        assert!(
            ok,
            "scrape {i} failed three times while a client floods idle connections"
        );
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    let opened = opened.load(Ordering::Relaxed);
    assert!(opened > 100, "the flood opened only {opened} connections");
    a.stop();
}

/// The metric names an expression uses (`logseal_…`, `up`).
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("logseal_") {
        let s = i + at;
        let mut e = s;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        out.push(expr[s..e].to_string());
        i = e;
    }
    out
}

/// Every expression of the shipped rules and dashboard.
fn shipped_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rules = std::fs::read_to_string(repo("packaging/prometheus/logseal.rules.yml")).unwrap();
    for l in rules.lines() {
        if let Some(e) = l.trim().strip_prefix("expr: ") {
            out.push(("logseal.rules.yml".into(), e.to_string()));
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("packaging/prometheus/logseal.dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            out.push((format!("dashboard panel {:?}", p["title"]), e.to_string()));
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

/// A scrape's metric names, with the series names of histograms and counters.
fn exposed(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn shipped_rules_pass_promtool_and_use_only_metrics_a_real_scrape_has() {
    let dir = repo("packaging/prometheus");
    let (ok, out) = promtool(
        &[
            "check",
            "rules",
            dir.join("logseal.rules.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = promtool(
        &[
            "test",
            "rules",
            dir.join("logseal.rules.test.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "promtool test rules:\n{out}");
    let (ok, out) = promtool(
        &[
            "check",
            "config",
            dir.join("prometheus.example.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "promtool check config:\n{out}");

    // A running agent (shipping, so that its shipping metrics exist) and collector.
    let d = TempDir::new("metrics-names");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", METRICS);
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(&ad, &ca, "names-host", &[&c.addr], TCP_INPUT, METRICS);
    let a = start_agent(&ad, &cfg);
    send(&a.addr("tcp"), "x", 10, 0);
    let at = wait_sample(
        a.metrics.as_deref().unwrap(),
        "logseal_agent_shipped_records_total",
        |v| v >= 10.0,
    );
    let ct = wait_sample(
        c.metrics.as_deref().unwrap(),
        "logseal_collector_records_total",
        |v| v >= 10.0,
    );
    let mut have = exposed(&at);
    have.extend(exposed(&ct));
    for (from, e) in shipped_exprs() {
        for n in names_in(&e) {
            if n.starts_with("logseal_agent_journal_") {
                continue; // tests/journald.rs scrapes an agent that reads a journal
            }
            assert!(
                have.contains(&n),
                "{from} uses {n}, which no scrape has: {e}"
            );
        }
    }
    a.stop();
    c.stop();
}

/// A Prometheus server (Debian's `prometheus`) in `dir`, on an ephemeral port.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TCP ports a process listens on (its sockets' inodes in /proc/net/tcp).
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                let t = t.to_string_lossy().into_owned();
                if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(i.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                if let Some(p) = f[1].rsplit(':').next() {
                    ports.push(u16::from_str_radix(p, 16).unwrap());
                }
            }
        }
    }
    ports
}

fn start_prometheus(dir: &Path, targets: &[(&str, &str)]) -> Prometheus {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        repo("packaging/prometheus/logseal.rules.yml"),
        dir.join("logseal.rules.yml"),
    )
    .unwrap();
    let mut cfg = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - logseal.rules.yml\nscrape_configs:\n",
    );
    for (job, target) in targets {
        cfg.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus not found: install Debian's prometheus package (.ci/run does)");
    let pid = child.id();
    let mut p = Prometheus {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for port in listening_ports(pid) {
            let url = format!("http://127.0.0.1:{port}");
            if matches!(http_get(&format!("{url}/-/ready"), ""), Ok((200, _))) {
                p.url = url;
                return p;
            }
        }
        assert!(
            Instant::now() < deadline && p.child.try_wait().unwrap().is_none(),
            "prometheus did not become ready:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /api/v1/query?query=EXPR`: the result vector.
fn query(p: &Prometheus, expr: &str) -> Vec<serde_json::Value> {
    let enc: String = expr
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (st, body) = http_get(&format!("{}/api/v1/query?query={enc}", p.url), "").unwrap();
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(st, 200, "query {expr}: {body}");
    assert_eq!(doc["status"], "success", "query {expr}: {body}");
    doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_query(p: &Prometheus, what: &str, expr: &str, ok: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = query(p, expr);
        if ok(&r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {expr} = {r:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_real_prometheus_scrapes_agent_and_collector_and_evaluates_the_rules() {
    let d = TempDir::new("metrics-prom");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", METRICS);
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(&ad, &ca, "prom-host", &[&c.addr], TCP_INPUT, METRICS);
    let a = start_agent(&ad, &cfg);
    send(&a.addr("tcp"), "p", 20, 0);
    let target = |u: &Option<String>| {
        u.as_deref()
            .unwrap()
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_string()
    };
    let (at, ct) = (target(&a.metrics), target(&c.metrics));
    let p = start_prometheus(
        &d.path().join("prom"),
        &[("logseal-agent", &at), ("logseal-collector", &ct)],
    );
    let one = |r: &[serde_json::Value]| r.len() == 1 && r[0]["value"][1] == "1";
    wait_query(&p, "the agent scraped", "up{job=\"logseal-agent\"}", one);
    wait_query(
        &p,
        "the collector scraped",
        "up{job=\"logseal-collector\"}",
        one,
    );
    wait_query(
        &p,
        "the host's seal age",
        "logseal_collector_host_seal_age_seconds{host=\"prom-host\"}",
        |r| r.len() == 1,
    );
    // Every dashboard and rule expression is valid PromQL on real data.
    for (from, e) in shipped_exprs() {
        query(&p, &e);
        let _ = from;
    }
    // The rules are loaded and evaluate without error.
    wait_query(&p, "rules evaluated", "ALERTS", |_| true);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http_get(&format!("{}/api/v1/rules", p.url), "").unwrap();
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rules: Vec<&serde_json::Value> = doc["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        let shipped = std::fs::read_to_string(repo("packaging/prometheus/logseal.rules.yml"))
            .unwrap()
            .matches("- alert: ")
            .count();
        assert_eq!(rules.len(), shipped, "{body}");
        let bad: Vec<_> = rules.iter().filter(|r| r["health"] != "ok").collect();
        if bad.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "rules not healthy: {bad:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The collector dies: the agent's "no collector" alert becomes pending.
    c.kill9();
    wait_query(
        &p,
        "LogsealCollectorUnreachable pending",
        "ALERTS{alertname=\"LogsealCollectorUnreachable\",alertstate=\"pending\"}",
        |r| r.len() == 1,
    );
    a.stop();
}
