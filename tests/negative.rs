//! The negative fixtures (crates/logseal-core/tests/vectors/negative/): one input per mutation,
//! each with the verdict, problems and unverified ranges docs/FORMAT.md §4
//! requires in a sidecar JSON written by hand in the generator. Both
//! `logseal verify` and the independent verifier (tests/independent_verify.py,
//! written from FORMAT.md alone) must produce exactly that on every fixture.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/logseal-core/tests/vectors/negative")
}

#[test]
fn committed_fixtures_match_the_generator() {
    let fixtures = logseal::chain::vectors::negative::generate();
    assert!(fixtures.len() >= 30, "{} fixtures", fixtures.len());
    for f in &fixtures {
        for (rel, bytes) in &f.files {
            let on_disk = std::fs::read(dir().join(rel)).unwrap_or_else(|e| {
                panic!("{rel}: {e} (regenerate: logseal gen-vectors --out crates/logseal-core/tests/vectors)")
            });
            assert!(on_disk == *bytes, "{rel} differs from the generator's");
        }
        let text =
            std::fs::read_to_string(dir().join(logseal::chain::vectors::negative::sidecar(f)))
                .unwrap();
        let on_disk: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            on_disk, f.expected,
            "{}.json differs from the generator's",
            f.name
        );
    }
}

/// The seq range a problem of `logseal verify --json` points at (FORMAT.md §4.8),
/// read from its fields.
fn seqs(p: &Value) -> (u64, u64) {
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{k} in {p}"));
    match p["kind"].as_str().unwrap() {
        "bad-link" => (n("first_seq"), n("seal_seq")),
        "gap" => (n("expected_seq"), n("got_seq") - 1),
        "damaged-frame" | "malformed" | "truncated-tail" => (n("expected_seq"), n("expected_seq")),
        "unsealed-tail" => (n("first_seq"), n("last_seq")),
        "untrusted-genesis" => (0, 0),
        "pred-cut" => (n("last_seq") + 1, n("claimed_last_seq")),
        "pred-mismatch" => (n("claimed_last_seq"), n("claimed_last_seq")),
        _ => (n("seq"), n("seq")),
    }
}

/// `--trust-file F` with the fixture's trust anchors, if it has any.
fn trust_file(cmd: &mut Command, options: &Value, work: &Path) {
    if let Some(t) = options["trust"].as_str() {
        let tf = work.join("trust.txt");
        std::fs::write(&tf, format!("{t}\n")).unwrap();
        cmd.arg("--trust-file").arg(tf);
    }
}

/// A verifier's JSON document on stdout.
fn document(path: &Path, o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// `logseal verify --json` reduced to what the sidecars state.
fn logseal_result(path: &Path, options: &Value, work: &Path) -> (i32, Value) {
    let mut cmd = Command::new(bin());
    // The fixtures are about the chain format: a store fixture has no
    // collector checkpoint log (tests/checkpoints.rs checks those).
    cmd.args(["verify", "--json", "--no-checkpoints"]);
    trust_file(&mut cmd, options, work);
    if let Some(l) = options["live"].as_array() {
        let (now, age) = (l[0].as_i64().unwrap(), l[1].as_i64().unwrap());
        cmd.args(["--live", "--now-ns", &now.to_string()]);
        cmd.args(["--max-pending-age", &format!("{}s", age / 1_000_000_000)]);
    }
    let o = cmd.arg(path).output().unwrap();
    let doc = document(path, &o);
    let chains: Vec<Value> = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!({
                "chain": c["chain"],
                "verdict": c["verdict"],
                "problems": c["problems"].as_array().unwrap().iter().map(|p| {
                    let (a, b) = seqs(p);
                    json!([p["kind"], a, b])
                }).collect::<Vec<_>>(),
                "unverified": c["unverified"].as_array().unwrap().iter()
                    .map(|u| json!([u["first_seq"], u["last_seq"], u["reason"]]))
                    .collect::<Vec<_>>(),
                "pending": c.get("pending").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let unattributed: Vec<Value> = doc["unattributed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].clone())
        .collect();
    (
        o.status.code().unwrap(),
        json!({"chains": chains, "unattributed": unattributed}),
    )
}

/// The independent verifier's result, reduced the same way.
fn python_result(path: &Path, options: &Value, work: &Path) -> (i32, Value) {
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_verify.py"));
    trust_file(&mut cmd, options, work);
    if let Some(l) = options["live"].as_array() {
        cmd.arg("--live")
            .arg(l[0].to_string())
            .arg(l[1].to_string());
    }
    // The fixtures are files of the format (§4), not stores against their
    // checkpoints (§7): as for `logseal verify`.
    let o = cmd
        .arg("--no-checkpoints")
        .arg(path)
        .output()
        .expect("python3 is needed for this test (.ci/run installs it)");
    (o.status.code().unwrap(), stated(&document(path, &o)))
}

/// The part of a document in the sidecars' shape that they state: per chain
/// its id, verdict, problems, unverified ranges and pending tail; the findings
/// outside the chains.
fn stated(doc: &Value) -> Value {
    let chains: Vec<Value> = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!({
                "chain": c["chain"], "verdict": c["verdict"], "problems": c["problems"],
                "unverified": c["unverified"], "pending": c["pending"],
            })
        })
        .collect();
    json!({"chains": chains, "unattributed": doc["unattributed"]})
}

#[test]
fn both_verifiers_give_the_expected_result_on_every_fixture() {
    let work = TempDir::new("negative");
    let fixtures = logseal::chain::vectors::negative::generate();
    let mut failures = Vec::new();
    for f in &fixtures {
        let e = &f.expected;
        let path = dir().join(e["input"].as_str().unwrap());
        let want = stated(e);
        let want_code = if e["result"] == "intact" { 0 } else { 1 };
        for (who, (code, got)) in [
            (
                "logseal verify",
                logseal_result(&path, &e["options"], work.path()),
            ),
            (
                "independent_verify.py",
                python_result(&path, &e["options"], work.path()),
            ),
        ] {
            if code != want_code || got != want {
                failures.push(format!(
                    "{} ({who}): exit {code}, expected {want_code}\n  got      {got}\n  expected {want}",
                    f.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixture runs differ:\n{}",
        failures.len(),
        fixtures.len() * 2,
        failures.join("\n")
    );
}

/// What the sidecars do not state, checked here for the fixtures it concerns.
#[test]
fn details_beyond_the_sidecars() {
    let v = |name: &str| {
        logseal::responder::verify_files::verify(&[dir().join(name)], Default::default(), |_, _| {})
            .unwrap()
    };
    // A past seal re-signed with a later key names that key's epoch.
    let r = v("resigned-with-later-key.seg");
    assert!(matches!(
        r.chains[0].problems[0].problem,
        logseal::chain::verify::Problem::KeyNotInChain {
            signer_epoch: Some(3),
            ..
        }
    ));
    // Loss counts saturate instead of wrapping to 0.
    assert_eq!(
        v("loss-counts-saturate.seg").chains[0].lost_events,
        u64::MAX
    );
    // Clock jumps are warnings with both seqs; the verdict is intact.
    let r = v("clock-jumps.seg");
    assert!(r.intact());
    let kinds: Vec<String> = r.chains[0]
        .warnings
        .iter()
        .map(|w| {
            serde_json::to_value(w).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["clock-backwards", "clock-jump", "clock-backwards"]);
    // A successor alone says that its predecessor is absent.
    let r = v("pred-absent.seg");
    assert!(r.intact());
    assert!(matches!(
        r.chains[0].warnings[0],
        logseal::chain::verify::Warning::PredecessorAbsent { last_seq: 17, .. }
    ));
    // Redacted records are listed by seq.
    assert_eq!(
        v("redacted-event.seg").chains[0].redacted_seqs,
        vec![(7, 7)]
    );
}
