//! The record model and its canonical encoding (format version 1).
//!
//! Normative description: `docs/FORMAT.md`, "Records". Every record starts with
//! the same header so that a verifier can place it in a chain before it
//! understands the body:
//!
//! ```text
//! version:u8 = 1 | kind:u8 | chain_id:[16] | seq:u64 | time_ns:i64 | body
//! ```
//!
//! Encoding is deterministic (one byte string per record value) and decoding is
//! strict: unknown kinds, unknown flag bits, invalid UTF-8 and trailing bytes are
//! errors. The hash chain commits to these exact bytes.

use super::codec::{Dec, DecodeError, Enc};
use std::fmt;

/// The record format version written by this implementation.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the fixed record header.
pub const HEADER_LEN: usize = 1 + 1 + 16 + 8 + 8;

/// Random 128-bit identifier of one chain.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ChainId(pub [u8; 16]);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({self})")
    }
}

wire_enum! {
    /// Record kind byte.
    pub enum Kind: u8, from_u8 {
        /// First record of a chain (seq 0).
        Genesis = 1 => "genesis",
        /// One received log event.
        Event = 2 => "event",
        /// A signature over the chain head, naming the next public key.
        Seal = 3 => "seal",
        /// An account of events that were not chained.
        Loss = 4 => "loss",
        /// Agent start, recovery, clean shutdown.
        Lifecycle = 5 => "lifecycle",
    }
}

wire_enum! {
    /// Where an event (or a loss) came from.
    pub enum Source: u8, from_u8 {
        /// Lines read by `logseal stamp` from standard input.
        Stdin = 1 => "stdin",
        /// Syslog over UDP.
        SyslogUdp = 2 => "syslog-udp",
        /// Syslog over TCP.
        SyslogTcp = 3 => "syslog-tcp",
        /// Syslog over TLS (RFC 5425).
        SyslogTls = 4 => "syslog-tls",
        /// Syslog over a unix socket.
        SyslogUnix = 5 => "syslog-unix",
        /// The systemd journal.
        Journald = 6 => "journald",
        /// The agent itself (e.g. a loss it noticed internally).
        Agent = 7 => "agent",
        /// A collector's checkpoint of the chains it holds, in its own chain
        /// ([`crate::checkpoint`]).
        Checkpoint = 8 => "checkpoint",
    }
}

wire_enum! {
    /// Why a chain was started (Genesis `origin`).
    pub enum Origin: u8, from_u8 {
        /// No earlier chain of this host was known.
        Fresh = 0 => "fresh",
        /// An earlier chain existed but its signer state was missing, unreadable or
        /// did not match the log; this chain replaces it.
        StateLost = 1 => "state-lost",
        /// The operator asked for a new chain while the old one was intact.
        Successor = 2 => "successor",
    }
}

/// The last known position of an earlier chain, named by a Genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predecessor {
    /// The earlier chain.
    pub chain_id: ChainId,
    /// Its last record known when this chain began.
    pub last_seq: u64,
    /// Its head after that record.
    pub head: [u8; 32],
}

wire_enum! {
    /// Why events were lost.
    pub enum LossReason: u8, from_u8 {
        /// The UDP receive buffer overflowed.
        UdpOverrun = 1 => "udp-overrun",
        /// The spool was full and the input could not be slowed down.
        SpoolFull = 2 => "spool-full",
        /// The source itself reports a gap (e.g. a journald seqnum jump).
        SourceGap = 3 => "source-gap",
        /// An input failed in a way that lost data.
        InputError = 4 => "input-error",
        /// Writing the spool failed (a full disk, an I/O error): the events
        /// were received but never became durable. (Earlier versions
        /// recorded such losses as `spool-full`.)
        WriteFailed = 5 => "write-failed",
    }
}

wire_enum! {
    /// What a Lifecycle record marks.
    pub enum LifecycleEvent: u8, from_u8 {
        /// The writer started again after a clean shutdown.
        Start = 1 => "start",
        /// The writer started again after an unclean stop (crash, kill, power loss).
        Recovered = 2 => "recovered",
        /// The writer is shutting down cleanly; a seal follows.
        Shutdown = 3 => "shutdown",
    }
}

/// Event flag: the payload was truncated to the maximum message size.
pub const FLAG_TRUNCATED: u8 = 0x01;
/// Event flag: the payload could not be parsed as syslog (it is chained anyway).
pub const FLAG_UNPARSED: u8 = 0x02;
const FLAGS_KNOWN: u8 = FLAG_TRUNCATED | FLAG_UNPARSED;

/// The payload of an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Raw bytes exactly as received (syslog, stdin lines).
    Raw(&'a [u8]),
    /// A journald entry: every field in order, names are UTF-8, values any bytes.
    Fields(Vec<(&'a str, &'a [u8])>),
}

/// The kind-specific part of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// See [`Kind::Genesis`].
    Genesis {
        /// Host name the chain belongs to.
        host: &'a str,
        /// Writer name and version, e.g. `logseal 0.1.0`.
        agent: &'a str,
        /// The epoch-0 public key.
        pk0: [u8; 32],
        /// Why the chain started.
        origin: Origin,
        /// The earlier chain, where known.
        predecessor: Option<Predecessor>,
        /// Free text for a responder (e.g. what state was missing).
        note: &'a str,
    },
    /// See [`Kind::Event`].
    Event {
        /// Input the event came from.
        source: Source,
        /// `FLAG_*` bits.
        flags: u8,
        /// Peer address or other origin detail (may be empty).
        peer: &'a str,
        /// Length before truncation, present iff `FLAG_TRUNCATED`.
        original_len: Option<u64>,
        /// The event itself.
        payload: Payload<'a>,
    },
    /// See [`Kind::Seal`].
    Seal {
        /// Key epoch `j`; the seal is signed by `sk_j`.
        epoch: u64,
        /// Chain head after the record just before this seal.
        covers_head: [u8; 32],
        /// `pk_j`, the key that made `signature`.
        signer: [u8; 32],
        /// `pk_{j+1}`, the key of the next seal.
        next_pk: [u8; 32],
        /// Ed25519 signature, see [`seal_message`](super::seal_message).
        signature: [u8; 64],
    },
    /// See [`Kind::Loss`].
    Loss {
        /// Input that lost events.
        source: Source,
        /// Why.
        reason: LossReason,
        /// How many events (or entries) were lost.
        count: u64,
        /// Time of the first loss, ns since the Unix epoch.
        first_ns: i64,
        /// Time of the last loss, ns since the Unix epoch.
        last_ns: i64,
        /// Free text detail.
        detail: &'a str,
    },
    /// See [`Kind::Lifecycle`].
    Lifecycle {
        /// What happened.
        event: LifecycleEvent,
        /// Writer name and version.
        agent: &'a str,
        /// Bytes of a torn tail discarded at recovery (0 otherwise).
        dropped_bytes: u64,
        /// Free text detail.
        detail: &'a str,
    },
}

/// One record of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Chain the record belongs to.
    pub chain_id: ChainId,
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// Wall-clock time the record was made (receive time for events), ns since
    /// the Unix epoch, UTC. Informational: never used for ordering.
    pub time_ns: i64,
    /// The kind-specific part.
    pub body: Body<'a>,
}

impl<'a> Record<'a> {
    /// The record's kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Genesis { .. } => Kind::Genesis,
            Body::Event { .. } => Kind::Event,
            Body::Seal { .. } => Kind::Seal,
            Body::Loss { .. } => Kind::Loss,
            Body::Lifecycle { .. } => Kind::Lifecycle,
        }
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        e.u8(FORMAT_VERSION);
        e.u8(self.kind() as u8);
        e.fixed(&self.chain_id.0);
        e.u64(self.seq);
        e.i64(self.time_ns);
        match &self.body {
            Body::Genesis {
                host,
                agent,
                pk0,
                origin,
                predecessor,
                note,
            } => {
                e.str(host);
                e.str(agent);
                e.fixed(pk0);
                e.u8(*origin as u8);
                match predecessor {
                    None => e.u8(0),
                    Some(p) => {
                        e.u8(1);
                        e.fixed(&p.chain_id.0);
                        e.u64(p.last_seq);
                        e.fixed(&p.head);
                    }
                }
                e.str(note);
            }
            Body::Event {
                source,
                flags,
                peer,
                original_len,
                payload,
            } => {
                // Keep the truncation flag and the length field consistent by construction.
                let flags = match original_len {
                    Some(_) => flags | FLAG_TRUNCATED,
                    None => flags & !FLAG_TRUNCATED,
                };
                e.u8(*source as u8);
                e.u8(flags);
                e.str(peer);
                if let Some(n) = original_len {
                    e.u64(*n);
                }
                match payload {
                    Payload::Raw(b) => {
                        e.u8(0);
                        e.bytes(b);
                    }
                    Payload::Fields(fields) => {
                        e.u8(1);
                        e.u32(fields.len() as u32);
                        for (name, value) in fields {
                            e.str(name);
                            e.bytes(value);
                        }
                    }
                }
            }
            Body::Seal {
                epoch,
                covers_head,
                signer,
                next_pk,
                signature,
            } => {
                e.u64(*epoch);
                e.fixed(covers_head);
                e.fixed(signer);
                e.fixed(next_pk);
                e.fixed(signature);
            }
            Body::Loss {
                source,
                reason,
                count,
                first_ns,
                last_ns,
                detail,
            } => {
                e.u8(*source as u8);
                e.u8(*reason as u8);
                e.u64(*count);
                e.i64(*first_ns);
                e.i64(*last_ns);
                e.str(detail);
            }
            Body::Lifecycle {
                event,
                agent,
                dropped_bytes,
                detail,
            } => {
                e.u8(*event as u8);
                e.str(agent);
                e.u64(*dropped_bytes);
                e.str(detail);
            }
        }
    }

    /// The canonical encoding as a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128);
        self.encode_into(&mut v);
        v
    }

    /// Decodes one record, strictly.
    pub fn decode(buf: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        let mut d = Dec::new(buf);
        let (kind, chain_id, seq, time_ns) = decode_header(&mut d)?;
        let body = match kind {
            Kind::Genesis => {
                let host = d.str()?;
                let agent = d.str()?;
                let pk0 = d.array()?;
                let origin = Origin::from_u8(d.u8()?).ok_or(d.err("unknown genesis origin"))?;
                let predecessor = match d.u8()? {
                    0 => None,
                    1 => Some(Predecessor {
                        chain_id: ChainId(d.array()?),
                        last_seq: d.u64()?,
                        head: d.array()?,
                    }),
                    _ => return Err(d.err("predecessor flag is neither 0 nor 1")),
                };
                let note = d.str()?;
                Body::Genesis {
                    host,
                    agent,
                    pk0,
                    origin,
                    predecessor,
                    note,
                }
            }
            Kind::Event => {
                let source = Source::from_u8(d.u8()?).ok_or(d.err("unknown event source"))?;
                let flags = d.u8()?;
                if flags & !FLAGS_KNOWN != 0 {
                    return Err(d.err("unknown event flag bits"));
                }
                let peer = d.str()?;
                let original_len = if flags & FLAG_TRUNCATED != 0 {
                    Some(d.u64()?)
                } else {
                    None
                };
                let payload = match d.u8()? {
                    0 => Payload::Raw(d.bytes()?),
                    1 => {
                        let n = d.u32()? as usize;
                        // Each field needs at least 8 bytes: bound the allocation by the input.
                        let mut fields = Vec::with_capacity(n.min(buf.len() / 8));
                        for _ in 0..n {
                            let name = d.str()?;
                            let value = d.bytes()?;
                            fields.push((name, value));
                        }
                        Payload::Fields(fields)
                    }
                    _ => return Err(d.err("unknown event payload format")),
                };
                Body::Event {
                    source,
                    flags,
                    peer,
                    original_len,
                    payload,
                }
            }
            Kind::Seal => Body::Seal {
                epoch: d.u64()?,
                covers_head: d.array()?,
                signer: d.array()?,
                next_pk: d.array()?,
                signature: d.array()?,
            },
            Kind::Loss => Body::Loss {
                source: Source::from_u8(d.u8()?).ok_or(d.err("unknown loss source"))?,
                reason: LossReason::from_u8(d.u8()?).ok_or(d.err("unknown loss reason"))?,
                count: d.u64()?,
                first_ns: d.i64()?,
                last_ns: d.i64()?,
                detail: d.str()?,
            },
            Kind::Lifecycle => Body::Lifecycle {
                event: LifecycleEvent::from_u8(d.u8()?).ok_or(d.err("unknown lifecycle event"))?,
                agent: d.str()?,
                dropped_bytes: d.u64()?,
                detail: d.str()?,
            },
        };
        d.finish()?;
        Ok(Record {
            chain_id,
            seq,
            time_ns,
            body,
        })
    }
}

fn decode_header(d: &mut Dec<'_>) -> Result<(Kind, ChainId, u64, i64), DecodeError> {
    let version = d.u8()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError {
            at: 0,
            reason: "unsupported record format version",
        });
    }
    let kind = Kind::from_u8(d.u8()?).ok_or(DecodeError {
        at: 1,
        reason: "unknown record kind",
    })?;
    Ok((kind, ChainId(d.array()?), d.u64()?, d.i64()?))
}

/// The fixed header of a record, readable even when the body is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Record kind.
    pub kind: Kind,
    /// Chain.
    pub chain_id: ChainId,
    /// Sequence number.
    pub seq: u64,
    /// Record time, ns since the Unix epoch.
    pub time_ns: i64,
}

/// Decodes only the header of an encoded record.
pub fn decode_header_only(buf: &[u8]) -> Result<Header, DecodeError> {
    let mut d = Dec::new(buf);
    let (kind, chain_id, seq, time_ns) = decode_header(&mut d)?;
    debug_assert_eq!(d.pos(), HEADER_LEN);
    Ok(Header {
        kind,
        chain_id,
        seq,
        time_ns,
    })
}
