//! The tip of a chain as a receiver holds it: enough state to check that the
//! next records continue it (links, seals, key chain), and nothing more.
//!
//! Unlike [`Verifier`](super::verify::Verifier), which reads damaged input and
//! reports every finding, a [`Tip`] is strict: the first record that does not
//! continue the chain is refused with the reason, and the tip is unchanged
//! (the caller applies a batch to a copy and keeps the copy only if every
//! record was accepted). The collector holds one per chain.

use super::hash::{self, Digest, ZERO_HEAD};
use super::record::{Body, ChainId, LifecycleEvent, Record};
use super::seal;

/// Why a record does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The record cannot be decoded.
    #[error("record at seq {seq} cannot be decoded: {reason}")]
    Malformed {
        /// Seq expected at this position.
        seq: u64,
        /// What was wrong.
        reason: String,
    },
    /// The record belongs to another chain.
    #[error("record for chain {got} in a batch of chain {chain}")]
    ForeignChain {
        /// This chain.
        chain: ChainId,
        /// The record's chain.
        got: ChainId,
    },
    /// The record's seq is not the next one.
    #[error("expected seq {expected}, got seq {got}")]
    OutOfOrder {
        /// Seq expected.
        expected: u64,
        /// Seq found.
        got: u64,
    },
    /// A chain must begin with its Genesis (seq 0).
    #[error("a new chain must start with its Genesis record at seq 0 (got a {kind} record at seq {seq})")]
    NoGenesis {
        /// Seq of the first record.
        seq: u64,
        /// Its kind.
        kind: &'static str,
    },
    /// The Genesis names another host than the one expected.
    #[error("the Genesis names host {got:?}, expected {expected:?}")]
    WrongHost {
        /// Host expected.
        expected: String,
        /// Host named.
        got: String,
    },
    /// A second Genesis.
    #[error("Genesis record at seq {seq} inside an existing chain")]
    UnexpectedGenesis {
        /// Its seq.
        seq: u64,
    },
    /// A seal's epoch is not the next one.
    #[error("seal at seq {seq} claims epoch {epoch}, the key chain is at epoch {expected}")]
    EpochMismatch {
        /// Seq of the seal.
        seq: u64,
        /// Claimed epoch.
        epoch: u64,
        /// Expected epoch.
        expected: u64,
    },
    /// A seal signed by a key the key chain does not name.
    #[error("seal at seq {seq} is signed by key {signer}, the key chain names {expected}")]
    KeyNotInChain {
        /// Seq of the seal.
        seq: u64,
        /// Fingerprint of the signer it names.
        signer: String,
        /// Fingerprint of the expected key.
        expected: String,
    },
    /// A seal's signature does not verify.
    #[error("seal at seq {seq}: the signature does not verify")]
    BadSignature {
        /// Seq of the seal.
        seq: u64,
    },
    /// A seal names as next key a key already used (forward security lost).
    #[error("seal at seq {seq} names as next key the key of epoch {first_epoch}: a key must never be used twice")]
    KeyReused {
        /// Seq of the seal.
        seq: u64,
        /// The epoch that key already signed.
        first_epoch: u64,
    },
    /// A seal signs a head other than the chain's: a record before it was altered.
    #[error("seal at seq {seq} signs a head that differs from the chain's: a record since seq {since} was altered, inserted or removed")]
    BadLink {
        /// Seq of the seal.
        seq: u64,
        /// First record after the previous seal.
        since: u64,
    },
}

/// The receiver's state of one chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tip {
    /// The chain.
    pub chain_id: ChainId,
    /// Host named by its Genesis.
    pub host: String,
    /// Epoch-0 public key (from the Genesis).
    pub pk0: [u8; 32],
    /// Seq the next record must have.
    pub next_seq: u64,
    /// Head after the last accepted record.
    pub head: Digest,
    /// Key the next seal must be signed by.
    pub key: [u8; 32],
    /// Epoch of the next seal.
    pub epoch: u64,
    /// Seq of the last seal, if any.
    pub last_seal_seq: Option<u64>,
    /// Time (ns) of the last seal, if any.
    pub last_seal_ns: Option<i64>,
    /// Time (ns) of the last record.
    pub last_time_ns: i64,
    /// The last records were a clean shutdown and its seal.
    pub ended_cleanly: bool,
    last_was_shutdown: bool,
}

impl Tip {
    /// The tip of a chain before its Genesis: the next record must be the
    /// Genesis (seq 0) of `chain_id`, naming `host`.
    pub fn before_genesis(chain_id: ChainId, host: &str) -> Tip {
        Tip {
            chain_id,
            host: host.to_string(),
            pk0: [0; 32],
            next_seq: 0,
            head: ZERO_HEAD,
            key: [0; 32],
            epoch: 0,
            last_seal_seq: None,
            last_seal_ns: None,
            last_time_ns: 0,
            ended_cleanly: false,
            last_was_shutdown: false,
        }
    }

    /// Starts a tip from a chain's Genesis record (`leaf` is its leaf hash),
    /// whatever host and chain it names.
    pub fn from_genesis(rec: &[u8], leaf: &Digest) -> Result<Tip, Refusal> {
        let r = Record::decode(rec).map_err(|e| Refusal::Malformed {
            seq: 0,
            reason: e.to_string(),
        })?;
        let host = match r.body {
            Body::Genesis { host, .. } => host,
            _ => "",
        };
        let mut t = Tip::before_genesis(r.chain_id, host);
        t.apply(rec, leaf)?;
        Ok(t)
    }

    /// Accepts the record if it continues the chain; on refusal `self` is unchanged.
    pub fn apply(&mut self, rec: &[u8], leaf: &Digest) -> Result<(), Refusal> {
        let r = Record::decode(rec).map_err(|e| Refusal::Malformed {
            seq: self.next_seq,
            reason: e.to_string(),
        })?;
        if r.chain_id != self.chain_id {
            return Err(Refusal::ForeignChain {
                chain: self.chain_id,
                got: r.chain_id,
            });
        }
        if r.seq != self.next_seq {
            return Err(Refusal::OutOfOrder {
                expected: self.next_seq,
                got: r.seq,
            });
        }
        let was_shutdown = self.last_was_shutdown;
        let mut shutdown = false;
        let mut clean = false;
        match &r.body {
            Body::Genesis { host, pk0, .. } if self.next_seq == 0 => {
                if *host != self.host {
                    return Err(Refusal::WrongHost {
                        expected: self.host.clone(),
                        got: (*host).to_string(),
                    });
                }
                self.pk0 = *pk0;
                self.key = *pk0;
            }
            Body::Genesis { .. } => return Err(Refusal::UnexpectedGenesis { seq: r.seq }),
            _ if self.next_seq == 0 => {
                return Err(Refusal::NoGenesis {
                    seq: r.seq,
                    kind: r.kind().name(),
                })
            }
            Body::Seal { .. } => {
                let fields =
                    seal::SealFields::of(&r.body, rec).ok_or_else(|| Refusal::Malformed {
                        seq: r.seq,
                        reason: "a seal shorter than its signature".into(),
                    })?;
                let at = seal::KeyPosition {
                    key: self.key,
                    epoch: self.epoch,
                };
                // The tip keeps no history of keys: a next key equal to the
                // signer is refused here, a repeat of an older epoch's key by
                // `logseal verify` (docs/FORMAT.md §4.5).
                match seal::check(at, &fields, |_| None) {
                    Ok(()) => {}
                    Err(seal::SealFault::EpochMismatch { expected }) => {
                        return Err(Refusal::EpochMismatch {
                            seq: r.seq,
                            epoch: fields.epoch,
                            expected,
                        })
                    }
                    Err(seal::SealFault::KeyNotInChain) => {
                        return Err(Refusal::KeyNotInChain {
                            seq: r.seq,
                            signer: hash::fingerprint(fields.signer),
                            expected: hash::fingerprint(&self.key),
                        })
                    }
                    Err(seal::SealFault::BadSignature) => {
                        return Err(Refusal::BadSignature { seq: r.seq })
                    }
                    Err(seal::SealFault::KeyReused { first_epoch }) => {
                        return Err(Refusal::KeyReused {
                            seq: r.seq,
                            first_epoch,
                        })
                    }
                }
                if *fields.covers_head != self.head {
                    return Err(Refusal::BadLink {
                        seq: r.seq,
                        since: self.last_seal_seq.map_or(0, |s| s + 1),
                    });
                }
                self.key = *fields.next_pk;
                self.epoch = self.epoch.saturating_add(1);
                self.last_seal_seq = Some(r.seq);
                self.last_seal_ns = Some(r.time_ns);
                clean = was_shutdown;
            }
            Body::Lifecycle { event, .. } => shutdown = *event == LifecycleEvent::Shutdown,
            Body::Event { .. } | Body::Loss { .. } => {}
        }
        self.last_was_shutdown = shutdown;
        self.ended_cleanly = clean;
        self.head = hash::head(&self.head, r.kind() as u8, leaf);
        self.next_seq = self.next_seq.saturating_add(1);
        self.last_time_ns = r.time_ns;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::{Origin, Source};
    use crate::{keys, SecretKey};

    fn chain(n: u64) -> Vec<Vec<u8>> {
        let id = ChainId([7; 16]);
        let sk = SecretKey::from_seed(&[1; 32]);
        let sk1 = SecretKey::from_seed(&[2; 32]);
        let mut out = vec![Record {
            chain_id: id,
            seq: 0,
            time_ns: 1,
            body: Body::Genesis {
                host: "h",
                agent: "t",
                pk0: sk.public(),
                origin: Origin::Fresh,
                predecessor: None,
                note: "",
            },
        }
        .encode()];
        let mut head = hash::head(&ZERO_HEAD, 1, &hash::leaf(&out[0]));
        for seq in 1..n {
            let rec = Record {
                chain_id: id,
                seq,
                time_ns: 2,
                body: Body::Event {
                    source: Source::Stdin,
                    flags: 0,
                    peer: "",
                    original_len: None,
                    payload: crate::record::Payload::Raw(b"x"),
                },
            }
            .encode();
            head = hash::head(&head, 2, &hash::leaf(&rec));
            out.push(rec);
        }
        let mut seal = Record {
            chain_id: id,
            seq: n,
            time_ns: 3,
            body: Body::Seal {
                epoch: 0,
                covers_head: head,
                signer: sk.public(),
                next_pk: sk1.public(),
                signature: [0; 64],
            },
        }
        .encode();
        let l = seal.len();
        let sig = sk.sign(&keys::seal_message(&seal[..l - 64]));
        seal[l - 64..].copy_from_slice(&sig);
        out.push(seal);
        out
    }

    fn run(recs: &[Vec<u8>]) -> Result<Tip, Refusal> {
        let mut t = Tip::from_genesis(&recs[0], &hash::leaf(&recs[0]))?;
        for r in &recs[1..] {
            t.apply(r, &hash::leaf(r))?;
        }
        Ok(t)
    }

    #[test]
    fn accepts_a_sealed_chain() {
        let t = run(&chain(5)).unwrap();
        assert_eq!(t.next_seq, 6);
        assert_eq!(t.epoch, 1);
        assert_eq!(t.last_seal_seq, Some(5));
    }

    #[test]
    fn altered_event_fails_at_the_seal() {
        let mut c = chain(5);
        let last = c[2].len() - 1;
        c[2][last] ^= 1;
        assert_eq!(run(&c).unwrap_err(), Refusal::BadLink { seq: 5, since: 0 });
    }

    #[test]
    fn gap_and_forged_seal_are_refused() {
        let mut c = chain(5);
        c.remove(3);
        assert!(matches!(
            run(&c).unwrap_err(),
            Refusal::OutOfOrder {
                expected: 3,
                got: 4
            }
        ));
        let mut c = chain(5);
        let n = c[5].len();
        c[5][n - 1] ^= 1;
        assert_eq!(run(&c).unwrap_err(), Refusal::BadSignature { seq: 5 });
    }

    #[test]
    fn refusal_leaves_the_tip_unchanged() {
        let c = chain(3);
        let mut t = Tip::from_genesis(&c[0], &hash::leaf(&c[0])).unwrap();
        t.apply(&c[1], &hash::leaf(&c[1])).unwrap();
        let before = t.clone();
        assert!(t.apply(&c[3], &hash::leaf(&c[3])).is_err());
        assert_eq!(t, before);
        assert!(t.apply(&c[0], &hash::leaf(&c[0])).is_err());
        assert_eq!(t, before);
    }
}
