//! The verifier: a streaming state machine over frames, with no I/O.
//!
//! Normative algorithm: `docs/FORMAT.md`, "Verification". Feed it the items of
//! one or more segment files in order ([`Verifier::begin_file`], [`Verifier::frame`],
//! [`Verifier::damage`]); [`Verifier::finish`] returns a [`Report`] with, per chain,
//! a [`Verdict`] and every [`Problem`] found, each carrying its evidence.
//!
//! Memory is bounded: per chain a few digests and counters, a window of recent
//! leaves for duplicate detection, and at most [`MAX_PROBLEMS`] problems.
//!
//! After a problem inside a seal interval the running head is unknown; the next
//! seal whose signature is valid under the expected key re-anchors the head, so
//! one damaged record yields one finding instead of a cascade.

use super::hash::{self, Digest, ZERO_HEAD};
use super::keys;
use super::record::{Body, ChainId, Kind, LifecycleEvent, Origin, Record};
use crate::hex;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};

/// Problems kept per chain; later ones are only counted.
pub const MAX_PROBLEMS: usize = 1000;
const DUP_WINDOW: usize = 4096;
const GAP_WINDOW: usize = 1024;
/// Public keys remembered per chain to name the epoch of a misused key.
const MAX_KEYS: usize = 1 << 20;

/// Where in the input a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Index of the file (in the order given to the verifier).
    pub file: usize,
    /// Byte offset of the frame in that file.
    pub offset: u64,
}

/// One integrity finding, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// The records since the previous seal do not hash to the head this seal signed:
    /// one of them (or the seal's head) was altered.
    BadLink {
        /// Seq of the seal.
        seal_seq: u64,
        /// First record of the interval the seal covers.
        first_seq: u64,
        /// Last record of that interval.
        last_seq: u64,
    },
    /// A seal's signature does not verify under its key.
    BadSignature {
        /// First record of the interval the seal would cover (now unvouched for).
        first_seq: u64,
        /// Seq of the seal.
        seq: u64,
        /// Its epoch.
        epoch: u64,
    },
    /// A seal is signed by a key that is not the one the key chain names for its epoch.
    KeyNotInChain {
        /// First record of the interval the seal would cover (now unvouched for).
        first_seq: u64,
        /// Seq of the seal.
        seq: u64,
        /// Its epoch.
        epoch: u64,
        /// Fingerprint of the key the seal names as signer.
        signer: String,
        /// Fingerprint of the key the key chain expects.
        expected: String,
        /// If the signer is a key of a *later* epoch of this chain (a past seal
        /// re-signed with a stolen current key), that epoch.
        #[serde(skip_serializing_if = "Option::is_none")]
        signer_epoch: Option<u64>,
    },
    /// A seal's epoch is not the next epoch of the key chain.
    EpochMismatch {
        /// Seq of the seal.
        seq: u64,
        /// Epoch it claims.
        epoch: u64,
        /// Epoch expected.
        expected_epoch: u64,
    },
    /// Records are missing: the seq jumps forward.
    Gap {
        /// Seq expected here.
        expected_seq: u64,
        /// Seq found.
        got_seq: u64,
        /// Number of missing records.
        missing: u64,
    },
    /// A record appears after records with higher seqs.
    Reorder {
        /// Seq of the record.
        seq: u64,
        /// Seq that was expected at this position.
        expected_seq: u64,
    },
    /// A record appears a second time (same seq, same bytes).
    Duplicate {
        /// Seq of the record.
        seq: u64,
    },
    /// A record with a seq already used by a different record.
    Conflict {
        /// Seq of the record.
        seq: u64,
    },
    /// Bytes that are not a valid frame (checksum mismatch or bad length), with
    /// valid frames after them.
    TornRecord {
        /// Seq expected at this position.
        expected_seq: u64,
        /// Bytes skipped to the next valid frame.
        skipped_bytes: u64,
        /// What was wrong.
        reason: String,
    },
    /// A frame with a valid checksum whose record cannot be decoded.
    Malformed {
        /// Seq expected at this position.
        expected_seq: u64,
        /// What was wrong.
        reason: String,
    },
    /// The file ends inside a frame.
    TruncatedTail {
        /// Seq expected at this position.
        expected_seq: u64,
        /// Bytes of the incomplete frame.
        bytes: u64,
        /// What was wrong.
        reason: String,
    },
    /// Records after the last seal: nothing vouches for them.
    UnsealedTail {
        /// First unsealed record.
        first_seq: u64,
        /// Last unsealed record.
        last_seq: u64,
        /// How many.
        count: u64,
    },
    /// A record of another chain in the middle of this one.
    ForeignChain {
        /// Its seq (in its own chain).
        seq: u64,
        /// Its chain id.
        chain: String,
    },
    /// The chain's records start without its Genesis.
    MissingGenesis {
        /// First seq seen.
        first_seq: u64,
    },
    /// A Genesis record at a seq other than 0, or a second Genesis.
    UnexpectedGenesis {
        /// Its seq.
        seq: u64,
    },
    /// The genesis key is not among the trusted keys given.
    UntrustedGenesis {
        /// Fingerprint of the genesis key.
        fingerprint: String,
    },
    /// A redacted frame that cannot stand in for its record.
    BadRedaction {
        /// Its seq.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl Problem {
    /// The seq range this problem points at (for tests and summaries).
    pub fn seqs(&self) -> (u64, u64) {
        use Problem::*;
        match *self {
            BadLink {
                first_seq,
                seal_seq,
                ..
            } => (first_seq, seal_seq),
            BadSignature { first_seq, seq, .. } | KeyNotInChain { first_seq, seq, .. } => {
                (first_seq, seq)
            }
            EpochMismatch { seq, .. }
            | Reorder { seq, .. }
            | Duplicate { seq }
            | Conflict { seq }
            | ForeignChain { seq, .. }
            | UnexpectedGenesis { seq }
            | BadRedaction { seq, .. } => (seq, seq),
            Gap {
                expected_seq,
                got_seq,
                ..
            } => (expected_seq, got_seq.saturating_sub(1)),
            TornRecord { expected_seq, .. }
            | Malformed { expected_seq, .. }
            | TruncatedTail { expected_seq, .. } => (expected_seq, expected_seq),
            UnsealedTail {
                first_seq,
                last_seq,
                ..
            } => (first_seq, last_seq),
            MissingGenesis { first_seq } => (0, first_seq),
            UntrustedGenesis { .. } => (0, 0),
        }
    }

    /// The kebab-case name of the problem kind.
    pub fn name(&self) -> &'static str {
        use Problem::*;
        match self {
            BadLink { .. } => "bad-link",
            BadSignature { .. } => "bad-signature",
            KeyNotInChain { .. } => "key-not-in-chain",
            EpochMismatch { .. } => "epoch-mismatch",
            Gap { .. } => "gap",
            Reorder { .. } => "reorder",
            Duplicate { .. } => "duplicate",
            Conflict { .. } => "conflict",
            TornRecord { .. } => "torn-record",
            Malformed { .. } => "malformed",
            TruncatedTail { .. } => "truncated-tail",
            UnsealedTail { .. } => "unsealed-tail",
            ForeignChain { .. } => "foreign-chain",
            MissingGenesis { .. } => "missing-genesis",
            UnexpectedGenesis { .. } => "unexpected-genesis",
            UntrustedGenesis { .. } => "untrusted-genesis",
            BadRedaction { .. } => "bad-redaction",
        }
    }
}

/// A problem and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The problem and its evidence.
    #[serde(flatten)]
    pub problem: Problem,
    /// Where (absent for problems about the chain as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
}

/// The verdict on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every record is linked, every seal verifies, the key chain is unbroken
    /// and every record is covered by a seal.
    Intact,
    /// At least one problem was found.
    Broken,
}

/// How the genesis key of a chain was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The genesis key is one of the trusted keys given to the verifier.
    Trusted,
    /// No trust anchor was given: the genesis key was taken from the data itself.
    FromData,
    /// The genesis key is not among the trusted keys.
    Untrusted,
    /// No genesis record was seen.
    None,
}

/// Per-chain result.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Chain id (hex).
    pub chain: String,
    /// Host named in the Genesis.
    pub host: Option<String>,
    /// Genesis origin (`fresh`, `state-lost`, `successor`).
    pub origin: Option<String>,
    /// Predecessor chain named by the Genesis, `CHAIN@SEQ`.
    pub predecessor: Option<String>,
    /// Genesis public key (hex).
    pub genesis_key: Option<String>,
    /// Its fingerprint.
    pub genesis_fingerprint: Option<String>,
    /// How the genesis key was established.
    pub anchor: Anchor,
    /// Records read (including duplicates and foreign records skipped).
    pub records: u64,
    /// Event records.
    pub events: u64,
    /// Seal records.
    pub seals: u64,
    /// Loss records.
    pub losses: u64,
    /// Events reported lost by Loss records.
    pub lost_events: u64,
    /// Key epochs completed (the next seal's epoch).
    pub epochs: u64,
    /// Lowest seq seen.
    pub first_seq: Option<u64>,
    /// Highest seq seen.
    pub last_seq: Option<u64>,
    /// Seq of the last seal.
    pub last_seal_seq: Option<u64>,
    /// Earliest record time, ns since the Unix epoch.
    pub first_time_ns: Option<i64>,
    /// Latest record time.
    pub last_time_ns: Option<i64>,
    /// Head after the last record (hex), if it could be computed.
    pub head: Option<String>,
    /// True if the chain ends with a clean-shutdown Lifecycle record and its seal.
    pub ended_cleanly: bool,
    /// Records that were redacted (leaf only).
    pub redacted: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Problems, in the order found.
    pub problems: Vec<Finding>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_not_listed: u64,
    /// The input is an agent's spool trimmed after acknowledgement: the chain
    /// starts here at this seq, its earlier records are at the collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trimmed_from: Option<u64>,
    /// Records (first, last seq) of a trimmed start that precede its first seal
    /// and cannot be checked from this input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<(u64, u64)>,
}

/// Problems not attributable to any chain (e.g. damage before the first record).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per chain, in order of first appearance.
    pub chains: Vec<ChainReport>,
    /// Findings outside any chain.
    pub unattributed: Vec<Finding>,
    /// True if trust anchors were given.
    pub trust_anchors: bool,
}

impl Report {
    /// True if every chain is intact and nothing unattributed was found.
    pub fn intact(&self) -> bool {
        self.unattributed.is_empty() && self.chains.iter().all(|c| c.verdict == Verdict::Intact)
    }
}

#[derive(Default)]
struct GapInfo {
    start: u64,
    end: u64, // exclusive
    filled: u64,
    finding: usize,
}

struct Chain {
    id: ChainId,
    host: Option<String>,
    origin: Option<Origin>,
    predecessor: Option<String>,
    pk0: Option<[u8; 32]>,
    anchor: Anchor,
    next_seq: u64,
    /// Running head; `None` while unknown after a problem.
    head: Option<Digest>,
    /// Next seal's epoch and the key expected to sign it (`None`: unknown).
    epoch: u64,
    key: Option<[u8; 32]>,
    /// Every public key of the key chain so far, by epoch (32 bytes each).
    keys: HashMap<[u8; 32], u64>,
    records: u64,
    events: u64,
    seals: u64,
    losses: u64,
    lost_events: u64,
    redacted: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    last_seal_seq: Option<u64>,
    first_time: Option<i64>,
    last_time: Option<i64>,
    /// First record after the last seal, and how many since.
    unsealed_from: Option<u64>,
    unsealed: u64,
    last_shutdown: bool,
    ended_cleanly: bool,
    recent: VecDeque<(u64, Digest)>,
    gaps: VecDeque<GapInfo>,
    /// Damage just seen: the next record's forward jump is attributed to it.
    pending_damage: Option<usize>,
    findings: Vec<Finding>,
    not_listed: u64,
    /// Seals signed by a key other than the expected one: resolved against
    /// later epochs' keys at the end.
    foreign_signers: Vec<(usize, [u8; 32])>,
    /// The chain starts in a trimmed spool at this seq (see [`Verifier::begin_trimmed_file`]).
    trimmed_from: Option<u64>,
    /// Records of a trimmed start before its first seal: not checkable here.
    unchecked: Option<(u64, u64)>,
}

impl Chain {
    fn new(id: ChainId) -> Chain {
        Chain {
            id,
            host: None,
            origin: None,
            predecessor: None,
            pk0: None,
            anchor: Anchor::None,
            next_seq: 0,
            head: Some(ZERO_HEAD),
            epoch: 0,
            key: None,
            keys: HashMap::new(),
            records: 0,
            events: 0,
            seals: 0,
            losses: 0,
            lost_events: 0,
            redacted: 0,
            first_seq: None,
            last_seq: None,
            last_seal_seq: None,
            first_time: None,
            last_time: None,
            unsealed_from: None,
            unsealed: 0,
            last_shutdown: false,
            ended_cleanly: false,
            recent: VecDeque::with_capacity(DUP_WINDOW),
            gaps: VecDeque::new(),
            pending_damage: None,
            findings: Vec::new(),
            not_listed: 0,
            foreign_signers: Vec::new(),
            trimmed_from: None,
            unchecked: None,
        }
    }

    fn report(&mut self, problem: Problem, at: Option<Location>) -> Option<usize> {
        if self.findings.len() >= MAX_PROBLEMS {
            self.not_listed += 1;
            return None;
        }
        self.findings.push(Finding { problem, at });
        Some(self.findings.len() - 1)
    }

    fn note_unsealed(&mut self, seq: u64) {
        if self.unsealed_from.is_none() {
            self.unsealed_from = Some(seq);
        }
        self.unsealed += 1;
    }
}

/// What a frame contained, decoded once at the edge.
enum Content<'a> {
    Full(Record<'a>),
    Redacted {
        chain_id: ChainId,
        seq: u64,
        kind: Option<Kind>,
        leaf: Digest,
    },
}

/// The streaming verifier.
pub struct Verifier {
    chains: Vec<Chain>,
    index: HashMap<ChainId, usize>,
    current: Option<usize>,
    trusted: HashSet<[u8; 32]>,
    file: usize,
    records_in_file: u64,
    trimmed_file: bool,
    unattributed: Vec<Finding>,
}

impl Verifier {
    /// A verifier; `trusted` holds the genesis public keys to accept (empty: take
    /// the genesis key from the data and say so).
    pub fn new(trusted: HashSet<[u8; 32]>) -> Verifier {
        Verifier {
            chains: Vec::new(),
            index: HashMap::new(),
            current: None,
            trusted,
            file: 0,
            records_in_file: 0,
            trimmed_file: false,
            unattributed: Vec::new(),
        }
    }

    /// Marks the start of the next input file (index `file`).
    pub fn begin_file(&mut self, file: usize) {
        self.file = file;
        self.records_in_file = 0;
        self.trimmed_file = false;
    }

    /// Like [`begin_file`](Self::begin_file) for the first remaining segment of
    /// an agent's spool whose earlier segments were deleted after a collector
    /// acknowledged them: a chain that starts mid-way here is reported as
    /// trimmed (its earlier records are at the collector), not as missing its
    /// Genesis. The records before its first seal here cannot be checked (the
    /// head before them is gone) and are reported as such.
    pub fn begin_trimmed_file(&mut self, file: usize) {
        self.begin_file(file);
        self.trimmed_file = true;
    }

    /// Reports bytes that are not a valid frame at `offset`. `tail` is true when
    /// the file ends there (a torn or truncated tail).
    pub fn damage(&mut self, offset: u64, bytes: u64, reason: &str, tail: bool) {
        let at = Some(Location {
            file: self.file,
            offset,
        });
        let Some(ci) = self.current else {
            let problem = if tail {
                Problem::TruncatedTail {
                    expected_seq: 0,
                    bytes,
                    reason: reason.into(),
                }
            } else {
                Problem::TornRecord {
                    expected_seq: 0,
                    skipped_bytes: bytes,
                    reason: reason.into(),
                }
            };
            self.unattributed.push(Finding { problem, at });
            return;
        };
        let c = &mut self.chains[ci];
        let expected_seq = c.next_seq;
        let problem = if tail {
            Problem::TruncatedTail {
                expected_seq,
                bytes,
                reason: reason.into(),
            }
        } else {
            Problem::TornRecord {
                expected_seq,
                skipped_bytes: bytes,
                reason: reason.into(),
            }
        };
        let idx = c.report(problem, at);
        c.head = None;
        c.pending_damage = idx.or(c.pending_damage);
    }

    /// Feeds one valid frame.
    pub fn frame(&mut self, offset: u64, frame_type: u8, payload: &[u8]) {
        let at = Location {
            file: self.file,
            offset,
        };
        let content = match frame_type {
            crate::segment::FRAME_RECORD => match Record::decode(payload) {
                Ok(r) => Content::Full(r),
                Err(e) => {
                    self.malformed(at, e.to_string());
                    return;
                }
            },
            crate::segment::FRAME_REDACTED if payload.len() == crate::segment::REDACTED_LEN => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&payload[..16]);
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&payload[16..24]);
                let mut leaf = [0u8; 32];
                leaf.copy_from_slice(&payload[25..57]);
                Content::Redacted {
                    chain_id: ChainId(id),
                    seq: u64::from_be_bytes(seq),
                    kind: Kind::from_u8(payload[24]),
                    leaf,
                }
            }
            _ => {
                self.malformed(at, format!("unknown frame type {frame_type:#04x}"));
                return;
            }
        };
        self.content(at, payload, content);
    }

    fn malformed(&mut self, at: Location, reason: String) {
        let Some(ci) = self.current else {
            self.unattributed.push(Finding {
                problem: Problem::Malformed {
                    expected_seq: 0,
                    reason,
                },
                at: Some(at),
            });
            return;
        };
        let c = &mut self.chains[ci];
        let idx = c.report(
            Problem::Malformed {
                expected_seq: c.next_seq,
                reason,
            },
            Some(at),
        );
        c.head = None;
        c.pending_damage = idx.or(c.pending_damage);
    }

    fn chain_index(&mut self, id: ChainId) -> usize {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        self.chains.push(Chain::new(id));
        self.index.insert(id, self.chains.len() - 1);
        self.chains.len() - 1
    }

    fn content(&mut self, at: Location, payload: &[u8], content: Content<'_>) {
        let (chain_id, seq, kind) = match &content {
            Content::Full(r) => (r.chain_id, r.seq, Some(r.kind())),
            Content::Redacted {
                chain_id,
                seq,
                kind,
                ..
            } => (*chain_id, *seq, *kind),
        };
        let first_in_file = self.records_in_file == 0;
        self.records_in_file += 1;

        // 1. Which chain does this record belong to?
        let ci = match self.current {
            Some(ci) if self.chains[ci].id == chain_id => ci,
            cur => {
                let known = self.index.get(&chain_id).copied();
                let is_genesis = kind == Some(Kind::Genesis) && seq == 0;
                if is_genesis && known.is_none() {
                    // A new chain starts here (after the current one, if any).
                    let ci = self.chain_index(chain_id);
                    self.current = Some(ci);
                    ci
                } else if first_in_file || cur.is_none() {
                    // A new file may continue a known chain or start mid-chain.
                    let ci = self.chain_index(chain_id);
                    if known.is_none() {
                        let trimmed = self.trimmed_file && first_in_file;
                        let c = &mut self.chains[ci];
                        if trimmed {
                            c.trimmed_from = Some(seq);
                        } else {
                            c.report(Problem::MissingGenesis { first_seq: seq }, Some(at));
                        }
                        c.next_seq = seq;
                        c.head = None;
                    }
                    self.current = Some(ci);
                    ci
                } else if let Some(cur) = cur {
                    let c = &mut self.chains[cur];
                    c.records += 1;
                    c.report(
                        Problem::ForeignChain {
                            seq,
                            chain: chain_id.to_string(),
                        },
                        Some(at),
                    );
                    c.head = None;
                    return;
                } else {
                    return;
                }
            }
        };

        let leaf = match &content {
            Content::Full(_) => hash::leaf(payload),
            Content::Redacted { leaf, .. } => *leaf,
        };
        let c = &mut self.chains[ci];
        c.records += 1;
        c.first_seq = Some(c.first_seq.map_or(seq, |f| f.min(seq)));
        c.last_seq = Some(c.last_seq.map_or(seq, |l| l.max(seq)));

        // 2. Sequence.
        if seq < c.next_seq {
            let dup = c
                .recent
                .iter()
                .rev()
                .find(|(s, _)| *s == seq)
                .map(|(_, l)| *l);
            match dup {
                Some(l) if l == leaf => {
                    c.report(Problem::Duplicate { seq }, Some(at));
                }
                Some(_) => {
                    c.report(Problem::Conflict { seq }, Some(at));
                    c.head = None;
                }
                None => {
                    let in_gap = c.gaps.iter_mut().find(|g| g.start <= seq && seq < g.end);
                    if let Some(g) = in_gap {
                        g.filled += 1;
                    }
                    c.report(
                        Problem::Reorder {
                            seq,
                            expected_seq: c.next_seq,
                        },
                        Some(at),
                    );
                    c.head = None;
                }
            }
            return;
        }
        if seq > c.next_seq {
            let missing = seq - c.next_seq;
            if let Some(d) = c.pending_damage.take() {
                // The damaged bytes just before held these records; say so there.
                if let Some(f) = c.findings.get_mut(d) {
                    if let Problem::TornRecord { expected_seq, .. }
                    | Problem::Malformed { expected_seq, .. } = &mut f.problem
                    {
                        *expected_seq = c.next_seq;
                    }
                }
                if missing > 1 {
                    c.report(
                        Problem::Gap {
                            expected_seq: c.next_seq + 1,
                            got_seq: seq,
                            missing: missing - 1,
                        },
                        Some(at),
                    );
                }
            } else {
                let idx = c.report(
                    Problem::Gap {
                        expected_seq: c.next_seq,
                        got_seq: seq,
                        missing,
                    },
                    Some(at),
                );
                if let Some(finding) = idx {
                    if c.gaps.len() == GAP_WINDOW {
                        c.gaps.pop_front();
                    }
                    c.gaps.push_back(GapInfo {
                        start: c.next_seq,
                        end: seq,
                        filled: 0,
                        finding,
                    });
                }
            }
            c.head = None;
        }
        c.pending_damage = None;
        c.next_seq = seq + 1;
        if c.recent.len() == DUP_WINDOW {
            c.recent.pop_front();
        }
        c.recent.push_back((seq, leaf));

        // 3. Kind-specific checks; the head advances after them (a seal checks
        //    the head *before* itself).
        let Content::Full(record) = content else {
            c.redacted += 1;
            if matches!(kind, Some(Kind::Seal) | Some(Kind::Genesis) | None) {
                c.report(
                    Problem::BadRedaction {
                        seq,
                        reason: match kind {
                            None => "unknown record kind".into(),
                            Some(k) => format!("a {} record cannot be redacted", k.name()),
                        },
                    },
                    Some(at),
                );
                c.head = None;
            } else {
                if kind == Some(Kind::Event) {
                    c.events += 1;
                }
                c.note_unsealed(seq);
            }
            c.head = c.head.map(|h| hash::head(&h, &leaf));
            c.last_shutdown = false;
            return;
        };
        let t = record.time_ns;
        c.first_time = Some(c.first_time.map_or(t, |f| f.min(t)));
        c.last_time = Some(c.last_time.map_or(t, |l| l.max(t)));
        let was_shutdown = std::mem::replace(&mut c.last_shutdown, false);
        match &record.body {
            Body::Genesis {
                host,
                pk0,
                origin,
                predecessor,
                ..
            } => {
                if seq != 0 || c.pk0.is_some() {
                    c.report(Problem::UnexpectedGenesis { seq }, Some(at));
                    c.head = None;
                } else {
                    c.host = Some((*host).to_string());
                    c.origin = Some(*origin);
                    c.predecessor = predecessor.map(|p| format!("{}@{}", p.chain_id, p.last_seq));
                    c.pk0 = Some(*pk0);
                    c.key = Some(*pk0);
                    c.keys.insert(*pk0, 0);
                    c.anchor = if self.trusted.is_empty() {
                        Anchor::FromData
                    } else if self.trusted.contains(pk0) {
                        Anchor::Trusted
                    } else {
                        c.report(
                            Problem::UntrustedGenesis {
                                fingerprint: hash::fingerprint(pk0),
                            },
                            None,
                        );
                        Anchor::Untrusted
                    };
                }
                c.note_unsealed(seq);
            }
            Body::Seal {
                epoch,
                covers_head,
                signer,
                next_pk,
                signature,
            } => {
                c.seals += 1;
                if let (Some(t), None) = (c.trimmed_from, c.last_seal_seq) {
                    if seq > t {
                        c.unchecked = Some((t, seq - 1));
                    }
                }
                let mut seal_ok = true;
                let first = c.last_seal_seq.map_or(c.first_seq.unwrap_or(0), |s| s + 1);
                if *epoch != c.epoch && c.key.is_some() {
                    c.report(
                        Problem::EpochMismatch {
                            seq,
                            epoch: *epoch,
                            expected_epoch: c.epoch,
                        },
                        Some(at),
                    );
                    seal_ok = false;
                }
                match c.key {
                    Some(expected) if expected != *signer => {
                        let signer_epoch = c.keys.get(signer).copied();
                        let idx = c.report(
                            Problem::KeyNotInChain {
                                first_seq: first,
                                seq,
                                epoch: *epoch,
                                signer: hash::fingerprint(signer),
                                expected: hash::fingerprint(&expected),
                                signer_epoch,
                            },
                            Some(at),
                        );
                        if let Some(i) = idx {
                            c.foreign_signers.push((i, *signer));
                        }
                        seal_ok = false;
                    }
                    _ => {}
                }
                let signed = &payload[..payload.len() - 64];
                if !keys::verify(signer, &keys::seal_message(signed), signature) {
                    c.report(
                        Problem::BadSignature {
                            first_seq: first,
                            seq,
                            epoch: *epoch,
                        },
                        Some(at),
                    );
                    seal_ok = false;
                }
                if seal_ok {
                    if let Some(h) = c.head {
                        if h != *covers_head {
                            c.report(
                                Problem::BadLink {
                                    seal_seq: seq,
                                    first_seq: first,
                                    last_seq: seq.saturating_sub(1),
                                },
                                Some(at),
                            );
                        }
                    }
                    // The seal is vouched for by the key chain: (re-)anchor on its head.
                    c.head = Some(*covers_head);
                } else {
                    // Nothing about this interval can be trusted; the next good
                    // seal re-anchors without blaming the records after it.
                    c.head = None;
                }
                // The key chain continues from this seal's next key even if the seal
                // failed: the failure is reported once, and later seals are checked
                // against it rather than all failing in a cascade.
                c.key = Some(*next_pk);
                c.epoch = epoch.saturating_add(1);
                if c.keys.len() < MAX_KEYS {
                    c.keys.entry(*next_pk).or_insert(c.epoch);
                }
                c.last_seal_seq = Some(seq);
                c.unsealed_from = None;
                c.unsealed = 0;
                c.ended_cleanly = was_shutdown && seal_ok;
                c.head = c.head.map(|h| hash::head(&h, &leaf));
                return;
            }
            Body::Event { .. } => {
                c.events += 1;
                c.note_unsealed(seq);
            }
            Body::Loss { count, .. } => {
                c.losses += 1;
                c.lost_events += count;
                c.note_unsealed(seq);
            }
            Body::Lifecycle { event, .. } => {
                c.last_shutdown = *event == LifecycleEvent::Shutdown;
                c.note_unsealed(seq);
            }
        }
        c.ended_cleanly = false;
        c.head = c.head.map(|h| hash::head(&h, &leaf));
    }

    /// Ends verification and reports.
    pub fn finish(mut self) -> Report {
        let mut chains = Vec::with_capacity(self.chains.len());
        for mut c in self.chains.drain(..) {
            if let Some(first) = c.unsealed_from {
                c.report(
                    Problem::UnsealedTail {
                        first_seq: first,
                        last_seq: c.next_seq.saturating_sub(1),
                        count: c.unsealed,
                    },
                    None,
                );
                c.ended_cleanly = false;
            }
            for (i, signer) in std::mem::take(&mut c.foreign_signers) {
                if let Some(Finding {
                    problem: Problem::KeyNotInChain { signer_epoch, .. },
                    ..
                }) = c.findings.get_mut(i)
                {
                    *signer_epoch = signer_epoch.or(c.keys.get(&signer).copied());
                }
            }
            // Gaps whose records all turned up later were reorders, reported as such.
            let mut drop = Vec::new();
            for g in &c.gaps {
                let len = g.end - g.start;
                if g.filled >= len {
                    drop.push(g.finding);
                } else if g.filled > 0 {
                    if let Some(Finding {
                        problem: Problem::Gap { missing, .. },
                        ..
                    }) = c.findings.get_mut(g.finding)
                    {
                        *missing = len - g.filled;
                    }
                }
            }
            drop.sort_unstable();
            for i in drop.into_iter().rev() {
                c.findings.remove(i);
            }
            let verdict = if c.findings.is_empty() && c.not_listed == 0 {
                Verdict::Intact
            } else {
                Verdict::Broken
            };
            chains.push(ChainReport {
                chain: c.id.to_string(),
                host: c.host,
                origin: c.origin.map(|o| o.name().to_string()),
                predecessor: c.predecessor,
                genesis_key: c.pk0.map(|k| hex::encode(&k)),
                genesis_fingerprint: c.pk0.map(|k| hash::fingerprint(&k)),
                anchor: c.anchor,
                records: c.records,
                events: c.events,
                seals: c.seals,
                losses: c.losses,
                lost_events: c.lost_events,
                epochs: c.epoch,
                first_seq: c.first_seq,
                last_seq: c.last_seq,
                last_seal_seq: c.last_seal_seq,
                first_time_ns: c.first_time,
                last_time_ns: c.last_time,
                head: c.head.map(|h| hex::encode(&h)),
                ended_cleanly: c.ended_cleanly,
                redacted: c.redacted,
                verdict,
                problems: c.findings,
                problems_not_listed: c.not_listed,
                trimmed_from: c.trimmed_from,
                unchecked: c.unchecked.or(match (c.trimmed_from, c.last_seal_seq) {
                    // No seal after the trimmed start: nothing here is checkable.
                    (Some(t), None) => Some((t, c.next_seq.saturating_sub(1))),
                    _ => None,
                }),
            });
        }
        Report {
            chains,
            unattributed: self.unattributed,
            trust_anchors: !self.trusted.is_empty(),
        }
    }
}
