//! Signed receipts (docs/FORMAT.md §7.2, docs/PROTOCOL.md version 3): a real
//! agent ships to a real collector over mutual TLS and keeps the collector's
//! receipts; they survive `kill -9`; an agent whose state directory is
//! restored from an earlier copy is caught by the receipt it had been given
//! since (a cut, then, once it runs on, a fork) where `logseal verify` on the
//! spool alone says intact; a receipt changed by one byte is refused.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::agent::*;
use common::collector::*;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The agent's receipt files.
fn receipt_files(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("receipts"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "receipt"))
                .collect()
        })
        .unwrap_or_default()
}

/// The trust file a responder writes: the agent's and the collector's
/// Genesis lines, as `--print-genesis` prints them.
fn trust_file(d: &Path, state: &Path, store: &Path) -> PathBuf {
    let line = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let agent = line(&[
        "agent".as_ref(),
        "--print-genesis".as_ref(),
        "--state".as_ref(),
        state.as_os_str(),
    ]);
    let collector = line(&[
        "collector".as_ref(),
        "--print-genesis".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    let t = d.join("trust");
    std::fs::write(&t, format!("{agent}{collector}")).unwrap();
    t
}

/// `logseal verify --json --receipt R [--collector STORE --trust-file T] PATH`:
/// exit code, document and stderr.
fn verify_receipt(
    path: &Path,
    receipt: &Path,
    pinned: Option<(&Path, &Path)>,
) -> (i32, Value, String) {
    let mut c = Command::new(bin());
    c.args(["verify", "--json", "--receipt"]).arg(receipt);
    if let Some((store, trust)) = pinned {
        c.arg("--collector")
            .arg(store)
            .arg("--trust-file")
            .arg(trust);
    }
    let o = c.arg(path).output().unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (
        o.status.code().unwrap_or(-1),
        doc,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `logseal verify --json --collector STORE --trust-file T PATH`: PATH
/// against the collector's latest checkpoint of its chain (no receipt).
fn verify_against_checkpoint(path: &Path, store: &Path, trust: &Path) -> (i32, Value) {
    let o = Command::new(bin())
        .args(["verify", "--json", "--collector"])
        .arg(store)
        .arg("--trust-file")
        .arg(trust)
        .arg(path)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), doc)
}

/// The seq a receipt names, as `verify` reads it (text mode).
fn receipt_seq(state: &Path, receipt: &Path) -> u64 {
    let o = Command::new(bin())
        .args(["verify", "--receipt"])
        .arg(receipt)
        .arg(state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("receipt of collector"))
        .unwrap_or_else(|| panic!("no receipt line: {text}"));
    line.rsplit("up to seq ").next().unwrap().parse().unwrap()
}

/// Seq of the last record in a chain directory (its spool or store copy).
fn last_seq(path: &Path) -> u64 {
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    recs.iter()
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

fn kinds(doc: &Value) -> Vec<String> {
    doc["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["problems"].as_array().cloned().unwrap_or_default())
        .map(|p| p["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn receipts_survive_kill_9_and_catch_a_restored_state_directory() {
    let d = TempDir::new("receipts");
    let ca = Ca::new(&d.path().join("pki"));
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-01", &[&c.addr], TCP_INPUT, "");
    let state = d.path().join("state");
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "r", 1, 200);
    wait_until("200 stored and a receipt kept", || {
        numbers(&store_events(&c.store), "r").len() == 200 && !receipt_files(&state).is_empty()
    });
    // The copy an intruder (or a careless restore) goes back to.
    let snapshot = d.path().join("snapshot");
    copy_tree(&state, &snapshot);
    let copied_seq = last_seq(&snapshot.join("spool"));

    send_tcp(&a.addr("tcp"), "r", 201, 500);
    wait_until("500 stored and a receipt past the copy", || {
        numbers(&store_events(&c.store), "r").len() == 500
            && receipt_files(&state)
                .first()
                .is_some_and(|r| receipt_seq(&state, r) > copied_seq + 100)
    });
    a.kill9();
    // The receipt kept before the kill is still there, whole (checked below,
    // against the stopped collector's store).
    let files = receipt_files(&state);
    assert_eq!(files.len(), 1);
    let before_kill = d.path().join("before-kill.receipt");
    std::fs::copy(&files[0], &before_kill).unwrap();
    // Started again (it recovers and seals what it held) and stopped; then
    // the collector stops (its last checkpoint is sealed).
    start_agent(d.path(), &cfg).stop();
    let store = c.store.clone();
    c.stop();
    let trust = trust_file(d.path(), &state, &store);
    let pin = Some((store.as_path(), trust.as_path()));
    let (code, doc, err) = verify_receipt(&state, &before_kill, pin);
    assert_eq!(doc["receipt"]["status"], "matches", "{code} {doc} {err}");
    let files = receipt_files(&state);
    assert_eq!(files.len(), 1, "one chain, one receipt: {files:?}");
    let kept = d.path().join("kept.receipt");
    std::fs::copy(&files[0], &kept).unwrap();
    let seq = receipt_seq(&state, &kept);

    let (code, doc, err) = verify_receipt(&state, &kept, pin);
    assert_eq!(code, 0, "{doc} {err}");
    assert_eq!(doc["receipt"]["status"], "matches", "{doc}");
    assert_eq!(doc["receipt_of"]["seq"], seq, "{doc}");
    // Without the receipt, against what the collector's log checkpointed
    // last of the chain (the whole chain: the agent stopped cleanly).
    let (code, doc) = verify_against_checkpoint(&state, &store, &trust);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["receipt"]["status"], "matches", "{doc}");
    assert_eq!(doc["receipt_of"]["from"], "checkpoint", "{doc}");
    assert_eq!(
        doc["receipt_of"]["seq"],
        last_seq(&store.join("hosts")),
        "{doc}"
    );
    // Only a pinned log's checkpoints judge: without its line, not proven.
    let agent_line = std::fs::read_to_string(&trust)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let agent_only = d.path().join("agent-only.trust");
    std::fs::write(&agent_only, agent_line + "\n").unwrap();
    let (code, doc) = verify_against_checkpoint(&state, &store, &agent_only);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["result"], "receipt-unchecked", "{doc}");
    // A store is checked against its own checkpoints, not this way.
    let o = Command::new(bin())
        .args(["verify", "--collector"])
        .arg(&store)
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // The collector's store holds it too (its own checkpoint log names the key).
    let (code, doc, _) = verify_receipt(&store, &kept, pin);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["receipt"]["status"], "matches", "{doc}");
    // Without the collector's log, nothing ties the receipt's key to it: not
    // proven; nor with a log that is not pinned (one made elsewhere would
    // vouch for any key).
    let (code, doc, _) = verify_receipt(&state, &kept, None);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "unchecked", "{doc}");
    assert_eq!(doc["result"], "receipt-unchecked", "{doc}");
    let o = Command::new(bin())
        .args(["verify", "--json", "--receipt"])
        .arg(&kept)
        .arg("--collector")
        .arg(&store)
        .arg(&state)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{doc}");
    assert!(
        doc["receipt"]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("not pinned")),
        "{doc}"
    );

    // A receipt an intruder signs with a key of their own — its signature
    // is valid — claiming another head: not tied to the collector's log, so
    // it neither passes nor breaks the spool.
    let mut r = logseal::transport::receipts::read_file(&kept)
        .unwrap()
        .receipt;
    let key = logseal::chain::SecretKey::from_seed(&[7; 32]);
    r.log_key = key.public();
    r.head[0] ^= 1;
    let own = d.path().join("own.receipt");
    std::fs::write(&own, r.sign(&key)).unwrap();
    let (code, doc, _) = verify_receipt(&state, &own, pin);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "unchecked", "{doc}");
    assert!(
        doc["receipt"]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("the log names key")),
        "{doc}"
    );
    assert!(
        kinds(&doc).is_empty(),
        "an untied receipt breaks nothing: {doc}"
    );

    // The state directory restored from the copy (taken while the agent ran:
    // its tail is not sealed yet, nothing else is wrong with it alone); the
    // receipt shows it was cut back.
    copy_tree(&snapshot, &state);
    let (_, doc) = verify_json(&state);
    assert_eq!(kinds(&doc), ["unsealed-tail"], "{doc}");
    let (code, doc, _) = verify_receipt(&state, &kept, pin);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "cut", "{doc}");
    assert_eq!(kinds(&doc), ["receipt-cut", "unsealed-tail"], "{doc}");
    // The collector's checkpoint shows it as well, without the receipt.
    let (code, doc) = verify_against_checkpoint(&state, &store, &trust);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "cut", "{doc}");

    // Restarted on the copy against the collector (which holds more of the
    // chain than the copy): the agent itself sees it, says so and ships
    // nothing — before any record of the new history reaches the collector.
    let c = Collector::start(&d.path().join("c"), &ca, "127.0.0.1:0", "");
    let cfg = agent_config(d.path(), &ca, "web-01", &[&c.addr], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    let log = d.path().join("agent.log");
    wait_until("the restored agent refuses to ship on", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("this spool's chain ends at seq")
    });
    a.stop();
    c.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("up to seq {}", last_seq(&store.join("hosts")))),
        "{text}"
    );

    // It runs on from the copy (no collector: the original's would refuse
    // what conflicts): past the receipt's seq the history is another one,
    // sealed under the restored keys.
    let cfg = agent_config(d.path(), &ca, "web-01", &["127.0.0.1:1"], TCP_INPUT, "");
    let a = start_agent(d.path(), &cfg);
    send_tcp(&a.addr("tcp"), "forged", 1, 600);
    wait_until("the rewritten history past the receipt", || {
        numbers(&events(&state), "forged").len() == 600
    });
    a.stop();
    assert!(last_seq(&state.join("spool")) > seq);
    let (code, doc) = verify_json(&state);
    assert_eq!(code, 0, "the forked spool verifies alone: {doc}");
    let (code, doc, _) = verify_receipt(&state, &kept, pin);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "fork", "{doc}");
    assert_eq!(kinds(&doc), ["receipt-fork"], "{doc}");
    let problem = &doc["chains"][0]["problems"][0];
    assert_eq!(problem["seq"], seq, "{problem}");
    let (code, doc) = verify_against_checkpoint(&state, &store, &trust);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["receipt"]["status"], "fork", "{doc}");
    assert_eq!(kinds(&doc), ["receipt-fork"], "{doc}");

    // A receipt changed by one byte (its checksum made right again): refused,
    // naming the file and why, and nothing is judged.
    let mut b = std::fs::read(&kept).unwrap();
    let n = b.len();
    b[n - 4 - 64 - 40] ^= 0x01; // inside the head it names
    let crc = crc32c::crc32c(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_be_bytes());
    let forged = d.path().join("forged.receipt");
    std::fs::write(&forged, &b).unwrap();
    let (code, _, err) = verify_receipt(&state, &forged, pin);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("forged.receipt") && err.contains("signature"),
        "{err}"
    );
}
