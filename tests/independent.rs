//! Cross-check with an independent verifier written from docs/FORMAT.md alone
//! (`tests/independent_verify.py`: its own CRC32C, decoder, hash chain and
//! RFC 8032 Ed25519, Python standard library only). Both must agree.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

fn independent(paths: &[&Path]) -> (i32, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_verify.py");
    let o = Command::new("python3")
        .arg(script)
        .args(paths)
        .output()
        .expect("python3 is needed for this test (it is on every machine of this project)");
    (
        o.status.code().unwrap(),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

fn logseal_verify(paths: &[&Path]) -> (i32, Value) {
    let o = Command::new(bin())
        .arg("verify")
        .arg("--json")
        .args(paths)
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

fn assert_agree(paths: &[&Path]) {
    let (a, ind) = independent(paths);
    let (b, ours) = logseal_verify(paths);
    assert_eq!((a, b), (0, 0), "{ind} / {ours}");
    let ic = ind["chains"].as_array().unwrap();
    let oc = ours["chains"].as_array().unwrap();
    assert_eq!(ic.len(), oc.len());
    for (i, o) in ic.iter().zip(oc) {
        assert_eq!(i["chain"], o["chain"]);
        assert_eq!(i["host"], o["host"]);
        assert_eq!(i["records"], o["records"]);
        assert_eq!(i["seals"], o["seals"]);
        assert_eq!(i["head"], o["head"], "both compute the same final head");
        assert_eq!(i["verdict"], o["verdict"]);
    }
}

#[test]
fn agrees_on_the_test_vectors() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/logseal-core/tests/vectors");
    assert_agree(&[&d.join("chain-v1.seg")]);
    assert_agree(&[&d.join("chain-v1-redacted.seg")]);
}

#[test]
fn agrees_on_real_stamp_output_with_restarts_and_a_new_chain() {
    let d = TempDir::new("indep");
    let state = d.path().join("state");
    let log = d.path().join("log.seg");
    let stamp = |input: String| {
        let mut c = Command::new(bin())
            .args(["stamp", "--seal-every", "37", "--host", "indep"])
            .arg("--state")
            .arg(&state)
            .arg("--out")
            .arg(&log)
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success());
    };
    stamp(
        (0..500)
            .map(|i| format!("event {i} \u{e9}\t\u{1}\n"))
            .collect(),
    );
    stamp((500..700).map(|i| format!("event {i}\n")).collect());
    std::fs::remove_dir_all(&state).unwrap(); // lost state: a second chain
    stamp((700..800).map(|i| format!("event {i}\n")).collect());
    assert_agree(&[&log]);

    // Both reject a seal whose signature byte was changed (CRC fixed up).
    let mut b = std::fs::read(&log).unwrap();
    let f = frames(&b).into_iter().find(|f| f.kind == "seal").unwrap();
    b[f.offset + f.len - 10] ^= 0x40;
    fix_crc(&mut b, f.offset);
    let bad = d.path().join("bad.seg");
    std::fs::write(&bad, &b).unwrap();
    let (a, ind) = independent(&[&bad]);
    let (b, ours) = logseal_verify(&[&bad]);
    assert_eq!((a, b), (1, 1));
    let p = &ind["chains"][0]["problems"][0];
    assert_eq!(p[0], "bad-signature", "{ind}");
    assert_eq!(p[1].as_u64(), Some(f.seq), "{ind}");
    assert_eq!(ours["chains"][0]["problems"][0]["kind"], "bad-signature");
    assert_eq!(
        ours["chains"][0]["problems"][0]["seq"].as_u64(),
        Some(f.seq)
    );
    assert_eq!(
        ind["chains"][0]["unverified"][0][2], "key-chain-unknown",
        "{ind}"
    );
}
