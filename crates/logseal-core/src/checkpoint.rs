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
}
