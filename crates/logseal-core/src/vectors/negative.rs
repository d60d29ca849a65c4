//! Negative fixtures: one small input per mutation, named by it, with the
//! verdict, problems and unverified ranges docs/FORMAT.md §4 requires of it
//! (written by `logseal gen-vectors` into `tests/vectors/negative/`, checked by
//! `tests/negative.rs` against `logseal verify` and `tests/independent_verify.py`).
//!
//! The expected results are written here by hand, next to each mutation, from
//! the rules of §4: they are the specification of what a verifier must say, not
//! the output of one. Everything is deterministic (fixed ids, times and key
//! seeds; Ed25519 signatures are deterministic).
//!
//! The base chain of host `web-1` (chain id `a1a1…`), 18 records:
//!
//! ```text
//! 0 Genesis | 1-4 Event | 5 Seal e0 | 6-9 Event | 10 Seal e1 | 11-14 Event
//! | 15 Seal e2 | 16 Lifecycle shutdown | 17 Seal e3
//! ```

use crate::frame;
use crate::hash::{self, Digest, ZERO_HEAD};
use crate::hex;
use crate::record::{
    Body, ChainId, LifecycleEvent, LossReason, Origin, Payload, Predecessor, Record, Source,
};
use crate::{seal_message, SecretKey};
use serde_json::{json, Value};

const T0: i64 = 1_795_824_000_000_000_000; // 2026-11-28T00:00:00Z
const SECOND: i64 = 1_000_000_000;

/// One fixture: files (relative path → bytes) and its sidecar JSON.
pub struct Fixture {
    /// Name (file `NAME.seg` or directory `NAME/`).
    pub name: String,
    /// Files, by path relative to `tests/vectors/negative/`.
    pub files: Vec<(String, Vec<u8>)>,
    /// The sidecar `NAME.json`: the input to verify, options and the expected result.
    pub expected: Value,
}

/// A key of a fixture chain: `seed = SHA-256("logseal negative key " ‖ tag ‖ j)`.
fn key(tag: u8, j: u64) -> SecretKey {
    let mut m = b"logseal negative key ".to_vec();
    m.push(tag);
    m.extend_from_slice(&j.to_be_bytes());
    SecretKey::from_seed(&hash::sha256(&m))
}

/// How to make one seal.
struct SealSpec {
    epoch: u64,
    signer: [u8; 32],
    next_pk: [u8; 32],
    covers: Digest,
    /// Signs the seal message; `None`: the signature is given in `raw_sig`.
    sign_with: Option<SecretKey>,
    raw_sig: [u8; 64],
}

impl SealSpec {
    /// Signed by `k`, which it names as its signer.
    fn by(&mut self, k: SecretKey) {
        self.signer = k.public();
        self.sign_with = Some(k);
    }
}

/// Builds one chain record by record.
struct Chain {
    id: ChainId,
    tag: u8,
    host: &'static str,
    recs: Vec<Vec<u8>>,
    head: Digest,
    epoch: u64,
}

impl Chain {
    fn new(tag: u8, host: &'static str) -> Chain {
        Chain {
            id: ChainId([tag; 16]),
            tag,
            host,
            recs: Vec::new(),
            head: ZERO_HEAD,
            epoch: 0,
        }
    }

    fn seq(&self) -> u64 {
        self.recs.len() as u64
    }

    fn time(&self) -> i64 {
        T0 + self.seq() as i64 * SECOND
    }

    fn push_encoded(&mut self, enc: Vec<u8>) {
        self.head = hash::head(&self.head, hash::kind_of(&enc), &hash::leaf(&enc));
        self.recs.push(enc);
    }

    fn push(&mut self, time_ns: i64, body: Body<'_>) {
        let enc = Record {
            chain_id: self.id,
            seq: self.seq(),
            time_ns,
            body,
        }
        .encode();
        self.push_encoded(enc);
    }

    fn genesis_with(&mut self, origin: Origin, predecessor: Option<Predecessor>) {
        let pk0 = key(self.tag, 0).public();
        self.push(
            self.time(),
            Body::Genesis {
                host: self.host,
                agent: "logseal-fixtures",
                pk0,
                origin,
                predecessor,
                note: "",
            },
        );
    }

    fn genesis(&mut self) {
        self.genesis_with(Origin::Fresh, None);
    }

    fn event(&mut self, text: &str) {
        self.event_at(self.time(), text);
    }

    fn event_at(&mut self, t: i64, text: &str) {
        self.push(
            t,
            Body::Event {
                source: Source::SyslogUdp,
                flags: 0,
                peer: "192.0.2.7:514",
                original_len: None,
                payload: Payload::Raw(text.as_bytes()),
            },
        );
    }

    fn events(&mut self, n: u64) {
        for _ in 0..n {
            let text = format!("<13>{} {} event {}", self.host, self.tag, self.seq());
            self.event(&text);
        }
    }

    fn loss(&mut self, count: u64) {
        let t = self.time();
        self.push(
            t,
            Body::Loss {
                source: Source::SyslogUdp,
                reason: LossReason::UdpOverrun,
                count,
                first_ns: t,
                last_ns: t,
                detail: "",
            },
        );
    }

    fn shutdown(&mut self) {
        self.push(
            self.time(),
            Body::Lifecycle {
                event: LifecycleEvent::Shutdown,
                agent: "logseal-fixtures",
                dropped_bytes: 0,
                detail: "",
            },
        );
    }

    /// The honest seal of the current epoch.
    fn honest(&self) -> SealSpec {
        SealSpec {
            epoch: self.epoch,
            signer: key(self.tag, self.epoch).public(),
            next_pk: key(self.tag, self.epoch + 1).public(),
            covers: self.head,
            sign_with: Some(key(self.tag, self.epoch)),
            raw_sig: [0; 64],
        }
    }

    fn seal(&mut self) {
        let s = self.honest();
        self.seal_spec(s);
    }

    fn seal_with(&mut self, f: impl FnOnce(&mut SealSpec)) {
        let mut s = self.honest();
        f(&mut s);
        self.seal_spec(s);
    }

    fn seal_spec(&mut self, s: SealSpec) {
        let mut enc = Record {
            chain_id: self.id,
            seq: self.seq(),
            time_ns: self.time(),
            body: Body::Seal {
                epoch: s.epoch,
                covers_head: s.covers,
                signer: s.signer,
                next_pk: s.next_pk,
                signature: [0; 64],
            },
        }
        .encode();
        let n = enc.len();
        let sig = match &s.sign_with {
            Some(k) => k.sign(&seal_message(&enc[..n - 64])),
            None => s.raw_sig,
        };
        enc[n - 64..].copy_from_slice(&sig);
        self.push_encoded(enc);
        self.epoch += 1;
    }

    /// A chain holding the first `n` records of `from`, at key epoch `epoch`.
    fn prefix(from: &Chain, n: usize, epoch: u64) -> Chain {
        let mut c = Chain::new(from.tag, from.host);
        for r in &from.recs[..n] {
            c.push_encoded(r.clone());
        }
        c.epoch = epoch;
        c
    }

    /// The base chain (see the module comment).
    fn base(tag: u8, host: &'static str) -> Chain {
        let mut c = Chain::new(tag, host);
        c.genesis();
        c.events(4);
        c.seal();
        c.events(4);
        c.seal();
        c.events(4);
        c.seal();
        c.shutdown();
        c.seal();
        c
    }

    fn id_hex(&self) -> String {
        self.id.to_string()
    }

    fn pk0_hex(&self) -> String {
        hex::encode(&key(self.tag, 0).public())
    }
}

fn frame(rec: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_frame(frame::FRAME_RECORD, rec, &mut out);
    out
}

fn redacted_frame(rec: &[u8], kind: u8) -> Vec<u8> {
    let mut p = Vec::with_capacity(frame::REDACTED_LEN);
    p.extend_from_slice(&rec[2..18]);
    p.extend_from_slice(&rec[18..26]);
    p.push(kind);
    p.extend_from_slice(&hash::leaf(rec));
    let mut out = Vec::new();
    frame::encode_frame(frame::FRAME_REDACTED, &p, &mut out);
    out
}

/// A segment file of these frames.
fn seg(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = frame::header().to_vec();
    for f in frames {
        out.extend_from_slice(f);
    }
    out
}

fn frames(recs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    recs.iter().map(|r| frame(r)).collect()
}

/// A record with one byte of its payload changed and the encoding still valid
/// (the last byte of an Event's raw text).
fn edited(rec: &[u8]) -> Vec<u8> {
    let mut r = rec.to_vec();
    let n = r.len();
    r[n - 1] ^= 0x01;
    r
}

/// Expected chain result: (chain id hex, verdict, problems, unverified).
fn chain(
    id: &str,
    verdict: &str,
    problems: &[(&str, u64, u64)],
    unverified: &[(u64, u64, &str)],
) -> Value {
    json!({
        "chain": id,
        "verdict": verdict,
        "problems": problems.iter().map(|(k, a, b)| json!([k, a, b])).collect::<Vec<_>>(),
        "unverified": unverified.iter().map(|(a, b, w)| json!([a, b, w])).collect::<Vec<_>>(),
        "pending": Value::Null,
    })
}

/// The expected result for the base chain alone, broken.
fn broken(id: &str, problems: &[(&str, u64, u64)], unverified: &[(u64, u64, &str)]) -> Value {
    result(vec![chain(id, "broken", problems, unverified)], &[])
}

/// The expected result for one intact chain.
fn intact(id: &str) -> Value {
    result(vec![chain(id, "intact", &[], &[])], &[])
}

fn result(chains: Vec<Value>, unattributed: &[&str]) -> Value {
    let pass = unattributed.is_empty()
        && !chains.is_empty()
        && chains
            .iter()
            .all(|c| c["verdict"] == "intact" || c["verdict"] == "pending");
    json!({
        "result": if pass { "intact" } else { "not-intact" },
        "chains": chains,
        "unattributed": unattributed,
    })
}

struct Gen {
    out: Vec<Fixture>,
}

impl Gen {
    /// A one-file fixture.
    fn file(&mut self, name: &str, what: &str, bytes: Vec<u8>, expected: Value) {
        self.with(
            name,
            what,
            vec![(format!("{name}.seg"), bytes)],
            json!({}),
            expected,
        );
    }

    fn with(
        &mut self,
        name: &str,
        what: &str,
        files: Vec<(String, Vec<u8>)>,
        options: Value,
        mut expected: Value,
    ) {
        let input = if files.len() == 1 && files[0].0 == format!("{name}.seg") {
            format!("{name}.seg")
        } else {
            name.to_string()
        };
        if let Value::Object(m) = &mut expected {
            m.insert("what".into(), json!(what));
            m.insert("input".into(), json!(input));
            m.insert("options".into(), options);
        }
        self.out.push(Fixture {
            name: name.to_string(),
            files,
            expected,
        });
    }
}

/// 2^252 + 27742317777372353535851937790883648493, little-endian.
const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn ge_le(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

fn sub_le(a: &mut [u8; 32], b: &[u8; 32]) {
    let mut borrow = 0i16;
    for i in 0..32 {
        let v = a[i] as i16 - b[i] as i16 - borrow;
        borrow = (v < 0) as i16;
        a[i] = v.rem_euclid(256) as u8;
    }
}

fn add_le(a: &mut [u8; 32], b: &[u8; 32]) {
    let mut carry = 0u16;
    for i in 0..32 {
        let v = a[i] as u16 + b[i] as u16 + carry;
        a[i] = v as u8;
        carry = v >> 8;
    }
}

/// A signature that satisfies the cofactorless equation for *every* message
/// under the identity key: `R = [s]B` (the public key of a seed), `S = s mod L`.
fn signature_valid_under_identity() -> [u8; 64] {
    let seed = hash::sha256(b"logseal negative small-order");
    let r = SecretKey::from_seed(&seed).public();
    let h = ring::digest::digest(&ring::digest::SHA512, &seed);
    let mut s = [0u8; 32];
    s.copy_from_slice(&h.as_ref()[..32]);
    s[0] &= 248;
    s[31] &= 127;
    s[31] |= 64;
    while ge_le(&s, &ORDER_L) {
        sub_le(&mut s, &ORDER_L);
    }
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(&s);
    sig
}

/// The identity point's encoding (order 1).
const IDENTITY: [u8; 32] = {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
};

/// Builds every fixture.
/// The base chain every fixture mutates, and its frames.
struct Base {
    a: Chain,
    aid: String,
    fa: Vec<Vec<u8>>,
}

impl Base {
    /// The frames without those at `skip`.
    fn without(&self, skip: &[usize]) -> Vec<Vec<u8>> {
        self.fa
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The frames with the one at `at` replaced.
    fn replace(&self, at: usize, with: Vec<u8>) -> Vec<Vec<u8>> {
        let mut v = self.fa.clone();
        v[at] = with;
        v
    }
}

/// Builds every fixture.
pub fn generate() -> Vec<Fixture> {
    let mut g = Gen { out: Vec::new() };
    let a = Chain::base(0xa1, "web-1");
    let base = Base {
        aid: a.id_hex(),
        fa: frames(&a.recs),
        a,
    };
    edits(&mut g, &base);
    seals(&mut g, &base);
    keys(&mut g, &base);
    trimmed_spools(&mut g, &base);
    successors(&mut g, &base);
    successors_more(&mut g, &base);
    redactions(&mut g, &base);
    clocks(&mut g, &base);
    g.out
}

fn edits(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    g.file(
        "intact",
        "the base chain, untouched (a positive control)",
        seg(fa),
        intact(aid),
    );
    g.file(
        "delete-one",
        "event 7 removed",
        seg(&base.without(&[7])),
        broken(aid, &[("gap", 7, 7)], &[(6, 9, "problem")]),
    );
    {
        let mut v = base.without(&[7]);
        v[7] = frame(&edited(&a.recs[8])); // index 7 now holds seq 8
        g.file(
            "delete-one-rewrite-another",
            "event 7 removed and event 8 rewritten in the same interval: the gap is reported and the whole interval is unverified (the rewrite is not vouched for)",
            seg(&v),
            broken(aid, &[("gap", 7, 7)], &[(6, 9, "problem")]),
        );
    }
    g.file(
        "edit-event",
        "event 12 changed by one byte, frame checksum recomputed",
        seg(&base.replace(12, frame(&edited(&a.recs[12])))),
        broken(aid, &[("bad-link", 11, 15)], &[(11, 14, "problem")]),
    );
    {
        let mut f = fa[12].clone();
        let n = f.len();
        f[n - 1] ^= 0x01;
        g.file(
            "record-12-last-byte-flipped",
            "event 12 changed by one byte, frame checksum not recomputed",
            seg(&base.replace(12, f)),
            broken(
                aid,
                &[("damaged-frame", 12, 12), ("gap", 12, 12)],
                &[(11, 14, "problem")],
            ),
        );
    }
    {
        let mut b = seg(&fa[..13]);
        let f = &fa[13];
        b.extend_from_slice(&f[..f.len() / 2]);
        g.file(
            "truncated-mid-record",
            "the file ends half-way through event 13",
            b,
            broken(
                aid,
                &[("truncated-tail", 13, 13), ("unsealed-tail", 11, 12)],
                &[(11, 12, "unsealed")],
            ),
        );
    }
    g.file(
        "cut-after-seal",
        "the file cut right after seal 10: a valid shorter chain (what the format cannot show, FORMAT.md §4.11)",
        seg(&fa[..11]),
        intact(aid),
    );
    let unsealed = seg(&fa[..13]);
    g.file(
        "unsealed-tail",
        "the file cut after event 12: events 11-12 are after the last seal",
        unsealed.clone(),
        broken(aid, &[("unsealed-tail", 11, 12)], &[(11, 12, "unsealed")]),
    );
    {
        // Seal 10 is dated T0 + 10 s.
        let now = T0 + 10 * SECOND + 30 * SECOND;
        let mut e = result(
            vec![chain(aid, "pending", &[], &[(11, 12, "unsealed")])],
            &[],
        );
        e["chains"][0]["pending"] = json!([11, 12]);
        g.with(
            "unsealed-tail-live-young",
            "the same tail, verified live 30 s after the newest seal: pending (listed, not verified, exit 0)",
            vec![("unsealed-tail-live-young.seg".into(), unsealed.clone())],
            json!({"live": [now, 180 * SECOND]}),
            e,
        );
        let now = T0 + 10 * SECOND + 3600 * SECOND;
        g.with(
            "unsealed-tail-live-stale",
            "the same tail, verified live an hour after the newest seal: an unsealed tail",
            vec![("unsealed-tail-live-stale.seg".into(), unsealed)],
            json!({"live": [now, 180 * SECOND]}),
            broken(aid, &[("unsealed-tail", 11, 12)], &[(11, 12, "unsealed")]),
        );
    }
}

fn seals(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let mut v = fa.clone();
        v.insert(9, fa[8].clone());
        g.file(
            "duplicate-one",
            "event 8 appears twice",
            seg(&v),
            broken(aid, &[("duplicate", 8, 8)], &[]),
        );
    }
    {
        let mut v = fa.clone();
        v.swap(7, 8);
        g.file(
            "swap-two",
            "events 7 and 8 swapped",
            seg(&v),
            broken(
                aid,
                &[("gap", 7, 7), ("reorder", 7, 7)],
                &[(6, 9, "problem")],
            ),
        );
    }
    {
        let mut v = fa.clone();
        v.insert(9, frame(&edited(&a.recs[8])));
        g.file(
            "conflict",
            "a second, different record with seq 8 after event 8",
            seg(&v),
            broken(aid, &[("conflict", 8, 8)], &[(6, 9, "problem")]),
        );
    }
    {
        let mut v = fa.clone();
        v.insert(7, b"\x00\x00\x01\x00garbage inserted by hand".to_vec());
        g.file(
            "garbage-between-frames",
            "junk bytes before event 7 (no record lost)",
            seg(&v),
            broken(aid, &[("damaged-frame", 7, 7)], &[(6, 9, "problem")]),
        );
    }
    {
        let mut r = a.recs[10].clone();
        let n = r.len();
        r[n - 1] ^= 0x01;
        g.file(
            "bad-signature",
            "seal 10's signature changed: the key chain is unknown from there on",
            seg(&base.replace(10, frame(&r))),
            broken(
                aid,
                &[("bad-signature", 10, 10)],
                &[(6, 17, "key-chain-unknown")],
            ),
        );
    }
    {
        // An attacker who cannot sign epoch 1 breaks seal 10 and re-signs every
        // later interval, with rewritten events, under keys of their own.
        let mut c = Chain::prefix(a, 10, 1);
        let forger = |j: u64| key(0xf0, j);
        c.seal_with(|s| {
            s.by(forger(1));
            s.next_pk = forger(2).public();
        });
        for i in 11..15 {
            c.event(&format!("rewritten {i}"));
        }
        c.seal_with(|s| {
            s.by(forger(2));
            s.next_pk = forger(3).public();
        });
        c.shutdown();
        c.seal_with(|s| {
            s.by(forger(3));
            s.next_pk = forger(4).public();
        });
        g.file(
            "broken-seal-then-rewrite",
            "seal 10 re-made under a forger's key and every later interval rewritten under the forger's key chain: nothing after the broken seal is believed",
            seg(&frames(&c.recs)),
            broken(aid, &[("key-not-in-chain", 10, 10)], &[(6, 17, "key-chain-unknown")]),
        );
    }
    {
        let mut c = Chain::new(0xa1, "web-1");
        c.genesis();
        for _ in 0..3 {
            c.events(4);
            c.seal_with(|s| {
                s.by(key(0xa1, 0));
                s.next_pk = key(0xa1, 0).public();
            });
        }
        g.file(
            "key-reused",
            "every seal signed by the genesis key and naming it again as next key: a key that never evolves",
            seg(&frames(&c.recs)),
            broken(aid, &[("key-reused", 5, 5)], &[(0, 15, "key-chain-unknown")]),
        );
    }
}

fn keys(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let mut c = Chain::prefix(a, 15, 2);
        c.seal_with(|s| s.next_pk = key(0xa1, 1).public());
        c.shutdown();
        c.seal_with(|s| {
            s.epoch = 3;
            s.by(key(0xa1, 1));
        });
        g.file(
            "key-reused-older",
            "seal 15 names as next key the key of epoch 1",
            seg(&frames(&c.recs)),
            broken(
                aid,
                &[("key-reused", 15, 15)],
                &[(11, 17, "key-chain-unknown")],
            ),
        );
    }
    {
        // The journald FSS pattern: today's key (epoch 3) stolen, event 7
        // altered, seal 10 re-signed with the stolen key.
        let mut c = Chain::new(0xa1, "web-1");
        for (i, r) in a.recs[..10].iter().enumerate() {
            c.push_encoded(if i == 7 { edited(r) } else { r.clone() });
        }
        c.epoch = 1;
        c.seal_with(|s| {
            s.by(key(0xa1, 3));
        });
        let mut fr = frames(&c.recs);
        fr.extend_from_slice(&fa[11..]);
        g.file(
            "resigned-with-later-key",
            "event 7 altered and seal 10 re-signed with the (stolen) key of epoch 3",
            seg(&fr),
            broken(
                aid,
                &[("key-not-in-chain", 10, 10)],
                &[(6, 17, "key-chain-unknown")],
            ),
        );
    }
    {
        let mut c = Chain::prefix(a, 10, 1);
        c.seal_with(|s| s.epoch = 5);
        let mut fr = frames(&c.recs);
        fr.extend_from_slice(&fa[11..]);
        g.file(
            "epoch-mismatch",
            "seal 10, correctly signed, claims epoch 5",
            seg(&fr),
            broken(
                aid,
                &[("epoch-mismatch", 10, 10)],
                &[(6, 17, "key-chain-unknown")],
            ),
        );
    }
    {
        // Seal 5 names the identity point as next key; seal 10 carries a
        // signature that the cofactorless equation accepts for any message
        // under that key. The strict rules (§4.10) refuse the key.
        let mut c = Chain::new(0xa1, "web-1");
        for r in &a.recs[..5] {
            c.push_encoded(r.clone());
        }
        c.seal_with(|s| s.next_pk = IDENTITY);
        c.events(4);
        c.seal_with(|s| {
            s.signer = IDENTITY;
            s.next_pk = key(0xf1, 2).public();
            s.sign_with = None;
            s.raw_sig = signature_valid_under_identity();
        });
        g.file(
            "small-order-key",
            "seal 5 names a small-order next key (the identity); seal 10's signature satisfies the cofactorless equation under it",
            seg(&frames(&c.recs)),
            broken(aid, &[("bad-signature", 10, 10)], &[(6, 10, "key-chain-unknown")]),
        );
    }
    {
        let mut r = a.recs[10].clone();
        let n = r.len();
        let mut s = [0u8; 32];
        s.copy_from_slice(&r[n - 32..]);
        add_le(&mut s, &ORDER_L);
        r[n - 32..].copy_from_slice(&s);
        g.file(
            "non-canonical-s",
            "seal 10's signature with S + L in place of S (the same point equation, a non-canonical scalar)",
            seg(&base.replace(10, frame(&r))),
            broken(aid, &[("bad-signature", 10, 10)], &[(6, 17, "key-chain-unknown")]),
        );
    }
}

fn trimmed_spools(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    // Trimmed spools: the first segment files removed. The `acked` file is the
    // host's own word and changes nothing.
    let acked = |pos: u64| {
        let mut b = pos.to_be_bytes().to_vec();
        b.extend_from_slice(&crc32c::crc32c(&b).to_be_bytes());
        b
    };
    {
        let body = seg(&fa[6..]);
        g.with(
            "trimmed-spool",
            "an agent spool whose first segment (seqs 0-5) was deleted after acknowledgement, with its acked file: unanchored, never intact",
            vec![
                ("trimmed-spool/00000000000000004096.seg".into(), body),
                ("trimmed-spool/acked".into(), acked(4096)),
            ],
            json!({}),
            result(
                vec![chain(aid, "unanchored", &[], &[(6, 9, "unanchored")])],
                &[],
            ),
        );
        let mut v = fa[6..].to_vec();
        v[6] = frame(&edited(&a.recs[12])); // seq 12
        g.with(
            "forged-trim",
            "the same trimmed spool with event 12 rewritten, verified with the host's trust anchor: still unanchored, and the edit is found",
            vec![
                ("forged-trim/00000000000000004096.seg".into(), seg(&v)),
                ("forged-trim/acked".into(), acked(4096)),
            ],
            json!({"trust": format!("web-1 {}", a.pk0_hex())}),
            broken(aid, &[("bad-link", 11, 15)], &[(6, 9, "unanchored"), (11, 14, "problem")]),
        );
        // A forger drops the start and re-makes every seal after it under keys
        // of their own: consistent, but bound to nothing.
        let mut c = Chain::prefix(a, 6, 1);
        let forger = |j: u64| key(0xf2, j);
        for e in 1..4u64 {
            for _ in 0..(if e == 3 { 1 } else { 4 }) {
                c.event("<13>forged");
            }
            c.seal_with(|s| {
                s.by(forger(e));
                s.next_pk = forger(e + 1).public();
            });
        }
        let recs = c.recs[6..].to_vec();
        g.with(
            "forged-trim-resigned",
            "a spool cut at seq 6 and everything after re-made under a forger's key chain, with a forged acked file and the host's trust anchor: unanchored (exit 1), never intact",
            vec![
                ("forged-trim-resigned/00000000000000004096.seg".into(), seg(&frames(&recs))),
                ("forged-trim-resigned/acked".into(), acked(1 << 40)),
            ],
            json!({"trust": format!("web-1 {}", a.pk0_hex())}),
            result(
                vec![chain(aid, "unanchored", &[], &[(6, 9, "unanchored")])],
                &[],
            ),
        );
    }

    // Successor chains (state-lost): the predecessor named by the Genesis.
}

fn successors(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let succ = |last_seq: u64, head: Digest| {
            let mut b = Chain::new(0xb2, "web-1");
            b.genesis_with(
                Origin::StateLost,
                Some(Predecessor {
                    chain_id: a.id,
                    last_seq,
                    head,
                }),
            );
            b.events(2);
            b.seal();
            b
        };
        let ok = succ(17, a.head);
        let bid = ok.id_hex();
        let mut fr = fa.clone();
        fr.extend(frames(&ok.recs));
        g.file(
            "pred-ok",
            "a state-lost successor whose Genesis names the predecessor's true last seq and head (a positive control)",
            seg(&fr),
            result(
                vec![
                    chain(aid, "intact", &[], &[]),
                    chain(&bid, "intact", &[], &[]),
                ],
                &[],
            ),
        );
        let bad = succ(17, [0x42; 32]);
        let mut fr = fa.clone();
        fr.extend(frames(&bad.recs));
        g.file(
            "pred-mismatch",
            "the successor's Genesis names seq 17 of the predecessor with another head",
            seg(&fr),
            result(
                vec![
                    chain(aid, "broken", &[("pred-mismatch", 17, 17)], &[]),
                    chain(&bid, "intact", &[], &[]),
                ],
                &[],
            ),
        );
        let mut fr = fa[..11].to_vec();
        fr.extend(frames(&ok.recs));
        g.file(
            "pred-cut",
            "the predecessor cut back to seal 10, then its successor, whose Genesis says it reached seq 17",
            seg(&fr),
            result(
                vec![
                    chain(aid, "broken", &[("pred-cut", 11, 17)], &[]),
                    chain(&bid, "intact", &[], &[]),
                ],
                &[],
            ),
        );
        g.file(
            "pred-absent",
            "a successor alone: intact, with a warning that its predecessor is not in the input",
            seg(&frames(&ok.recs)),
            result(vec![chain(&bid, "intact", &[], &[])], &[]),
        );
    }

    {
        // Live mode needs something signed: a Genesis (unsigned, its key and
        // host are public) followed by events proves nothing, however young.
        let mut c = Chain::new(0xa1, "web-1");
        c.genesis();
        c.events(4);
        g.with(
            "live-genesis-only",
            "a Genesis with the host's anchored key and four events, no seal, verified live right away: not pending (nothing is signed)",
            vec![("live-genesis-only.seg".into(), seg(&frames(&c.recs)))],
            json!({"trust": format!("web-1 {}", a.pk0_hex()), "live": [T0 + 5 * SECOND, 180 * SECOND]}),
            broken(aid, &[("unsealed-tail", 0, 4)], &[(0, 4, "unsealed")]),
        );
        g.with(
            "live-seal-dated-ahead",
            "the unsealed tail after seal 10, verified live ten days before the seal's date: a seal dated ahead does not keep a tail pending",
            vec![("live-seal-dated-ahead.seg".into(), seg(&fa[..13]))],
            json!({"live": [T0 - 10 * 86_400 * SECOND, 180 * SECOND]}),
            broken(aid, &[("unsealed-tail", 11, 12)], &[(11, 12, "unsealed")]),
        );
    }
    g.with(
        "chain-across-host-dirs",
        "a store holding the first part of web-1's chain under hosts/web-1 and the rest under hosts/web-2",
        vec![
            (format!("chain-across-host-dirs/hosts/web-1/{aid}/00000000000000000000.seg"), seg(&fa[..11])),
            (format!("chain-across-host-dirs/hosts/web-2/{aid}/00000000000000001000.seg"), seg(&fa[11..])),
        ],
        json!({}),
        broken(aid, &[("misfiled", 11, 11)], &[]),
    );
    {
        let mut h = seg(fa);
        h[11] = 1; // flags
        let crc = crc32c::crc32c(&h[..12]).to_be_bytes();
        h[12..16].copy_from_slice(&crc);
        g.file(
            "header-flags",
            "a segment whose header sets an unknown flag (its checksum recomputed)",
            h,
            result(vec![], &["bad-segment"]),
        );
    }
}

fn successors_more(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let mut v = fa.clone();
        let evil = Chain::base(0xc4, "evil");
        v.extend(frames(&evil.recs));
        g.with(
            "chain-started-mid-file-in-store",
            "a store file of web-1's chain that goes on with another host's chain, Genesis and all",
            vec![(
                format!(
                    "chain-started-mid-file-in-store/hosts/web-1/{aid}/00000000000000000000.seg"
                ),
                seg(&v),
            )],
            json!({}),
            result(
                vec![
                    chain(aid, "intact", &[], &[]),
                    chain(&evil.id_hex(), "broken", &[("misfiled", 0, 0)], &[]),
                ],
                &[],
            ),
        );
    }
    {
        let mut c = Chain::prefix(a, 10, 1);
        c.seal_with(|s| s.epoch = u64::MAX);
        let mut fr = frames(&c.recs[6..]);
        fr.extend_from_slice(&fa[11..]);
        g.file(
            "epoch-max",
            "a trimmed spool whose first seal claims epoch 2^64 - 1 (no epoch would be left for the next seal)",
            seg(&fr),
            broken(
                aid,
                &[("epoch-mismatch", 10, 10)],
                &[(6, 17, "key-chain-unknown")],
            ),
        );
    }
    g.with(
        "anchor-by-fingerprint",
        "the base chain verified against an older enrolled-file line: its host and the key's fingerprint, in capitals",
        vec![("anchor-by-fingerprint.seg".into(), seg(fa))],
        json!({"trust": format!("web-1 SHA256:{}", hash::fingerprint(&key(0xa1, 0).public())["SHA256:".len()..].to_uppercase())}),
        intact(aid),
    );
    {
        let now = T0 + 10 * SECOND + 30 * SECOND;
        let mut e = result(
            vec![chain(
                aid,
                "unanchored",
                &[],
                &[(6, 9, "unanchored"), (11, 12, "unsealed")],
            )],
            &[],
        );
        e["chains"][0]["pending"] = json!([11, 12]);
        g.with(
            "live-trimmed-spool",
            "a running agent's trimmed spool: unanchored, with its records after seal 10 pending",
            vec![(
                "live-trimmed-spool/00000000000000004096.seg".into(),
                seg(&fa[6..13]),
            )],
            json!({"live": [now, 180 * SECOND]}),
            e,
        );
    }
    g.file(
        "header-only",
        "a segment header and nothing else",
        seg(&[]),
        result(vec![], &["no-records"]),
    );
    {
        let mut second = seg(&fa[11..]);
        second[13] ^= 0xff; // the header's checksum
        g.with(
            "damaged-header",
            "a chain split over two files whose second file's header is damaged: the first file alone ends at a seal, but the damaged file is reported",
            vec![
                ("damaged-header/00000000000000000000.seg".into(), seg(&fa[..11])),
                ("damaged-header/00000000000000001000.seg".into(), second),
            ],
            json!({}),
            result(vec![chain(aid, "intact", &[], &[])], &["bad-segment"]),
        );
    }
    {
        let b = Chain::base(0xb3, "web-2");
        let mut v = fa.clone();
        v[8] = frame(&b.recs[8]);
        g.file(
            "foreign-record",
            "event 8 replaced by seq 8 of another host's chain",
            seg(&v),
            broken(
                aid,
                &[("foreign-chain", 8, 8), ("gap", 8, 8)],
                &[(6, 9, "problem")],
            ),
        );
    }
}

fn redactions(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let mut c = Chain::new(0xa1, "web-1");
        for r in &a.recs[..8] {
            c.push_encoded(r.clone());
        }
        c.genesis();
        g.file(
            "unexpected-genesis",
            "event 8 replaced by a Genesis record at seq 8",
            seg(&base.replace(8, frame(&c.recs[8]))),
            broken(aid, &[("unexpected-genesis", 8, 8)], &[(6, 9, "problem")]),
        );
    }
    g.with(
        "untrusted-genesis",
        "the base chain verified against a trust anchor of its host with another key",
        vec![("untrusted-genesis.seg".into(), seg(fa))],
        json!({"trust": format!("web-1 {}", hex::encode(&key(0xee, 0).public()))}),
        broken(aid, &[("untrusted-genesis", 0, 0)], &[]),
    );
    g.with(
        "anchor-of-another-host",
        "the base chain verified against its own genesis key listed for another host",
        vec![("anchor-of-another-host.seg".into(), seg(fa))],
        json!({"trust": format!("web-2 {}", a.pk0_hex())}),
        broken(aid, &[("untrusted-genesis", 0, 0)], &[]),
    );
    g.with(
        "trusted",
        "the base chain verified against its host's trust anchor (a positive control)",
        vec![("trusted.seg".into(), seg(fa))],
        json!({"trust": format!("web-2 {}\nweb-1 {}", hex::encode(&key(0xee, 0).public()), a.pk0_hex())}),
        intact(aid),
    );
    g.file(
        "redacted-seal",
        "seal 10 replaced by a redacted frame that says it is a seal",
        seg(&base.replace(10, redacted_frame(&a.recs[10], 3))),
        broken(
            aid,
            &[("bad-redaction", 10, 10), ("epoch-mismatch", 15, 15)],
            &[(6, 17, "key-chain-unknown")],
        ),
    );
    g.file(
        "redacted-seal-as-event",
        "seal 10 replaced by a redacted frame that claims to be an event: the missing seal still shows",
        seg(&base.replace(10, redacted_frame(&a.recs[10], 2))),
        broken(aid, &[("epoch-mismatch", 15, 15)], &[(6, 17, "key-chain-unknown")]),
    );
    g.file(
        "redacted-event",
        "event 7 redacted (leaf only): the chain still verifies (a positive control)",
        seg(&base.replace(7, redacted_frame(&a.recs[7], 2))),
        intact(aid),
    );
    g.file(
        "redacted-kind-changed",
        "event 7 redacted with the kind byte of a Loss: the kind enters the head, so seal 10 no longer covers it",
        seg(&base.replace(7, redacted_frame(&a.recs[7], 4))),
        broken(aid, &[("bad-link", 6, 10)], &[(6, 9, "problem")]),
    );
    {
        let mut bad = a.recs[8].clone();
        bad[1] = 9; // unknown kind
        g.file(
            "malformed-record",
            "event 8's kind byte set to 9, frame checksum recomputed",
            seg(&base.replace(8, frame(&bad))),
            broken(
                aid,
                &[("malformed", 8, 8), ("gap", 8, 8)],
                &[(6, 9, "problem")],
            ),
        );
    }
    g.with(
        "misfiled",
        "a collector store holding host web-1's chain under the directory of host web-2",
        vec![(
            format!("misfiled/hosts/web-2/{aid}/00000000000000000000.seg"),
            seg(fa),
        )],
        json!({}),
        broken(aid, &[("misfiled", 0, 0)], &[]),
    );
    {
        let mut c = Chain::new(0xa1, "web-1");
        c.genesis();
        c.loss(1 << 63);
        c.loss(1 << 63);
        c.seal();
        g.file(
            "loss-counts-saturate",
            "two Loss records of 2^63 events each: the sum saturates, it does not wrap to 0 (a positive control)",
            seg(&frames(&c.recs)),
            intact(aid),
        );
    }
}

fn clocks(g: &mut Gen, base: &Base) {
    let Base { a, aid, fa, .. } = base;
    {
        let mut huge = Record::decode(&a.recs[8])
            .map(|r| r.encode())
            .unwrap_or_default();
        huge[18..26].copy_from_slice(&u64::MAX.to_be_bytes());
        let mut v = fa[..9].to_vec();
        v.push(frame(&huge));
        v.extend_from_slice(&fa[9..]);
        let max = u64::MAX;
        let reorders: Vec<(&str, u64, u64)> = (9..18).map(|s| ("reorder", s, s)).collect();
        let mut problems = vec![("gap", 9, max - 1)];
        problems.extend(reorders);
        problems.push(("unsealed-tail", 6, max));
        let mut other = huge.clone();
        let n = other.len();
        other[n - 1] ^= 1;
        let mut v2 = fa[..9].to_vec();
        v2.push(frame(&huge));
        v2.push(frame(&other));
        g.file(
            "seq-max-conflict",
            "two different records with seq 2^64 - 1: the second is a conflict, not accepted",
            seg(&v2),
            broken(
                aid,
                &[
                    ("gap", 9, max - 1),
                    ("conflict", max, max),
                    ("unsealed-tail", 6, max),
                ],
                &[(6, max, "unsealed")],
            ),
        );
        g.file(
            "seq-max",
            "a record with seq 2^64 - 1 after event 8: no overflow; everything after it is out of order",
            seg(&v),
            broken(aid, &problems, &[(6, max, "unsealed")]),
        );
    }
    {
        let mut c = Chain::new(0xa1, "web-1");
        c.genesis();
        c.events(2);
        c.event_at(T0 - 2 * 86_400 * SECOND, "<13>dated two days back");
        c.event_at(T0 + 30 * 86_400 * SECOND, "<13>dated a month ahead");
        c.seal();
        g.file(
            "clock-jumps",
            "records dated two days back and a month ahead: warnings, never a failure (a positive control)",
            seg(&frames(&c.recs)),
            intact(aid),
        );
    }
}

/// The sidecar file name of a fixture.
pub fn sidecar(f: &Fixture) -> String {
    format!("{}.json", f.name)
}
