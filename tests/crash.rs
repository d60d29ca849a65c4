//! Crash consistency of the signer state: a real `logseal stamp` process is
//! killed with SIGKILL at every step of creating a chain and of a seal; the
//! resumed chain must verify, no key may sign twice, and no erased secret may
//! remain in the state directory.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use logseal::chain::record::{Body, Payload};
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};
use logseal::storage::signer::SignerState;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn lines(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("msg-{i:06}\n")).collect()
}

fn stamp(dir: &Path, input: &str, crash_at: Option<&str>) -> std::process::ExitStatus {
    let mut cmd = Command::new(bin());
    cmd.args([
        "stamp",
        "--seal-every",
        "10",
        "--host",
        "crashhost",
        "--state",
    ])
    .arg(dir.join("state"))
    .arg("--out")
    .arg(dir.join("log.seg"))
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    match crash_at {
        Some(p) => cmd.env(logseal::storage::faults::ENV, p),
        None => cmd.env_remove(logseal::storage::faults::ENV),
    };
    let mut child = cmd.spawn().unwrap();
    // The child may die before reading all input: ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait().unwrap()
}

/// Every secret seed in any file of the state directory, by public key.
fn secrets_in(dir: &Path, into: &mut HashMap<[u8; 32], [u8; 32]>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        if let Ok(st) = SignerState::decode(&bytes) {
            into.insert(st.current.public(), *st.current.seed());
            if let Some(p) = &st.pending {
                into.insert(p.public(), *p.seed());
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct LogFacts {
    messages: Vec<String>,
    signers: Vec<[u8; 32]>,
    chains: HashSet<[u8; 16]>,
}

fn read_log(path: &Path) -> LogFacts {
    let bytes = std::fs::read(path).unwrap();
    let mut r = SegmentReader::new(&bytes[..]).unwrap();
    let mut f = LogFacts {
        messages: vec![],
        signers: vec![],
        chains: HashSet::new(),
    };
    while let Some(item) = r.next_item().unwrap() {
        let Item::Frame { payload, .. } = item else {
            panic!("damaged log: {item:?}")
        };
        let rec = Record::decode(payload).unwrap();
        f.chains.insert(rec.chain_id.0);
        match rec.body {
            Body::Event {
                payload: Payload::Raw(m),
                ..
            } => f.messages.push(String::from_utf8(m.to_vec()).unwrap()),
            Body::Seal { signer, .. } => f.signers.push(signer),
            _ => {}
        }
    }
    f
}

/// Verifies `DIR/log.seg`: one chain, intact, no key signing two seals.
fn assert_one_intact_chain(dir: &Path, spec: &str) -> LogFacts {
    let log = dir.join("log.seg");
    let r = logseal::responder::verify_files::verify(
        std::slice::from_ref(&log),
        Default::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(r.intact(), "{spec}: {:?}", problems(&r));
    let facts = read_log(&log);
    assert_eq!(
        facts.chains.len(),
        1,
        "{spec}: a crash must not start a new chain"
    );
    let distinct: HashSet<_> = facts.signers.iter().collect();
    assert_eq!(
        distinct.len(),
        facts.signers.len(),
        "{spec}: a key signed two seals"
    );
    facts
}

fn crash_and_resume(point: &str, hit: u32) {
    crash_and_resume_opt(point, hit, true)
}

fn crash_and_resume_opt(point: &str, hit: u32, seal_keys_known: bool) {
    let dir = TempDir::new("crash");
    let spec = format!("{point}:{hit}");
    let st = stamp(dir.path(), &lines(1, 60), Some(&spec));
    assert_eq!(
        st.signal(),
        Some(9),
        "{spec}: the process should have been killed, got {st:?}"
    );

    let mut seen = HashMap::new();
    secrets_in(&dir.path().join("state"), &mut seen);

    let st = stamp(dir.path(), &lines(61, 80), None);
    assert!(st.success(), "{spec}: resume failed: {st:?}");

    // The resumed chain verifies: one chain, intact, clean end, no key twice.
    let facts = assert_one_intact_chain(dir.path(), &spec);
    let log = dir.path().join("log.seg");
    let r = logseal::responder::verify_files::verify(
        std::slice::from_ref(&log),
        Default::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(r.chains[0].ended_cleanly);

    // Messages: a prefix of the first run (those flushed before the kill),
    // then all of the second, each once, in order.
    let want_second: Vec<String> = (61..=80).map(|i| format!("msg-{i:06}")).collect();
    let n = facts.messages.len();
    assert!(n >= 20, "{spec}: only {n} messages");
    assert_eq!(facts.messages[n - 20..], want_second[..], "{spec}");
    for (i, m) in facts.messages[..n - 20].iter().enumerate() {
        assert_eq!(
            *m,
            format!("msg-{:06}", i + 1),
            "{spec}: first run is not a gap-free prefix"
        );
    }

    // Every key that signed a seal is erased: its secret is in no file of the state dir.
    secrets_in(&dir.path().join("state"), &mut seen);
    let mut checked = 0;
    for signer in &facts.signers {
        if let Some(seed) = seen.get(signer) {
            checked += 1;
            for e in std::fs::read_dir(dir.path().join("state")).unwrap() {
                let p = e.unwrap().path();
                let content = std::fs::read(&p).unwrap();
                assert!(
                    !contains(&content, seed),
                    "{spec}: erased key found in {}",
                    p.display()
                );
            }
        }
    }
    assert!(
        !seal_keys_known || checked > 0,
        "{spec}: no erased key was known to the test: the check would be vacuous"
    );
}

const SEAL_POINTS: &[&str] = &[
    "seal.begin",
    "seal-pending.temp-written",
    "seal-pending.renamed",
    "seal.pending-durable",
    "seal.record-torn",
    "seal.record-written",
    "seal.record-durable",
    "seal-promote.temp-written",
    "seal-promote.renamed",
    "seal.done",
];

#[test]
fn crash_at_every_step_of_the_first_seal() {
    for p in SEAL_POINTS {
        crash_and_resume(p, 1);
    }
}

#[test]
fn crash_at_every_step_of_a_later_seal() {
    for p in SEAL_POINTS {
        crash_and_resume(p, 4);
    }
}

#[test]
fn crash_at_every_step_of_chain_creation() {
    // The crash comes before any seal, so no signing key is erased yet.
    for p in [
        "genesis.temp-written",
        "genesis.renamed",
        "genesis.state-durable",
    ] {
        crash_and_resume_opt(p, 1, false);
    }
}

#[test]
fn crash_during_the_final_seal_at_shutdown() {
    // 60 lines with a seal every 10 make 6 seals, the shutdown seal is the 7th.
    for p in [
        "seal.pending-durable",
        "seal.record-written",
        "seal.record-torn",
        "seal-promote.renamed",
    ] {
        crash_and_resume(p, 7);
    }
}

/// The genesis copy `--print-genesis` reads is there and names the log's chain.
fn assert_print_genesis(dir: &Path, spec: &str) {
    let o = Command::new(bin())
        .args(["agent", "--print-genesis", "--state"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{spec}: --print-genesis fails: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = String::from_utf8(o.stdout).unwrap();
    let log = dir.join("log.seg");
    let r =
        logseal::responder::verify_files::verify(&[log], Default::default(), |_, _| {}).unwrap();
    let want = format!(
        "crashhost {}",
        r.chains[0].genesis_key.as_deref().unwrap_or("?")
    );
    assert_eq!(line.trim(), want, "{spec}");
}

#[test]
fn crash_while_writing_the_genesis_copy() {
    // The second run resumes and seals (the signer state drops its copy of the
    // Genesis at the first seal): `--print-genesis` must still work.
    for p in ["genesis-copy.temp-written", "genesis-copy.renamed"] {
        let dir = TempDir::new("crash-gcopy");
        let st = stamp(dir.path(), &lines(1, 60), Some(&format!("{p}:1")));
        assert_eq!(st.signal(), Some(9), "{p}: not killed");
        assert!(stamp(dir.path(), &lines(61, 80), None).success());
        assert_one_intact_chain(dir.path(), p);
        assert_print_genesis(dir.path(), p);
    }
}

/// A crash at `first`, then a crash while the next run recovers from it (at
/// `second`), then a run that completes: one chain, intact, no key signing
/// twice, the last run's messages all there, the genesis copy intact.
fn crash_twice(first: &str, second: &str) {
    let dir = TempDir::new("crash2");
    let spec = format!("{first} then {second}");
    let st = stamp(dir.path(), &lines(1, 60), Some(first));
    assert_eq!(st.signal(), Some(9), "{spec}: first run not killed");
    let st = stamp(dir.path(), &lines(61, 70), Some(second));
    assert_eq!(
        st.signal(),
        Some(9),
        "{spec}: the recovery step was not reached (the test would prove nothing)"
    );
    assert!(stamp(dir.path(), &lines(71, 80), None).success(), "{spec}");
    let facts = assert_one_intact_chain(dir.path(), &spec);
    let last: Vec<String> = (71..=80).map(|i| format!("msg-{i:06}")).collect();
    let n = facts.messages.len();
    assert_eq!(facts.messages[n - 10..], last[..], "{spec}");
    assert_print_genesis(dir.path(), &spec);
}

#[test]
fn crash_during_each_recovery_step() {
    // A seal durable in the log but not promoted in the state: the next run
    // promotes the pending key (`recover-promote`).
    crash_twice("seal.record-durable:2", "recover-promote.temp-written:1");
    crash_twice("seal.record-durable:2", "recover-promote.renamed:1");
    // A pending key whose seal never reached the log: discarded (`recover-discard`).
    crash_twice("seal.pending-durable:2", "recover-discard.temp-written:1");
    crash_twice("seal.pending-durable:2", "recover-discard.renamed:1");
    // A torn seal at the end of the log: cut, its bytes saved (`torn-tail`).
    crash_twice("seal.record-torn:2", "torn-tail.temp-written:1");
    crash_twice("seal.record-torn:2", "torn-tail.renamed:1");
}

/// The agent (spool, write-behind thread, stamper) killed at steps of a seal
/// while events flow: the restarted agent resumes the same chain.
#[test]
fn agent_killed_during_a_seal_resumes_the_chain() {
    use common::agent::{assert_exactly, events, numbers, wait_for, Agent};
    for point in [
        "seal.pending-durable",
        "seal.record-torn",
        "seal.record-durable",
        "seal-promote.renamed",
    ] {
        let d = TempDir::new("crash-agent");
        let state = d.path().join("state");
        let args: Vec<std::ffi::OsString> = vec![
            "--state".into(),
            state.clone().into(),
            "--host".into(),
            "crashhost".into(),
            "--listen".into(),
            "tcp://127.0.0.1:0".into(),
        ];
        // Seal 1 is made at start; seal 2 is the first after events.
        let spec = format!("{point}:2");
        let mut a = Agent::spawn_env(
            &args,
            &state,
            None,
            1,
            &[(logseal::storage::faults::ENV, &spec)],
        );
        let mut s = std::net::TcpStream::connect(a.addr("tcp")).unwrap();
        for i in 1..=200 {
            // Connection errors once the agent is dead are expected.
            let _ = s.write_all(format!("<13>1 - h app - - - msg-r1-{i} x\n").as_bytes());
        }
        drop(s);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(st) = a.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{spec}: the agent did not reach the crash point"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.signal(), Some(9), "{spec}: {status:?}");
        let first = numbers(&events(&state), "r1");
        let a = Agent::spawn(&args, &state, None, 1);
        let mut s = std::net::TcpStream::connect(a.addr("tcp")).unwrap();
        for i in 1..=50 {
            s.write_all(format!("<13>1 - h app - - - msg-r2-{i} x\n").as_bytes())
                .unwrap();
        }
        drop(s);
        wait_for(&state, "r2", 50);
        a.stop();
        let evs = events(&state);
        assert_exactly(&evs, "r2", 50);
        // What the first run chained is a gap-free prefix, kept as it was.
        let r1 = numbers(&evs, "r1");
        let want: Vec<u64> = (1..=r1.len() as u64).collect();
        assert_eq!(r1, want, "{spec}");
        assert!(r1.len() >= first.len().saturating_sub(1), "{spec}");
        let (files, _) = logseal::responder::verify_files::expand(&[state.join("spool")]).unwrap();
        let r = logseal::responder::verify_files::verify(&files, Default::default(), |_, _| {})
            .unwrap();
        assert!(r.intact(), "{spec}: {:?}", problems(&r));
        assert_eq!(r.chains.len(), 1, "{spec}: a new chain was started");
    }
}
