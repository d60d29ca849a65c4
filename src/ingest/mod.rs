//! Ingest: the inputs that turn received bytes into batches of events for the
//! stamper. Syslog listeners (UDP, TCP, TLS, unix sockets) with RFC 6587
//! framing ([`framing`], [`listen`], [`conns`]; the TLS configuration is [`crate::transport::tls`]); the raw bytes are
//! what is chained, and [`syslog`] parses them only for display. The journald
//! reader ([`journal`]) chains each entry's fields whole.

pub mod conns;
pub mod framing;
pub mod journal;
pub mod listen;
pub mod syslog;

use crate::chain::record::{LossReason, Source};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Events received together (one read, or a burst of datagrams) from one peer.
#[derive(Debug)]
pub struct Batch {
    /// Input kind.
    pub source: Source,
    /// Peer address (or socket path).
    pub peer: Arc<str>,
    /// Receive time of the read, ns since the Unix epoch.
    pub time_ns: i64,
    /// Message bytes, back to back.
    pub data: Vec<u8>,
    /// The messages in `data`.
    pub items: Vec<Item>,
    /// What an item's bytes are.
    pub format: ItemFormat,
    /// A loss the input noticed just before the first item (chained first).
    pub loss: Option<Box<LossNote>>,
    /// The memory it holds, taken from the inputs' budget for batches on
    /// their way to the stamper (given back when the batch is dropped).
    pub charge: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What the bytes of a [`Batch`]'s items are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFormat {
    /// The message exactly as received (Event payload format 0).
    Raw,
    /// Journald fields, encoded with [`crate::ingest::journal::push_field`]
    /// (Event payload format 1).
    Fields,
}

/// A Loss record an input asks the stamper to chain.
#[derive(Debug, Clone)]
pub struct LossNote {
    /// Why.
    pub reason: LossReason,
    /// How many events (0: unknown).
    pub count: u64,
    /// Time of the last event before the loss, ns since the Unix epoch.
    pub first_ns: i64,
    /// Time of the first event after it.
    pub last_ns: i64,
    /// What was lost, in words.
    pub detail: String,
}

/// One message inside a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Start in `Batch::data`.
    pub start: u32,
    /// Length in `Batch::data`.
    pub len: u32,
    /// Length before truncation, if the message was cut.
    pub original_len: Option<u64>,
}

impl Batch {
    /// An empty batch.
    pub fn new(source: Source, peer: Arc<str>, time_ns: i64) -> Batch {
        Batch {
            source,
            peer,
            time_ns,
            data: Vec::new(),
            items: Vec::new(),
            format: ItemFormat::Raw,
            loss: None,
            charge: None,
        }
    }

    /// Bytes the batch's buffers hold (allocated).
    pub fn mem(&self) -> usize {
        self.data.capacity() + self.items.capacity() * std::mem::size_of::<Item>()
    }

    /// Gives back room reserved and not used (more than twice what is used).
    pub fn shrink(&mut self) {
        if self.data.capacity() > 2 * self.data.len() + 64 {
            self.data.shrink_to_fit();
        }
        if self.items.capacity() > 2 * self.items.len() + 4 {
            self.items.shrink_to_fit();
        }
    }

    /// Bytes of messages and item entries in it.
    pub fn used(&self) -> usize {
        self.data.len() + self.items.len() * std::mem::size_of::<Item>()
    }

    /// An empty batch with room for `bytes` of messages, its buffers taken
    /// from those [`recycle`] kept if there are any (no allocation, no page
    /// faults on the hot path).
    pub fn with_capacity(source: Source, peer: Arc<str>, time_ns: i64, bytes: usize) -> Batch {
        let mut b = Batch::new(source, peer, time_ns);
        if let Some((data, items)) = SPARE.lock().ok().and_then(|mut s| s.pop()) {
            (b.data, b.items) = (data, items);
        }
        b.data.reserve(bytes);
        b.items.reserve(bytes / 128 + 1);
        b
    }

    /// Adds a message.
    pub fn push(&mut self, msg: &[u8], original_len: Option<u64>) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(msg);
        self.items.push(Item {
            start,
            len: msg.len() as u32,
            original_len,
        });
    }

    /// The bytes of an item.
    pub fn bytes(&self, item: &Item) -> &[u8] {
        &self.data[item.start as usize..(item.start + item.len) as usize]
    }
}

/// Buffers of chained batches, for [`Batch::with_capacity`] to use again.
static SPARE: std::sync::Mutex<Vec<(Vec<u8>, Vec<Item>)>> = std::sync::Mutex::new(Vec::new());

/// Spare buffers kept at most (each is one read's worth, typically 64 KiB,
/// 256 KiB at most with its item table: 16 MiB in all).
const SPARE_MAX: usize = 64;

/// Gives a chained batch's buffers back for later batches.
pub fn recycle(mut b: Batch) {
    if b.format != ItemFormat::Raw || b.mem() > 256 << 10 {
        return; // journald batches are made apart; an odd large one: let it go
    }
    b.data.clear();
    b.items.clear();
    if let Ok(mut s) = SPARE.lock() {
        if s.len() < SPARE_MAX {
            s.push((b.data, b.items));
        }
    }
}

/// Messages an input had to drop (UDP while the stamper or spool is full).
#[derive(Debug)]
pub struct LossCounter {
    /// Input kind.
    pub source: Source,
    /// Listening address, for the Loss record's detail.
    pub listen: String,
    count: AtomicU64,
    first_ns: AtomicI64,
    last_ns: AtomicI64,
    /// Every message counted since the start (never taken; for the metrics).
    total: AtomicU64,
}

impl LossCounter {
    /// A counter for one input.
    pub fn new(source: Source, listen: String) -> LossCounter {
        LossCounter {
            source,
            listen,
            count: AtomicU64::new(0),
            first_ns: AtomicI64::new(i64::MAX),
            last_ns: AtomicI64::new(i64::MIN),
            total: AtomicU64::new(0),
        }
    }

    /// Counts `n` lost messages at time `t`.
    pub fn add(&self, n: u64, t: i64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.restore(n, t);
    }

    /// Puts back `n` messages [`take`](Self::take)n and not chained after all.
    pub fn restore(&self, n: u64, t: i64) {
        self.first_ns.fetch_min(t, Ordering::Relaxed);
        self.last_ns.fetch_max(t, Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Messages counted since the start, chained in a Loss record or not.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// True if nothing is counted and not yet taken.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Takes the counted losses: (count, first, last), if any.
    pub fn take(&self) -> Option<(u64, i64, i64)> {
        let n = self.count.swap(0, Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let first = self.first_ns.swap(i64::MAX, Ordering::Relaxed);
        let last = self.last_ns.swap(i64::MIN, Ordering::Relaxed);
        Some((n, first.min(last), last.max(first)))
    }
}
