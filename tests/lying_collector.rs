//! A collector that lies in its receipts (docs/PROTOCOL.md version 3): a
//! compromised collector, scripted here — it cannot be made from the real
//! one without a key or a patch — over real mutual TLS with the real
//! protocol, against a real agent. Each lie (a position under a head the
//! spool does not have, an Ack short of the batch, another head, another
//! chain, another collector, a signature that fails, no receipt) is refused
//! by the agent: it says why, takes nothing as acknowledged and keeps no
//! receipt. Then the same collector answers honestly, and the agent keeps its
//! receipt — which `verify --receipt` still does not believe, as no
//! checkpoint log names the liar's key.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures

mod common;
use common::collector::*;
use common::*;
use logseal::chain::hash::{self, Digest, ZERO_HEAD};
use logseal::chain::receipt::Receipt;
use logseal::chain::{ChainId, SecretKey};
use logseal::transport::proto::{self, FrameReader, Msg};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    ResumePastEnd,
    Resume,
    NextSeq,
    Head,
    Seq,
    Chain,
    Collector,
    Signature,
    Missing,
    None,
}

const LIES: [Lie; 9] = [
    Lie::ResumePastEnd,
    Lie::Resume,
    Lie::NextSeq,
    Lie::Head,
    Lie::Seq,
    Lie::Chain,
    Lie::Collector,
    Lie::Signature,
    Lie::Missing,
];

/// A receipt of the liar's.
fn receipt(host: &str, key: &SecretKey, chain: ChainId, seq: u64, head: Digest) -> Receipt {
    Receipt {
        collector: "liar".into(),
        log_chain: ChainId([9; 16]),
        log_epoch: 1,
        log_key: key.public(),
        log_next_seq: 1,
        host: host.into(),
        chain,
        seq,
        head,
    }
}

/// Serves one agent connection, lying as `lie` says in every Ack. Returns
/// when the agent goes away.
fn serve(tls: Arc<rustls::ServerConfig>, tcp: TcpStream, lie: Lie, key: &SecretKey) {
    let conn = rustls::ServerConnection::new(tls).unwrap();
    let mut t = rustls::StreamOwned::new(conn, tcp);
    let mut fr = FrameReader::default();
    let Ok((ty, body)) = fr.next(&mut t, proto::HELLO_MAX) else {
        return;
    };
    let Ok(Msg::Hello { host, .. }) = Msg::decode(ty, body) else {
        return;
    };
    let welcome = Msg::Welcome {
        version: proto::VERSION,
        collector: "liar".into(),
        max_frame: proto::DEFAULT_MAX_FRAME,
        idle_secs: 60,
    };
    if welcome.write(&mut t).and_then(|_| t.flush()).is_err() {
        return;
    }
    // The head of what this connection received, from the Genesis.
    let mut head: Digest = ZERO_HEAD;
    let mut next = 0u64;
    loop {
        let Ok((ty, body)) = fr.next(&mut t, proto::DEFAULT_MAX_FRAME as usize) else {
            return;
        };
        let reply = match ty {
            proto::t::BATCH => {
                let batch = proto::decode_batch(body).unwrap();
                for rec in &batch.records {
                    head = hash::head(&head, hash::kind_of(rec), &hash::leaf(rec));
                    next += 1;
                }
                let mut r = receipt(&host, key, batch.chain, next - 1, head);
                let mut next_seq = next;
                match lie {
                    Lie::NextSeq => {
                        next_seq -= 1;
                        r.seq -= 1;
                    }
                    Lie::Head => r.head[0] ^= 1,
                    Lie::Seq => r.seq += 1,
                    Lie::Chain => r.chain = ChainId([7; 16]),
                    Lie::Collector => r.collector = "another".into(),
                    _ => {}
                }
                let mut receipt = r.sign(key);
                match lie {
                    Lie::Signature => {
                        let n = receipt.len();
                        receipt[n - 1] ^= 1;
                    }
                    Lie::Missing => receipt.clear(),
                    _ => {}
                }
                Msg::Ack {
                    batch: batch.id,
                    chain: batch.chain,
                    next_seq,
                    receipt,
                }
            }
            _ => match Msg::decode(ty, body) {
                // It claims to hold more than the agent ever wrote.
                Ok(Msg::Position { chain }) if lie == Lie::ResumePastEnd => Msg::Resume {
                    chain,
                    known: true,
                    next_seq: 1_000_000,
                    receipt: receipt(&host, key, chain, 999_999, [1; 32]).sign(key),
                },
                // It claims to hold the Genesis and the first seal, under a
                // head of its own.
                Ok(Msg::Position { chain }) if lie == Lie::Resume => Msg::Resume {
                    chain,
                    known: true,
                    next_seq: 2,
                    receipt: receipt(&host, key, chain, 1, [1; 32]).sign(key),
                },
                Ok(Msg::Position { chain }) => Msg::Resume {
                    chain,
                    known: false,
                    next_seq: 0,
                    receipt: Vec::new(),
                },
                Ok(Msg::Ping(n)) => Msg::Pong(n),
                _ => return,
            },
        };
        if reply.write(&mut t).and_then(|_| t.flush()).is_err() {
            return;
        }
    }
}

/// The agent's acknowledged spool position (0 while it has none).
fn acked(state: &Path) -> u64 {
    std::fs::read(state.join("spool/acked"))
        .ok()
        .and_then(|b| {
            b.get(..8)
                .map(|x| u64::from_be_bytes(x.try_into().unwrap()))
        })
        .unwrap_or(0)
}

#[test]
fn every_lying_receipt_is_refused_and_an_honest_one_is_kept() {
    let d = TempDir::new("liar");
    let ca = Ca::new(&d.path().join("pki"));
    let tls = logseal::transport::tls::server_config(
        &ca.ca(),
        &ca.dir.join("collector.crt"),
        &ca.dir.join("collector.key"),
        None,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let key = SecretKey::from_seed(&[5; 32]);
        // One connection per lie, then honest ones until the agent stops.
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(tcp) = conn else { continue };
            let lie = LIES.get(i).copied().unwrap_or(Lie::None);
            serve(tls.clone(), tcp, lie, &key);
            if i > LIES.len() + 20 {
                return;
            }
        }
    });

    let cfg = agent_config(d.path(), &ca, "web-01", &[&addr], TCP_INPUT, "");
    let state = d.path().join("state");
    let a = start_agent(d.path(), &cfg);
    let mut s = TcpStream::connect(a.addr("tcp")).unwrap();
    for i in 1..=50 {
        writeln!(s, "<13>1 - h app - - - msg-liar-{i} x").unwrap();
    }
    s.flush().unwrap();
    let log = d.path().join("agent.log");
    let refusals = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("receipt does not match what this agent sent:")
            .count()
    };
    // Every lie refused (each connection ends at its first Ack), with why.
    wait_until("every lie refused", || refusals() >= LIES.len());
    let text = std::fs::read_to_string(&log).unwrap();
    for why in [
        "up to seq 999999; this spool's chain ends at seq",
        "the chain forked",
        "the Ack says the collector holds up to seq",
        "the records this agent holds give head",
        "the records sent were of chain",
        "the session's collector is",
        "the signature does not verify",
        "the collector's answer carries no receipt",
    ] {
        assert!(text.contains(why), "no refusal saying {why:?}: {text}");
    }
    // Then the honest answers: a receipt is kept, and the spool is
    // acknowledged (only now).
    let receipts = state.join("receipts");
    wait_until("the honest receipt kept", || {
        std::fs::read_dir(&receipts).is_ok_and(|mut d| d.next().is_some()) && acked(&state) > 0
    });
    assert_eq!(refusals(), LIES.len(), "no honest receipt refused: {text}");
    a.stop();
    let file = std::fs::read_dir(&receipts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = Command::new(bin())
        .args(["verify", "--receipt"])
        .arg(&file)
        .arg(&state)
        .output()
        .unwrap();
    // The receipt kept is the liar's honest one; with no checkpoint log
    // naming its key, it proves nothing about the spool either way.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("collector \"liar\"")
            && out.contains("receipt: NOT CHECKED: its key is not tied to the collector"),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(1), "{out}");
    drop(server);
}
