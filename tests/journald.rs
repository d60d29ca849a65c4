//! The journald input against real journals: files written by Debian's
//! systemd-journal-remote, and a live systemd-journald namespace instance.
//! The oracle is `journalctl -o export` on the same journal.
#![cfg(feature = "journald")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;

use common::journal::*;
use common::TempDir;
use std::process::Command;
use std::time::Duration;

fn f(k: &str, v: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (k.to_string(), v.as_ref().to_vec())
}

/// Entries with repeated, binary and large fields, at increasing times.
fn file_entries(from: u64, n: u64, t0: u64) -> Vec<Fields> {
    (from..from + n)
        .map(|i| {
            let mut e = vec![
                f("__REALTIME_TIMESTAMP", (t0 + i * 1000).to_string()),
                f("__MONOTONIC_TIMESTAMP", (5_000_000 + i * 1000).to_string()),
                f("_BOOT_ID", "0123456789abcdef0123456789abcdef"),
                f("MESSAGE", format!("file message {i}")),
                f("TEST_RUN", "files"),
                f("TEST_SEQ", i.to_string()),
                f(
                    "SYSLOG_IDENTIFIER",
                    if i % 2 == 0 { "keep" } else { "other" },
                ),
                f("PRIORITY", (i % 8).to_string()),
                f("_SYSTEMD_UNIT", format!("unit-{}.service", i % 3)),
                f("TAG", "a"),
                f("TAG", format!("b{}", i % 2)),
                f("BIN", [0u8, 1, 0xff, b'\n', (i % 251) as u8]),
            ];
            if i % 50 == 7 {
                // Beyond sd-journal's default 64 KiB data threshold; compressed.
                e.push(f("BIG", vec![b'a' + (i % 26) as u8; 200_000]));
            }
            if i == 123 {
                // Beyond the agent's 1 MiB max_entry_size: cut, flagged.
                e.push(f(
                    "HUGE",
                    (0..3_000_000u32)
                        .map(|x| (x % 97) as u8)
                        .collect::<Vec<u8>>(),
                ));
            }
            e
        })
        .collect()
}

#[test]
fn journal_files_are_chained_whole_exactly_once_and_resume_after_the_last() {
    let tmp = TempDir::new("jfiles");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let t0 = 1_790_000_000_000_000u64;
    write_journal_file(&jdir.join("a.journal"), &file_entries(0, 300, t0));
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let jd = jdir.to_str().unwrap();

    run_to_end(jd, &state, &log);
    let oracle = export_dir(&jdir);
    assert_eq!(oracle.len(), 300);
    let got = chained(&state);
    let ents = entries(&got);
    assert_eq!(ents.len(), 300, "every entry chained once");
    for (i, (c, o)) in got.iter().zip(&oracle).enumerate() {
        let Chained::Entry {
            fields,
            original_len,
            flags,
        } = c
        else {
            panic!("unexpected {c:?}");
        };
        // The agent's own address fields agree with the cursor.
        let cursor = get_str(fields, "__CURSOR");
        assert_eq!(fields[0].0, "__CURSOR");
        assert!(cursor.contains(&format!(
            ";i={:x};",
            get_str(fields, "__SEQNUM").parse::<u64>().unwrap()
        )));
        assert!(cursor.starts_with(&format!("s={};", get_str(fields, "__SEQNUM_ID"))));
        assert_eq!(get(fields, "__BOOT_ID"), get(o, "_BOOT_ID"));
        if i == 123 {
            // Cut to max_entry_size, flagged with the size it had.
            assert_eq!(flags & 1, 1, "truncated flag");
            let total = original_len.expect("original length");
            assert!(total > 3_000_000, "{total}");
            let huge = get(fields, "HUGE").unwrap();
            let want = get(o, "HUGE").unwrap();
            assert!(
                huge.len() < 1 << 20 && huge.len() > 900_000,
                "{}",
                huge.len()
            );
            assert_eq!(huge, &want[..huge.len()], "a prefix of the value");
            let mut a = as_exported(fields);
            let mut b = without_boot(o);
            a.retain(|(k, _)| k != "HUGE");
            b.retain(|(k, _)| k != "HUGE");
            assert_eq!(a, b, "the other fields whole");
        } else {
            assert_eq!(*flags, 0);
            assert_eq!(
                as_exported(fields),
                without_boot(o),
                "entry {i}: every field, in order"
            );
        }
    }
    // Binary, repeated and large (compressed) fields arrived whole.
    let e7 = &ents[7];
    assert_eq!(get(e7, "BIG").unwrap().len(), 200_000);
    let tags: Vec<&[u8]> = e7
        .iter()
        .filter(|(k, _)| k == "TAG")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(tags, vec![&b"a"[..], &b"b1"[..]]);
    assert_eq!(get(e7, "BIN").unwrap(), &[0, 1, 0xff, b'\n', 7]);

    // Run again: nothing new, nothing twice.
    run_to_end(jd, &state, &log);
    assert_eq!(entries(&chained(&state)).len(), 300);

    // A damaged cursor file (consulted when the spool holds no journald
    // entry) stops the agent with a message that says what to do.
    let other = tmp.path().join("other-state");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("journal-cursor"), "v1 00000000 s=x;i=1\n").unwrap();
    let o = Command::new(common::bin())
        .args(["agent", "--journal", jd, "--stop-at-journal-end", "--state"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("journal-cursor: damaged") && err.contains("remove it"),
        "{err}"
    );
    // ... before it touched the chain: no Genesis was written.
    assert!(!other.join("signer.state").exists());
    assert!(
        !other.join("spool").exists(),
        "a failed start created a spool"
    );

    // A second file with later entries, in the old layout and uncompressed:
    // only those are chained.
    write_journal_file_with(
        &jdir.join("b.journal"),
        &file_entries(300, 100, t0),
        &["--compress=no"],
        &[("SYSTEMD_JOURNAL_COMPACT", "0")],
    );
    let (fa, fb) = (
        header_flags(&jdir.join("a.journal")),
        header_flags(&jdir.join("b.journal")),
    );
    assert!(
        fa.contains("COMPRESSED-ZSTD") && fa.contains("COMPACT"),
        "{fa}"
    );
    assert!(
        !fb.contains("COMPRESSED") && !fb.contains("COMPACT"),
        "{fb}"
    );
    run_to_end(jd, &state, &log);
    let all = entries(&chained(&state));
    assert_eq!(seqs(&all, "files"), (0..400).collect::<Vec<u64>>());
    let oracle = export_dir(&jdir);
    assert_eq!(cursors(&all), cursors(&oracle));

    common::assert_intact(&state);

    // inspect shows unit, identifier, priority and message.
    let o = Command::new(common::bin())
        .arg("inspect")
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("file message 10"))
        .expect("entry 10");
    assert!(
        line.contains("journald unit-1.service keep") && line.contains(" crit: file message 10"),
        "{line}"
    );
    let o = Command::new(common::bin())
        .args(["inspect", "--json"])
        .arg(&state)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let recs = doc.as_array().expect("records");
    let r = recs
        .iter()
        .find(|r| r["journal"]["message"] == "file message 3")
        .expect("entry 3 in json");
    assert_eq!(r["journal"]["unit"], "unit-0.service");
    assert_eq!(r["journal"]["identifier"], "other");
    assert_eq!(r["journal"]["priority"], "err");
    let bin = r["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x[0] == "BIN")
        .unwrap();
    assert_eq!(bin[1]["hex"], "0001ff0a03", "binary values as hex");
}

#[test]
fn filters_choose_entries_and_fields() {
    let tmp = TempDir::new("jfilter");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let src = file_entries(0, 120, 1_790_000_000_000_000);
    write_journal_file(&jdir.join("a.journal"), &src);
    let run = |name: &str, table: &str| run_config(tmp.path(), name, &jdir, table);
    let s = |e: &Fields, k: &str| get(e, k).map(|v| String::from_utf8_lossy(v).into_owned());

    let got = run(
        "idprio",
        "identifiers = [\"keep\"]\npriority = \"warning\"\nfields = [\"MESSAGE\", \"TEST_SEQ\"]",
    );
    let want: Vec<u64> = src
        .iter()
        .filter(|e| s(e, "SYSLOG_IDENTIFIER").as_deref() == Some("keep"))
        .filter(|e| s(e, "PRIORITY").unwrap().parse::<u8>().unwrap() <= 4)
        .map(|e| s(e, "TEST_SEQ").unwrap().parse().unwrap())
        .collect();
    assert!(!want.is_empty());
    let got_seqs: Vec<u64> = got
        .iter()
        .map(|e| s(e, "TEST_SEQ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(got_seqs, want);
    let names: Vec<&str> = got[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "__CURSOR",
            "__REALTIME_TIMESTAMP",
            "__MONOTONIC_TIMESTAMP",
            "__SEQNUM",
            "__SEQNUM_ID",
            "__BOOT_ID",
            "MESSAGE",
            "TEST_SEQ"
        ]
    );

    let got = run(
        "matches",
        "units = [\"unit-1.service\", \"unit-2.service\"]\nmatches = [\"TAG=b0 PRIORITY=2\", \"TEST_SEQ=7\"]",
    );
    let want: Vec<u64> = src
        .iter()
        .filter(|e| {
            matches!(
                s(e, "_SYSTEMD_UNIT").as_deref(),
                Some("unit-1.service" | "unit-2.service")
            )
        })
        .filter(|e| {
            let tags: Vec<String> = e
                .iter()
                .filter(|(k, _)| k == "TAG")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            (tags.iter().any(|t| t == "b0") && s(e, "PRIORITY").as_deref() == Some("2"))
                || s(e, "TEST_SEQ").as_deref() == Some("7")
        })
        .map(|e| s(e, "TEST_SEQ").unwrap().parse().unwrap())
        .collect();
    assert!(want.len() >= 2, "{want:?}");
    let got_seqs: Vec<u64> = got
        .iter()
        .map(|e| s(e, "TEST_SEQ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(got_seqs, want);

    // A bad filter is refused before anything starts, naming the key, the
    // line and the expression.
    let cfg = tmp.path().join("bad.toml");
    let (code, err) = common::check_config(
        "agent",
        &cfg,
        "[journald]\nmatches = [\"TAG=b0\", \"_COMM\"]\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("journald.matches \"_COMM\"")
            && err.contains("FIELD=VALUE")
            && err.contains("line 2"),
        "{err}"
    );

    // A journal directory that is not there: refused at start, named.
    let missing = tmp.path().join("no-such-journal");
    let o = Command::new(common::bin())
        .args(["agent", "--journal"])
        .arg(&missing)
        .arg("--state")
        .arg(tmp.path().join("missing-state"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no-such-journal") && err.contains("is not a directory"),
        "{err}"
    );
}

#[test]
fn live_journald_each_entry_once_across_kill_9() {
    let tmp = TempDir::new("jkill");
    let mut jd = Journald::start("k");
    jd.ensure_running();
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let dir = jd.dir.to_str().unwrap().to_string();
    // The writer sends 100 entries every 20 ms until the kills are over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                jd.send_numbered("kill", sent, 100);
                sent += 100;
                std::thread::sleep(Duration::from_millis(20));
            }
            (jd, sent)
        })
    };
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut progress = Vec::new();
    for _ in 0..12 {
        let mut c = start_agent(&dir, &state, &[], &log);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(40 + rng % 150));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        progress.push(seqs(&entries(&chained(&state)), "kill").len());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (jd_live, n) = writer.join().unwrap();
    // The kills fell while entries were being written and chained.
    let advanced = progress.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        advanced >= 4,
        "chained counts after each kill: {progress:?}"
    );
    assert!(n >= 1000, "{n} sent");
    jd_live.wait_written("kill", n as usize);
    run_to_end(&dir, &state, &log);

    let oracle = export_dir(&jd_live.dir);
    let got = chained(&state);
    assert!(
        got.iter().all(|c| matches!(c, Chained::Entry { .. })),
        "no Loss: nothing was lost"
    );
    let all = entries(&got);
    assert_eq!(
        seqs(&all, "kill"),
        (0..n).collect::<Vec<u64>>(),
        "each entry once, in order"
    );
    assert_eq!(cursors(&all), cursors(&oracle), "every journal entry, once");
    common::assert_intact(&state);
}

#[test]
fn rotation_and_vacuum_while_running() {
    let tmp = TempDir::new("jrot");
    let mut jd = Journald::start("r");
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let ns = format!("namespace:{}", jd.name);
    let mut agent = start_agent(&ns, &state, &[], &log);
    let chained_of = |run: &str| seqs(&entries(&chained(&state)), run).len();
    let wait = |k: usize| {
        common::collector::wait_until(&format!("{k} chained"), || chained_of("rot") >= k)
    };

    jd.send_numbered("rot", 0, 200);
    wait(200);
    jd.rotate();
    jd.send_numbered("rot", 200, 200);
    wait(400);
    // Vacuum: every archived file goes.
    let o = Command::new("journalctl")
        .arg("-D")
        .arg(&jd.dir)
        .arg("--vacuum-size=1")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(jd.archived().is_empty(), "vacuumed");
    jd.send_numbered("rot", 400, 200);
    wait(600);
    jd.rotate();
    jd.send_numbered("rot", 600, 100);
    wait(700);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(agent.wait().unwrap().success());

    let got = chained(&state);
    assert!(
        got.iter().all(|c| matches!(c, Chained::Entry { .. })),
        "no Loss record"
    );
    assert_eq!(seqs(&entries(&got), "rot"), (0..700).collect::<Vec<u64>>());
    common::assert_intact(&state);
}

#[test]
fn vacuum_ahead_of_a_stopped_agent_is_chained_as_a_loss() {
    let tmp = TempDir::new("jgap");
    let mut jd = Journald::start("g");
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let dir = jd.dir.to_str().unwrap().to_string();

    jd.send_numbered("gap", 0, 50);
    jd.wait_written("gap", 50);
    run_to_end(&dir, &state, &log);
    let before = entries(&chained(&state));
    assert_eq!(seqs(&before, "gap"), (0..50).collect::<Vec<u64>>());
    let last_seqnum: u64 = get_str(before.last().unwrap(), "__SEQNUM").parse().unwrap();

    // While the agent is stopped: more entries, rotated away and vacuumed.
    jd.send_numbered("gap", 50, 100);
    jd.wait_written("gap", 150);
    jd.rotate();
    let archived = jd.archived();
    let seqnum_of = |e: &Fields| -> u64 {
        let c = get_str(e, "__CURSOR");
        let i = c.split(';').find_map(|p| p.strip_prefix("i=")).unwrap();
        u64::from_str_radix(i, 16).unwrap()
    };
    let lost: usize = archived
        .iter()
        .flat_map(|a| export_file(a))
        .filter(|e| seqnum_of(e) > last_seqnum)
        .count();
    assert!(lost >= 100, "{lost}");
    for a in &archived {
        std::fs::remove_file(a).unwrap();
    }
    jd.send_numbered("gap", 150, 30);
    jd.wait_written("gap", 30);
    let remaining = export_dir(&jd.dir);

    run_to_end(&dir, &state, &log);
    let got = chained(&state);
    let k = got
        .iter()
        .position(|c| matches!(c, Chained::Loss { .. }))
        .expect("a Loss record");
    let Chained::Loss { count, detail } = &got[k] else {
        unreachable!()
    };
    assert_eq!(*count as usize, lost, "{detail}");
    assert!(detail.contains("seqnum jumped"), "{detail}");
    // Right after it: the first entry still in the journal.
    let Chained::Entry { fields, .. } = &got[k + 1] else {
        panic!()
    };
    assert_eq!(get(fields, "__CURSOR"), get(&remaining[0], "__CURSOR"));
    let all = entries(&got);
    let mut want: Vec<u64> = (0..50).collect();
    want.extend(150..180);
    assert_eq!(seqs(&all, "gap"), want);
    common::assert_intact(&state);
}

#[test]
fn shipped_and_deleted_spool_resumes_from_the_cursor_file() {
    use common::collector::{agent_config, Ca, Collector};
    let tmp = TempDir::new("jship");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let t0 = 1_790_000_000_000_000u64;
    write_journal_file(&jdir.join("a.journal"), &file_entries(0, 200, t0));
    let ca = Ca::new(&tmp.path().join("pki"));
    let c = Collector::start(&tmp.path().join("c"), &ca, "127.0.0.1:0", "");
    let adir = tmp.path().join("a");
    std::fs::create_dir_all(&adir).unwrap();
    let cfg = agent_config(
        &adir,
        &ca,
        "jhost",
        &[&c.addr],
        &format!(
            "[journald]\njournal = {:?}\nstop_at_end = true\n",
            jdir.to_str().unwrap()
        ),
        "",
    );
    // 4 KiB segments: acknowledged ones are deleted as the agent runs.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "segment_size = \"256KiB\"",
        "segment_size = \"4KiB\"\nmax_size = \"64MiB\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let state = adir.join("state");
    let run = || {
        let o = Command::new(common::bin())
            .args(["agent", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run();
    // Restart (no new entries) until no journald entry is left in the spool:
    // the resume point must then come from the cursor file.
    let mut runs = 1;
    while !entries(&chained(&state)).is_empty() {
        assert!(runs < 40, "the spool keeps its journald entries");
        run();
        runs += 1;
    }
    assert!(state.join("journal-cursor").exists());
    write_journal_file(&jdir.join("b.journal"), &file_entries(200, 50, t0));
    run();
    let stored = entries(&chained_in(&c.store.join("hosts")));
    assert_eq!(
        seqs(&stored, "files"),
        (0..250).collect::<Vec<u64>>(),
        "each entry stored once after {runs} restarts"
    );
    let log = c.stop();
    assert!(!log.contains("quarantine"), "{log}");
}

/// Runs `logseal agent --config` with a [journald] table over `jdir` until the
/// end of the journal; returns the chained entries.
fn run_config(
    tmp: &std::path::Path,
    name: &str,
    jdir: &std::path::Path,
    table: &str,
) -> Vec<Fields> {
    let state = tmp.join(name);
    let cfg = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nhost = \"s\"\n[journald]\njournal = {:?}\nstop_at_end = true\n{table}\n",
            state.to_str().unwrap(),
            jdir.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = Command::new(common::bin())
        .args(["agent", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    entries(&chained(&state))
}

#[test]
fn start_tail_or_time_applies_once_to_a_new_chain() {
    let tmp = TempDir::new("jstart");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let t0 = 1_790_000_000_000_000u64;
    write_journal_file(&jdir.join("a.journal"), &file_entries(0, 100, t0));

    // tail: nothing that was there; what comes later, also across a restart
    // that happens before anything was chained.
    assert!(run_config(tmp.path(), "tail", &jdir, "start = \"tail\"").is_empty());
    assert!(run_config(tmp.path(), "tail", &jdir, "start = \"tail\"").is_empty());
    write_journal_file(&jdir.join("b.journal"), &file_entries(100, 50, t0));
    let got = run_config(tmp.path(), "tail", &jdir, "start = \"tail\"");
    assert_eq!(seqs(&got, "files"), (100..150).collect::<Vec<u64>>());

    // A time: the first entry at or after it, then everything after.
    let at = logseal::util::timefmt::rfc3339(((t0 + 40 * 1000) * 1000) as i64);
    let got = run_config(tmp.path(), "time", &jdir, &format!("start = {at:?}"));
    assert_eq!(seqs(&got, "files"), (40..150).collect::<Vec<u64>>());

    // head (the default): all of it.
    let got = run_config(tmp.path(), "head", &jdir, "");
    assert_eq!(seqs(&got, "files"), (0..150).collect::<Vec<u64>>());
}

/// `--journal system` / `journal = "system"`: the local system's journal
/// ([`SystemJournald`]: the running one, or one started for the test; only
/// entries written after the agent started are read).
/// The tests on the system journal run one at a time: one may start a
/// journald while the other judges whether a system journal is here.
static SYSTEM_JOURNAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn system_journal_is_followed() {
    let _one = SYSTEM_JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("jsys");
    let journald = SystemJournald::ensure();
    let sock = std::path::Path::new(SYSTEM_SOCKET);
    let probe = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let run = format!("sys{}", std::process::id());
    let state = tmp.path().join("state");
    let cfg = tmp.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nhost = \"sys\"\n[journald]\njournal = \"system\"\nstart = \"tail\"\nmatches = [\"TEST_RUN={run}\"]\n",
            state.to_str().unwrap()
        ),
    )
    .unwrap();
    let log = tmp.path().join("agent.log");
    let mut agent = Command::new(common::bin())
        .args(["agent", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(agent.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("reading journal") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
    }
    for i in 0..20 {
        let m = format!("MESSAGE=system journal entry {i}\nTEST_RUN={run}\nTEST_SEQ={i}\nSYSLOG_IDENTIFIER=systest\n");
        probe.send_to(m.as_bytes(), sock).unwrap();
    }
    common::collector::wait_until("20 entries chained", || {
        seqs(&entries(&chained(&state)), &run).len() >= 20
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let st = agent.wait().unwrap();
    drop(journald);
    assert!(st.success());
    let got = entries(&chained(&state));
    assert_eq!(seqs(&got, &run), (0..20).collect::<Vec<u64>>());
    assert_eq!(got.len(), 20, "the match keeps only this test's entries");
    assert_eq!(get(&got[0], "SYSLOG_IDENTIFIER"), Some(&b"systest"[..]));
}

/// Whether this machine has a system journal to read: journald's socket, or
/// a journal file in its directories (what the agent's warning is about).
fn system_journal_here() -> bool {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata("/run/systemd/journal/socket")
        .is_ok_and(|m| m.file_type().is_socket())
    {
        return true;
    }
    // DIR/MACHINE-ID/*.journal; not DIR/MACHINE-ID.NAMESPACE/ (the
    // namespace journals the other tests here run write there).
    let out = Command::new("find")
        .args(["/var/log/journal", "/run/log/journal", "-maxdepth", "2"])
        .args(["-name", "*.journal*", "-not", "-path", "*/journal/*.*/*"])
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn journal_system_where_no_journald_runs_is_warned_about() {
    let _one = SYSTEM_JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = TempDir::new("journal-system");
    let state = d.path().join("state");
    let errlog = d.path().join("agent.log");
    let args: Vec<std::ffi::OsString> = vec![
        "--journal".into(),
        "system".into(),
        "--state".into(),
        state.clone().into(),
    ];
    let a = common::agent::Agent::spawn(&args, &state, Some(&errlog), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&errlog)
        .unwrap_or_default()
        .contains("agent ready")
    {
        assert!(std::time::Instant::now() < deadline, "agent not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.stop();
    let log = std::fs::read_to_string(&errlog).unwrap();
    let warned = log.contains("no journald listens on /run/systemd/journal/socket");
    assert_eq!(
        warned,
        !system_journal_here(),
        "a warning iff there is no system journal here:\n{log}"
    );
    if warned {
        let line = log
            .lines()
            .find(|l| l.contains("no journald listens"))
            .unwrap();
        assert!(
            line.contains("WARN") && line.contains("journal = \"/var/log/journal\""),
            "{line}"
        );
    }
}

/// The lag metric and status line: how far the chain is behind the journal's
/// newest entry. Held back by a full spool, it is the time from the last entry
/// chained (read from the spool) to the newest one written; once everything is
/// chained it is 0.
#[test]
fn journal_lag_is_what_is_not_chained_yet_and_zero_once_caught_up() {
    use common::collector::{sample, scrape, wait_until};
    use std::io::BufRead;
    let tmp = TempDir::new("jlag");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    // Entries a second apart, about 1 KiB each: far more than the spool takes.
    let t0 = 1_790_000_000_000_000u64;
    let n = 2000u64;
    // Entry i of run `run`, at second i.
    let entry = |i: u64, run: &str, message: String| -> Fields {
        vec![
            f("__REALTIME_TIMESTAMP", (t0 + i * 1_000_000).to_string()),
            f(
                "__MONOTONIC_TIMESTAMP",
                (5_000_000 + i * 1_000_000).to_string(),
            ),
            f("_BOOT_ID", "0123456789abcdef0123456789abcdef"),
            f("MESSAGE", message),
            f("TEST_RUN", run),
            f("TEST_SEQ", i.to_string()),
        ]
    };
    let es: Vec<Fields> = (0..n)
        .map(|i| entry(i, "lag", format!("lag {i} {}", "x".repeat(1000))))
        .collect();
    write_journal_file(&jdir.join("a.journal"), &es);
    let newest = t0 + (n - 1) * 1_000_000;
    let state = tmp.path().join("state");
    let run = |spool: &str, journald: &str| {
        let cfg = tmp.path().join("agent.toml");
        std::fs::write(
            &cfg,
            format!(
                "state_dir = {:?}\nhost = \"lag\"\n{spool}\n[journald]\njournal = {:?}\n{journald}\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n",
                state.to_str().unwrap(),
                jdir.to_str().unwrap()
            ),
        )
        .unwrap();
        let mut child = Command::new(common::bin())
            .args(["agent", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(tmp.path().join("agent.log")).unwrap())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "{}",
                std::fs::read_to_string(tmp.path().join("agent.log")).unwrap()
            );
            if let Some(u) = line.trim().strip_prefix("metrics ") {
                break u.to_string();
            }
        };
        let agent = common::agent::Agent {
            child,
            urls: Vec::new(),
            state: state.clone(),
            metrics: Some(url.clone()),
        };
        (agent, url)
    };
    let status = |state: &std::path::Path| {
        let o = Command::new(common::bin())
            .args(["status", "--state"])
            .arg(state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let lag = |url: &str| sample(&scrape(url), "logseal_agent_journal_lag_seconds");
    let last_chained = || {
        entries(&chained(&state))
            .iter()
            .map(|e| get_str(e, "__REALTIME_TIMESTAMP").parse::<u64>().unwrap())
            .max()
    };

    // 1. A spool of 64 KiB and no [ship]: it fills, and the reader is held
    // back with entries read but not chained.
    let (agent, url) = run(
        "[spool]\nsegment_size = \"16KiB\"\nmax_size = \"64KiB\"",
        "",
    );
    let mut seen = (None, None);
    wait_until("the lag to be that of the last entry chained", || {
        // Stable once the spool is full: the chain no longer moves.
        let chained = last_chained();
        seen = (lag(&url), chained);
        match seen {
            (Some(l), Some(c)) => (l - (newest - c) as f64 / 1e6).abs() < 1e-6,
            _ => false,
        }
    });
    let (l, c) = (seen.0.unwrap(), seen.1.unwrap());
    let text = scrape(&url);
    let (ok, out) = common::collector::promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics:\n{out}\n{text}");
    assert!(
        sample(&text, "logseal_agent_journal_last_read_timestamp_seconds")
            .is_some_and(|t| t * 1e6 > c as f64),
        "the reader is ahead of the chain:\n{text}"
    );
    assert!(
        c < newest && l >= 1000.0,
        "held back at {c}, {l} s behind the newest entry {newest}"
    );
    // The status file is rewritten every 5 s.
    wait_until("status to say how far the chain is behind", || {
        status(&state).contains("behind the newest entry")
    });
    agent.stop();

    // 2. Restarted with room: it resumes after the last entry chained, chains
    // the rest, and the lag falls to 0.
    let (agent, url) = run("", "");
    wait_until("everything chained and the lag 0", || {
        last_chained() == Some(newest) && lag(&url) == Some(0.0)
    });
    wait_until("status to say the journal is caught up", || {
        status(&state).contains("caught up")
    });
    agent.stop();
    assert_eq!(
        seqs(&entries(&chained(&state)), "lag"),
        (0..n).collect::<Vec<u64>>()
    );

    // 3. Newer entries the filters drop: nothing is left to chain, so the
    // lag is 0 (not the time since the last entry that matched).
    let later: Vec<Fields> = (n..n + 50)
        .map(|i| entry(i, "other", format!("other {i}")))
        .collect();
    write_journal_file(&jdir.join("b.journal"), &later);
    let (agent, url) = run("", "matches = [\"TEST_RUN=lag\"]");
    wait_until("the dropped entries read and the lag 0", || {
        let t = scrape(&url);
        sample(&t, "logseal_agent_journal_entries_read_total") == Some(50.0)
            && sample(&t, "logseal_agent_journal_lag_seconds") == Some(0.0)
    });
    agent.stop();
}
