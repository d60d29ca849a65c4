//! The collector's checkpoint log (docs/FORMAT.md §7) against what an
//! intruder on the collector host does to a store: real agent and collector
//! over mutual TLS, then a chain cut after a seal, a host's directory
//! deleted, a chain moved into quarantine, the log itself removed — each
//! caught by `logseal verify STORE`; a collector killed with -9 leaves a log
//! that recovers; the log is pinned with `--trust-file` like any chain.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::*;
use common::relay::Relay;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A store written by a real collector for host `web-01`, `n` messages, both
/// sides stopped cleanly (the last checkpoint names everything).
fn store_with(d: &Path, n: u64) -> PathBuf {
    let ca = Ca::new(&d.join("pki"));
    let c = Collector::start(&d.join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d, &ca, "web-01", &[&c.addr], TCP_INPUT, "");
    let a = start_agent(d, &cfg);
    // In rounds, each stored and sealed before the next: a chain of several
    // seals to cut between.
    let per = n / 4;
    for round in 0..4 {
        send_tcp(&a.addr("tcp"), "cp", round * per + 1, (round + 1) * per);
        wait_until("the round stored and sealed", || {
            numbers(&store_events(&c.store), "cp").len() as u64 >= (round + 1) * per
                && seals(&c.store) >= round + 2
        });
    }
    a.stop();
    let store = c.store.clone();
    c.stop();
    store
}

/// The records under `path` as `logseal inspect --json` shows them (none
/// while it cannot read them).
fn inspect_json(path: &Path) -> Vec<Value> {
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// Seals in the host chains of a store.
fn seals(store: &Path) -> u64 {
    let recs = inspect_json(&store.join("hosts"));
    recs.iter().filter(|r| r["kind"] == "seal").count() as u64
}

/// A copy of `store` to attack.
fn copy(store: &Path, to: &Path) -> PathBuf {
    let o = Command::new("cp")
        .arg("-a")
        .arg(store)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    to.to_path_buf()
}

/// The directory of host `web-01`'s (only) chain in a store.
fn chain_dir(store: &Path) -> PathBuf {
    let host = store.join("hosts/web-01");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

fn problems(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["problems"].as_array().cloned().unwrap_or_default())
        .chain(doc["unattributed"].as_array().cloned().unwrap_or_default())
        .map(|p| p["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    out.sort();
    out
}

/// The independent verifier (tests/independent_verify.py, written from
/// docs/FORMAT.md alone) on `path`: its exit code and JSON.
fn independent(args: &[&str], path: &Path) -> (i32, Value) {
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_verify.py"))
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), doc)
}

/// Asserts that the independent verifier reaches `logseal verify`'s
/// verdict on a store (given `args`, as `logseal verify` was): the exit
/// code, the findings by kind, each chain's verdict and head, and the
/// checkpoint log's.
fn independent_agrees(args: &[&str], path: &Path, code: i32, ours: &Value) {
    let (theirs_code, theirs) = independent(args, path);
    let mut kinds: Vec<String> = theirs["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["problems"].as_array().cloned().unwrap_or_default())
        .map(|p| p[0].as_str().unwrap_or("?").to_string())
        .chain(
            theirs["unattributed"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| k.as_str().unwrap_or("?").to_string()),
        )
        .collect();
    kinds.sort();
    assert_eq!(
        (theirs_code, kinds),
        (code, problems(ours)),
        "{theirs:#}\n{ours:#}"
    );
    for part in ["chains", "checkpoint_log"] {
        let (a, b) = (theirs[part].as_array(), ours[part].as_array());
        let (a, b) = (
            a.cloned().unwrap_or_default(),
            b.cloned().unwrap_or_default(),
        );
        assert_eq!(a.len(), b.len(), "{part}: {theirs:#}\n{ours:#}");
        for (t, o) in a.iter().zip(&b) {
            assert_eq!(t["chain"], o["chain"], "{part}");
            assert_eq!(t["verdict"], o["verdict"], "{part}: {t}\n{o}");
            assert_eq!(t["head"], o["head"], "{part}: {t}\n{o}");
        }
    }
}

/// Asserts that the checkpoint log of `store` is not believed (exit 1, the
/// finding said), and that the independent verifier agrees; `what` names
/// the case.
fn assert_not_believed(store: &Path, what: &str) -> Value {
    let (code, doc) = verify_json(store);
    assert_eq!(code, 1, "{what}: {doc:#}");
    assert!(
        problems(&doc).contains(&"checkpoint-log-not-believed".to_string()),
        "{what}: {doc:#}"
    );
    independent_agrees(&[], store, code, &doc);
    doc
}

fn verify_args(args: &[&str], path: &Path) -> (i32, Value, String) {
    let o = Command::new(bin())
        .arg("verify")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    (o.status.code().unwrap_or(-1), doc, text)
}

#[test]
fn a_store_cut_emptied_or_moved_after_its_checkpoints_is_caught() {
    let d = TempDir::new("ckpt-attacks");
    let store = store_with(d.path(), 400);
    let (code, doc) = verify_json(&store);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["checkpoint_log"][0]["verdict"], "intact", "{doc:#}");
    assert!(
        doc["chains"][0]["warnings"].as_array().unwrap().is_empty(),
        "the chain is checkpointed: {doc:#}"
    );
    independent_agrees(&[], &store, code, &doc);
    assert_eq!(
        independent(&[], &store).1["chains"][0]["warnings"],
        serde_json::json!([])
    );

    // 1. Cut after an earlier seal: a valid shorter chain, which verified
    // intact before checkpoints existed.
    let cut = copy(&store, &d.path().join("cut"));
    let recs = inspect_json(&chain_dir(&cut));
    let seals: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "seal").collect();
    assert!(seals.len() >= 3, "{} seals", seals.len());
    let keep = seals[seals.len() - 3];
    let after = recs
        .iter()
        .find(|r| r["seq"] == keep["seq"].as_u64().unwrap() + 1)
        .unwrap();
    let seg = PathBuf::from(after["file"].as_str().unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(after["offset"].as_u64().unwrap()).unwrap();
    let (code, doc) = verify_json(&cut);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["checkpoint-cut"], "{doc:#}");
    independent_agrees(&[], &cut, code, &doc);
    let p = &doc["chains"][0]["problems"][0];
    assert_eq!(p["last_seq"], keep["seq"], "{p}");
    assert!(p["seq"].as_u64().unwrap() > keep["seq"].as_u64().unwrap());
    // Without the checkpoints (a store from before them) it is the valid
    // shorter chain it always was: the opt-out says so on stderr.
    let (code, _, err) = verify_args(&["--json", "--no-checkpoints"], &cut);
    assert_eq!(code, 0);
    assert!(err.contains("not checked"), "{err}");

    // 2. The host's directory deleted: the store holds no chain any more.
    let gone = copy(&store, &d.path().join("gone"));
    std::fs::remove_dir_all(gone.join("hosts/web-01")).unwrap();
    let (code, doc) = verify_json(&gone);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["missing-chain"], "{doc:#}");
    assert_eq!(doc["unattributed"][0]["host"], "web-01");
    independent_agrees(&[], &gone, code, &doc);

    // 3. The chain moved into quarantine (which verify skips).
    let moved = copy(&store, &d.path().join("moved"));
    let dir = chain_dir(&moved);
    let chain = dir.file_name().unwrap().to_owned();
    std::fs::rename(&dir, moved.join("quarantine").join(&chain)).unwrap();
    let (code, doc) = verify_json(&moved);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["missing-chain"], "{doc:#}");
    let q = doc["unattributed"][0]["quarantined"].as_str().unwrap();
    assert!(q.contains("quarantine"), "{q}");
    independent_agrees(&[], &moved, code, &doc);

    // 4. The checkpoint log removed: nothing could be checked.
    let bare = copy(&store, &d.path().join("bare"));
    std::fs::remove_dir_all(bare.join("checkpoints")).unwrap();
    let (code, doc) = verify_json(&bare);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["no-checkpoint-log"], "{doc:#}");
    independent_agrees(&[], &bare, code, &doc);

    // 5. hosts/ renamed as well: still a store (its other files say so), and
    // `--store` insists whatever is left.
    std::fs::rename(bare.join("hosts"), bare.join("h")).unwrap();
    let (code, doc) = verify_json(&bare);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["no-checkpoint-log"], "{doc:#}");
    for f in ["alerts.jsonl", "crl-floor.json"] {
        let _ = std::fs::remove_file(bare.join(f));
    }
    std::fs::remove_dir_all(bare.join("quarantine")).unwrap();
    let (code, doc, _) = verify_args(&["--json", "--store"], &bare);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["no-checkpoint-log"], "{doc:#}");
    // Part of a store is verified as files, and stderr says what that leaves.
    let (_, _, err) = verify_args(&["--json"], &chain_dir(&store));
    assert!(
        err.contains("is not checked against its checkpoint log"),
        "{err}"
    );
}

/// Found by red-teaming the first version: a log that verifies but cannot
/// be believed must fail the run, not switch the checks off in silence.
#[test]
fn a_checkpoint_log_that_cannot_be_believed_fails_the_run() {
    use logseal::chain::frame;
    let d = TempDir::new("ckpt-believe");
    let store = store_with(d.path(), 200);
    // A cut chain, which the checkpoints catch...
    let cut = |to: &Path| {
        let s = copy(&store, to);
        let dir = chain_dir(&s);
        let seg = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "seg"))
            .unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(frame::HEADER_LEN).unwrap();
        s
    };
    // ...with an empty segment file dropped into the log.
    let junk = cut(&d.path().join("junk"));
    std::fs::write(junk.join("checkpoints/log/zz.seg"), b"").unwrap();
    // A finding outside the log's chains is enough not to believe it, and
    // the run says so (FORMAT.md §7 step 1).
    let doc = assert_not_believed(&junk, "an empty segment in the log");
    assert!(
        problems(&doc).contains(&"bad-segment".to_string()),
        "{doc:#}"
    );
    // ...or any other file there.
    let stray = cut(&d.path().join("stray"));
    std::fs::write(stray.join("checkpoints/log/notes.txt"), b"nothing").unwrap();
    let (code, doc) = verify_json(&stray);
    assert_eq!(code, 1, "{doc:#}");
    // (The cut chain is empty now: `no-records` too.)
    assert_eq!(
        problems(&doc),
        ["checkpoint-log-not-believed", "no-records"],
        "{doc:#}"
    );
    independent_agrees(&[], &stray, code, &doc);

    // ...with anything but its segments in the log's directory: a state
    // file, a temporary file, a directory.
    for (i, junk) in ["signer.state", ".x.tmp", "sub/"].iter().enumerate() {
        let s = cut(&d.path().join(format!("junk-{i}")));
        let p = s.join("checkpoints/log").join(junk.trim_end_matches('/'));
        if junk.ends_with('/') {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, b"x").unwrap();
        }
        assert_not_believed(&s, junk);
    }
    // ...with a host's chain put in the log's place: a chain that verifies,
    // but holds events that are no checkpoints.
    let swapped = cut(&d.path().join("swapped"));
    let logdir = swapped.join("checkpoints/log");
    std::fs::remove_dir_all(&logdir).unwrap();
    std::fs::create_dir(&logdir).unwrap();
    for e in std::fs::read_dir(chain_dir(&store)).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::copy(&p, logdir.join(p.file_name().unwrap())).unwrap();
        }
    }
    assert_not_believed(&swapped, "a host's chain as the log");

    // ...with every checkpoint of the log redacted (redaction needs no key:
    // the log's heads and seals still verify).
    let red = cut(&d.path().join("redacted"));
    let logdir = red.join("checkpoints/log");
    for e in std::fs::read_dir(&logdir).unwrap() {
        let seg = e.unwrap().path();
        let bytes = std::fs::read(&seg).unwrap();
        let mut out = bytes[..frame::HEADER_LEN as usize].to_vec();
        let mut at = frame::HEADER_LEN as usize;
        let mut redacted = 0;
        while at < bytes.len() {
            let f = frame::parse_frame(&bytes[at..]).unwrap();
            at += f.len;
            let rec = logseal::chain::Record::decode(f.payload).unwrap();
            if rec.kind() == logseal::chain::record::Kind::Event {
                let mut p = rec.chain_id.0.to_vec();
                p.extend_from_slice(&rec.seq.to_be_bytes());
                p.push(rec.kind() as u8);
                p.extend_from_slice(&logseal::chain::hash::leaf(f.payload));
                frame::encode_frame(frame::FRAME_REDACTED, &p, &mut out);
                redacted += 1;
            } else {
                frame::encode_frame(f.frame_type, f.payload, &mut out);
            }
        }
        assert!(redacted > 0);
        std::fs::write(&seg, out).unwrap();
    }
    let doc = assert_not_believed(&red, "the log's checkpoints redacted");
    assert_eq!(doc["checkpoint_log"][0]["verdict"], "intact", "{doc:#}");
}

#[test]
fn the_checkpoint_log_is_pinned_and_survives_kill_9() {
    let d = TempDir::new("ckpt-pin");
    let ca = Ca::new(&d.path().join("pki"));
    let listen = format!("127.0.0.1:{}", free_port());
    let c = Collector::start(&d.path().join("c"), &ca, &listen, "");
    let cfg = agent_config(d.path(), &ca, "web-01", &[&listen], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "k", 1, 200);
    let store = c.store.clone();
    wait_until("the first messages stored", || {
        !numbers(&store_events(&store), "k").is_empty()
    });
    // Killed while checkpoints are being written; started again on the
    // same store, the log recovers and goes on.
    c.kill9();
    let c = Collector::start(&d.path().join("c"), &ca, &listen, "");
    send_tcp(&a.addr("tcp"), "k", 201, 400);
    wait_until("every message stored", || {
        numbers(&store_events(&store), "k").len() >= 400
    });
    a.stop();
    c.stop();
    let (code, doc) = verify_json(&store);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["checkpoint_log"][0]["verdict"], "intact", "{doc:#}");
    independent_agrees(&[], &store, code, &doc);

    // Pinned: the agent's line and the collector's line in one trust file.
    let line = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let state = d.path().join("state");
    let agent_line = line(&[
        "agent",
        "--print-genesis",
        "--state",
        state.to_str().unwrap(),
    ]);
    let collector_line = line(&[
        "collector",
        "--print-genesis",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(!collector_line.starts_with("web-01 "), "{collector_line}");
    let trust = d.path().join("trust");
    std::fs::write(&trust, format!("{agent_line}{collector_line}")).unwrap();
    let t = trust.to_str().unwrap();
    let (code, doc, _) = verify_args(&["--json", "--trust-file", t], &store);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["checkpoint_log"][0]["anchor"], "trusted", "{doc:#}");
    independent_agrees(&["--trust-file", t], &store, code, &doc);
    // Without the collector's line, its log is not believed: not intact.
    std::fs::write(&trust, &agent_line).unwrap();
    let (code, doc, _) = verify_args(&["--json", "--trust-file", t], &store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["checkpoint_log"][0]["verdict"], "broken", "{doc:#}");
    independent_agrees(&["--trust-file", t], &store, code, &doc);
}

#[test]
fn a_witnessed_checkpoint_catches_a_log_cut_after_an_earlier_seal() {
    let d = TempDir::new("ckpt-witness");
    let store = store_with(d.path(), 200);
    let witness = d.path().join("witness.txt");
    let o = Command::new(bin())
        .args(["checkpoint", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&witness)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&witness).unwrap();
    assert!(text.starts_with("logseal checkpoint v1\n"), "{text}");
    let w = witness.to_str().unwrap();
    let (code, doc, _) = verify_args(&["--json", "--checkpoint", w], &store);
    assert_eq!(code, 0, "{doc:#}");

    // The log cut right after an earlier seal of its own: a valid shorter
    // log, whose checkpoints the (longer) chains still satisfy.
    let cut = copy(&store, &d.path().join("cut"));
    let recs = inspect_json(&cut.join("checkpoints/log"));
    let seals: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "seal").collect();
    assert!(seals.len() >= 3, "{} seals in the log", seals.len());
    let keep = seals[seals.len() - 2]["seq"].as_u64().unwrap();
    let after = recs.iter().find(|r| r["seq"] == keep + 1).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(after["file"].as_str().unwrap())
        .unwrap();
    f.set_len(after["offset"].as_u64().unwrap()).unwrap();
    // What checkpoints alone cannot see (FORMAT.md §7)...
    let (code, doc) = verify_json(&cut);
    assert_eq!(code, 0, "{doc:#}");
    // ...the witnessed seal shows.
    let (code, doc, _) = verify_args(&["--json", "--checkpoint", w], &cut);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["witnessed-checkpoint-missing"], "{doc:#}");
    assert_eq!(doc["unattributed"][0]["seq"], seals[seals.len() - 1]["seq"]);

    // A block that is not what the collector signed is refused (exit 2),
    // naming the file; one of another log is a finding.
    let forged = d.path().join("forged.txt");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let record = lines.iter_mut().find(|l| l.starts_with("record ")).unwrap();
    let flip = if record.ends_with('0') { "1" } else { "0" };
    record.replace_range(record.len() - 1.., flip);
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = verify_args(&["--checkpoint", forged.to_str().unwrap()], &store);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("forged.txt") && err.contains("signature"),
        "{err}"
    );
    let other = d.path().join("other.txt");
    let fake_key = format!("genesis SHA256:{}", "ab".repeat(16));
    let text2: String = text
        .lines()
        .map(|l| if l.starts_with("genesis ") { fake_key.clone() } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(&other, text2).unwrap();
    let (code, doc, _) = verify_args(&["--json", "--checkpoint", other.to_str().unwrap()], &store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["witnessed-checkpoint-missing"], "{doc:#}");

    // The format is strict: CRLF line ends, uppercase hex, a padded value.
    for (i, bent) in [
        text.replace('\n', "\r\n"),
        text.lines()
            .map(|l| match l.strip_prefix("record ") {
                Some(h) => format!("record {}\n", h.to_uppercase()),
                None => format!("{l}\n"),
            })
            .collect(),
        text.replacen("seal ", "seal  ", 1),
    ]
    .iter()
    .enumerate()
    {
        let f = d.path().join(format!("bent-{i}.txt"));
        std::fs::write(&f, bent).unwrap();
        let (code, _, err) = verify_args(&["--checkpoint", f.to_str().unwrap()], &store);
        assert_eq!(code, 2, "{i}: {err}");
        assert!(err.contains(&format!("bent-{i}.txt")), "{err}");
    }
    // A block naming another collector is not this log's.
    let renamed = d.path().join("renamed.txt");
    let text3: String = text
        .lines()
        .map(|l| if l.starts_with("collector ") { "collector elsewhere".to_string() } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(&renamed, text3).unwrap();
    let (code, doc, _) = verify_args(
        &["--json", "--checkpoint", renamed.to_str().unwrap()],
        &store,
    );
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["witnessed-checkpoint-missing"], "{doc:#}");

    // A store without a log cannot be witnessed.
    std::fs::remove_dir_all(cut.join("checkpoints")).unwrap();
    let o = Command::new(bin())
        .args(["checkpoint", "--store"])
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no checkpoint log"),
        "{o:?}"
    );
}

#[test]
fn a_chain_under_a_name_that_is_not_utf8_or_a_copy_of_the_log_is_seen() {
    use std::os::unix::ffi::OsStrExt;
    let d = TempDir::new("ckpt-names");
    let store = store_with(d.path(), 200);
    // The host's directory renamed to bytes that are no UTF-8: no host is
    // named so, the chain is misfiled (it was taken as unplaced).
    let odd = copy(&store, &d.path().join("odd"));
    let name = std::ffi::OsStr::from_bytes(b"web-\xff");
    std::fs::rename(odd.join("hosts/web-01"), odd.join("hosts").join(name)).unwrap();
    let (code, doc) = verify_json(&odd);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["misfiled"], "{doc:#}");
    independent_agrees(&[], &odd, code, &doc);
    // A copy of the log's chain among the store's chains: a chain no
    // checkpoint names, said as such.
    let copied = copy(&store, &d.path().join("copied"));
    let o = Command::new(bin())
        .args(["collector", "--print-genesis", "--store"])
        .arg(&copied)
        .output()
        .unwrap();
    let host = String::from_utf8(o.stdout).unwrap();
    let host = host.split_whitespace().next().unwrap().to_string();
    let (_, doc) = verify_json(&copied);
    let log_chain = doc["checkpoint_log"][0]["chain"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = copied.join("hosts").join(&host).join(&log_chain);
    std::fs::create_dir_all(&dest).unwrap();
    for e in std::fs::read_dir(copied.join("checkpoints/log")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dest.join(p.file_name().unwrap())).unwrap();
    }
    let (code, doc) = verify_json(&copied);
    let copy_report = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chain"] == log_chain.as_str())
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert!(
        copy_report["warnings"]
            .to_string()
            .contains("not-checkpointed"),
        "{doc:#}"
    );
    independent_agrees(&[], &copied, code, &doc);
}

/// The seals of collector `of`'s log that the checkpoint log of `store`
/// witnessed (FORMAT.md §7.4), as (log chain, seq), read from its records
/// as `logseal inspect` shows them.
fn witnessed_seals(store: &Path, of: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = inspect_json(&store.join("checkpoints/log"))
        .iter()
        .filter_map(|r| r["message"].as_str())
        .filter(|m| m.starts_with("logseal/witness/v1\0"))
        .filter(|m| m.contains(&format!("\ncollector {of}\n")))
        .filter_map(|m| {
            let line = m.lines().find_map(|l| l.strip_prefix("seal "))?;
            let (chain, seq) = line.split_once(' ')?;
            Some((chain.to_string(), seq.parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// `[witness]` of one peer, asked every second.
fn witness_of(name: &str, address: &str, genesis: Option<&str>) -> String {
    let pin = genesis.map_or(String::new(), |g| format!("genesis = \"{g}\"\n"));
    format!(
        "[witness]\nevery = \"1s\"\n[[witness.peer]]\naddress = \"{address}\"\nname = \"{name}\"\n{pin}"
    )
}

/// The newest seal seq of a checkpoint log in `store`.
fn last_log_seal(store: &Path) -> u64 {
    inspect_json(&store.join("checkpoints/log"))
        .iter()
        .filter(|r| r["kind"] == "seal")
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap()
}

/// Two collectors witness each other over mutual TLS (each its own
/// certificate from `logseal pki`): each records the other's checkpoint
/// seals in its own log. Whoever holds collector A can cut A's log back
/// after an earlier seal, or put back a copy of A's store and run on — both
/// verify intact alone (FORMAT.md §7) — but `verify A --witnessed-by B`
/// sees each. A peer whose log is not the pinned one is refused, with an
/// alert; a peer going back raises one.
#[test]
fn two_collectors_witnessing_each_other_catch_a_truncated_peer_store() {
    let d = TempDir::new("ckpt-peers");
    let ca = Ca::new(&d.path().join("pki"));
    let (to_a, to_b) = (Relay::start(), Relay::start());
    let start_a = |relay: &Relay| {
        let a = Collector::start_named(
            &d.path().join("a"),
            &ca,
            "collector-a",
            "127.0.0.1:0",
            &witness_of("collector-b", &to_b.addr, None),
        );
        relay.to(&a.addr);
        a
    };
    let a = start_a(&to_a);
    let a_store = a.store.clone();
    let mut a_genesis = String::new();
    wait_until("A's first checkpoint block", || {
        let o = Command::new(bin())
            .args(["checkpoint", "--store"])
            .arg(&a_store)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        a_genesis = text
            .lines()
            .find_map(|l| l.strip_prefix("genesis "))
            .unwrap_or_default()
            .to_string();
        o.status.success()
    });
    let start_b = |relay: &Relay| {
        let b = Collector::start_named(
            &d.path().join("b"),
            &ca,
            "collector-b",
            "127.0.0.1:0",
            &witness_of("collector-a", &to_a.addr, Some(&a_genesis)),
        );
        relay.to(&b.addr);
        b
    };
    let b = start_b(&to_b);
    let b_store = b.store.clone();
    // A third collector pins another genesis for A: A's checkpoints are
    // refused there, and said so.
    let wrong = format!("SHA256:{}", "ab".repeat(16));
    let c = Collector::start_named(
        &d.path().join("c"),
        &ca,
        "collector-c",
        "127.0.0.1:0",
        &witness_of("collector-a", &to_a.addr, Some(&wrong)),
    );

    // web-01 ships to A, web-02 to B.
    let ship = |dir: &Path, host: &str, to: &str, name: &str| {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = agent_config(dir, &ca, host, &[to], TCP_INPUT, "");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let named = format!("server_name = \"{name}\"");
        std::fs::write(&cfg, text.replace("server_name = \"collector\"", &named)).unwrap();
        start_agent(dir, &cfg)
    };
    let agent = ship(d.path(), "web-01", &to_a.addr, "collector-a");
    let agent2 = ship(&d.path().join("2"), "web-02", &to_b.addr, "collector-b");
    for round in 0..3u64 {
        send_tcp(&agent.addr("tcp"), "w", round * 50 + 1, (round + 1) * 50);
        send_tcp(&agent2.addr("tcp"), "v", round * 50 + 1, (round + 1) * 50);
        wait_until("the round stored", || {
            numbers(&store_events(&a_store), "w").len() as u64 >= (round + 1) * 50
                && numbers(&store_events(&b_store), "v").len() as u64 >= (round + 1) * 50
        });
    }
    agent.stop();
    agent2.stop();
    wait_until("each collector witnessed the other", || {
        witnessed_seals(&b_store, "collector-a").len() >= 3
            && !witnessed_seals(&a_store, "collector-b").is_empty()
    });
    wait_until("the third collector said why it refused", || {
        let alerts = std::fs::read_to_string(c.store.join("alerts.jsonl")).unwrap_or_default();
        alerts.contains("witness-refused") && alerts.contains("not the pinned")
    });
    let c_store = c.store.clone();
    let c_log = c.stop();
    assert!(
        witnessed_seals(&c_store, "collector-a").is_empty(),
        "{c_log}"
    );
    // B first: its last checkpoint seals what it witnessed.
    b.stop();
    a.stop();

    // Every collector's line pins its log; the agents' pin their chains.
    let line = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let mut trust = String::new();
    for state in [d.path().join("state"), d.path().join("2/state")] {
        trust += &line(&[
            "agent",
            "--print-genesis",
            "--state",
            state.to_str().unwrap(),
        ]);
    }
    for s in [&a_store, &b_store] {
        trust += &line(&[
            "collector",
            "--print-genesis",
            "--store",
            s.to_str().unwrap(),
        ]);
    }
    let trust_file = d.path().join("trust");
    std::fs::write(&trust_file, &trust).unwrap();
    let t = trust_file.to_str().unwrap();
    let by = |s: &Path| s.to_str().unwrap().to_string();
    // `verify --json --trust-file T --witnessed-by WITNESS STORE`.
    let witnessed = |store: &Path, witness: &Path| {
        verify_args(
            &["--json", "--trust-file", t, "--witnessed-by", &by(witness)],
            store,
        )
    };

    // Both stores hold everything the other witnessed; the independent
    // verifier reads a log holding witnessed checkpoints as the spec says.
    let (code, doc, err) = witnessed(&a_store, &b_store);
    assert_eq!(code, 0, "{doc:#}\n{err}");
    let (code, doc, err) = witnessed(&b_store, &a_store);
    assert_eq!(code, 0, "{doc:#}\n{err}");
    independent_agrees(&["--trust-file", t], &b_store, code, &doc);
    // A witness that witnessed nothing of this collector proves nothing.
    let (code, doc, _) = witnessed(&b_store, &b_store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["not-witnessed"], "{doc:#}");

    // A's log cut right after the seal before the last one B witnessed.
    let last = witnessed_seals(&b_store, "collector-a").pop().unwrap();
    let cut = copy(&a_store, &d.path().join("a-cut"));
    let recs = inspect_json(&cut.join("checkpoints/log"));
    let keep = recs
        .iter()
        .filter(|r| r["kind"] == "seal" && r["seq"].as_u64().unwrap() < last.1)
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap();
    let after = recs.iter().find(|r| r["seq"] == keep + 1).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(after["file"].as_str().unwrap())
        .unwrap()
        .set_len(after["offset"].as_u64().unwrap())
        .unwrap();
    let (code, doc, _) = verify_args(&["--json", "--trust-file", t], &cut);
    assert_eq!(code, 0, "the cut alone goes unseen: {doc:#}");
    let (code, doc, _) = witnessed(&cut, &b_store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["witnessed-checkpoint-missing"], "{doc:#}");
    assert_eq!(doc["unattributed"][0]["seq"], last.1, "{doc:#}");
    assert_eq!(doc["unattributed"][0]["chain"], last.0, "{doc:#}");

    // A's whole store put back from a copy, and run on: its later seals
    // hold other records than the ones B saw before the copy was put back.
    let snapshot = copy(&a_store, &d.path().join("a-snapshot"));
    let copied = last_log_seal(&snapshot);
    let (a, b) = (start_a(&to_a), start_b(&to_b));
    wait_until("B witnessed A past the copy", || {
        witnessed_seals(&b_store, "collector-a")
            .iter()
            .any(|(_, seq)| *seq > copied + 4)
    });
    a.stop();
    std::fs::remove_dir_all(&a_store).unwrap();
    copy(&snapshot, &a_store);
    let seen = witnessed_seals(&b_store, "collector-a");
    let h1 = seen.iter().map(|(_, seq)| *seq).max().unwrap();
    let a = start_a(&to_a);
    // Until the copy has run on past everything B saw before: the newest
    // seal B holds is then one the restored log holds too.
    wait_until("B saw A go back, then past where it had been", || {
        let alerts = std::fs::read_to_string(b_store.join("alerts.jsonl")).unwrap_or_default();
        alerts.contains("witness-rollback")
            && witnessed_seals(&b_store, "collector-a")
                .iter()
                .any(|(_, seq)| *seq > h1)
    });
    b.stop();
    a.stop();
    let (code, doc, _) = verify_args(&["--json", "--trust-file", t], &a_store);
    assert_eq!(code, 0, "the copy run on verifies alone: {doc:#}");
    let (code, doc, _) = witnessed(&a_store, &b_store);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(problems(&doc), ["witnessed-checkpoint-missing"], "{doc:#}");
    let missing = doc["unattributed"][0]["seq"].as_u64().unwrap();
    assert!(missing > copied && missing <= h1, "{doc:#}");

    // The witness's own log must be pinned: without its line, nothing it
    // says is used (exit 2, naming it).
    let without_b: String = trust
        .lines()
        .filter(|l| !l.starts_with("collector-b "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&trust_file, without_b).unwrap();
    let (code, _, err) = verify_args(&["--trust-file", t, "--witnessed-by", &by(&b_store)], &cut);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot be believed as a witness") && err.contains(&by(&b_store)),
        "{err}"
    );
}

/// A peer whose certificate the CRL revokes (its host taken, its key
/// stolen) is not witnessed: nothing it shows is recorded, and an alert
/// says why. Before the revocation it was.
#[test]
fn a_peer_whose_certificate_is_revoked_is_not_witnessed() {
    let d = TempDir::new("ckpt-revoked-peer");
    let ca = Ca::new(&d.path().join("pki"));
    let a = Collector::start_named(&d.path().join("a"), &ca, "collector-a", "127.0.0.1:0", "");
    let peer = witness_of("collector-a", &a.addr, None);
    let b = Collector::start_named(
        &d.path().join("b"),
        &ca,
        "collector-b",
        "127.0.0.1:0",
        &peer,
    );
    let b_store = b.store.clone();
    wait_until("B witnessed A", || {
        !witnessed_seals(&b_store, "collector-a").is_empty()
    });
    b.stop();
    logseal::cmd::pki::revoke(&ca.dir, "collector-a").unwrap();
    let before = witnessed_seals(&b_store, "collector-a");
    let b = Collector::start_named(
        &d.path().join("b"),
        &ca,
        "collector-b",
        "127.0.0.1:0",
        &peer,
    );
    wait_until("B refused the revoked peer, and said so", || {
        let alerts = std::fs::read_to_string(b_store.join("alerts.jsonl")).unwrap_or_default();
        alerts.contains("witness-refused") && alerts.contains("revoked")
    });
    b.stop();
    a.stop();
    assert_eq!(witnessed_seals(&b_store, "collector-a"), before);
}
