//! The committed test vectors (tests/vectors/) are what the generator
//! produces, and they check out against independent computations done here
//! directly with `ring` and `crc32c` (not through logseal's own code).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(dir().join("chain-v1.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !k.ends_with("fingerprint"))
        .map(|(k, v)| (k.to_string(), unhex(v)))
        .collect()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().to_vec()
}

#[test]
fn committed_vectors_match_the_generator() {
    let v = logseal_core::vectors::generate();
    let d = dir();
    assert_eq!(std::fs::read_to_string(d.join("chain-v1.txt")).unwrap(), v.text,
        "regenerate with `logseal gen-vectors --out crates/logseal-core/tests/vectors` only if the format changed on purpose");
    assert_eq!(std::fs::read(d.join("chain-v1.seg")).unwrap(), v.segment);
    assert_eq!(
        std::fs::read(d.join("chain-v1-redacted.seg")).unwrap(),
        v.redacted
    );
}

#[test]
fn keys_derive_from_their_seeds_independently() {
    use ring::signature::KeyPair;
    let v = vectors();
    for j in 0u64..3 {
        let seed = sha256(&[b"logseal test vector key ", &j.to_be_bytes()]);
        assert_eq!(v[&format!("key.{j}.seed")], seed);
        let kp = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        assert_eq!(v[&format!("key.{j}.public")], kp.public_key().as_ref());
    }
}

#[test]
fn records_leaves_heads_and_seals_check_out() {
    let v = vectors();
    let chain_id = &v["chain_id"];
    let kinds = [1u8, 2, 2, 2, 2, 4, 5, 3, 5, 2, 3];
    let mut head = vec![0u8; 32];
    let mut epoch = 0usize;
    for (seq, kind) in kinds.iter().enumerate() {
        let rec = &v[&format!("record.{seq}")];
        // Header, read by hand per docs/FORMAT.md.
        assert_eq!(rec[0], 1, "format version");
        assert_eq!(rec[1], *kind, "kind of record {seq}");
        assert_eq!(&rec[2..18], &chain_id[..]);
        assert_eq!(
            u64::from_be_bytes(rec[18..26].try_into().unwrap()),
            seq as u64
        );
        let leaf = sha256(&[&[0x00], rec]);
        assert_eq!(v[&format!("leaf.{seq}")], leaf, "leaf {seq}");
        head = sha256(&[&[0x01], &head, &[*kind], &leaf]);
        assert_eq!(v[&format!("head.{seq}")], head, "head {seq}");
        if *kind == 3 {
            // Seal body: epoch, covers_head, signer, next_pk, signature.
            let b = &rec[34..];
            assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), epoch as u64);
            assert_eq!(
                &b[8..40],
                &v[&format!("head.{}", seq - 1)][..],
                "seal covers the previous head"
            );
            assert_eq!(&b[40..72], &v[&format!("key.{epoch}.public")][..]);
            assert_eq!(&b[72..104], &v[&format!("key.{}.public", epoch + 1)][..]);
            let msg = [b"logseal/seal/v1\0".as_slice(), &rec[..rec.len() - 64]].concat();
            assert_eq!(v[&format!("seal.{seq}.message")], msg);
            assert_eq!(&b[104..], &v[&format!("seal.{seq}.signature")][..]);
            let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &b[40..72]);
            pk.verify(&msg, &b[104..])
                .expect("seal signature verifies with ring");
            epoch += 1;
        }
    }
}

#[test]
fn segment_file_frames_check_out() {
    let v = vectors();
    let seg = std::fs::read(dir().join("chain-v1.seg")).unwrap();
    assert_eq!(&seg[..8], b"LSEALSEG");
    assert_eq!(&seg[..16], &v["segment.header"][..]);
    assert_eq!(&seg[8..12], &[0, 2, 0, 0], "segment version 2, flags 0");
    assert_eq!(
        u32::from_be_bytes(seg[12..16].try_into().unwrap()),
        crc32c::crc32c(&seg[..12])
    );
    let mut p = 16;
    let mut seq = 0;
    while p < seg.len() {
        let len = u32::from_be_bytes(seg[p..p + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(seg[p + 4..p + 8].try_into().unwrap());
        let body = &seg[p + 8..p + 8 + len];
        assert_eq!(
            crc,
            crc32c::crc32c_append(crc32c::crc32c(&seg[p..p + 4]), body)
        );
        assert_eq!(body[0], 0x01, "record frame");
        assert_eq!(&body[1..], &v[&format!("record.{seq}")][..]);
        p += 8 + len;
        seq += 1;
    }
    assert_eq!(seq, 11);
}

/// Verifies a clean segment file held in memory: its frames, read with the
/// core's own frame parser, fed to the core's verifier.
fn verify_clean(
    name: &str,
    options: logseal_core::verify::Options,
) -> logseal_core::verify::Report {
    use logseal_core::frame;
    let seg = std::fs::read(dir().join(name)).unwrap();
    frame::check_header(&seg).unwrap();
    let mut v = logseal_core::verify::Verifier::new(options);
    v.begin_file(0, None);
    let mut at = frame::HEADER_LEN as usize;
    while at < seg.len() {
        let f = frame::parse_frame(&seg[at..]).unwrap();
        v.frame(at as u64, f.frame_type, f.payload);
        at += f.len;
    }
    v.finish()
}

#[test]
fn both_vector_segments_verify_intact() {
    for (name, redacted) in [("chain-v1.seg", 0), ("chain-v1-redacted.seg", 1)] {
        let r = verify_clean(name, Default::default());
        assert!(r.intact(), "{name}: {:?}", r.chains[0].problems);
        assert_eq!(r.chains[0].redacted, redacted);
        assert_eq!(r.chains[0].seals, 2);
    }
    // With the right trust anchor, and with a wrong one.
    let v = vectors();
    let pk0: [u8; 32] = v["key.0.public"].clone().try_into().unwrap();
    let with = |host: &str, pk: &[u8; 32]| {
        let anchors =
            logseal_core::trust::TrustAnchors::parse(&logseal_core::trust::line(host, pk)).unwrap();
        let options = logseal_core::verify::Options {
            anchors,
            ..Default::default()
        };
        verify_clean("chain-v1.seg", options)
    };
    assert!(with("vector-host", &pk0).intact());
    // The right key bound to another host is no anchor for this chain.
    assert!(!with("other-host", &pk0).intact());
    let pk1: [u8; 32] = v["key.1.public"].clone().try_into().unwrap();
    let r = with("vector-host", &pk1);
    assert!(!r.intact(), "a genesis key that is not trusted fails");
}

/// docs/FORMAT.md §7: a chain is checked against a collector's checkpoints:
/// the head at the checkpointed seq must be the checkpoint's, the chain must
/// reach that seq, a checkpointed chain must be there, and a chain no
/// checkpoint names is said.
#[test]
fn the_vector_chain_against_checkpoints() {
    use logseal_core::verify::{
        Checkpointed, Checkpoints, Options, Problem, Unattributed, Warning,
    };
    let v = vectors();
    let chain = logseal_core::record::Record::decode(&v["record.0"])
        .unwrap()
        .chain_id;
    let head5: [u8; 32] = v["head.5"].clone().try_into().unwrap();
    let run = |expect: Vec<(logseal_core::record::ChainId, u64, [u8; 32])>| {
        let mut k = Checkpoints::default();
        for (c, seq, head) in expect {
            let x = Checkpointed {
                host: "vector-host".into(),
                seq,
                head,
                checkpoint_seq: 3,
            };
            k.expected.insert(c, x);
        }
        let options = Options {
            checkpoints: Some(k),
            ..Default::default()
        };
        verify_clean("chain-v1.seg", options)
    };
    let problems = |r: &logseal_core::verify::Report| -> Vec<Problem> {
        r.chains[0]
            .problems
            .iter()
            .map(|f| f.problem.clone())
            .collect()
    };
    // The head the vectors give for seq 5: intact, and checkpointed.
    let r = run(vec![(chain, 5, head5)]);
    assert!(r.intact(), "{:?}", problems(&r));
    assert!(
        r.chains[0].warnings.is_empty(),
        "{:?}",
        r.chains[0].warnings
    );
    // Another head at seq 5: rewritten after the checkpoint.
    let mut other = head5;
    other[0] ^= 1;
    let r = run(vec![(chain, 5, other)]);
    assert!(!r.intact());
    assert!(matches!(
        problems(&r)[..],
        [Problem::CheckpointMismatch {
            seq: 5,
            checkpoint_seq: 3,
            ..
        }]
    ));
    // A checkpoint beyond the end: the chain was cut.
    let r = run(vec![(chain, 20, head5)]);
    assert!(!r.intact());
    assert_eq!(
        problems(&r),
        [Problem::CheckpointCut {
            seq: 20,
            last_seq: Some(10),
            checkpoint_seq: 3
        }]
    );
    // A checkpointed chain that is not there; this one is not checkpointed.
    let missing = logseal_core::record::ChainId([9; 16]);
    let r = run(vec![(missing, 1, head5)]);
    assert!(!r.intact());
    assert!(matches!(
        &r.unattributed[..],
        [Unattributed::MissingChain {
            seq: 1,
            quarantined: None,
            ..
        }]
    ));
    assert_eq!(r.chains[0].warnings, [Warning::NotCheckpointed]);
}
