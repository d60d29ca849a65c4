//! `logseal status` for both roles, against real processes: running, killed
//! with SIGKILL, stopped cleanly, without a collector, with a silent host; and
//! status files an attacker or an accident made (garbage, a FIFO, a huge file,
//! a host name carrying terminal escapes).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::collector::*;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `logseal status ARGS --json`: (exit code, document).
fn status_json(args: &[&str]) -> (i32, serde_json::Value) {
    let o = Command::new(bin())
        .arg("status")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), doc)
}

/// `logseal status ARGS`: (exit code, text).
fn status_text(args: &[&str]) -> (i32, String) {
    let o = Command::new(bin())
        .arg("status")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// Waits until `logseal status ARGS` exits `code`; returns its document.
fn wait_status(args: &[&str], code: i32) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (c, doc) = status_json(args);
        if c == code {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "status {args:?} did not exit {code}; last: {c} {doc:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn problems(doc: &serde_json::Value) -> String {
    doc["problems"].to_string()
}

#[test]
fn agent_status_is_ok_while_sealing_and_shipping_and_says_when_it_is_not() {
    let d = TempDir::new("status-agent");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[liveness]\nheartbeat = \"1s\"\nsilent_after = 2\nstatus_interval = \"200ms\"\n",
    );
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(&ad, &ca, "status-host", &[&c.addr], TCP_INPUT, "");
    let cfg_s = cfg.to_str().unwrap();
    let state = ad.join("state");
    let state_s = state.to_str().unwrap();

    // Before any run: nothing to judge.
    let (code, doc) = status_json(&["--state", state_s]);
    assert_eq!(code, 3, "{doc:#}");

    let a = start_agent(&ad, &cfg);
    let doc = wait_status(&["--config", cfg_s], 0);
    assert_eq!(doc["role"], "agent");
    assert_eq!(doc["running"], true);
    assert_eq!(doc["status"]["host"], "status-host");
    assert_eq!(doc["status"]["collector_up"], true, "{doc:#}");
    let (code, text) = status_text(&["--state", state_s]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("LOGSEAL AGENT OK"), "{text}");

    // The collector is gone: a warning naming it.
    c.kill9();
    let doc = wait_status(&["--state", state_s], 1);
    assert!(
        problems(&doc).contains("no session with a collector"),
        "{doc:#}"
    );

    // The agent is killed: critical, and says it did not stop cleanly.
    a.kill9();
    let (code, doc) = status_json(&["--state", state_s]);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["running"], false);
    assert!(problems(&doc).contains("without a clean stop"), "{doc:#}");

    // Started again and stopped cleanly: critical (not running), and says so.
    let a = start_agent(&ad, &cfg);
    wait_status(&["--state", state_s], 1); // running, no collector
    let asked = logseal::util::timefmt::now_ns();
    a.stop();
    let (code, doc) = status_json(&["--state", state_s]);
    assert_eq!(code, 2, "{doc:#}");
    assert!(problems(&doc).contains("stopped cleanly"), "{doc:#}");
    // The stop's final seal is the last seal it reports.
    let seal =
        logseal::util::timefmt::parse_rfc3339(doc["status"]["last_seal_time"].as_str().unwrap())
            .unwrap();
    assert!(
        seal >= asked,
        "last seal {seal} before the stop was asked for ({asked}): {doc:#}"
    );
}

#[test]
fn collector_status_names_silent_hosts_and_a_stop() {
    let d = TempDir::new("status-collector");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(
        &d.path().join("c"),
        &ca,
        "127.0.0.1:0",
        "[liveness]\nheartbeat = \"1s\"\nsilent_after = 2\nstatus_interval = \"200ms\"\n",
    );
    let store = c.store.to_str().unwrap().to_string();
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(
        &ad,
        &ca,
        "quiet-host",
        &[&c.addr],
        TCP_INPUT,
        "[chain]\nheartbeat = \"1s\"\n",
    );
    let a = start_agent(&ad, &cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    let doc = loop {
        let doc = wait_status(&["--store", &store], 0);
        if doc["status"]["hosts"][0]["host"] == "quiet-host" {
            break doc;
        }
        assert!(Instant::now() < deadline, "the host never showed: {doc:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(doc["role"], "collector");
    // Its config file tells the role too.
    let ccfg = d.path().join("c/collector.toml");
    let (code, doc) = status_json(&["--config", ccfg.to_str().unwrap()]);
    assert_eq!(
        (code, doc["role"].as_str()),
        (0, Some("collector")),
        "{doc:#}"
    );

    // The agent is killed (no clean stop): after two heartbeats it is silent.
    a.kill9();
    let doc = wait_status(&["--store", &store], 2);
    assert!(
        problems(&doc).contains("silent hosts: quiet-host"),
        "{doc:#}"
    );
    let (_, text) = status_text(&["--store", &store]);
    assert!(text.contains("SILENT"), "{text}");

    c.stop();
    let (code, doc) = status_json(&["--store", &store]);
    assert_eq!(code, 2);
    assert!(problems(&doc).contains("stopped cleanly"), "{doc:#}");
}

#[test]
fn crafted_status_files_get_a_clear_answer_never_a_hang_or_a_raw_escape() {
    let d = TempDir::new("status-crafted");
    let dir = d.path();
    let file = dir.join("status.json");
    let s = dir.to_str().unwrap();
    // Garbage.
    std::fs::write(&file, b"\x00\x01 not json").unwrap();
    let (code, text) = status_text(&["--state", s]);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("not a status file") && text.contains("status.json"),
        "{text}"
    );
    // A collector's file given as an agent's.
    std::fs::write(&file, br#"{"time":"2026-01-01T00:00:00Z","hosts":[]}"#).unwrap();
    let (code, text) = status_text(&["--state", s]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("not an agent status file"), "{text}");
    // A FIFO: refused at once (no writer would make a read hang).
    std::fs::remove_file(&file).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &file,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let t = Instant::now();
    let (code, text) = status_text(&["--store", s]);
    assert_eq!(code, 3, "{text}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    // Larger than the bound: refused, not read.
    std::fs::remove_file(&file).unwrap();
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(64 << 20).unwrap();
    let (code, text) = status_text(&["--store", s]);
    assert_eq!(code, 3, "{text}");
    // Wrong types in a collector's file: not a status file, not a guess.
    std::fs::remove_file(&file).unwrap();
    for bad in [
        serde_json::json!([1, 2, 3]),
        serde_json::json!({"time": "2026-01-01T00:00:00Z", "pid": 1, "running": "false",
                           "interval_secs": 1, "hosts": []}),
        serde_json::json!({"time": "2026-01-01T00:00:00Z", "pid": 4_294_973_331u64,
                           "running": true, "interval_secs": 1, "hosts": []}),
    ] {
        std::fs::write(&file, bad.to_string()).unwrap();
        let (code, text) = status_text(&["--store", s]);
        assert_eq!(code, 3, "{bad}: {text}");
        assert!(text.contains("not a collector status file"), "{text}");
    }
    // A host name with terminal escapes, in a collector's file: shown escaped.
    let doc = serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "pid": 0, "running": true, "interval_secs": 1,
        "hosts": [{"host": "evil\u{1b}[2J\u{7}\rRESULT: OK", "silent": true, "chains": []}],
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let (code, text) = status_text(&["--store", s]);
    assert_eq!(code, 2, "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
        "{text:?}"
    );
    assert!(text.contains("evil"), "{text}");
    let _ = Path::new(s);
}

/// A certificate's notAfter as openssl reads it, seconds since the epoch.
fn openssl_not_after(cert: &Path) -> i64 {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let t = text
        .trim()
        .strip_prefix("notAfter=")
        .unwrap()
        .replace(' ', "T");
    logseal::util::timefmt::parse_rfc3339(&t).unwrap() / 1_000_000_000
}

#[test]
fn a_certificate_expiring_within_30_days_is_warned_in_the_log_metrics_and_status() {
    let d = TempDir::new("status-expiry");
    let ca = Ca::new(&d.path().join("pki"));
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", metrics);
    // This host's certificate is valid 10 days.
    logseal::cmd::pki::issue(
        &ca.dir,
        "short-host",
        logseal::cmd::pki::Role::Agent,
        10,
        &[],
    )
    .unwrap();
    let ad = d.path().join("a");
    std::fs::create_dir_all(&ad).unwrap();
    let cfg = agent_config(&ad, &ca, "short-host", &[&c.addr], TCP_INPUT, metrics);
    let a = start_agent(&ad, &cfg);
    let cert = ca.dir.join("short-host.crt");
    let not_after = openssl_not_after(&cert);

    // The log says so at start, naming the key and the file.
    let log = std::fs::read_to_string(ad.join("agent.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("ship.cert expires in"))
        .unwrap_or_else(|| panic!("no expiry warning in the agent's log:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains(&cert.display().to_string()),
        "{line}"
    );
    assert!(
        line.contains("in 9 days") || line.contains("in 10 days"),
        "{line}"
    );

    // The metric carries openssl's notAfter.
    let m = scrape(a.metrics.as_deref().unwrap());
    let key = format!(
        "logseal_certificate_expiry_timestamp_seconds{{file=\"{}\",what=\"ship.cert\"}}",
        cert.display()
    );
    assert_eq!(sample(&m, &key), Some(not_after as f64), "{m}");
    // The collector's own certificate (a year) is there too, and not warned about.
    let cm = scrape(c.metrics.as_deref().unwrap());
    let ckey = format!(
        "logseal_certificate_expiry_timestamp_seconds{{file=\"{}\",what=\"tls.cert\"}}",
        ca.dir.join("collector.crt").display()
    );
    assert_eq!(
        sample(&cm, &ckey),
        Some(openssl_not_after(&ca.dir.join("collector.crt")) as f64),
        "{cm}"
    );
    assert!(!c.log_text().contains("expires in"), "{}", c.log_text());

    // `logseal status`: a warning naming the certificate.
    let state = ad.join("state");
    let doc = wait_status(&["--state", state.to_str().unwrap()], 1);
    assert!(problems(&doc).contains("ship.cert"), "{doc:#}");
    assert!(problems(&doc).contains("expires in"), "{doc:#}");
    a.stop();
    c.stop();
}

#[test]
fn only_the_process_holding_the_lock_counts_as_running_whatever_its_name() {
    let d = TempDir::new("status-lock");
    // A real agent, started through a link with another name.
    let link = d.path().join("logseal-renamed-agent");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let state = d.path().join("state");
    let mut child = Command::new(&link)
        .args(["agent", "--listen", "tcp://127.0.0.1:0", "--state"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let s = state.to_str().unwrap().to_string();
    let doc = wait_status(&["--state", &s], 0);
    assert_eq!(doc["running"], true, "{doc:#}");

    // Its status file copied elsewhere, its live PID in it: not running there.
    let forged = d.path().join("forged");
    std::fs::create_dir_all(&forged).unwrap();
    std::fs::copy(state.join("status.json"), forged.join("status.json")).unwrap();
    let (code, doc) = status_json(&["--state", forged.to_str().unwrap()]);
    assert_eq!(code, 2, "{doc:#}");
    assert!(
        problems(&doc).contains("gone without a clean stop"),
        "{doc:#}"
    );
    // A collector's file claiming the same live PID: the same.
    let cdoc = serde_json::json!({
        "time": doc["status"]["time"], "pid": child.id(), "running": true,
        "interval_secs": 10, "hosts": [],
    });
    std::fs::write(forged.join("status.json"), cdoc.to_string()).unwrap();
    let (code, doc) = status_json(&["--store", forged.to_str().unwrap()]);
    assert_eq!(code, 2, "{doc:#}");

    // Times far in the future or the past: a verdict, never a panic; a status
    // dated ahead of the clock is a warning (a clock stepped back).
    let mut a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("status.json")).unwrap()).unwrap();
    for (field, value) in [
        ("time", "9999-12-31T23:59:59Z"),
        ("time", "0000-01-01T00:00:00Z"),
        ("last_seal_time", "9999-12-31T23:59:59Z"),
        ("time", "2026-11-30T05:10:58+0\u{20ac}0"),
    ] {
        let mut b = a.clone();
        b[field] = value.into();
        std::fs::write(forged.join("status.json"), b.to_string()).unwrap();
        let (code, doc) = status_json(&["--state", forged.to_str().unwrap()]);
        assert!((1..=3).contains(&code), "{field}={value}: {code} {doc:#}");
    }
    // The real state, its file dated an hour ahead: a warning, not OK.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::STOP,
    )
    .unwrap();
    let ahead =
        logseal::util::timefmt::rfc3339(logseal::util::timefmt::now_ns() + 3_600_000_000_000);
    a["time"] = ahead.into();
    a["last_seal_time"] = a["time"].clone();
    std::fs::write(state.join("status.json"), a.to_string()).unwrap();
    let (code, doc) = status_json(&["--state", &s]);
    assert_eq!(code, 1, "{doc:#}");
    assert!(problems(&doc).contains("in the future"), "{doc:#}");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::CONT,
    )
    .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}
