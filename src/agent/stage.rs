//! The first half of chaining, on a thread of its own: every event of a batch
//! is encoded as a record, framed (length, CRC32C) and its leaf hashed, with the
//! seq it will most likely get. The stamper then only copies each frame into
//! the spool and takes the head step, `head = H(0x01 ‖ head ‖ kind ‖ leaf)`, the one
//! part that must be sequential. Two cores share the work of one chain.
//!
//! The guess of the seq is the stager's count of what it passed on (events
//! and Loss notes) plus a shift the stamper keeps up to date: when the stamper
//! chains a record of its own (a seal, a counted loss), the next staged events
//! no longer match; [`ChainWriter::append_staged`] refuses them, the stamper
//! encodes those itself and stores the corrected shift, and the batches staged
//! after that match again. The chain is the same either way, only the work is
//! split differently.
//!
//! [`ChainWriter::append_staged`]: crate::storage::writer::ChainWriter::append_staged

use crate::chain::record::{Body, Payload, Record, FLAG_UNPARSED};
use crate::chain::{ChainId, Digest};
use crate::ingest::{Batch, Item, ItemFormat};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Staged batches waiting for the stamper at most.
const QUEUE: usize = 16;

/// A batch's events, encoded and framed as records, with their leaves.
#[derive(Debug)]
pub struct Staged {
    /// The stager's count for the first event, without the shift.
    pub base: u64,
    /// The seq the first event was encoded with (`base` + shift).
    pub first_seq: u64,
    /// The frames, back to back.
    pub frames: Vec<u8>,
    /// Where each event's frame ends in `frames`.
    pub ends: Vec<u32>,
    /// Each event's leaf.
    pub leaves: Vec<Digest>,
}

impl Staged {
    /// The frame of event `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.frames[start..self.ends[i] as usize]
    }
}

/// What the stamper receives: a batch, staged if it could be.
pub type Input = (Batch, Option<Box<Staged>>);

/// Encodes, frames and hashes the events of a raw batch as records of
/// `chain_id` from seq `first_seq` on, at the batch's time (as the stamper
/// would). `None` for journald batches (the stamper encodes those) and for
/// events too large for one frame.
pub fn stage(b: &Batch, chain_id: ChainId, base: u64, first_seq: u64) -> Option<Box<Staged>> {
    if b.format != ItemFormat::Raw {
        return None;
    }
    let mut st = Staged {
        base,
        first_seq,
        frames: Vec::with_capacity(b.data.len() + b.items.len() * (64 + b.peer.len())),
        ends: Vec::with_capacity(b.items.len()),
        leaves: Vec::with_capacity(b.items.len()),
    };
    for (i, item) in b.items.iter().enumerate() {
        let bytes = b.bytes(item);
        let rec = Record {
            chain_id,
            seq: first_seq + i as u64,
            time_ns: b.time_ns,
            body: event_body(b, item, Payload::Raw(bytes)),
        };
        let leaf =
            crate::chain::frame::push_record_frame(&mut st.frames, |out| rec.encode_into(out))?;
        st.ends.push(st.frames.len() as u32);
        st.leaves.push(leaf);
    }
    Some(Box::new(st))
}

/// Starts the stager: batches from `rx`, staged in order, to the returned
/// receiver, which reports disconnection once `rx` is closed and drained.
/// `next_seq` is the chain's next seq now; `shift` is the stamper's correction.
pub fn spawn(
    mut rx: mpsc::Receiver<Batch>,
    chain_id: ChainId,
    next_seq: u64,
    shift: Arc<AtomicU64>,
) -> std::io::Result<std_mpsc::Receiver<Input>> {
    let (tx, out) = std_mpsc::sync_channel::<Input>(QUEUE);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    std::thread::Builder::new()
        .name("logseal-stager".into())
        .spawn(move || {
            let mut count = next_seq;
            let mut batches = Vec::with_capacity(16);
            while rt.block_on(rx.recv_many(&mut batches, 16)) > 0 {
                for b in batches.drain(..) {
                    let base = count + u64::from(b.loss.is_some());
                    count = base + b.items.len() as u64;
                    let first = base + shift.load(Ordering::Relaxed);
                    let st = stage(&b, chain_id, base, first);
                    if tx.send((b, st)).is_err() {
                        return; // the stamper is gone
                    }
                }
            }
        })?;
    Ok(out)
}

/// True if the bytes start like a syslog message (`<PRI>`): the cheap check
/// behind the "unparsed" flag; full parsing stays off the hot path.
pub fn looks_like_syslog(m: &[u8]) -> bool {
    if m.first() != Some(&b'<') {
        return false;
    }
    let digits = m[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=3).contains(&digits) && m.get(1 + digits) == Some(&b'>')
}

/// The Event record of item `item` of batch `b`, with `payload` (a raw
/// message is flagged unparsed unless it starts like syslog). The stager and
/// the stamper's own path both make events here.
pub(crate) fn event_body<'a>(b: &'a Batch, item: &Item, payload: Payload<'a>) -> Body<'a> {
    let flags = match payload {
        Payload::Raw(m) if !looks_like_syslog(m) => FLAG_UNPARSED,
        _ => 0,
    };
    // (The encoder sets the truncation flag from `original_len`.)
    Body::Event {
        source: b.source,
        flags,
        peer: &b.peer,
        original_len: item.original_len,
        payload,
    }
}
