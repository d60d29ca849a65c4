//! The verdict's sentences: what a responder reads for each problem, each
//! unverified interval and each warning the verifier reports. Text that comes
//! from the data (host names, reasons) is escaped with [`safe`].

use crate::verify::{Problem, Unverified, Warning};
use std::fmt::Write as _;

impl Problem {
    /// One sentence for a responder.
    pub fn describe(&self) -> String {
        use Problem::*;
        match self {
            BadLink { seal_seq, first_seq, last_seq } => format!(
                "bad link: records {first_seq}..={last_seq} do not hash to the head signed by the seal at seq {seal_seq}: one of them was altered, inserted or removed"
            ),
            BadSignature { seq, epoch } => format!("bad seal signature: the seal at seq {seq} (epoch {epoch}) does not verify under the key the key chain names; the key chain is unknown from here on"),
            KeyNotInChain { seq, epoch, signer, expected, signer_epoch } => {
                let mut s = format!("key not in the key chain: the seal at seq {seq} (epoch {epoch}) names signer {signer}, the key chain expects {expected}; the key chain is unknown from here on");
                if let Some(e) = signer_epoch {
                    let _ = write!(s, "; a later seal names the signer as the key of epoch {e}: a past seal re-signed with a later (stolen) key");
                }
                s
            }
            EpochMismatch { seq, epoch, expected_epoch } => format!("epoch mismatch: the seal at seq {seq} claims epoch {epoch}, the key chain is at epoch {expected_epoch}; the key chain is unknown from here on"),
            KeyReused { seq, epoch, first_epoch } => format!("key reused: the seal at seq {seq} (epoch {epoch}) names as next key the key of epoch {first_epoch}: forward security is lost, the key chain is unknown from here on"),
            Gap { expected_seq, got_seq, missing } => format!("seq gap: expected seq {expected_seq}, found {got_seq} ({missing} record(s) missing)"),
            Reorder { seq, expected_seq } => format!("reorder: seq {seq} appears where seq {expected_seq} was expected"),
            Duplicate { seq } => format!("duplicate: seq {seq} appears again with the same content"),
            Conflict { seq } => format!("conflict: seq {seq} appears again with different content"),
            DamagedFrame { expected_seq, skipped_bytes, reason } => format!("damaged frame: {skipped_bytes} bytes that are not a valid frame ({reason}) where seq {expected_seq} was expected"),
            Malformed { expected_seq, reason } => format!("malformed record where seq {expected_seq} was expected: {reason}"),
            TruncatedTail { expected_seq, bytes, reason } => format!("truncated tail: the file ends inside a frame ({reason}, {bytes} bytes) where seq {expected_seq} was expected"),
            UnsealedTail { first_seq, last_seq, count } => format!("unsealed tail: {count} record(s), seq {first_seq}..={last_seq}, are not covered by any seal (the seals were removed, the writer died before sealing, or the chain is live: see --live)"),
            ForeignChain { seq, chain } => format!("foreign chain: a record of chain {chain} (its seq {seq}) inside this chain"),
            UnexpectedGenesis { seq } => format!("unexpected genesis record at seq {seq}"),
            UntrustedGenesis { host, fingerprint } => format!("untrusted genesis key {fingerprint}: not a trust anchor of host {}", safe(host)),
            BadRedaction { seq, reason } => format!("bad redaction at seq {seq}: {reason}"),
            PredCut { successor, claimed_last_seq, last_seq } => format!("cut: the Genesis of successor chain {successor} says this chain reached seq {claimed_last_seq}; it ends at seq {last_seq} here"),
            PredMismatch { successor, claimed_last_seq, last_seq } => format!("predecessor mismatch: the Genesis of successor chain {successor} names this chain's seq {claimed_last_seq} and its head as its last record; here the chain ends at seq {last_seq} or has another head there"),
            Misfiled { seq, dir_host, dir_chain } => format!("misfiled: record seq {seq} is stored in the directory of host {}, chain {}", safe(dir_host), safe(dir_chain)),
            CheckpointCut { seq, last_seq, checkpoint_seq } => format!(
                "cut after a checkpoint: the collector's checkpoint at seq {checkpoint_seq} of its checkpoint log says it held this chain up to seq {seq}; here it {}",
                last_seq.map_or("holds no record".to_string(), |l| format!("ends at seq {l}"))
            ),
            ReceiptCut { seq, last_seq } => format!(
                "cut after a receipt: the collector's receipt says it held this chain up to seq {seq}; here it {}",
                last_seq.map_or("holds no record".to_string(), |l| format!("ends at seq {l}"))
            ),
            ReceiptFork { seq, expected, got } => format!("forked from what the collector acknowledged: its receipt names head {expected} after seq {seq}; the records here give {got}"),
            CheckpointMismatch { seq, checkpoint_seq, expected, got } => format!("rewritten after a checkpoint: the collector's checkpoint at seq {checkpoint_seq} of its checkpoint log names head {expected} after seq {seq}; the records here give {got}"),
        }
    }
}

impl Unverified {
    /// Why, for a responder.
    pub fn describe(&self) -> String {
        match self {
            Unverified::Problem { seal_seq } => format!("a problem in the interval; the seal at seq {seal_seq} re-anchors what follows it, not what precedes it"),
            Unverified::KeyChainUnknown { seal_seq } => format!("the key chain is unknown after the refused seal at seq {seal_seq}"),
            Unverified::Unanchored => "the chain starts without its Genesis: nothing links these records to a genesis key".into(),
            Unverified::Unsealed => "after the last accepted seal".into(),
        }
    }
}

impl Warning {
    /// One sentence for a responder.
    pub fn describe(&self) -> String {
        match self {
            Warning::ClockBackwards { seq, prev_seq, by_ns } => format!("clock went backwards: seq {seq} is dated {} before seq {prev_seq}", span(*by_ns)),
            Warning::ClockJump { seq, prev_seq, by_ns } => format!("clock jumped: seq {seq} is dated {} after seq {prev_seq}", span(*by_ns)),
            Warning::NotCheckpointed => "no checkpoint of the collector names this chain (stored after its last checkpoint before a crash, or put into the store behind its back)".into(),
            Warning::PredecessorAbsent { chain, last_seq } => format!("predecessor chain {chain} (named up to seq {last_seq} by the Genesis) is not in the input: verify it too"),
        }
    }
}

fn span(ns: i128) -> String {
    let s = ns / 1_000_000_000;
    if s >= 86_400 {
        format!("{:.1} days", ns as f64 / 86_400e9)
    } else if s >= 3600 {
        format!("{:.1} hours", ns as f64 / 3600e9)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}

/// Text from the data or a file name, safe to print on a terminal: control
/// characters (escape sequences, newlines) are shown escaped, never sent.
pub fn safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
