//! Collector checkpoints (docs/FORMAT.md §7): what a collector held durably
//! of every chain that moved, written as the payload of an Event record
//! (source `checkpoint`) in the collector's own chain, which it seals like
//! any other. A store is then checked against its latest checkpoints: a chain
//! cut back, rewritten, deleted or moved away no longer matches them.
//!
//! ```text
//! payload := "logseal/checkpoint/v1" 0x00 | count:u32 | entry*count
//! entry   := host:str | chain:16 | seq:u64 | head:32
//! ```
//! `seq` is the last record the collector held durably, `head` the chain head
//! after it. Entries are sorted by (host, chain) and name each chain once.
//!
//! The log holds two more forms of statement (§7.3, §7.4): a fork the
//! collector refused, with its proof, and a peer collector's checkpoint it
//! witnessed:
//!
//! ```text
//! fork    := "logseal/fork/v1" 0x00 | host:str | stored:bytes | received:bytes
//! witness := "logseal/witness/v1" 0x00 | block:str
//! ```

use crate::codec::{Dec, DecodeError, Enc};
use crate::record::ChainId;

/// The payload's first bytes.
pub const MAGIC: &[u8] = b"logseal/checkpoint/v1\0";

/// Most entries in one checkpoint: a payload stays far below the largest
/// frame (an entry of a 253-byte host name takes 313 bytes).
pub const MAX_ENTRIES: usize = 32_768;

/// What a collector held of one chain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The host the chain belongs to.
    pub host: String,
    /// The chain.
    pub chain: ChainId,
    /// Its last record held durably.
    pub seq: u64,
    /// The chain head after that record.
    pub head: [u8; 32],
}

/// Encodes a checkpoint of `entries` (sorted here).
pub fn encode(entries: &mut [Entry]) -> Vec<u8> {
    entries.sort();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + entries.len() * 80);
    out.extend_from_slice(MAGIC);
    let mut e = Enc(&mut out);
    e.u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for x in entries.iter() {
        e.str(&x.host);
        e.fixed(&x.chain.0);
        e.u64(x.seq);
        e.fixed(&x.head);
    }
    out
}

/// A fork's payload's first bytes.
pub const FORK_MAGIC: &[u8] = b"logseal/fork/v1\0";

/// A witnessed peer checkpoint's payload's first bytes.
pub const WITNESS_MAGIC: &[u8] = b"logseal/witness/v1\0";

/// The largest witnessed block (docs/FORMAT.md §7.1).
pub const MAX_BLOCK: usize = 16 << 10;

/// A fork a collector refused: two seals of one epoch of one chain, both
/// signed by the key of that epoch, over two histories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The host whose chain forked.
    pub host: String,
    /// The chain.
    pub chain: ChainId,
    /// The epoch sealed twice.
    pub epoch: u64,
    /// The key that signed both seals.
    pub key: [u8; 32],
    /// The seal the collector holds, encoded, and its seq.
    pub stored: (u64, Vec<u8>),
    /// The seal it refused, encoded, and its seq.
    pub received: (u64, Vec<u8>),
}

/// What a statement of a checkpoint log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// What the collector held of the chains that moved.
    Checkpoint(Vec<Entry>),
    /// A fork it refused, with the proof.
    Fork(Fork),
    /// A peer's checkpoint it witnessed: the text block (§7.1), not parsed
    /// here.
    Witnessed(String),
}

/// Encodes a fork's proof; `None` unless it proves a fork (see
/// [`decode_fork`]).
pub fn encode_fork(host: &str, stored: &[u8], received: &[u8]) -> Option<Vec<u8>> {
    let mut out = FORK_MAGIC.to_vec();
    let mut e = Enc(&mut out);
    e.str(host);
    e.bytes(stored);
    e.bytes(received);
    decode_fork(&out).ok().map(|_| out)
}

/// Encodes a witnessed peer checkpoint (at most [`MAX_BLOCK`] bytes).
pub fn encode_witnessed(block: &str) -> Option<Vec<u8>> {
    if block.len() > MAX_BLOCK {
        return None;
    }
    let mut out = WITNESS_MAGIC.to_vec();
    Enc(&mut out).str(block);
    Some(out)
}

/// A seal's chain, seq, epoch and signer, if `encoded` is a seal whose
/// signature is valid under the key it names (the seal rule, its key and
/// epoch taken from the seal itself).
fn valid_seal(encoded: &[u8]) -> Option<(ChainId, u64, u64, [u8; 32])> {
    use crate::seal::{self, KeyPosition, SealFields};
    let r = crate::record::Record::decode(encoded).ok()?;
    let f = SealFields::of(&r.body, encoded)?;
    let at = KeyPosition {
        key: *f.signer,
        epoch: f.epoch,
    };
    seal::check(at, &f, |_| None).ok()?;
    Some((r.chain_id, r.seq, f.epoch, *f.signer))
}

/// Decodes a fork's payload; strict: both records are seals of one chain
/// and one epoch, signed by one key, each valid under it, and differ.
pub fn decode_fork(payload: &[u8]) -> Result<Fork, DecodeError> {
    let body = payload.strip_prefix(FORK_MAGIC).ok_or(DecodeError {
        at: 0,
        reason: "not a fork (bad magic)",
    })?;
    let mut d = Dec::new(body);
    let host = d.str()?.to_string();
    let stored = d.bytes()?.to_vec();
    let received = d.bytes()?.to_vec();
    d.finish()?;
    let (Some(a), Some(b)) = (valid_seal(&stored), valid_seal(&received)) else {
        return Err(d.err("a fork's record is not a seal valid under the key it names"));
    };
    if (a.0, a.2, a.3) != (b.0, b.2, b.3) || stored == received {
        return Err(d.err("a fork's seals are not two seals of one chain, epoch and key"));
    }
    Ok(Fork {
        host,
        chain: a.0,
        epoch: a.2,
        key: a.3,
        stored: (a.1, stored),
        received: (b.1, received),
    })
}

/// Decodes any statement of a checkpoint log (by its magic), strictly. A
/// witnessed block is checked here for its length only: the caller checks
/// it as a block (docs/FORMAT.md §7.1).
pub fn decode_statement(payload: &[u8]) -> Result<Statement, DecodeError> {
    if payload.starts_with(FORK_MAGIC) {
        return decode_fork(payload).map(Statement::Fork);
    }
    if let Some(body) = payload.strip_prefix(WITNESS_MAGIC) {
        let mut d = Dec::new(body);
        let block = d.str()?;
        d.finish()?;
        if block.len() > MAX_BLOCK {
            return Err(d.err("a witnessed block longer than 16 KiB"));
        }
        return Ok(Statement::Witnessed(block.to_string()));
    }
    decode(payload).map(Statement::Checkpoint)
}

/// True if an Event payload is a checkpoint (starts with [`MAGIC`]).
pub fn is_checkpoint(payload: &[u8]) -> bool {
    payload.starts_with(MAGIC)
}

/// Decodes a checkpoint payload; strict: sorted, no chain twice, at most
/// [`MAX_ENTRIES`], nothing after the last entry.
pub fn decode(payload: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let body = payload.strip_prefix(MAGIC).ok_or(DecodeError {
        at: 0,
        reason: "not a checkpoint (bad magic)",
    })?;
    let mut d = Dec::new(body);
    let n = d.u32()? as usize;
    if n > MAX_ENTRIES {
        return Err(d.err("too many checkpoint entries"));
    }
    let mut out: Vec<Entry> = Vec::with_capacity(n);
    let mut chains = std::collections::HashSet::with_capacity(n);
    for _ in 0..n {
        let entry = Entry {
            host: d.str()?.to_string(),
            chain: ChainId(d.array()?),
            seq: d.u64()?,
            head: d.array()?,
        };
        if out
            .last()
            .is_some_and(|p| (&p.host, p.chain) >= (&entry.host, entry.chain))
        {
            return Err(d.err("checkpoint entries not sorted, or a chain twice"));
        }
        if !chains.insert(entry.chain) {
            return Err(d.err("a chain twice in a checkpoint"));
        }
        out.push(entry);
    }
    d.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(host: &str, c: u8, seq: u64) -> Entry {
        Entry {
            host: host.into(),
            chain: ChainId([c; 16]),
            seq,
            head: [seq as u8; 32],
        }
    }

    /// A payload of `entries` in the order given.
    fn unsorted(entries: &[Entry]) -> Vec<u8> {
        let mut body = MAGIC.to_vec();
        let mut e = Enc(&mut body);
        e.u32(entries.len() as u32);
        for x in entries {
            e.str(&x.host);
            e.fixed(&x.chain.0);
            e.u64(x.seq);
            e.fixed(&x.head);
        }
        body
    }

    #[test]
    fn round_trip_sorted() {
        let mut v = vec![
            entry("web-2", 1, 9),
            entry("web-1", 3, 4),
            entry("web-1", 2, 0),
        ];
        let p = encode(&mut v);
        assert!(is_checkpoint(&p));
        let back = decode(&p).unwrap();
        assert_eq!(back, v);
        assert_eq!(back[0], entry("web-1", 2, 0));
    }

    #[test]
    fn hostile_payloads_are_refused_not_trusted() {
        let mut v = vec![entry("a", 1, 1), entry("b", 2, 2)];
        let p = encode(&mut v);
        // Every truncation.
        for n in 0..p.len() {
            assert!(decode(&p[..n]).is_err(), "cut at {n}");
        }
        // Trailing bytes.
        let mut t = p.clone();
        t.push(0);
        assert!(decode(&t).is_err());
        // Out of order (as written, not sorted by `encode`).
        let body = unsorted(&[entry("b", 2, 2), entry("a", 1, 1)]);
        assert_eq!(
            decode(&body).unwrap_err().reason,
            "checkpoint entries not sorted, or a chain twice"
        );
        // One chain under two hosts.
        let body = unsorted(&[entry("a", 1, 1), entry("b", 1, 2)]);
        assert_eq!(
            decode(&body).unwrap_err().reason,
            "a chain twice in a checkpoint"
        );
        // A huge count is refused before anything is allocated for it.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode(&huge).unwrap_err().reason,
            "too many checkpoint entries"
        );
    }

    /// A seal of `chain` at `seq`, epoch `epoch`, signed by `k`.
    fn seal(k: &crate::keys::SecretKey, chain: u8, seq: u64, epoch: u64, head: u8) -> Vec<u8> {
        let rec = crate::record::Record {
            chain_id: ChainId([chain; 16]),
            seq,
            time_ns: 1,
            body: crate::record::Body::Seal {
                epoch,
                covers_head: [head; 32],
                signer: k.public(),
                next_pk: [9; 32],
                signature: [0; 64],
            },
        };
        let mut enc = rec.encode();
        let n = enc.len();
        let sig = k.sign(&crate::keys::seal_message(&enc[..n - 64]));
        enc[n - 64..].copy_from_slice(&sig);
        enc
    }

    #[test]
    fn a_fork_is_recorded_only_with_its_proof() {
        let k = crate::keys::SecretKey::from_seed(&[1; 32]);
        let other = crate::keys::SecretKey::from_seed(&[2; 32]);
        let a = seal(&k, 7, 10, 3, 1);
        let b = seal(&k, 7, 12, 3, 2);
        let p = encode_fork("web-1", &a, &b).unwrap();
        let Statement::Fork(f) = decode_statement(&p).unwrap() else {
            panic!("not a fork")
        };
        assert_eq!((f.chain, f.epoch, f.key), (ChainId([7; 16]), 3, k.public()));
        assert_eq!(
            (f.stored.0, f.received.0, f.host.as_str()),
            (10, 12, "web-1")
        );
        // Not a fork: one seal twice, two epochs, two chains, two keys, a
        // bad signature, not a seal.
        let mut forged = b.clone();
        *forged.last_mut().unwrap() ^= 1;
        for (x, y) in [
            (&a, &a),
            (&a, &seal(&k, 7, 12, 4, 2)),
            (&a, &seal(&k, 8, 12, 3, 2)),
            (&a, &seal(&other, 7, 12, 3, 2)),
            (&a, &forged),
            (&a, &a[..a.len() - 1].to_vec()),
        ] {
            assert!(encode_fork("web-1", x, y).is_none());
            let mut raw = FORK_MAGIC.to_vec();
            let mut e = Enc(&mut raw);
            e.str("web-1");
            e.bytes(x);
            e.bytes(y);
            assert!(decode_statement(&raw).is_err());
        }
        for n in 0..p.len() {
            assert!(decode_statement(&p[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn a_witnessed_block_round_trips_and_is_bounded() {
        let p = encode_witnessed("logseal checkpoint v1\n").unwrap();
        assert_eq!(
            decode_statement(&p).unwrap(),
            Statement::Witnessed("logseal checkpoint v1\n".into())
        );
        assert!(encode_witnessed(&"x".repeat(MAX_BLOCK + 1)).is_none());
        let mut big = WITNESS_MAGIC.to_vec();
        Enc(&mut big).str(&"x".repeat(MAX_BLOCK + 1));
        assert!(decode_statement(&big).is_err());
        let mut trailing = p.clone();
        trailing.push(0);
        assert!(decode_statement(&trailing).is_err());
    }
}
