//! The tamper matrix: every mutation of a real chain is detected, and the
//! verdict names the seq that was tampered with.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use logseal::chain::hash;
use logseal::chain::record::Body;
use logseal::chain::verify::{Problem, Verdict};
use logseal::chain::{seal_message, Record};
use logseal::storage::signer::SignerState;

/// 50 events, a seal after every 10: seq 0 genesis, 1..=10 events, 11 seal,
/// 12..=21, 22 seal, 23..=32, 33 seal, 34..=43, 44 seal, 45..=54, 55 seal,
/// 56 lifecycle shutdown, 57 seal.
struct Fixture {
    dir: TempDir,
    bytes: Vec<u8>,
    frames: Vec<FrameInfo>,
}

fn fixture() -> Fixture {
    let dir = TempDir::new("tamper");
    let log = build_chain(dir.path(), "host-a", 50, 10);
    let bytes = std::fs::read(&log).unwrap();
    let frames = frames(&bytes);
    assert_eq!(frames.len(), 58);
    assert_eq!(frames[11].kind, "seal");
    assert_eq!(frames[57].kind, "seal");
    Fixture { dir, bytes, frames }
}

impl Fixture {
    fn frame(&self, seq: u64) -> &FrameInfo {
        &self.frames[seq as usize]
    }
    fn frame_bytes(&self, seq: u64) -> Vec<u8> {
        let f = self.frame(seq);
        self.bytes[f.offset..f.offset + f.len].to_vec()
    }
    fn without(&self, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let a = self.frame(*seqs.start()).offset;
        let e = self.frame(*seqs.end());
        let mut b = self.bytes[..a].to_vec();
        b.extend_from_slice(&self.bytes[e.offset + e.len..]);
        b
    }
    fn verify(&self, bytes: &[u8]) -> logseal::chain::verify::Report {
        verify_bytes(self.dir.path(), "mutated.seg", bytes)
    }
}

#[test]
fn untouched_chain_is_intact() {
    let fx = fixture();
    let r = fx.verify(&fx.bytes);
    assert!(r.intact(), "{:?}", problems(&r));
    let c = &r.chains[0];
    assert_eq!(c.verdict, Verdict::Intact);
    assert_eq!((c.records, c.events, c.seals, c.epochs), (58, 50, 6, 6));
    assert!(c.ended_cleanly);
    assert_eq!(c.host.as_deref(), Some("host-a"));
}

/// Flip every byte of a frame, once without and once with the CRC recomputed
/// (as an attacker would); each mutation must be detected and name the seq.
fn flip_every_position(seq: u64) {
    let fx = fixture();
    let f = fx.frame(seq).clone();
    let mut undetected = Vec::new();
    for pos in 0..f.len {
        for fix in [false, true] {
            if fix && pos < 8 {
                continue; // the CRC covers the length; a fixed-up length is a different frame
            }
            let mut b = fx.bytes.clone();
            b[f.offset + pos] ^= 0xff;
            if fix {
                fix_crc(&mut b, f.offset);
            }
            let r = fx.verify(&b);
            if !names_seq(&r, seq) {
                undetected.push((pos, fix, problems(&r)));
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "{} of {} mutations of seq {seq} not detected or not named: first {:?}",
        undetected.len(),
        f.len * 2,
        undetected.first()
    );
}

#[test]
fn flip_each_byte_of_genesis() {
    flip_every_position(0);
}

#[test]
fn flip_each_byte_of_an_event() {
    flip_every_position(5);
}

#[test]
fn flip_each_byte_of_a_seal() {
    flip_every_position(22);
}

#[test]
fn flip_each_byte_of_the_shutdown_record() {
    flip_every_position(56);
}

#[test]
fn flip_each_byte_of_the_last_seal() {
    flip_every_position(57);
}

#[test]
fn delete_one_record() {
    let fx = fixture();
    let r = fx.verify(&fx.without(17..=17));
    let p = problems(&r);
    assert!(
        p.contains(&Problem::Gap {
            expected_seq: 17,
            got_seq: 18,
            missing: 1
        }),
        "{p:?}"
    );
    assert!(
        !p.iter().any(|p| matches!(p, Problem::BadLink { .. })),
        "no cascade: {p:?}"
    );
}

#[test]
fn delete_a_range() {
    let fx = fixture();
    let r = fx.verify(&fx.without(14..=19));
    let p = problems(&r);
    assert!(
        p.contains(&Problem::Gap {
            expected_seq: 14,
            got_seq: 20,
            missing: 6
        }),
        "{p:?}"
    );
}

#[test]
fn swap_two_records() {
    let fx = fixture();
    let (a, b) = (fx.frame(15).clone(), fx.frame(16).clone());
    let mut m = fx.bytes[..a.offset].to_vec();
    m.extend_from_slice(&fx.frame_bytes(16));
    m.extend_from_slice(&fx.frame_bytes(15));
    m.extend_from_slice(&fx.bytes[b.offset + b.len..]);
    let r = fx.verify(&m);
    let p = problems(&r);
    assert!(
        p.contains(&Problem::Reorder {
            seq: 15,
            expected_seq: 17
        }),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::Gap {
            expected_seq: 15,
            got_seq: 16,
            missing: 1
        }),
        "{p:?}"
    );
    assert_eq!(p.len(), 2, "{p:?}");
    // The interval holding the swap is unverified up to the seal after it.
    let u = &r.chains[0].unverified;
    assert_eq!((u[0].first_seq, u[0].last_seq), (12, 21), "{u:?}");
    assert!(names_seq(&r, 15) && names_seq(&r, 16));
}

#[test]
fn duplicate_one_record() {
    let fx = fixture();
    let f = fx.frame(8).clone();
    let mut m = fx.bytes[..f.offset + f.len].to_vec();
    m.extend_from_slice(&fx.frame_bytes(8));
    m.extend_from_slice(&fx.bytes[f.offset + f.len..]);
    let r = fx.verify(&m);
    assert_eq!(problems(&r), vec![Problem::Duplicate { seq: 8 }]);
    assert_eq!(r.chains[0].verdict, Verdict::Broken);
}

#[test]
fn truncate_tail_mid_record() {
    let fx = fixture();
    let f = fx.frame(47).clone();
    let m = &fx.bytes[..f.offset + f.len / 2];
    let r = fx.verify(m);
    let p = problems(&r);
    assert!(
        p.iter().any(|p| matches!(
            p,
            Problem::TruncatedTail {
                expected_seq: 47,
                ..
            }
        )),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::UnsealedTail {
            first_seq: 45,
            last_seq: 46,
            count: 2
        }),
        "{p:?}"
    );
}

#[test]
fn truncate_tail_at_a_record_boundary() {
    let fx = fixture();
    let f = fx.frame(47).clone();
    let r = fx.verify(&fx.bytes[..f.offset + f.len]);
    assert_eq!(
        problems(&r),
        vec![Problem::UnsealedTail {
            first_seq: 45,
            last_seq: 47,
            count: 3
        }]
    );
    assert!(!r.chains[0].ended_cleanly);
}

#[test]
fn splice_a_record_from_another_hosts_chain() {
    let fx = fixture();
    let other = build_chain(fx.dir.path(), "host-b", 30, 10);
    let ob = std::fs::read(other).unwrap();
    let of = frames(&ob);
    let foreign = &ob[of[20].offset..of[20].offset + of[20].len];
    // Replace host-a's record 20 with host-b's record 20.
    let f = fx.frame(20).clone();
    let mut m = fx.bytes[..f.offset].to_vec();
    m.extend_from_slice(foreign);
    m.extend_from_slice(&fx.bytes[f.offset + f.len..]);
    let r = fx.verify(&m);
    let p = problems(&r);
    assert_eq!(
        r.chains.len(),
        1,
        "the spliced record does not start a chain"
    );
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::ForeignChain { seq: 20, .. })),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::Gap {
            expected_seq: 20,
            got_seq: 21,
            missing: 1
        }),
        "{p:?}"
    );
}

#[test]
fn replay_a_seal() {
    let fx = fixture();
    // Put a copy of seal 11 in place of seal 33.
    let f = fx.frame(33).clone();
    let mut m = fx.bytes[..f.offset].to_vec();
    m.extend_from_slice(&fx.frame_bytes(11));
    m.extend_from_slice(&fx.bytes[f.offset + f.len..]);
    let r = fx.verify(&m);
    let p = problems(&r);
    assert!(p.contains(&Problem::Duplicate { seq: 11 }), "{p:?}");
    assert!(names_seq(&r, 33), "{p:?}");
}

#[test]
fn resign_a_past_seal_with_a_later_key() {
    // The journald CVE-2023-31439 pattern: an intruder holding today's key
    // alters an old record and re-signs the old seal that covers it.
    let fx = fixture();
    let stolen = SignerState::load(&fx.dir.path().join("host-a.state")).unwrap();
    assert_eq!(stolen.epoch, 6);
    let mut m = fx.bytes.clone();
    // Alter event 15 (same length), fix its CRC.
    let ev = fx.frame(15).clone();
    let text_at = ev.offset + ev.len - 2;
    m[text_at] = b'X';
    fix_crc(&mut m, ev.offset);
    // Recompute heads up to seal 22 and re-sign it with the stolen key.
    let mut head = [0u8; 32];
    for seq in 0..22u64 {
        let f = fx.frame(seq);
        let rec = &m[f.offset + 9..f.offset + f.len];
        head = hash::head(&head, hash::kind_of(rec), &hash::leaf(rec));
    }
    let sf = fx.frame(22).clone();
    let payload = m[sf.offset + 9..sf.offset + sf.len].to_vec();
    let rec = Record::decode(&payload).unwrap();
    let Body::Seal { epoch, next_pk, .. } = rec.body else {
        panic!("not a seal")
    };
    let forged = Record {
        body: Body::Seal {
            epoch,
            covers_head: head,
            signer: stolen.current.public(),
            next_pk,
            signature: [0; 64],
        },
        ..rec
    };
    let mut enc = forged.encode();
    let n = enc.len();
    let sig = stolen.current.sign(&seal_message(&enc[..n - 64]));
    enc[n - 64..].copy_from_slice(&sig);
    assert_eq!(enc.len(), payload.len());
    m[sf.offset + 9..sf.offset + sf.len].copy_from_slice(&enc);
    fix_crc(&mut m, sf.offset);

    let r = fx.verify(&m);
    let p = problems(&r);
    assert!(
        p.iter().any(|p| matches!(
            p,
            Problem::KeyNotInChain {
                seq: 22,
                epoch: 1,
                signer_epoch: Some(6),
                ..
            }
        )),
        "{p:?}"
    );
    assert!(names_seq(&r, 15));
    // Nothing after the next good seal is blamed.
    assert!(p.iter().all(|p| p.seqs().1 <= 22), "{p:?}");
}

#[test]
fn drop_every_seal_after_some_point() {
    let fx = fixture();
    let mut m = fx.bytes[..fx.frame(33).offset].to_vec();
    for seq in 34..=56u64 {
        if fx.frame(seq).kind != "seal" {
            m.extend_from_slice(&fx.frame_bytes(seq));
        }
    }
    let r = fx.verify(&m);
    let p = problems(&r);
    assert!(
        p.contains(&Problem::UnsealedTail {
            first_seq: 23,
            last_seq: 56,
            count: 31
        }),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::Gap {
            expected_seq: 33,
            got_seq: 34,
            missing: 1
        }),
        "{p:?}"
    );
}

#[test]
fn garbage_between_frames_is_reported_and_later_records_still_verify() {
    let fx = fixture();
    let f = fx.frame(30).clone();
    let mut m = fx.bytes[..f.offset].to_vec();
    m.extend_from_slice(b"\x00\x00\x01\x00garbage inserted by hand");
    m.extend_from_slice(&fx.bytes[f.offset..]);
    let r = fx.verify(&m);
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        matches!(
            p[0],
            Problem::DamagedFrame {
                expected_seq: 30,
                ..
            }
        ),
        "{p:?}"
    );
}
