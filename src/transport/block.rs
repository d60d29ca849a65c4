//! The witness block (docs/FORMAT.md §7.1): a seal of a collector's
//! checkpoint log as a small text block, what `logseal checkpoint` prints,
//! what collectors hand to the peers that witness them (§7.4) and what
//! `logseal verify --checkpoint` reads.
//!
//! ```text
//! logseal checkpoint v1
//! collector HOST
//! genesis SHA256:…          (the log chain's genesis key fingerprint)
//! seal CHAIN SEQ            (the log chain's id, hex, and the seal's seq)
//! time RFC3339              (the seal's time, for people)
//! record HEX                (the encoded seal record, §2)
//! ```
//!
//! A block is believed only if its record decodes as a seal of that chain
//! and seq whose signature is valid under the signer it names (§4.10; not
//! the rest of the seal rule), its collector is a host name in canonical
//! form and its genesis `SHA256:` and 32 lowercase hex digits; at most
//! [`MAX_WITNESS`] bytes.

use crate::chain::record::{Body, Record};
use crate::chain::{hex, keys, ChainId};

/// The largest witness file read (a block is about 600 bytes).
pub const MAX_WITNESS: u64 = 16 << 10;

const FIRST_LINE: &str = "logseal checkpoint v1";

/// A seal of a checkpoint log, witnessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The collector (the log chain's Genesis host).
    pub host: String,
    /// Its genesis key's fingerprint.
    pub genesis: String,
    /// The log's chain.
    pub chain: ChainId,
    /// The seal's seq.
    pub seq: u64,
    /// The seal's time, ns.
    pub time_ns: i64,
    /// The encoded seal record.
    pub record: Vec<u8>,
}

/// Why a block's text is not a witnessed checkpoint.
#[derive(Debug)]
pub struct Unbelieved(pub String);

impl std::fmt::Display for Unbelieved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Unbelieved {
    fn from(s: String) -> Unbelieved {
        Unbelieved(s)
    }
}

impl From<&str> for Unbelieved {
    fn from(s: &str) -> Unbelieved {
        Unbelieved(s.to_string())
    }
}

impl Witness {
    /// The text block.
    pub fn text(&self) -> String {
        format!(
            "{FIRST_LINE}\ncollector {}\ngenesis {}\nseal {} {}\ntime {}\nrecord {}\n",
            self.host,
            self.genesis,
            self.chain,
            self.seq,
            crate::util::timefmt::rfc3339(self.time_ns),
            hex::encode(&self.record)
        )
    }

    /// A block's text, checked: every field, the record a seal of the named
    /// chain and seq, its signature valid under the key it names.
    pub fn parse_block(text: &str) -> Result<Witness, Unbelieved> {
        if text.len() > MAX_WITNESS as usize {
            return Err("longer than 16 KiB".into());
        }
        if text.contains('\r') {
            return Err("lines end with LF alone".into());
        }
        let mut lines = text.split('\n');
        if lines.next() != Some(FIRST_LINE) {
            return Err(format!("the first line is not {FIRST_LINE:?}").into());
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .filter(|v| !v.is_empty() && v.trim() == *v && !v.contains(char::is_control))
                .map(str::to_string)
                .ok_or_else(|| format!("expected a line `{name} VALUE`, one space between"))
        };
        let host = field("collector")?;
        if let Err(e) = crate::chain::hostname::check(&host) {
            return Err(format!("collector: {e}").into());
        }
        let genesis = field("genesis")?;
        if !genesis
            .strip_prefix("SHA256:")
            .is_some_and(|h| h.len() == 32 && lower_hex(h))
        {
            return Err("genesis: expected SHA256: and 32 lowercase hex digits".into());
        }
        let seal = field("seal")?;
        let _time = field("time")?;
        let record = field("record")?;
        if !lower_hex(&record) {
            return Err("record: not lowercase hex digits".into());
        }
        let record = hex::decode(&record).ok_or("record: not hex digits")?;
        if lines.any(|l| !l.is_empty()) {
            return Err("text after the record line".into());
        }
        let (chain, seq) = seal
            .split_once(' ')
            .filter(|(c, s)| lower_hex(c) && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(c, s)| Some((chain_id(c)?, s.parse::<u64>().ok()?)))
            .ok_or("seal: expected CHAIN (32 lowercase hex digits) and SEQ (decimal)")?;
        let rec = Record::decode(&record).map_err(|e| format!("record: {e}"))?;
        let Body::Seal {
            signer, signature, ..
        } = &rec.body
        else {
            return Err(format!("record: a {}, not a seal", rec.kind().name()).into());
        };
        if (rec.chain_id, rec.seq) != (chain, seq) {
            return Err(format!(
                "record: seal {} {} where the block says {chain} {seq}",
                rec.chain_id, rec.seq
            )
            .into());
        }
        let signed = keys::seal_message(&record[..record.len() - 64]);
        if !keys::verify(signer, &signed, signature) {
            return Err("record: the seal's signature is not valid under its signer".into());
        }
        Ok(Witness {
            host,
            genesis,
            chain,
            seq,
            time_ns: rec.time_ns,
            record,
        })
    }
}

/// A chain id written as 32 hex digits.
pub fn chain_id(hex_id: &str) -> Option<ChainId> {
    Some(ChainId(hex::decode(hex_id)?.try_into().ok()?))
}

/// True for a non-empty string of lowercase hex digits.
fn lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A block of a real seal (of chain 7…, seq 12).
    fn block() -> Witness {
        let k = keys::SecretKey::from_seed(&[3; 32]);
        let rec = Record {
            chain_id: ChainId([7; 16]),
            seq: 12,
            time_ns: 1,
            body: Body::Seal {
                epoch: 2,
                covers_head: [1; 32],
                signer: k.public(),
                next_pk: [9; 32],
                signature: [0; 64],
            },
        };
        let mut record = rec.encode();
        let n = record.len();
        let sig = k.sign(&keys::seal_message(&record[..n - 64]));
        record[n - 64..].copy_from_slice(&sig);
        Witness {
            host: "collector-a".into(),
            genesis: format!("SHA256:{}", "0f".repeat(16)),
            chain: ChainId([7; 16]),
            seq: 12,
            time_ns: 1,
            record,
        }
    }

    #[test]
    fn a_block_names_a_canonical_host_and_a_fingerprint_or_is_refused() {
        let w = block();
        assert_eq!(Witness::parse_block(&w.text()).unwrap(), w);
        let with = |f: &dyn Fn(&mut Witness)| {
            let mut x = block();
            f(&mut x);
            Witness::parse_block(&x.text()).map(|_| ()).unwrap_err().0
        };
        assert!(with(&|x| x.host = "Collector-A".into()).starts_with("collector:"));
        assert!(with(&|x| x.host = "collector-a.".into()).starts_with("collector:"));
        for g in [
            format!("SHA256:{}", "0F".repeat(16)),
            format!("SHA256:{}", "0f".repeat(15)),
            format!("SHA256:{}", "0f".repeat(100)),
            "0f".repeat(16),
        ] {
            assert!(
                with(&|x| x.genesis = g.clone()).starts_with("genesis:"),
                "{g}"
            );
        }
        assert!(with(&|x| x.seq = 13).contains("where the block says"));
        assert!(with(&|x| x.record[40] ^= 1).contains("signature"));
    }
}
