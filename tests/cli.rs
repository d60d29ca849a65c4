//! The `logseal` binary end to end: stamp, verify, inspect, exit codes, bad input.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading its input (e.g. when it refuses to start).
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stamp(dir: &Path, input: &str, extra: &[&str]) -> Output {
    let state = dir.join("state");
    let out = dir.join("log.seg");
    let mut args = vec![
        "stamp",
        "--state",
        s(&state),
        "--out",
        s(&out),
        "--host",
        "cli-host",
    ];
    args.extend_from_slice(extra);
    run(&args, input.as_bytes())
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn verify_json(paths: &[&str], extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(paths);
    let o = run(&args, b"");
    let code = o.status.code().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (code, v)
}

fn numbered(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("line {i}\n")).collect()
}

#[test]
fn stamp_then_verify_intact_then_tampered() {
    let d = TempDir::new("cli");
    let o = stamp(d.path(), &numbered(1, 100), &["--seal-every", "25"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = d.path().join("log.seg");

    let o = run(&["verify", s(&log)], b"");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("INTACT") && t.contains("RESULT: intact"), "{t}");
    assert!(t.contains("taken from the data itself"), "{t}");
    assert!(t.contains("host cli-host"), "{t}");

    let (code, v) = verify_json(&[s(&log)], &[]);
    assert_eq!(code, 0);
    assert_eq!(v["result"], "intact");
    assert_eq!(v["chains"][0]["events"], 100);
    assert_eq!(v["chains"][0]["seals"], 5); // 4 by count + 1 at shutdown
    assert_eq!(v["chains"][0]["anchor"], "from-data");

    // Change one byte of the event at seq 50 (and fix the CRC, as an attacker would).
    let mut b = std::fs::read(&log).unwrap();
    let fr = frames(&b);
    let f = fr.iter().find(|f| f.seq == 50).unwrap().clone();
    let pos = f.offset + f.len - 1;
    b[pos] ^= 0x01;
    fix_crc(&mut b, f.offset);
    std::fs::write(&log, &b).unwrap();
    let o = run(&["verify", s(&log)], b"");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("bad link") && t.contains("RESULT: BROKEN"),
        "{t}"
    );
    let (code, v) = verify_json(&[s(&log)], &[]);
    assert_eq!(code, 1);
    assert_eq!(v["result"], "broken");
    let p = &v["chains"][0]["problems"][0];
    assert_eq!(p["kind"], "bad-link");
    // The finding is located at the seal that exposed it: file and byte offset.
    let seal = fr
        .iter()
        .find(|f| f.seq == p["seal_seq"].as_u64().unwrap())
        .unwrap();
    assert_eq!(p["at"]["offset"].as_u64(), Some(seal.offset as u64), "{p}");
    assert_eq!(
        v["files"][p["at"]["file"].as_u64().unwrap() as usize],
        log.display().to_string()
    );
    assert!(t.contains(&format!("@ byte {}]", seal.offset)), "{t}");
    assert!(
        p["first_seq"].as_u64().unwrap() <= 50 && 50 <= p["last_seq"].as_u64().unwrap(),
        "{p}"
    );
}

#[test]
fn usage_and_io_errors_exit_2_with_a_message() {
    let d = TempDir::new("cli");
    let o = run(&["verify", "/nonexistent/logseal.seg"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("/nonexistent/logseal.seg"),
        "{}",
        text(&o)
    );

    let junk = d.path().join("junk.txt");
    std::fs::write(&junk, b"this is not a segment file at all").unwrap();
    let o = run(&["verify", s(&junk)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a logseal segment"), "{}", text(&o));

    stamp(d.path(), "x\n", &[]);
    let log = d.path().join("log.seg");
    let o = run(&["verify", "--trust-key", "cli-host=abc", s(&log)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--trust-key"), "{}", text(&o));

    let o = run(&["verify"], b"");
    assert_eq!(o.status.code(), Some(2), "missing path is a usage error");
    let o = stamp(d.path(), "x\n", &["--seal-interval", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid duration"), "{}", text(&o));
}

#[test]
fn trust_anchors() {
    let d = TempDir::new("cli");
    stamp(d.path(), &numbered(1, 10), &[]);
    let log = d.path().join("log.seg");
    let (_, v) = verify_json(&[s(&log)], &[]);
    let key = v["chains"][0]["genesis_key"].as_str().unwrap().to_string();
    assert_eq!(v["chains"][0]["anchor"], "from-data");

    let (code, v) = verify_json(&[s(&log)], &["--trust-key", &format!("cli-host={key}")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["chains"][0]["anchor"], "trusted");

    // The right key bound to another host anchors nothing here.
    let (code, v) = verify_json(&[s(&log)], &["--trust-key", &format!("web-9={key}")]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["chains"][0]["problems"][0]["kind"], "untrusted-genesis");
    assert_eq!(v["chains"][0]["anchor"], "untrusted");

    let other = "11".repeat(32);
    let (code, v) = verify_json(&[s(&log)], &["--trust-key", &format!("cli-host={other}")]);
    assert_eq!(code, 1);
    assert_eq!(v["chains"][0]["problems"][0]["kind"], "untrusted-genesis");

    // A bare key (no host) is refused: anchors are bound to hosts.
    let o = run(&["verify", "--trust-key", &key, s(&log)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("names no host"), "{}", text(&o));

    // The trust file is the format --print-genesis writes.
    let tf = d.path().join("trusted.txt");
    std::fs::write(
        &tf,
        format!("# fleet keys\nother-host {other}\ncli-host {key}\n"),
    )
    .unwrap();
    let (code, _) = verify_json(&[s(&log)], &["--trust-file", s(&tf)]);
    assert_eq!(code, 0);
    let o = run(
        &[
            "agent",
            "--print-genesis",
            "--state",
            s(&d.path().join("state")),
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    assert_eq!(printed.trim(), format!("cli-host {key}"));
    let tf2 = d.path().join("printed.txt");
    std::fs::write(&tf2, &printed).unwrap();
    let (code, _) = verify_json(&[s(&log)], &["--trust-file", s(&tf2)]);
    assert_eq!(code, 0);
    // The old `KEY HOST` order and a FIFO are refused with a message, not a hang.
    std::fs::write(&tf, format!("{key} cli-host\n")).unwrap();
    let o = run(&["verify", "--trust-file", s(&tf), s(&log)], b"");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let fifo = d.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = run(&["verify", "--trust-file", s(&fifo), s(&log)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not a regular file"), "{}", text(&o));
}

#[test]
fn restart_continues_the_chain_with_a_lifecycle_record() {
    let d = TempDir::new("cli");
    assert!(stamp(d.path(), &numbered(1, 5), &[]).status.success());
    assert!(stamp(d.path(), &numbered(6, 10), &[]).status.success());
    let log = d.path().join("log.seg");
    let (code, v) = verify_json(&[s(&log)], &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["chains"].as_array().unwrap().len(), 1);
    assert_eq!(v["chains"][0]["events"], 10);
    let o = run(&["inspect", "--json", s(&log)], b"");
    let recs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let starts: Vec<&Value> = recs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "lifecycle" && r["event"] == "start")
        .collect();
    assert_eq!(starts.len(), 1, "one restart, after a clean shutdown");
    let msgs: Vec<&str> = recs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["message"].as_str())
        .collect();
    let want: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
    assert_eq!(msgs, want);
}

#[test]
fn lost_state_starts_a_new_chain_that_says_so() {
    let d = TempDir::new("cli");
    assert!(stamp(d.path(), &numbered(1, 5), &[]).status.success());
    let log = d.path().join("log.seg");
    let (_, v) = verify_json(&[s(&log)], &[]);
    let first_chain = v["chains"][0]["chain"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(d.path().join("state")).unwrap();
    let o = stamp(d.path(), &numbered(6, 10), &[]);
    assert!(o.status.success());
    assert!(text(&o).contains("state-lost"), "{}", text(&o));
    let (code, v) = verify_json(&[s(&log)], &[]);
    assert_eq!(code, 0, "{v}");
    let chains = v["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[1]["origin"], "state-lost");
    assert!(chains[1]["predecessor"]
        .as_str()
        .unwrap()
        .starts_with(&first_chain));

    // A damaged state file: also a new chain, and the note says why.
    std::fs::write(
        d.path().join("state/signer.state"),
        b"LSEALKEY garbage garbage garbage",
    )
    .unwrap();
    assert!(stamp(d.path(), "x\n", &[]).status.success());
    let o = run(&["inspect", "--json", s(&log)], b"");
    let recs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let geneses: Vec<&Value> = recs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "genesis")
        .collect();
    assert_eq!(geneses.len(), 3);
    assert!(
        geneses[2]["note"].as_str().unwrap().contains("checksum"),
        "{}",
        geneses[2]
    );
}

#[test]
fn state_of_another_host_is_refused() {
    let d = TempDir::new("cli");
    assert!(stamp(d.path(), "a\n", &[]).status.success());
    let state = d.path().join("state");
    let out = d.path().join("log.seg");
    let o = run(
        &[
            "stamp",
            "--state",
            s(&state),
            "--out",
            s(&out),
            "--host",
            "other",
        ],
        b"b\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("belongs to host \"cli-host\""),
        "{}",
        text(&o)
    );
}

#[test]
fn damaged_log_is_not_appended_to() {
    let d = TempDir::new("cli");
    assert!(stamp(d.path(), &numbered(1, 20), &[]).status.success());
    let log = d.path().join("log.seg");
    let mut b = std::fs::read(&log).unwrap();
    let f = frames(&b)[5].clone();
    b[f.offset + 12] ^= 0x55;
    std::fs::write(&log, &b).unwrap();
    let o = stamp(d.path(), "more\n", &[]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains(&format!("offset {}", f.offset)) && t.contains("refusing to append"),
        "{t}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), b, "the evidence is untouched");
}

#[test]
fn torn_tail_is_cut_saved_and_recorded() {
    let d = TempDir::new("cli");
    assert!(stamp(d.path(), &numbered(1, 20), &[]).status.success());
    let log = d.path().join("log.seg");
    let good = std::fs::read(&log).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"\x00\x00\x00\x40\x12\x34").unwrap(); // half a frame header
    drop(f);
    let o = stamp(d.path(), &numbered(21, 22), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let saved = d.path().join(format!("log.seg.torn-{}", good.len()));
    assert_eq!(std::fs::read(&saved).unwrap(), b"\x00\x00\x00\x40\x12\x34");
    let (code, _) = verify_json(&[s(&log)], &[]);
    assert_eq!(code, 0);
    let o = run(&["inspect", "--json", s(&log)], b"");
    let recs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rec = recs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "recovered")
        .unwrap();
    assert_eq!(rec["dropped_bytes"], 6);
}

#[test]
fn inspect_shows_seq_kind_time_source_message() {
    let d = TempDir::new("cli");
    let mut input = b"hello there\n".to_vec();
    input.extend_from_slice(b"bad \xff utf8\n");
    input.extend_from_slice(&vec![b'x'; 300]);
    input.push(b'\n');
    input.extend_from_slice(b"no newline at end");
    let state = d.path().join("state");
    let out = d.path().join("log.seg");
    let o = run(
        &[
            "stamp",
            "--state",
            s(&state),
            "--out",
            s(&out),
            "--max-line",
            "100",
        ],
        &input,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["inspect", s(&out)], b"");
    let t = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[1].starts_with("       1 event     20") && lines[1].ends_with("stdin hello there"),
        "{t}"
    );
    assert!(lines[2].contains("bad \u{fffd} utf8"), "{t}");
    assert!(lines[3].contains("[truncated from 300 bytes]"), "{t}");
    assert!(lines[4].ends_with("no newline at end"), "{t}");
    let o = run(&["inspect", "--json", s(&out)], b"");
    let recs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(recs[2]["raw_hex"], "62616420ff2075746638");
    assert_eq!(recs[3]["original_len"], 300);
}

#[test]
fn interval_seals_while_input_is_idle() {
    let d = TempDir::new("cli");
    let state = d.path().join("state");
    let out = d.path().join("log.seg");
    let mut child = Command::new(bin())
        .args([
            "stamp",
            "--state",
            s(&state),
            "--out",
            s(&out),
            "--seal-interval",
            "200ms",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    stdin.flush().unwrap();
    // Without closing stdin, a seal must appear.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sealed = loop {
        let b = std::fs::read(&out).unwrap_or_default();
        if b.len() > 16 && frames(&b).iter().any(|f| f.kind == "seal") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(sealed, "no interval seal while stdin stayed open");
}

#[test]
fn a_state_given_another_chains_log_is_refused() {
    let d = TempDir::new("cli");
    let run_stamp = |state: &str, out: &str, input: &str| {
        run(
            &[
                "stamp",
                "--state",
                s(&d.path().join(state)),
                "--out",
                s(&d.path().join(out)),
                "--host",
                "cli-host",
            ],
            input.as_bytes(),
        )
    };
    assert!(run_stamp("state-a", "a.seg", &numbered(1, 20))
        .status
        .success());
    assert!(run_stamp("state-b", "b.seg", &numbered(1, 30))
        .status
        .success());
    let b_before = std::fs::read(d.path().join("b.seg")).unwrap();
    let state_before = std::fs::read(d.path().join("state-a/signer.state")).unwrap();
    // A typo: chain A's state with chain B's log.
    let o = run_stamp("state-a", "b.seg", &numbered(21, 25));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("holds no record of chain"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(d.path().join("b.seg")).unwrap(),
        b_before,
        "b.seg untouched"
    );
    assert_eq!(
        std::fs::read(d.path().join("state-a/signer.state")).unwrap(),
        state_before,
        "the state is untouched"
    );
    // The right log still continues.
    assert!(run_stamp("state-a", "a.seg", &numbered(21, 25))
        .status
        .success());
    let (code, v) = verify_json(&[s(&d.path().join("a.seg"))], &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["chains"].as_array().unwrap().len(), 1);
    // A log that holds the state's chain but not at the resume point (a copy
    // cut back to an earlier seal) is a lost state: a new chain naming it.
    let a = std::fs::read(d.path().join("a.seg")).unwrap();
    let fr = frames(&a);
    let first_seal = fr.iter().find(|f| f.kind == "seal").unwrap();
    std::fs::write(
        d.path().join("a.seg"),
        &a[..first_seal.offset + first_seal.len],
    )
    .unwrap();
    let o = run_stamp("state-a", "a.seg", &numbered(26, 27));
    assert!(o.status.success(), "{}", text(&o));
    let (_, v) = verify_json(&[s(&d.path().join("a.seg"))], &[]);
    assert_eq!(v["chains"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["chains"][1]["origin"], "state-lost");
}

#[test]
fn verify_output_closed_early_keeps_the_verdict() {
    let d = TempDir::new("cli");
    stamp(d.path(), &numbered(1, 50), &[]);
    let log = d.path().join("log.seg");
    let mut bad = std::fs::read(&log).unwrap();
    let f = frames(&bad)
        .into_iter()
        .find(|f| f.kind == "event")
        .unwrap();
    bad[f.offset + f.len - 1] ^= 1;
    fix_crc(&mut bad, f.offset);
    let badp = d.path().join("bad.seg");
    std::fs::write(&badp, &bad).unwrap();
    for (p, want) in [(&log, 0), (&badp, 1)] {
        // The reader is gone before verify writes a byte (`verify … | head -0`).
        let mut c = Command::new(bin())
            .arg("verify")
            .arg(p)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(c.stdout.take());
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(want),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn writers_own_files_are_not_listed_and_damaged_segments_are_reported() {
    let d = TempDir::new("cli");
    stamp(d.path(), &numbered(1, 5), &[]);
    let dir = d.path().join("state");
    std::fs::copy(
        d.path().join("log.seg"),
        dir.join("00000000000000000000.seg"),
    )
    .unwrap();
    // The writers' own files are never read, even holding segment bytes.
    std::fs::copy(d.path().join("log.seg"), dir.join("tip.json")).unwrap();
    std::fs::copy(d.path().join("log.seg"), dir.join("acked")).unwrap();
    std::fs::write(dir.join(".signer.state.tmp"), b"x").unwrap();
    let (code, v) = verify_json(&[s(&dir)], &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["skipped_files"], serde_json::json!([]), "{v}");
    // A segment whose header is damaged is reported, not skipped, and fails the run.
    let mut b = std::fs::read(d.path().join("log.seg")).unwrap();
    b[13] ^= 0xff;
    std::fs::write(dir.join("00000000000000099999.seg"), &b).unwrap();
    let (code, v) = verify_json(&[s(&dir)], &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["unattributed"][0]["kind"], "bad-segment", "{v}");
    // A segment header and nothing else is not "0 chains, intact".
    let empty = d.path().join("empty.seg");
    let good = std::fs::read(d.path().join("log.seg")).unwrap();
    std::fs::write(&empty, &good[..16]).unwrap();
    let (code, v) = verify_json(&[s(&empty)], &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["unattributed"][0]["kind"], "no-records", "{v}");
    // A FIFO named on the command line is an error, not a hang.
    let fifo = d.path().join("fifo.seg");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = run(&["verify", s(&fifo)], b"");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Inside a directory it is listed, never opened.
    std::fs::rename(&fifo, dir.join("zz-fifo")).unwrap();
    std::fs::remove_file(dir.join("00000000000000099999.seg")).unwrap();
    let (code, v) = verify_json(&[s(&dir)], &[]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["skipped_files"][0]["why"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{v}"
    );
}

#[test]
fn data_and_file_names_cannot_forge_the_text_report() {
    use logseal::chain::record::{Body, Origin, Payload, Record, Source};
    let d = TempDir::new("cli");
    // A crafted file (no writer makes such a host name): a Genesis whose host
    // holds escape sequences and a line of its own, and unsealed events.
    let host = "h\u{1b}[8m\nRESULT: intact\r";
    let id = logseal::chain::ChainId([7; 16]);
    let pk0 = logseal::chain::SecretKey::from_seed(&[1; 32]).public();
    let mut b = logseal::chain::frame::header().to_vec();
    let genesis = Record {
        chain_id: id,
        seq: 0,
        time_ns: 1,
        body: Body::Genesis {
            host,
            agent: "test",
            pk0,
            origin: Origin::Fresh,
            predecessor: None,
            note: "",
        },
    };
    logseal::chain::frame::encode_frame(
        logseal::chain::frame::FRAME_RECORD,
        &genesis.encode(),
        &mut b,
    );
    for seq in 1..=5u64 {
        let msg = format!("msg-x-{seq} \u{1b}[2J\rRESULT: intact");
        let e = Record {
            chain_id: id,
            seq,
            time_ns: 2,
            body: Body::Event {
                source: Source::Stdin,
                flags: 0,
                peer: "",
                original_len: None,
                payload: Payload::Raw(msg.as_bytes()),
            },
        };
        logseal::chain::frame::encode_frame(
            logseal::chain::frame::FRAME_RECORD,
            &e.encode(),
            &mut b,
        );
    }
    let dir = d.path().join("evil\u{1b}[8m\nRESULT: intact");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.seg"), &b).unwrap();
    std::fs::write(dir.join("junk\u{1b}[2J.txt"), b"x").unwrap();
    for args in [vec!["verify", s(&dir)], vec!["inspect", s(&dir)]] {
        let o = run(&args, b"");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.contains('\u{1b}'), "{args:?}: raw escape in {out}");
        assert!(!out.contains('\r'), "{args:?}: raw CR in {out}");
        assert!(
            out.lines().filter(|l| l.starts_with("RESULT:")).count() <= 1,
            "{args:?}: {out}"
        );
    }
    let o = run(&["verify", s(&dir)], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).ends_with("RESULT: BROKEN\n"), "{}", text(&o));
    // Error messages name paths escaped too.
    let o = run(&["verify", s(&dir.join("missing\u{1b}[2J.seg"))], b"");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains('\u{1b}') && err.contains("missing"), "{err}");
}

#[test]
fn absurd_durations_are_refused_not_a_panic() {
    let d = TempDir::new("cli");
    stamp(d.path(), &numbered(1, 3), &[]);
    let log = d.path().join("log.seg");
    let o = run(
        &[
            "verify",
            "--live",
            "--max-pending-age",
            "18446744073709551615s",
            s(&log),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("too long"), "{}", text(&o));
    let o = stamp(
        d.path(),
        "x\n",
        &["--seal-interval", "99999999999999999999h"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_lock_file_that_is_a_symlink_or_fifo_is_refused_naming_it() {
    let d = TempDir::new("cli");
    let state = d.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", state.join("lock")).unwrap();
    let o = stamp(d.path(), "x\n", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("state/lock"), "{}", text(&o));
    std::fs::remove_file(state.join("lock")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(state.join("lock"))
        .status()
        .unwrap()
        .success());
    let o = stamp(d.path(), "x\n", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a regular file"), "{}", text(&o));
}

#[test]
fn a_version_1_segment_is_refused_by_name_not_called_broken_link_by_link() {
    // The same chain under a version-1 header (the head step did not yet bind
    // the kind byte): reading it as version 2 would report every seal as a
    // broken link; it must be named for what it is, and never appended to.
    let d = TempDir::new("v1-segment");
    let mut seg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/logseal-core/tests/vectors/chain-v1.seg"),
    )
    .unwrap();
    seg[8..10].copy_from_slice(&1u16.to_be_bytes());
    let crc = crc32c::crc32c(&seg[..12]);
    seg[12..16].copy_from_slice(&crc.to_be_bytes());
    let f = d.path().join("old.seg");
    std::fs::write(&f, &seg).unwrap();

    let o = run(&["verify", s(&f)], b"");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("segment version 1"), "{}", text(&o));
    assert!(!text(&o).contains("bad link"), "{}", text(&o));

    let o = run(
        &[
            "stamp",
            "--state",
            s(&d.path().join("st")),
            "--out",
            s(&f),
            "--host",
            "h",
        ],
        b"more\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("segment version 1"), "{}", text(&o));
    assert_eq!(std::fs::read(&f).unwrap(), seg, "the old file was changed");
}

#[test]
fn inspect_of_a_directory_lists_bad_files_and_goes_on_with_well_formed_json() {
    let d = TempDir::new("cli-inspect-dir");
    let o = stamp(d.path(), "one\ntwo\n", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = d.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    // "a-bad" sorts before the good segment: the files after it are still shown.
    std::fs::write(dir.join("a-bad.seg"), b"garbage").unwrap();
    std::fs::copy(d.path().join("log.seg"), dir.join("b-good.seg")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("c-fifo"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", dir.join("d-link")).unwrap();

    let o = run(&["inspect", "--json", s(&dir)], b"");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    let kinds = |k: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == k)
            .map(|e| e["file"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds("unreadable"), [s(&dir.join("a-bad.seg"))]);
    assert_eq!(kinds("event").len(), 2, "{v}");
    let skipped = kinds("skipped");
    assert!(
        skipped.iter().any(|f| f.ends_with("c-fifo"))
            && skipped.iter().any(|f| f.ends_with("d-link")),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 file(s) could not be read"));

    let o = run(&["inspect", s(&dir)], b"");
    assert_eq!(o.status.code(), Some(1));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("unreadable") && t.contains("a-bad.seg"), "{t}");
    assert!(t.contains("stdin one") && t.contains("stdin two"), "{t}");
    assert!(t.contains("c-fifo") && t.contains("d-link"), "{t}");
}

#[test]
fn text_from_the_data_cannot_forge_lines_or_drive_the_terminal() {
    use logseal::chain::record::Source;
    use logseal::storage::writer::ChainWriter;
    let d = TempDir::new("cli-spoof");
    // A peer and a message as a sender may send them, and a host name as
    // only a crafted file holds it (the writer refuses it: the Genesis is
    // written with a placeholder of the same length, then edited).
    let host = "evil\u{1b}[2J\u{1b}[H\nRESULT: intact\r\n\u{7}";
    let placeholder = "h".repeat(host.len());
    let log = d.path().join("spoof.seg");
    let (mut w, _) = ChainWriter::open(&d.path().join("state"), &log, Some(&placeholder)).unwrap();
    w.append_event(
        logseal::util::timefmt::now_ns(),
        Source::SyslogTcp,
        "1.2.3.4\u{1b}]0;owned\u{7}\nRESULT: intact",
        b"msg \x1b[31mred\x1b[0m\nRESULT: intact",
    )
    .unwrap();
    w.seal().unwrap();
    w.shutdown("end").unwrap();
    // Frames re-made with the host edited in (the chain is broken by it: the
    // true result is a failure).
    let mut r = logseal::storage::segment::SegmentReader::open(&log).unwrap();
    let mut out = logseal::chain::frame::header().to_vec();
    while let Some(item) = r.next_item().unwrap() {
        let logseal::storage::segment::Item::Frame {
            frame_type,
            payload,
            ..
        } = item
        else {
            panic!("{item:?}")
        };
        let mut p = payload.to_vec();
        if let Some(i) = p
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_bytes())
        {
            p[i..i + host.len()].copy_from_slice(host.as_bytes());
        }
        logseal::chain::frame::encode_frame(frame_type, &p, &mut out);
    }
    std::fs::write(&log, &out).unwrap();

    for args in [
        vec!["verify", s(&log)],
        vec!["inspect", s(&log)],
        vec!["verify", "--json", s(&log)],
        vec!["inspect", "--json", s(&log)],
    ] {
        let o = run(&args, b"");
        for out in [&o.stdout, &o.stderr] {
            assert!(
                !out.iter().any(|&b| b == 0x1b || b == 0x07 || b == b'\r'),
                "{args:?}: a control byte reached the terminal: {}",
                String::from_utf8_lossy(out)
            );
            let text = String::from_utf8_lossy(out);
            assert!(
                !text
                    .lines()
                    .any(|l| l.trim_start().eq_ignore_ascii_case("RESULT: intact")),
                "{args:?}: a forged line: {text}"
            );
        }
        // The fields are shown, escaped.
        let text = String::from_utf8_lossy(&o.stdout);
        let shown = if args[1] == "--json" {
            "evil\\u001b[2J"
        } else {
            "evil\\x1b[2J"
        };
        if args[0] == "verify" || args[1] != "--json" {
            assert!(text.contains(shown), "{args:?}: {text}");
        }
    }
}

#[test]
fn json_findings_outside_any_chain_have_one_kind() {
    // Found by review: a finding outside any chain was written with two
    // "kind" keys ("frame", then the problem's), which parsers read apart.
    let d = TempDir::new("cli-kind");
    let mut b = logseal::chain::frame::header().to_vec();
    b.extend_from_slice(b"\xff\xff\xff\xff garbage");
    let f = d.path().join("junk.seg");
    std::fs::write(&f, &b).unwrap();
    let o = run(&["verify", "--json", s(&f)], b"");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches("\"kind\"").count(), 1, "{text}");
    assert!(text.contains("\"kind\": \"truncated-tail\""), "{text}");
}

/// Built without the journald input (the default build: it needs no system
/// library), a `[journald]` table or `--journal` is refused with a message
/// saying how to get it, and `--version` says what is missing. (CI runs this
/// in its fresh-machine step; the main run has the input built in.)
#[cfg(not(feature = "journald"))]
#[test]
fn without_the_journald_input_a_journald_table_is_refused_saying_why() {
    let d = TempDir::new("no-journald");
    let cfg = d.path().join("agent.toml");
    let (code, err) = common::check_config(
        "agent",
        &cfg,
        &format!(
            "state_dir = \"{}\"\n[journald]\njournal = \"system\"\n",
            d.path().join("state").display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("[journald]") && err.contains("cargo feature \"journald\""),
        "{err}"
    );
    let o = run(&["--version"], b"");
    assert!(text(&o).contains("without the journald input"), "{o:?}");
    let o = run(
        &[
            "agent",
            "--state",
            s(&d.path().join("state")),
            "--journal",
            "system",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("journald"),
        "{o:?}"
    );
    assert!(
        !d.path().join("state").join("spool").exists(),
        "a refused start leaves no chain"
    );
}

#[test]
fn man_pages_have_a_typed_synopsis_and_the_sections_an_operator_looks_for() {
    let d = TempDir::new("man");
    let out = d.path().join("man1");
    let o = Command::new(bin())
        .args(["man", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "logseal.1",
        "logseal-agent.1",
        "logseal-collector.1",
        "logseal-status.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} missing: {pages:?}");
    }
    for page in &pages {
        // groff renders it without a warning (-ww: all of them).
        let r = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww"]) // -k: preconv, as man(1) runs it
            .arg(out.join(page))
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&r.stderr);
        assert!(
            r.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        // Rendered text without the overstrike bold of -Tutf8 (x\bx).
        let raw = String::from_utf8_lossy(&r.stdout).into_owned();
        let mut text = String::new();
        for c in raw.chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        assert!(
            !text.contains("logseal-help"),
            "{page} refers to logseal-help"
        );
        // The synopsis is what one types: `logseal agent`, not `logseal-agent`.
        let typed = page.trim_end_matches(".1").replace('-', " ");
        let synopsis = text
            .split("SYNOPSIS")
            .nth(1)
            .unwrap_or_else(|| panic!("{page}: no SYNOPSIS:\n{text}"));
        let words: Vec<&str> = synopsis.split_whitespace().collect();
        let want: Vec<&str> = typed.split(' ').collect();
        assert!(
            words.starts_with(&want),
            "{page}: synopsis does not start with {typed:?}:\n{synopsis}"
        );
        // Every page it points to exists.
        let mut rest = text.as_str();
        while let Some(i) = rest.find("logseal-") {
            let tail = &rest[i..];
            let end = tail.find('(').unwrap_or(0);
            let name = &tail[..end];
            if end > 0 && tail[end..].starts_with("(1)") && !name.contains(char::is_whitespace) {
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} refers to {name}(1), which is not written"
                );
            }
            rest = &tail[8..];
        }
        let sections: &[&str] = match page.as_str() {
            "logseal.1" => &["FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"],
            "logseal-agent.1" | "logseal-collector.1" => {
                &["FILES", "SIGNALS", "EXIT STATUS", "EXAMPLES", "SEE ALSO"]
            }
            "logseal-verify.1" | "logseal-status.1" => &["EXIT STATUS", "EXAMPLES", "SEE ALSO"],
            _ => &["SEE ALSO"],
        };
        for s in sections {
            assert!(
                text.lines().any(|l| l == *s),
                "{page}: no {s} section:\n{text}"
            );
        }
    }
}
