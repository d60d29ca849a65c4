//! The verifier: a streaming state machine over frames, with no I/O.
//!
//! Normative algorithm: `docs/FORMAT.md` §4. Feed it the items of one or more
//! segment files in order ([`Verifier::begin_file`], [`Verifier::frame`],
//! [`Verifier::damage`], [`Verifier::bad_file`]); [`Verifier::finish`] returns
//! a [`Report`] with, per chain, a [`Verdict`], every [`Problem`] found (each
//! carrying its evidence), the seq ranges that are *unverified* and why, and
//! warnings that do not affect the verdict.
//!
//! Soundness rules (what may earn [`Verdict::Intact`]):
//! * a record is verified only when the head is known from the chain's Genesis
//!   (or from the last accepted seal) through it up to a seal that the key
//!   chain accepts ([`seal::check`]) and whose signed head matches;
//! * once the head is unknown (damage, gap, reorder, …) every record up to the
//!   next accepted seal is unverified — the seal re-anchors the head for what
//!   follows it and never vouches for what lies before it;
//! * once a seal is refused the key chain is unknown: every record from the
//!   start of that seal's interval to the end of the chain is unverified, and
//!   no later seal is believed (its next key is the forger's choice);
//! * a chain that does not begin with its Genesis is *unanchored*, never intact;
//! * with trust anchors, a Genesis counts only if its key is anchored for the
//!   host it names.
//!
//! Memory per chain: a few digests and counters, a window of
//! [`DUP_WINDOW`] recent leaves, at most [`MAX_PROBLEMS`] problems,
//! [`MAX_RANGES`] ranges and [`MAX_WARNINGS`] warnings (the rest are counted),
//! up to [`MAX_NAMED_KEYS`] next keys for naming a misused signer's epoch, and
//! one entry per key epoch for the key-reuse check, which must compare each
//! next key with every earlier one. All of it is counted against
//! [`Options::memory_limit`]: past it, verification stops
//! ([`Verifier::exhausted`]) rather than conclude on what it could not check.

use super::hash::{self, Digest, ZERO_HEAD};
use super::record::{Body, ChainId, Kind, LifecycleEvent, Origin, Record};
use super::seal::{self, KeyPosition, SealFault, SealFields};
use super::trust::TrustAnchors;
use crate::hex;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Problems listed per chain (and outside any chain); later ones are counted.
pub const MAX_PROBLEMS: usize = 1000;
/// Unverified and redacted ranges listed per chain; later ones are counted.
pub const MAX_RANGES: usize = 1000;
/// Warnings listed per chain; later ones are counted.
pub const MAX_WARNINGS: usize = 100;
/// Next keys remembered per chain only to name the epoch of a misused signer.
pub const MAX_NAMED_KEYS: usize = 1 << 16;
/// Accepted records remembered per chain to tell a duplicate from a conflict.
pub const DUP_WINDOW: usize = 4096;
/// Verification state kept at most, by default (see [`Options::memory_limit`]).
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;
/// What a chain costs before it holds anything (its state, its index entry,
/// its host name, its report), as counted against the memory limit.
const CHAIN_COST: u64 = 4096;
/// What one remembered key, leaf, finding or claim costs, as counted (the
/// item and its share of the table or list that holds it, rounded up).
const KEY_COST: u64 = 96;
const LEAF_COST: u64 = 96;
const FINDING_COST: u64 = 256;

/// A record dated more than this before the previous one is a warning.
pub const CLOCK_BACKWARDS_NS: i64 = 1_000_000_000;
/// A record dated more than this after the previous one is a warning.
pub const CLOCK_JUMP_NS: i64 = 86_400 * 1_000_000_000;
/// Default bound on the age of a pending tail (`--live`): three heartbeat intervals.
pub const DEFAULT_PENDING_MAX_AGE_NS: i64 = 180 * 1_000_000_000;

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
    /// An accepted seal signs a head other than the one computed from the
    /// records since the previous seal: one of them was altered, inserted or removed.
    BadLink {
        /// Seq of the seal.
        seal_seq: u64,
        /// First record of the interval the seal covers.
        first_seq: u64,
        /// Last record of that interval.
        last_seq: u64,
    },
    /// A seal's signature does not verify under the key the key chain names.
    BadSignature {
        /// Seq of the seal.
        seq: u64,
        /// Its epoch.
        epoch: u64,
    },
    /// A seal names a signer that is not the key the key chain names for its epoch.
    KeyNotInChain {
        /// Seq of the seal.
        seq: u64,
        /// Its epoch.
        epoch: u64,
        /// Fingerprint of the key the seal names as signer.
        signer: String,
        /// Fingerprint of the key the key chain expects.
        expected: String,
        /// If the signer is a key that a *later* seal of this chain names for
        /// its epoch (a past seal re-signed with a stolen later key), that epoch.
        /// From the data, not verified.
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
    /// A seal names as next key a key already used in the chain: forward
    /// security is lost from there on.
    KeyReused {
        /// Seq of the seal.
        seq: u64,
        /// Its epoch.
        epoch: u64,
        /// The epoch whose key the next key repeats.
        first_epoch: u64,
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
    /// valid frames after them: damaged or edited bytes.
    DamagedFrame {
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
    /// Records after the last accepted seal, too old to be waiting for their
    /// seal (or the verifier was not told the chain is live): nothing vouches for them.
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
    /// A Genesis record at a seq other than 0.
    UnexpectedGenesis {
        /// Its seq.
        seq: u64,
    },
    /// The genesis key is not a trust anchor of the host the Genesis names.
    UntrustedGenesis {
        /// Host named by the Genesis.
        host: String,
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
    /// A successor chain's Genesis says this chain reached `claimed_last_seq`;
    /// the input ends before that: records were cut.
    PredCut {
        /// The successor chain.
        successor: String,
        /// Last seq the successor's Genesis names.
        claimed_last_seq: u64,
        /// Last seq of this chain in the input.
        last_seq: u64,
    },
    /// A successor chain's Genesis names a last seq and head of this chain
    /// that the input does not have there.
    PredMismatch {
        /// The successor chain.
        successor: String,
        /// Last seq the successor's Genesis names.
        claimed_last_seq: u64,
        /// Last seq of this chain in the input.
        last_seq: u64,
    },
    /// The chain ends before the last record a collector checkpoint names:
    /// it was cut after the collector held more (docs/FORMAT.md §7).
    CheckpointCut {
        /// The checkpointed seq.
        seq: u64,
        /// The chain's last seq (none: no record at all).
        last_seq: Option<u64>,
        /// Seq of the checkpoint in the collector's chain.
        checkpoint_seq: u64,
    },
    /// The chain ends before the record a collector's receipt names: it was
    /// cut after the collector acknowledged more (docs/FORMAT.md §7.2).
    ReceiptCut {
        /// The seq the receipt names.
        seq: u64,
        /// The chain's last seq (none: no record at all).
        last_seq: Option<u64>,
    },
    /// The head after the record a receipt names is not the receipt's: the
    /// chain here forked from what the collector acknowledged.
    ReceiptFork {
        /// The seq the receipt names.
        seq: u64,
        /// The head the receipt names (hex).
        expected: String,
        /// The head computed from the chain (hex).
        got: String,
    },
    /// The head after the checkpointed record is not the one the checkpoint
    /// names: the chain up to it was rewritten after the checkpoint.
    CheckpointMismatch {
        /// The checkpointed seq.
        seq: u64,
        /// Seq of the checkpoint in the collector's chain.
        checkpoint_seq: u64,
        /// The head the checkpoint names (hex).
        expected: String,
        /// The head computed from the chain (hex).
        got: String,
    },
    /// A record stored under a collector-store directory of another host or chain.
    Misfiled {
        /// Its seq.
        seq: u64,
        /// Host the directory is named after.
        dir_host: String,
        /// Chain the directory is named after.
        dir_chain: String,
    },
}

impl Problem {
    /// The seq range this problem points at (FORMAT.md §4.8).
    pub fn seqs(&self) -> (u64, u64) {
        use Problem::*;
        match *self {
            BadLink {
                first_seq,
                seal_seq,
                ..
            } => (first_seq, seal_seq),
            BadSignature { seq, .. }
            | KeyNotInChain { seq, .. }
            | EpochMismatch { seq, .. }
            | KeyReused { seq, .. }
            | Reorder { seq, .. }
            | Duplicate { seq }
            | Conflict { seq }
            | ForeignChain { seq, .. }
            | UnexpectedGenesis { seq }
            | BadRedaction { seq, .. }
            | CheckpointMismatch { seq, .. }
            | ReceiptFork { seq, .. }
            | Misfiled { seq, .. } => (seq, seq),
            CheckpointCut { seq, last_seq, .. } | ReceiptCut { seq, last_seq } => {
                (last_seq.map_or(0, |l| l.saturating_add(1)), seq)
            }
            Gap {
                expected_seq,
                got_seq,
                ..
            } => (expected_seq, got_seq.saturating_sub(1)),
            DamagedFrame { expected_seq, .. }
            | Malformed { expected_seq, .. }
            | TruncatedTail { expected_seq, .. } => (expected_seq, expected_seq),
            UnsealedTail {
                first_seq,
                last_seq,
                ..
            } => (first_seq, last_seq),
            UntrustedGenesis { .. } => (0, 0),
            PredCut {
                claimed_last_seq,
                last_seq,
                ..
            } => (last_seq.saturating_add(1), claimed_last_seq),
            PredMismatch {
                claimed_last_seq, ..
            } => (claimed_last_seq, claimed_last_seq),
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
            KeyReused { .. } => "key-reused",
            Gap { .. } => "gap",
            Reorder { .. } => "reorder",
            Duplicate { .. } => "duplicate",
            Conflict { .. } => "conflict",
            DamagedFrame { .. } => "damaged-frame",
            Malformed { .. } => "malformed",
            TruncatedTail { .. } => "truncated-tail",
            UnsealedTail { .. } => "unsealed-tail",
            ForeignChain { .. } => "foreign-chain",
            UnexpectedGenesis { .. } => "unexpected-genesis",
            UntrustedGenesis { .. } => "untrusted-genesis",
            BadRedaction { .. } => "bad-redaction",
            PredCut { .. } => "pred-cut",
            PredMismatch { .. } => "pred-mismatch",
            CheckpointCut { .. } => "checkpoint-cut",
            CheckpointMismatch { .. } => "checkpoint-mismatch",
            ReceiptCut { .. } => "receipt-cut",
            ReceiptFork { .. } => "receipt-fork",
            Misfiled { .. } => "misfiled",
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

/// A finding outside any chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unattributed {
    /// A chain problem seen before any chain started (damage, undecodable frame).
    Frame {
        /// The problem.
        #[serde(flatten)]
        problem: Problem,
        /// Where.
        at: Location,
    },
    /// A file that should be a segment and is not (damaged header).
    BadSegment {
        /// File index.
        file: usize,
        /// What is wrong.
        reason: String,
    },
    /// The input holds no record at all.
    NoRecords,
    /// A chain a collector checkpoint names is not in the store (deleted, or
    /// moved away: `quarantined` says where it was found, if it was).
    MissingChain {
        /// Its host.
        host: String,
        /// The chain (hex).
        chain: String,
        /// Its last checkpointed seq.
        seq: u64,
        /// Seq of the checkpoint in the collector's chain.
        checkpoint_seq: u64,
        /// Where the store holds its records outside `hosts/` (quarantine).
        #[serde(skip_serializing_if = "Option::is_none")]
        quarantined: Option<String>,
    },
    /// A store without the collector's checkpoint log: a cut, rewritten or
    /// deleted chain could not be seen.
    NoCheckpointLog,
    /// The store's checkpoint log is there but nothing in it can be
    /// believed (its chains themselves may verify): the store's chains were
    /// not checked against it.
    CheckpointLogNotBelieved {
        /// Why.
        reason: String,
    },
    /// A checkpoint kept outside the store (`logseal verify --checkpoint`:
    /// a seal of the checkpoint log, witnessed earlier) is not among the
    /// log's accepted seals any more: the log was cut or rewritten since.
    WitnessedCheckpointMissing {
        /// The log's chain the witnessed seal belongs to (hex).
        chain: String,
        /// Its seq.
        seq: u64,
        /// What the log holds instead.
        reason: String,
    },
    /// The store's checkpoint log records a fork the collector refused
    /// (docs/FORMAT.md §7.3): one key of a host's chain signed two seals
    /// of one epoch, over two histories (the host's state was restored from
    /// a copy, or its key stolen). The chain's records from that epoch on
    /// are disputed, whichever history the store holds.
    ForkRecorded {
        /// The host.
        host: String,
        /// Its chain (hex).
        chain: String,
        /// The epoch sealed twice.
        epoch: u64,
        /// The fingerprint of the key that signed both seals.
        key: String,
        /// Seq of the seal the collector holds.
        stored_seq: u64,
        /// Seq of the seal it refused.
        received_seq: u64,
        /// Seq of the record of the checkpoint log that holds the proof.
        checkpoint_seq: u64,
    },
    /// A witness's checkpoint log (`logseal verify --witnessed-by`) holds
    /// no checkpoint of this store's collector: nothing shows the store's
    /// log was not replaced.
    NotWitnessed {
        /// The witness's store.
        witness: String,
        /// The collectors of this store's checkpoint log.
        collectors: Vec<String>,
    },
}

/// Why a range of records is unverified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Unverified {
    /// A problem in the interval closed by the seal at `seal_seq` (which was
    /// accepted and re-anchors what follows it).
    Problem {
        /// The accepted seal after the range.
        seal_seq: u64,
    },
    /// The key chain is unknown after the refused seal at `seal_seq`.
    KeyChainUnknown {
        /// The refused seal.
        seal_seq: u64,
    },
    /// The chain starts without its Genesis: records before its first seal
    /// cannot be linked to anything.
    Unanchored,
    /// After the last accepted seal (see the chain's tail: pending or unsealed).
    Unsealed,
}

/// A range of records that verification does not vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    /// First seq.
    pub first_seq: u64,
    /// Last seq.
    pub last_seq: u64,
    /// Why.
    #[serde(flatten)]
    pub why: Unverified,
}

/// An observation that does not affect the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Warning {
    /// A record is dated more than [`CLOCK_BACKWARDS_NS`] before the previous one.
    ClockBackwards {
        /// The record.
        seq: u64,
        /// The previous record.
        prev_seq: u64,
        /// By how much (ns).
        by_ns: i128,
    },
    /// A record is dated more than [`CLOCK_JUMP_NS`] after the previous one.
    ClockJump {
        /// The record.
        seq: u64,
        /// The previous record.
        prev_seq: u64,
        /// By how much (ns).
        by_ns: i128,
    },
    /// A chain of a store that no checkpoint names (stored after the last
    /// checkpoint before a crash, or placed in the store behind the
    /// collector's back).
    NotCheckpointed,
    /// The Genesis names a predecessor chain that is not in the input.
    PredecessorAbsent {
        /// The predecessor.
        chain: String,
        /// Its last seq, as the Genesis names it.
        last_seq: u64,
    },
}

/// The verdict on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every record is linked from an anchored Genesis to an accepted seal.
    Intact,
    /// Intact except records after the newest seal of a live chain, young enough
    /// to be waiting for their seal: listed, not verified.
    Pending,
    /// No problem found, but the chain does not start at its Genesis: it cannot
    /// be tied to a genesis key (a trimmed spool, a partial copy).
    Unanchored,
    /// At least one problem was found.
    Broken,
}

impl Verdict {
    /// The name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Intact => "intact",
            Verdict::Pending => "pending",
            Verdict::Unanchored => "unanchored",
            Verdict::Broken => "broken",
        }
    }
}

/// How the genesis key of a chain was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The genesis key is a trust anchor of the host its Genesis names.
    Trusted,
    /// No trust anchor was given: the genesis key was taken from the data itself.
    FromData,
    /// Trust anchors were given and this genesis key is not one of its host's.
    Untrusted,
    /// No Genesis record was seen.
    None,
}

/// For a chain without Genesis: the first accepted seal, whose signer starts
/// the key chain (taken from the data, bound to nothing).
#[derive(Debug, Clone, Serialize)]
pub struct KeyFromData {
    /// Seq of that seal.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// Fingerprint of its signer.
    pub fingerprint: String,
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
    /// The chain has no Genesis in the input and starts at this seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unanchored_from: Option<u64>,
    /// For an unanchored chain: where its key chain was taken from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_from_data: Option<KeyFromData>,
    /// Records read (including duplicates and foreign records skipped).
    pub records: u64,
    /// Records verified (linked to an accepted seal from an anchored start).
    pub verified: u64,
    /// Event records.
    pub events: u64,
    /// Seal records.
    pub seals: u64,
    /// Loss records.
    pub losses: u64,
    /// Events reported lost by Loss records (saturates at 2^64 - 1).
    pub lost_events: u64,
    /// Key epochs completed: the epoch after the last accepted seal.
    pub epochs: u64,
    /// Lowest seq seen.
    pub first_seq: Option<u64>,
    /// Highest seq seen.
    pub last_seq: Option<u64>,
    /// Seq of the last accepted seal.
    pub last_seal_seq: Option<u64>,
    /// Earliest record time, ns since the Unix epoch.
    pub first_time_ns: Option<i64>,
    /// Latest record time.
    pub last_time_ns: Option<i64>,
    /// Head after the last record (hex), if it could be computed.
    pub head: Option<String>,
    /// True if the chain ends with a clean-shutdown Lifecycle record and its
    /// accepted seal.
    pub ended_cleanly: bool,
    /// Records that were redacted (leaf only).
    pub redacted: u64,
    /// Their seqs, as ranges.
    pub redacted_seqs: Vec<(u64, u64)>,
    /// Verdict.
    pub verdict: Verdict,
    /// Problems, in the order found.
    pub problems: Vec<Finding>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_not_listed: u64,
    /// Ranges of records not verified, and why.
    pub unverified: Vec<Range>,
    /// Ranges beyond [`MAX_RANGES`].
    pub unverified_not_listed: u64,
    /// A pending tail (first, last seq): waiting for its seal, not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<(u64, u64)>,
    /// Warnings.
    pub warnings: Vec<Warning>,
    /// Warnings beyond [`MAX_WARNINGS`].
    pub warnings_not_listed: u64,
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per chain, in order of first appearance.
    pub chains: Vec<ChainReport>,
    /// Findings outside any chain.
    pub unattributed: Vec<Unattributed>,
    /// Unattributed findings beyond [`MAX_PROBLEMS`].
    pub unattributed_not_listed: u64,
    /// True if trust anchors were given.
    pub trust_anchors: bool,
    /// A collector store's checkpoint log, verified apart from its chains
    /// (docs/FORMAT.md §7): one chain, or several after the collector lost
    /// its key state; each must be intact (or pending) too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_log: Vec<ChainReport>,
    /// What checking the input against a receipt found ([`Options::receipt`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptOutcome>,
}

/// What checking a chain against a collector's receipt found
/// (docs/FORMAT.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReceiptOutcome {
    /// The chain holds the record the receipt names, with the receipt's head.
    Matches,
    /// Another head there: the chain forked (a `receipt-fork` problem).
    Fork,
    /// The chain ends before that record (a `receipt-cut` problem).
    Cut,
    /// The record could not be compared (the chain is not in the input, is
    /// another host's, or does not hold the record's head): `reason` says why.
    Unchecked {
        /// Why.
        reason: String,
    },
}

impl Report {
    /// True if the run passes (exit 0): at least one chain, every chain intact
    /// or pending, and nothing found outside the chains.
    pub fn intact(&self) -> bool {
        !self.chains.is_empty()
            && self.unattributed.is_empty()
            && self.unattributed_not_listed == 0
            && self
                .chains
                .iter()
                .chain(&self.checkpoint_log)
                .all(|c| matches!(c.verdict, Verdict::Intact | Verdict::Pending))
            && self
                .receipt
                .as_ref()
                .map_or(true, |r| *r == ReceiptOutcome::Matches)
    }
}

/// Options of a verification.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Trusted (host, genesis key) pairs; empty: genesis keys are taken from
    /// the data and reported so.
    pub anchors: TrustAnchors,
    /// The input is a live chain: a tail after the newest seal is *pending*
    /// (not a problem) if the chain has its Genesis and an accepted seal, and
    /// the newest accepted seal is dated within `max_age_ns` of `now_ns`.
    pub live: Option<Live>,
    /// Bytes of verification state the verifier may keep (`None`:
    /// [`DEFAULT_MEMORY_LIMIT`]). What grows with the input — chains, the
    /// keys of every epoch (for the key-reuse rule), recent leaves, listed
    /// findings — is counted; past the limit verification stops: see
    /// [`Verifier::exhausted`]. It never ends in a verdict it could not check.
    pub memory_limit: Option<u64>,
    /// A collector store's checkpoints, which its chains must still match
    /// (docs/FORMAT.md §7); `None`: not a store, or not checked.
    pub checkpoints: Option<Checkpoints>,
    /// A collector's receipt the input must agree with (docs/FORMAT.md §7.2);
    /// the run passes only if it [matches](ReceiptOutcome::Matches).
    pub receipt: Option<Receipted>,
}

/// What a receipt says of one chain (its signature checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipted {
    /// The host it names.
    pub host: String,
    /// The chain.
    pub chain: ChainId,
    /// The last record the collector acknowledged.
    pub seq: u64,
    /// The head after it.
    pub head: Digest,
}

/// What a collector's checkpoint log says its store holds.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    /// Per chain, its latest checkpoint.
    pub expected: HashMap<ChainId, Checkpointed>,
    /// The checkpoint log's chains (not checked against themselves).
    pub logs: Vec<ChainId>,
}

/// The latest checkpoint of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointed {
    /// Its host.
    pub host: String,
    /// Its last record the collector held durably.
    pub seq: u64,
    /// The head after it.
    pub head: Digest,
    /// Seq of the checkpoint record in the collector's chain.
    pub checkpoint_seq: u64,
}

impl Checkpoints {
    /// Adds the entries of the checkpoint at `checkpoint_seq`; a chain's
    /// later checkpoint replaces an earlier one (a lower seq never does).
    /// Returns the host-name bytes of the chains it names for the first
    /// time (with their number, what the map grew by).
    pub fn add(
        &mut self,
        checkpoint_seq: u64,
        entries: Vec<crate::checkpoint::Entry>,
    ) -> (u64, u64) {
        let (mut chains, mut bytes) = (0, 0);
        for e in entries {
            if !self.expected.contains_key(&e.chain) {
                chains += 1;
                bytes += e.host.len() as u64;
            }
            let new = Checkpointed {
                host: e.host,
                seq: e.seq,
                head: e.head,
                checkpoint_seq,
            };
            match self.expected.get(&e.chain) {
                // The first of two entries for one seq stays (both must hold:
                // the one kept is checked, a differing one names another head).
                Some(old) if old.seq >= new.seq => {}
                _ => {
                    self.expected.insert(e.chain, new);
                }
            }
        }
        (chains, bytes)
    }
}

/// See [`Options::live`].
#[derive(Debug, Clone, Copy)]
pub struct Live {
    /// Now, ns since the Unix epoch (the verifier reads no clock).
    pub now_ns: i64,
    /// Bound on the age of the newest seal for a tail to be pending.
    pub max_age_ns: i64,
}

/// The directory a collector store files a segment under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Host directory name.
    pub host: String,
    /// Chain directory name (hex chain id).
    pub chain: String,
}

/// Where the key chain stands.
#[derive(Debug, Clone, Copy)]
enum Keys {
    /// No Genesis and no accepted seal yet (unanchored start).
    NotYet,
    /// The next seal must be signed by this key at this epoch.
    Known(KeyPosition),
    /// A seal was refused: `from` is the first seq of its interval.
    Unknown { seal_seq: u64, from: u64 },
}

struct Claim {
    successor: ChainId,
    pred: ChainId,
    last_seq: u64,
    head: Digest,
}

/// Bounded list with an overflow count.
struct Capped<T> {
    items: Vec<T>,
    cap: usize,
    not_listed: u64,
}

impl<T> Capped<T> {
    fn new(cap: usize) -> Capped<T> {
        Capped {
            items: Vec::new(),
            cap,
            not_listed: 0,
        }
    }
    fn push(&mut self, t: T) {
        if self.items.len() < self.cap {
            self.items.push(t);
        } else {
            self.not_listed = self.not_listed.saturating_add(1);
        }
    }
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.not_listed == 0
    }
}

struct Chain {
    id: ChainId,
    /// The seq a checkpoint names was read (docs/FORMAT.md §7).
    checkpoint_reached: bool,
    /// The seq a receipt names was read, with the head after it if known.
    receipt_reached: Option<Option<Digest>>,
    host: Option<String>,
    origin: Option<Origin>,
    predecessor: Option<String>,
    pk0: Option<[u8; 32]>,
    anchor: Anchor,
    unanchored_from: Option<u64>,
    key_from_data: Option<KeyFromData>,
    /// Seq the next record must have.
    next_seq: u64,
    /// A record at seq 2^64 - 1 was accepted: no seq is left.
    seq_exhausted: bool,
    /// Running head; `None` while unknown.
    head: Option<Digest>,
    keys: Keys,
    /// Keys of accepted epochs → epoch, for the reuse check.
    used: HashMap<[u8; 32], u64>,
    /// Next keys named by any seal → epoch, to name the epoch of a misused
    /// signer; from the data, not verified.
    named: HashMap<[u8; 32], u64>,
    /// First seq of the open interval (after the last accepted seal) and how
    /// many records it holds.
    interval_from: Option<u64>,
    interval_records: u64,
    records: u64,
    verified: u64,
    events: u64,
    seals: u64,
    losses: u64,
    lost_events: u64,
    redacted: u64,
    redacted_seqs: Capped<(u64, u64)>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    last_seal_seq: Option<u64>,
    /// The epoch after the last accepted seal.
    epochs: u64,
    /// Time of the last accepted seal.
    reference_time: Option<i64>,
    first_time: Option<i64>,
    last_time: Option<i64>,
    prev: Option<(u64, i64)>,
    last_shutdown: bool,
    ended_cleanly: bool,
    recent: VecDeque<(u64, Digest)>,
    /// Seals whose signer is not the expected key: (problem index, signer).
    foreign_signers: Vec<(usize, [u8; 32])>,
    problems: Capped<Finding>,
    ranges: Capped<Range>,
    warnings: Capped<Warning>,
    /// Bytes of text from the data this chain keeps (a Genesis's host name
    /// is as long as the record allows), counted against the memory limit.
    text: u64,
}

/// What a frame contained, decoded once at the edge.
enum Content<'a> {
    Full(Record<'a>),
    Redacted {
        chain_id: ChainId,
        seq: u64,
        /// The kind byte as written (it enters the head step, §2).
        kind: u8,
        leaf: Digest,
    },
}

impl Chain {
    fn new(id: ChainId) -> Chain {
        Chain {
            id,
            checkpoint_reached: false,
            receipt_reached: None,
            host: None,
            origin: None,
            predecessor: None,
            pk0: None,
            anchor: Anchor::None,
            unanchored_from: None,
            key_from_data: None,
            next_seq: 0,
            seq_exhausted: false,
            head: Some(ZERO_HEAD),
            keys: Keys::NotYet,
            used: HashMap::new(),
            named: HashMap::new(),
            interval_from: None,
            interval_records: 0,
            records: 0,
            verified: 0,
            events: 0,
            seals: 0,
            losses: 0,
            lost_events: 0,
            redacted: 0,
            redacted_seqs: Capped::new(MAX_RANGES),
            first_seq: None,
            last_seq: None,
            last_seal_seq: None,
            epochs: 0,
            reference_time: None,
            first_time: None,
            last_time: None,
            prev: None,
            last_shutdown: false,
            ended_cleanly: false,
            recent: VecDeque::new(),
            foreign_signers: Vec::new(),
            problems: Capped::new(MAX_PROBLEMS),
            ranges: Capped::new(MAX_RANGES),
            warnings: Capped::new(MAX_WARNINGS),
            text: 0,
        }
    }

    /// Memory counted for what this chain holds beyond its fixed state.
    fn held(&self) -> u64 {
        let keys = (self.used.len() + self.named.len()) as u64 * KEY_COST;
        let leaves = self.recent.len() as u64 * LEAF_COST;
        let findings = (self.problems.items.len()
            + self.ranges.items.len()
            + self.warnings.items.len()
            + self.redacted_seqs.items.len()
            + self.foreign_signers.len()) as u64
            * FINDING_COST;
        keys + leaves + findings + self.text
    }

    fn report(&mut self, problem: Problem, at: Option<Location>) {
        if let Problem::UntrustedGenesis { host, .. } = &problem {
            if self.problems.items.len() < self.problems.cap {
                self.text = self.text.saturating_add(host.len() as u64);
            }
        }
        self.problems.push(Finding { problem, at });
    }

    /// §4.3 Sequence. Returns false if the record is skipped.
    fn sequence(&mut self, at: Location, seq: u64, leaf: &Digest) -> bool {
        if seq < self.next_seq || self.seq_exhausted {
            let seen = self
                .recent
                .binary_search_by_key(&seq, |(s, _)| *s)
                .ok()
                .map(|i| self.recent[i].1);
            match seen {
                Some(l) if l == *leaf => self.report(Problem::Duplicate { seq }, Some(at)),
                Some(_) => {
                    self.report(Problem::Conflict { seq }, Some(at));
                    self.head = None;
                }
                None => {
                    self.report(
                        Problem::Reorder {
                            seq,
                            expected_seq: self.next_seq,
                        },
                        Some(at),
                    );
                    self.head = None;
                }
            }
            return false;
        }
        if seq > self.next_seq {
            self.report(
                Problem::Gap {
                    expected_seq: self.next_seq,
                    got_seq: seq,
                    missing: seq - self.next_seq,
                },
                Some(at),
            );
            self.head = None;
        }
        // A record at seq 2^64 - 1 leaves no seq after it: every later record
        // of the chain is handled as one below `next_seq`.
        match seq.checked_add(1) {
            Some(n) => self.next_seq = n,
            None => self.seq_exhausted = true,
        }
        if self.recent.len() == DUP_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, *leaf));
        self.last_seq = Some(seq);
        if self.interval_from.is_none() {
            self.interval_from = Some(seq);
        }
        self.interval_records = self.interval_records.saturating_add(1);
        true
    }

    /// Warnings about the record's time (never about the verdict).
    fn clock(&mut self, seq: u64, t: i64) {
        if let Some((prev_seq, prev)) = self.prev {
            let d = t as i128 - prev as i128;
            if d < -(CLOCK_BACKWARDS_NS as i128) {
                self.warnings.push(Warning::ClockBackwards {
                    seq,
                    prev_seq,
                    by_ns: -d,
                });
            } else if d > CLOCK_JUMP_NS as i128 {
                self.warnings.push(Warning::ClockJump {
                    seq,
                    prev_seq,
                    by_ns: d,
                });
            }
        }
        self.prev = Some((seq, t));
        self.first_time = Some(self.first_time.map_or(t, |f| f.min(t)));
        self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
    }

    /// §4.5 Seal.
    fn seal(&mut self, at: Location, seq: u64, time_ns: i64, fields: &SealFields<'_>) {
        let covers_head = fields.covers_head;
        self.seals += 1;
        let was_shutdown = self.last_shutdown;
        let interval_from = self.interval_from.unwrap_or(seq);
        // Where the key chain stands; an unanchored chain takes its first
        // seal's signer and epoch from the data.
        let position = match self.keys {
            Keys::Unknown { .. } => {
                self.remember_named(fields);
                return;
            }
            Keys::Known(p) => p,
            Keys::NotYet => {
                self.key_from_data = Some(KeyFromData {
                    seq,
                    epoch: fields.epoch,
                    fingerprint: hash::fingerprint(fields.signer),
                });
                KeyPosition {
                    key: *fields.signer,
                    epoch: fields.epoch,
                }
            }
        };
        let used = &self.used;
        let verdict = seal::check(position, fields, |k| used.get(k).copied());
        if let Err(fault) = verdict {
            let problem = seal_problem(fault, seq, fields, &position);
            if fault == SealFault::KeyNotInChain && self.problems.items.len() < MAX_PROBLEMS {
                self.foreign_signers
                    .push((self.problems.items.len(), *fields.signer));
            }
            self.report(problem, Some(at));
            self.keys = Keys::Unknown {
                seal_seq: seq,
                from: interval_from,
            };
            self.head = None;
            self.remember_named(fields);
            return;
        }
        // Accepted: the seal is authentic, so is the head it signs.
        let unanchored_start = self.pk0.is_none() && self.last_seal_seq.is_none();
        let mut clean = self.head.is_some() && !unanchored_start;
        if let Some(h) = self.head {
            if h != *covers_head && !unanchored_start {
                self.report(
                    Problem::BadLink {
                        seal_seq: seq,
                        first_seq: interval_from,
                        last_seq: seq.saturating_sub(1),
                    },
                    Some(at),
                );
                clean = false;
            }
        }
        if clean {
            // The interval's records, the seal included.
            self.verified = self.verified.saturating_add(self.interval_records);
        } else {
            if interval_from < seq {
                self.ranges.push(Range {
                    first_seq: interval_from,
                    last_seq: seq - 1,
                    why: if unanchored_start {
                        Unverified::Unanchored
                    } else {
                        Unverified::Problem { seal_seq: seq }
                    },
                });
            }
            self.verified = self.verified.saturating_add(1);
        }
        let next_epoch = fields.epoch.saturating_add(1);
        self.used.insert(position.key, position.epoch);
        self.used.insert(*fields.next_pk, next_epoch);
        self.remember_named(fields);
        self.keys = Keys::Known(KeyPosition {
            key: *fields.next_pk,
            epoch: next_epoch,
        });
        self.head = Some(*covers_head);
        self.last_seal_seq = Some(seq);
        self.epochs = next_epoch;
        self.reference_time = Some(time_ns);
        self.interval_from = None;
        self.interval_records = 0;
        self.ended_cleanly = was_shutdown && clean;
        self.last_shutdown = false;
    }

    fn remember_named(&mut self, fields: &SealFields<'_>) {
        if self.named.len() < MAX_NAMED_KEYS {
            self.named
                .entry(*fields.next_pk)
                .or_insert(fields.epoch.saturating_add(1));
        }
    }

    /// The end of the input: tail, key chain, verdict.
    fn finish(mut self, live: Option<Live>, pred: &[Problem]) -> ChainReport {
        for p in pred {
            self.report(p.clone(), None);
        }
        let last = self.last_seq.unwrap_or(0);
        let mut pending = None;
        match self.keys {
            Keys::Unknown { seal_seq, from } => self.ranges.push(Range {
                first_seq: from,
                last_seq: last,
                why: Unverified::KeyChainUnknown { seal_seq },
            }),
            Keys::NotYet => {
                if let Some(first) = self.unanchored_from {
                    self.ranges.push(Range {
                        first_seq: first,
                        last_seq: last,
                        why: Unverified::Unanchored,
                    })
                }
            }
            Keys::Known(_) => {
                if let Some(first) = self.interval_from {
                    self.ranges.push(Range {
                        first_seq: first,
                        last_seq: last,
                        why: Unverified::Unsealed,
                    });
                    // Young: the newest accepted seal is dated within
                    // max_age of now, on either side. A chain with no accepted
                    // seal has nothing signed (its Genesis is not), so its
                    // tail is never pending; a seal dated far ahead cannot
                    // keep a tail pending for ever.
                    let young = match (live, self.last_seal_seq, self.reference_time) {
                        (Some(l), Some(_), Some(t)) => {
                            (l.now_ns as i128 - t as i128).abs() <= l.max_age_ns as i128
                        }
                        _ => false,
                    };
                    if young {
                        pending = Some((first, last));
                    } else {
                        self.report(
                            Problem::UnsealedTail {
                                first_seq: first,
                                last_seq: last,
                                count: self.interval_records,
                            },
                            None,
                        );
                    }
                    self.ended_cleanly = false;
                }
            }
        }
        // Name the epoch of a seal's foreign signer, where a later seal names it.
        for (i, signer) in std::mem::take(&mut self.foreign_signers) {
            let epoch = self.named.get(&signer).copied();
            if let Some(Finding {
                problem: Problem::KeyNotInChain { signer_epoch, .. },
                ..
            }) = self.problems.items.get_mut(i)
            {
                *signer_epoch = epoch;
            }
        }
        let verdict = if !self.problems.is_empty() {
            Verdict::Broken
        } else if self.pk0.is_none() {
            Verdict::Unanchored
        } else if pending.is_some() {
            Verdict::Pending
        } else {
            Verdict::Intact
        };
        ChainReport {
            chain: self.id.to_string(),
            host: self.host,
            origin: self.origin.map(|o| o.name().to_string()),
            predecessor: self.predecessor,
            genesis_key: self.pk0.map(|k| hex::encode(&k)),
            genesis_fingerprint: self.pk0.map(|k| hash::fingerprint(&k)),
            anchor: self.anchor,
            unanchored_from: self.unanchored_from,
            key_from_data: self.key_from_data,
            records: self.records,
            verified: self.verified,
            events: self.events,
            seals: self.seals,
            losses: self.losses,
            lost_events: self.lost_events,
            epochs: self.epochs,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            last_seal_seq: self.last_seal_seq,
            first_time_ns: self.first_time,
            last_time_ns: self.last_time,
            head: self.head.map(|h| hex::encode(&h)),
            ended_cleanly: self.ended_cleanly,
            redacted: self.redacted,
            redacted_seqs: self.redacted_seqs.items,
            verdict,
            problems: self.problems.items,
            problems_not_listed: self.problems.not_listed,
            unverified: self.ranges.items,
            unverified_not_listed: self.ranges.not_listed,
            pending,
            warnings: self.warnings.items,
            warnings_not_listed: self.warnings.not_listed,
        }
    }
}

/// The streaming verifier.
pub struct Verifier {
    chains: Vec<Chain>,
    index: HashMap<ChainId, usize>,
    current: Option<usize>,
    options: Options,
    file: usize,
    placement: Option<Placement>,
    records_in_file: u64,
    claims: Vec<Claim>,
    unattributed: Capped<Unattributed>,
    /// Memory counted per chain ([`Chain::held`]) and in all.
    held: Vec<u64>,
    counted: u64,
    limit: u64,
    /// Where the memory limit was reached.
    exhausted: Option<Location>,
}

impl Verifier {
    /// A verifier with the given options.
    pub fn new(options: Options) -> Verifier {
        Verifier {
            chains: Vec::new(),
            index: HashMap::new(),
            current: None,
            file: 0,
            placement: None,
            records_in_file: 0,
            claims: Vec::new(),
            unattributed: Capped::new(MAX_PROBLEMS),
            held: Vec::new(),
            counted: MAX_PROBLEMS as u64 * FINDING_COST,
            limit: options.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT),
            options,
            exhausted: None,
        }
    }

    /// Where the memory limit ([`Options::memory_limit`]) was reached, if it
    /// was: the frame there and every later one were not verified, so no
    /// report may be made (the caller says so and stops).
    pub fn exhausted(&self) -> Option<Location> {
        self.exhausted
    }

    /// Counts again what chain `ci` holds; past the limit, marks the
    /// verification exhausted at `at`.
    fn meter(&mut self, ci: Option<usize>, at: Location) {
        if let Some(ci) = ci {
            let now = self.chains[ci].held();
            self.counted = self.counted - self.held[ci] + now;
            self.held[ci] = now;
        }
        if self.counted > self.limit && self.exhausted.is_none() {
            self.exhausted = Some(at);
        }
    }

    /// Marks the start of the next input file (index `file`). `placement`: the
    /// collector-store directory the file lies in, whose host and chain its
    /// records must have.
    pub fn begin_file(&mut self, file: usize, placement: Option<Placement>) {
        self.file = file;
        self.records_in_file = 0;
        self.placement = placement;
    }

    /// A file that should be a segment cannot be read as one (damaged header).
    pub fn bad_file(&mut self, file: usize, reason: String) {
        self.unattributed
            .push(Unattributed::BadSegment { file, reason });
    }

    /// Reports bytes that are not a valid frame at `offset`. `tail` is true when
    /// the file ends there (a torn or truncated tail).
    pub fn damage(&mut self, offset: u64, bytes: u64, reason: &str, tail: bool) {
        if self.exhausted.is_some() {
            return;
        }
        let before = self.current;
        self.damage_inner(offset, bytes, reason, tail);
        self.metered(before, offset);
    }

    /// Meters the chain current `before` a frame at `offset` and the one
    /// current after it.
    fn metered(&mut self, before: Option<usize>, offset: u64) {
        let at = Location {
            file: self.file,
            offset,
        };
        self.meter(before, at);
        if self.current != before {
            self.meter(self.current, at);
        }
    }

    fn damage_inner(&mut self, offset: u64, bytes: u64, reason: &str, tail: bool) {
        let at = Location {
            file: self.file,
            offset,
        };
        let expected_seq = self.current.map_or(0, |ci| self.chains[ci].next_seq);
        let problem = if tail {
            Problem::TruncatedTail {
                expected_seq,
                bytes,
                reason: reason.into(),
            }
        } else {
            Problem::DamagedFrame {
                expected_seq,
                skipped_bytes: bytes,
                reason: reason.into(),
            }
        };
        match self.current {
            None => self.unattributed.push(Unattributed::Frame { problem, at }),
            Some(ci) => {
                let c = &mut self.chains[ci];
                c.report(problem, Some(at));
                c.head = None;
            }
        }
    }

    /// Feeds one valid frame.
    pub fn frame(&mut self, offset: u64, frame_type: u8, payload: &[u8]) {
        if self.exhausted.is_some() {
            return;
        }
        let before = self.current;
        self.frame_inner(offset, frame_type, payload);
        self.metered(before, offset);
    }

    fn frame_inner(&mut self, offset: u64, frame_type: u8, payload: &[u8]) {
        let at = Location {
            file: self.file,
            offset,
        };
        let content = match frame_type {
            crate::frame::FRAME_RECORD => match Record::decode(payload) {
                Ok(r) => Content::Full(r),
                Err(e) => {
                    self.malformed(at, e.to_string());
                    return;
                }
            },
            crate::frame::FRAME_REDACTED if payload.len() == crate::frame::REDACTED_LEN => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&payload[..16]);
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&payload[16..24]);
                let mut leaf = [0u8; 32];
                leaf.copy_from_slice(&payload[25..57]);
                Content::Redacted {
                    chain_id: ChainId(id),
                    seq: u64::from_be_bytes(seq),
                    kind: payload[24],
                    leaf,
                }
            }
            _ => {
                self.malformed(
                    at,
                    format!(
                        "frame type {frame_type:#04x} with {} bytes is neither a record nor a redacted record",
                        payload.len()
                    ),
                );
                return;
            }
        };
        self.content(at, payload, content);
    }

    fn malformed(&mut self, at: Location, reason: String) {
        let Some(ci) = self.current else {
            self.unattributed.push(Unattributed::Frame {
                problem: Problem::Malformed {
                    expected_seq: 0,
                    reason,
                },
                at,
            });
            return;
        };
        let c = &mut self.chains[ci];
        let expected_seq = c.next_seq;
        c.report(
            Problem::Malformed {
                expected_seq,
                reason,
            },
            Some(at),
        );
        c.head = None;
    }

    fn new_chain(&mut self, id: ChainId) -> usize {
        self.chains.push(Chain::new(id));
        self.held.push(0);
        self.counted += CHAIN_COST;
        self.index.insert(id, self.chains.len() - 1);
        self.chains.len() - 1
    }

    /// §4.2 Chain membership: the chain this record belongs to, or `None` if
    /// it is skipped (reported as a foreign record of the current chain).
    fn membership(
        &mut self,
        at: Location,
        chain_id: ChainId,
        seq: u64,
        is_genesis: bool,
    ) -> Option<usize> {
        let first_in_file = self.records_in_file == 0;
        self.records_in_file += 1;
        let known = self.index.get(&chain_id).copied();
        let ci = match (known, is_genesis) {
            _ if self.current.is_some() && self.current == known => known?,
            // (A chain "seen" is one started by this rule or the next: a
            // record skipped as foreign starts nothing.)
            (None, true) => self.new_chain(chain_id),
            (Some(ci), _) if first_in_file || self.current.is_none() => ci,
            (None, false) if first_in_file || self.current.is_none() => {
                let ci = self.new_chain(chain_id);
                let c = &mut self.chains[ci];
                c.unanchored_from = Some(seq);
                c.next_seq = seq;
                c.head = None;
                ci
            }
            _ => {
                let cur = self.current?;
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
                return None;
            }
        };
        self.current = Some(ci);
        // In a store directory, every chain met at the start of a file or
        // started in it must be the directory's chain, of the directory's host.
        let started_here = known.is_none();
        if let Some(p) = self
            .placement
            .as_ref()
            .filter(|_| first_in_file || started_here)
        {
            let c = &mut self.chains[ci];
            let other_host = c.host.as_deref().is_some_and(|h| h != p.host);
            if p.chain != chain_id.to_string() || other_host {
                c.report(
                    Problem::Misfiled {
                        seq,
                        dir_host: p.host.clone(),
                        dir_chain: p.chain.clone(),
                    },
                    Some(at),
                );
            }
        }
        Some(ci)
    }

    fn content(&mut self, at: Location, payload: &[u8], content: Content<'_>) {
        let (chain_id, seq, is_genesis) = match &content {
            Content::Full(r) => (r.chain_id, r.seq, r.kind() == Kind::Genesis && r.seq == 0),
            Content::Redacted { chain_id, seq, .. } => (*chain_id, *seq, false),
        };
        let Some(ci) = self.membership(at, chain_id, seq, is_genesis) else {
            return;
        };
        let (kind, leaf) = match &content {
            Content::Full(r) => (r.kind() as u8, hash::leaf(payload)),
            Content::Redacted { kind, leaf, .. } => (*kind, *leaf),
        };
        let anchors = &self.options.anchors;
        let placement = &self.placement;
        let c = &mut self.chains[ci];
        c.records += 1;
        c.first_seq = Some(c.first_seq.map_or(seq, |f| f.min(seq)));
        if !c.sequence(at, seq, &leaf) {
            return;
        }
        let record = match content {
            Content::Redacted { kind, .. } => {
                redacted(c, at, seq, Kind::from_u8(kind));
                advance(c, kind, &leaf);
                checkpointed(c, at, seq, self.options.checkpoints.as_ref());
                receipted(c, at, seq, self.options.receipt.as_ref());
                return;
            }
            Content::Full(r) => r,
        };
        c.clock(seq, record.time_ns);
        match &record.body {
            Body::Genesis {
                host,
                pk0,
                origin,
                predecessor,
                ..
            } => {
                if seq != 0 {
                    c.report(Problem::UnexpectedGenesis { seq }, Some(at));
                    c.head = None;
                } else {
                    genesis(c, at, anchors, host, pk0, *origin);
                    // (A chain that is not the directory's was reported as such.)
                    let dir_chain = chain_id.to_string();
                    if let Some(p) = placement
                        .as_ref()
                        .filter(|p| p.host != *host && p.chain == dir_chain)
                    {
                        let problem = Problem::Misfiled {
                            seq,
                            dir_host: p.host.clone(),
                            dir_chain: p.chain.clone(),
                        };
                        c.report(problem, Some(at));
                    }
                    if let Some(p) = predecessor {
                        c.predecessor = Some(format!("{}@{}", p.chain_id, p.last_seq));
                        self.claims.push(Claim {
                            successor: chain_id,
                            pred: p.chain_id,
                            last_seq: p.last_seq,
                            head: p.head,
                        });
                    }
                }
                c.last_shutdown = false;
            }
            Body::Seal { .. } => {
                // (Always Some: the body is a seal's.)
                if let Some(fields) = SealFields::of(&record.body, payload) {
                    c.seal(at, seq, record.time_ns, &fields);
                }
            }
            Body::Event { .. } => {
                c.events += 1;
                c.last_shutdown = false;
            }
            Body::Loss { count, .. } => {
                c.losses += 1;
                c.lost_events = c.lost_events.saturating_add(*count);
                c.last_shutdown = false;
            }
            Body::Lifecycle { event, .. } => {
                c.last_shutdown = *event == LifecycleEvent::Shutdown;
            }
        }
        if !matches!(record.body, Body::Seal { .. }) {
            c.ended_cleanly = false;
        }
        advance(c, kind, &leaf);
        checkpointed(c, at, seq, self.options.checkpoints.as_ref());
        receipted(c, at, seq, self.options.receipt.as_ref());
    }

    /// Ends verification and reports.
    pub fn finish(self) -> Report {
        let Verifier {
            chains,
            index,
            options,
            claims,
            mut unattributed,
            ..
        } = self;
        // §4.6 Predecessors named by successor Geneses.
        let mut pred_problems: Vec<Vec<Problem>> = vec![Vec::new(); chains.len()];
        let mut absent: Vec<(usize, Warning)> = Vec::new();
        for cl in &claims {
            let succ = index.get(&cl.successor).copied();
            match index.get(&cl.pred).copied() {
                None => {
                    if let Some(s) = succ {
                        absent.push((
                            s,
                            Warning::PredecessorAbsent {
                                chain: cl.pred.to_string(),
                                last_seq: cl.last_seq,
                            },
                        ));
                    }
                }
                Some(p) => {
                    let pc = &chains[p];
                    let last = pc.last_seq.unwrap_or(0);
                    let successor = cl.successor.to_string();
                    if pc.last_seq.map_or(true, |l| l < cl.last_seq) {
                        pred_problems[p].push(Problem::PredCut {
                            successor,
                            claimed_last_seq: cl.last_seq,
                            last_seq: last,
                        });
                    } else if last > cl.last_seq || pc.head.is_some_and(|h| h != cl.head) {
                        pred_problems[p].push(Problem::PredMismatch {
                            successor,
                            claimed_last_seq: cl.last_seq,
                            last_seq: last,
                        });
                    }
                }
            }
        }
        if let Some(k) = &options.checkpoints {
            checkpoint_findings(
                k,
                &chains,
                &index,
                &mut pred_problems,
                &mut absent,
                &mut unattributed,
            );
        }
        let receipt = options
            .receipt
            .as_ref()
            .map(|r| receipt_outcome(r, &chains, &index, &mut pred_problems));
        let mut out = Vec::with_capacity(chains.len());
        for (i, mut c) in chains.into_iter().enumerate() {
            for (_, w) in absent.iter().filter(|(s, _)| *s == i) {
                c.warnings.push(w.clone());
            }
            let r = c.finish(options.live, &pred_problems[i]);
            out.push(r);
        }
        if out.is_empty() && unattributed.is_empty() {
            unattributed.push(Unattributed::NoRecords);
        }
        Report {
            chains: out,
            unattributed: unattributed.items,
            unattributed_not_listed: unattributed.not_listed,
            trust_anchors: !options.anchors.is_empty(),
            checkpoint_log: Vec::new(),
            receipt,
        }
    }
}

/// §7.2 At the end: what the receipt's chain shows at the seq it names.
fn receipt_outcome(
    r: &Receipted,
    chains: &[Chain],
    index: &HashMap<ChainId, usize>,
    problems: &mut [Vec<Problem>],
) -> ReceiptOutcome {
    let Some(&i) = index.get(&r.chain) else {
        return ReceiptOutcome::Unchecked {
            reason: format!("the input holds no chain {}", r.chain),
        };
    };
    let c = &chains[i];
    if c.host.as_deref().is_some_and(|h| h != r.host) {
        return ReceiptOutcome::Unchecked {
            reason: format!(
                "its chain's Genesis here names host {:?}, the receipt {:?}",
                c.host.as_deref().unwrap_or(""),
                r.host
            ),
        };
    }
    match c.receipt_reached {
        Some(Some(h)) if h == r.head => ReceiptOutcome::Matches,
        Some(Some(_)) => ReceiptOutcome::Fork,
        Some(None) => ReceiptOutcome::Unchecked {
            reason: format!(
                "the head after seq {} is not known here (the records before it are missing, damaged or not linked)",
                r.seq
            ),
        },
        None if c.last_seq.map_or(true, |l| l < r.seq) => {
            problems[i].push(Problem::ReceiptCut {
                seq: r.seq,
                last_seq: c.last_seq,
            });
            ReceiptOutcome::Cut
        }
        None => ReceiptOutcome::Unchecked {
            reason: format!(
                "the chain here does not hold seq {} (its records start at seq {}, or skip it)",
                r.seq,
                c.first_seq.unwrap_or(0)
            ),
        },
    }
}

/// §7 At the end: a checkpointed chain that never reached its checkpointed
/// seq was cut; one not in the input is missing; a chain no checkpoint
/// names is said (a warning).
fn checkpoint_findings(
    k: &Checkpoints,
    chains: &[Chain],
    index: &HashMap<ChainId, usize>,
    problems: &mut [Vec<Problem>],
    warnings: &mut Vec<(usize, Warning)>,
    unattributed: &mut Capped<Unattributed>,
) {
    let mut expected: Vec<_> = k.expected.iter().collect();
    expected.sort_by(|a, b| (&a.1.host, a.0).cmp(&(&b.1.host, b.0)));
    for (chain, x) in expected {
        match index.get(chain) {
            // (A chain that went past the seq without reading it has a gap
            // there, reported as such.)
            Some(&i)
                if !chains[i].checkpoint_reached
                    && chains[i].last_seq.map_or(true, |l| l < x.seq) =>
            {
                problems[i].push(Problem::CheckpointCut {
                    seq: x.seq,
                    last_seq: chains[i].last_seq,
                    checkpoint_seq: x.checkpoint_seq,
                })
            }
            Some(_) => {}
            None => unattributed.push(Unattributed::MissingChain {
                host: x.host.clone(),
                chain: chain.to_string(),
                seq: x.seq,
                checkpoint_seq: x.checkpoint_seq,
                quarantined: None,
            }),
        }
    }
    for (i, c) in chains.iter().enumerate() {
        // (The log's own chains are verified apart; a copy of one among the
        // store's chains is a chain of the store like any other.)
        if !k.expected.contains_key(&c.id) {
            warnings.push((i, Warning::NotCheckpointed));
        }
    }
}

/// §4.5 Genesis at seq 0: the start of the key chain, checked against the anchors.
fn genesis(
    c: &mut Chain,
    at: Location,
    anchors: &TrustAnchors,
    host: &str,
    pk0: &[u8; 32],
    origin: Origin,
) {
    c.host = Some(host.to_string());
    c.text = c.text.saturating_add(host.len() as u64);
    c.origin = Some(origin);
    c.pk0 = Some(*pk0);
    c.keys = Keys::Known(KeyPosition {
        key: *pk0,
        epoch: 0,
    });
    c.anchor = if anchors.is_empty() {
        Anchor::FromData
    } else if anchors.trusts(host, pk0) {
        Anchor::Trusted
    } else {
        c.report(
            Problem::UntrustedGenesis {
                host: host.to_string(),
                fingerprint: hash::fingerprint(pk0),
            },
            Some(at),
        );
        Anchor::Untrusted
    };
}

/// §4.5 A redacted frame: its leaf stands for an Event, Loss or Lifecycle record.
fn redacted(c: &mut Chain, at: Location, seq: u64, kind: Option<Kind>) {
    c.redacted += 1;
    match c.redacted_seqs.items.last_mut() {
        Some((_, last)) if last.checked_add(1) == Some(seq) => *last = seq,
        _ => c.redacted_seqs.push((seq, seq)),
    }
    if !matches!(kind, Some(Kind::Event | Kind::Loss | Kind::Lifecycle)) {
        let reason = match kind {
            None => "unknown record kind".into(),
            Some(k) => format!("a {} record cannot be redacted", k.name()),
        };
        c.report(Problem::BadRedaction { seq, reason }, Some(at));
        c.head = None;
    }
    c.last_shutdown = false;
    c.ended_cleanly = false;
}

/// §4.7 The head step.
fn advance(c: &mut Chain, kind: u8, leaf: &Digest) {
    c.head = c.head.map(|h| hash::head(&h, kind, leaf));
}

/// §7 At the seq a checkpoint names, the head must be the checkpoint's (an
/// unknown head was reported where it was lost).
fn checkpointed(c: &mut Chain, at: Location, seq: u64, checkpoints: Option<&Checkpoints>) {
    let Some(x) = checkpoints.and_then(|k| k.expected.get(&c.id)) else {
        return;
    };
    if x.seq != seq {
        return;
    }
    c.checkpoint_reached = true;
    if let Some(h) = c.head.filter(|h| *h != x.head) {
        let problem = Problem::CheckpointMismatch {
            seq,
            checkpoint_seq: x.checkpoint_seq,
            expected: hex::encode(&x.head),
            got: hex::encode(&h),
        };
        c.report(problem, Some(at));
    }
}

/// §7.2 At the seq a receipt names, the head must be the receipt's.
fn receipted(c: &mut Chain, at: Location, seq: u64, receipt: Option<&Receipted>) {
    let Some(r) = receipt.filter(|r| r.chain == c.id && r.seq == seq) else {
        return;
    };
    // Another host's chain under that id is not compared (said at the end).
    if c.host.as_deref().is_some_and(|h| h != r.host) {
        return;
    }
    c.receipt_reached = Some(c.head);
    if let Some(h) = c.head.filter(|h| *h != r.head) {
        let problem = Problem::ReceiptFork {
            seq,
            expected: hex::encode(&r.head),
            got: hex::encode(&h),
        };
        c.report(problem, Some(at));
    }
}

/// The problem a refused seal is reported as.
fn seal_problem(
    fault: SealFault,
    seq: u64,
    fields: &SealFields<'_>,
    position: &KeyPosition,
) -> Problem {
    match fault {
        SealFault::EpochMismatch { expected } => Problem::EpochMismatch {
            seq,
            epoch: fields.epoch,
            expected_epoch: expected,
        },
        SealFault::KeyNotInChain => Problem::KeyNotInChain {
            seq,
            epoch: fields.epoch,
            signer: hash::fingerprint(fields.signer),
            expected: hash::fingerprint(&position.key),
            signer_epoch: None, // resolved at the end
        },
        SealFault::BadSignature => Problem::BadSignature {
            seq,
            epoch: fields.epoch,
        },
        SealFault::KeyReused { first_epoch } => Problem::KeyReused {
            seq,
            epoch: fields.epoch,
            first_epoch,
        },
    }
}
