//! The collector's checkpoint log: a chain of its own, kept in the store,
//! into which it writes what it holds of every chain.
//!
//! ```text
//! STORE/checkpoints/signer.state, genesis.record   its forward-secure key state
//! STORE/checkpoints/log/<base>.seg                  its records (segment log layout)
//! ```
//!
//! At least once a second while chains move, and at a clean stop, it appends
//! an Event (source `checkpoint`, docs/FORMAT.md §7) naming, for every chain
//! that moved, the host, the chain, the last record held durably and the head
//! after it — and seals it, under the same forward-secure key evolution as an
//! agent's chain. `logseal verify STORE` checks every chain of the store
//! against the latest checkpoints: a chain cut back, rewritten after a
//! checkpoint, deleted or moved into `quarantine/` no longer matches.
//!
//! It also signs the collector's receipts (docs/FORMAT.md §7.2): sessions
//! sign each Ack with the log's current epoch key, through
//! [`ReceiptSigner`], which holds a copy of that key until the log's next
//! seal is durable (the copy is erased then, right before the writer's own).
//!
//! Invariants: a checkpoint names only records that were fsynced before it
//! was written (each chain is synced first); the checkpoint log is written by
//! this thread only, through the chain writer (its crash semantics are
//! `storage::writer`'s: a torn or unsealed tail after a crash is recovered at
//! the next start, which checkpoints every chain again).

use super::store::Store;
use crate::chain::checkpoint;
use crate::chain::receipt::Receipt;
use crate::chain::record::{Body, Payload, Source};
use crate::chain::ChainId;
use crate::chain::SecretKey;
use crate::storage::segment_log::{LogOptions, SegmentLog};
use crate::storage::signer::StateError;
use crate::storage::writer::{read_anchor, ChainWriter, Opened, WriterError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

/// Directory of the checkpoint log in a store.
pub const DIR: &str = "checkpoints";

/// How often chains that moved are checkpointed.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How often the store saves every chain's tip (`STORE/tips.json`): after a
/// crash a chain is read back from its saved tip on, so this bounds what a
/// start after `kill -9` reads.
pub const TIPS_EVERY: Duration = Duration::from_secs(10);

/// The state directory of a store's checkpoint log.
pub fn state_dir(store: &Path) -> PathBuf {
    store.join(DIR)
}

/// The key receipts are signed with: the checkpoint log's current epoch key.
struct EpochKey {
    log_chain: ChainId,
    epoch: u64,
    key: SecretKey,
    /// The log's next seq when the key became current (a lower bound).
    next_seq: u64,
}

/// Signs receipts for the sessions (docs/FORMAT.md §7.2) with the checkpoint
/// log's current epoch key. When a seal of the log is durable, right before
/// the writer erases the key, the checkpoint thread takes the copy away
/// (dropping it erases it), and gives the writer's key back once the seal
/// is done (the next key; the same one if the promotion failed and kept
/// it): no receipt is signed with a key the log has erased. Sessions wait
/// for the key while the seal promotes it (at most [`KEY_WAIT`]).
pub struct ReceiptSigner {
    collector: String,
    key: Mutex<Option<EpochKey>>,
    ready: Condvar,
}

/// How long a session waits for the key while the log seals.
const KEY_WAIT: Duration = Duration::from_secs(5);

impl ReceiptSigner {
    /// A receipt: this collector holds `chain` of `host` durably up to `seq`,
    /// with `head` after it. `None` if the log has had no key for
    /// [`KEY_WAIT`] (it is promoting its key, or stopping).
    pub fn sign(&self, host: &str, chain: ChainId, seq: u64, head: [u8; 32]) -> Option<Vec<u8>> {
        let g = self.key.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .ready
            .wait_timeout_while(g, KEY_WAIT, |k| k.is_none())
            .unwrap_or_else(|p| p.into_inner());
        let k = g.as_ref()?;
        Some(Self::signed(k, &self.collector, host, chain, seq, head))
    }

    /// [`sign`](Self::sign) without waiting: `None` while the log has no key
    /// to give (the caller then waits with `sign`, off an async worker).
    pub fn sign_now(
        &self,
        host: &str,
        chain: ChainId,
        seq: u64,
        head: [u8; 32],
    ) -> Option<Vec<u8>> {
        let g = self.key.lock().unwrap_or_else(|p| p.into_inner());
        let k = g.as_ref()?;
        Some(Self::signed(k, &self.collector, host, chain, seq, head))
    }

    fn signed(
        k: &EpochKey,
        collector: &str,
        host: &str,
        chain: ChainId,
        seq: u64,
        head: [u8; 32],
    ) -> Vec<u8> {
        let r = Receipt {
            collector: collector.to_string(),
            log_chain: k.log_chain,
            log_epoch: k.epoch,
            log_key: k.key.public(),
            log_next_seq: k.next_seq,
            host: host.to_string(),
            chain,
            seq,
            head,
        };
        r.sign(&k.key)
    }

    /// Takes the key away (erasing the copy): its seal is durable and the
    /// writer is about to erase it, or the log is stopping.
    fn retire(&self) {
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Gives the sessions the log's current key, once its seal is durable.
    fn install(&self, w: &ChainWriter<SegmentLog>) {
        let (epoch, key) = w.epoch_key();
        let new = EpochKey {
            log_chain: w.chain_id(),
            epoch,
            key,
            next_seq: w.next_seq(),
        };
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
        self.ready.notify_all();
    }
}

/// The newest durable seal of the checkpoint log as a witness block
/// (docs/FORMAT.md §7.1), for peers that witness it (§7.4).
pub type Published = Arc<Mutex<Option<String>>>;

/// The checkpoint log, open for appending.
pub struct CheckpointLog {
    w: ChainWriter<SegmentLog>,
    receipts: Arc<ReceiptSigner>,
    /// Its genesis key's fingerprint.
    genesis: String,
    published: Published,
    /// Opening it started the chain.
    new: bool,
    /// Per chain, the next seq at its last checkpoint.
    last: HashMap<ChainId, u64>,
}

impl CheckpointLog {
    /// Opens (or starts, with a Genesis naming `host`) the checkpoint log of
    /// the store at `root`, and seals what opening it wrote.
    pub fn open(root: &Path, host: &str) -> Result<CheckpointLog, WriterError> {
        let dir = state_dir(root);
        let log_dir = dir.join("log");
        let opts = LogOptions {
            segment_bytes: 64 << 20,
            write_behind: false,
        };
        let (mut w, opened) =
            ChainWriter::open_log(&dir, Some(host), &log_dir.display().to_string(), |each| {
                SegmentLog::open(&log_dir, opts, each)
            })?;
        tracing::info!(chain = %w.chain_id(), opened = ?opened, "checkpoint log open");
        w.seal()?;
        // The key receipts are signed with is named by a durable seal.
        w.sync().map_err(io_writer)?;
        let receipts = Arc::new(ReceiptSigner {
            collector: host.to_string(),
            key: Mutex::new(None),
            ready: Condvar::new(),
        });
        receipts.install(&w);
        let (_, _, pk0) = read_anchor(&dir).map_err(|e| WriterError::Io {
            what: format!("reading the checkpoint log's genesis in {}", dir.display()),
            source: std::io::Error::other(e),
        })?;
        let log = CheckpointLog {
            w,
            receipts,
            genesis: crate::chain::hash::fingerprint(&pk0),
            published: Arc::new(Mutex::new(None)),
            new: matches!(opened, Opened::New { .. }),
            last: HashMap::new(),
        };
        log.publish();
        Ok(log)
    }

    /// The newest durable seal as a witness block, kept up to date.
    pub fn published(&self) -> Published {
        self.published.clone()
    }

    /// Publishes the writer's last seal (durable: called after its sync).
    fn publish(&self) {
        let Some(record) = self.w.last_seal() else {
            return;
        };
        let Ok(rec) = crate::chain::Record::decode(record) else {
            return;
        };
        let block = crate::transport::block::Witness {
            host: self.w.host().to_string(),
            genesis: self.genesis.clone(),
            chain: rec.chain_id,
            seq: rec.seq,
            time_ns: rec.time_ns,
            record: record.to_vec(),
        }
        .text();
        *self.published.lock().unwrap_or_else(|p| p.into_inner()) = Some(block);
    }

    /// True if opening it started the chain (its Genesis was written now).
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// Its trust-anchor line, `HOST KEY` (docs/FORMAT.md §4.1).
    pub fn anchor_line(&self, root: &Path) -> Result<String, StateError> {
        let (_, host, pk0) = read_anchor(&state_dir(root))?;
        Ok(crate::chain::trust::line(&host, &pk0))
    }

    /// The signer of this collector's receipts.
    pub fn receipts(&self) -> Arc<ReceiptSigner> {
        self.receipts.clone()
    }

    /// The chain of the checkpoint log.
    pub fn chain_id(&self) -> ChainId {
        self.w.chain_id()
    }

    /// Appends a checkpoint of every chain that moved since the last one,
    /// seals it and waits for it to be durable; returns how many chains it
    /// named (none: nothing was written).
    pub fn checkpoint(&mut self, store: &Store) -> Result<usize, WriterError> {
        let last = &self.last;
        let mut entries = store.durable_tips(|chain, next| last.get(&chain) != Some(&next));
        let notes = store.take_notes();
        if entries.is_empty() && notes.is_empty() {
            return Ok(0);
        }
        for (i, note) in notes.iter().enumerate() {
            if let Err(e) = self.append(note) {
                // Not written: kept for the next turn.
                for n in &notes[i..] {
                    store.note(n.clone());
                }
                return Err(e);
            }
        }
        entries.sort();
        // At most MAX_ENTRIES per checkpoint record; one seal covers them all.
        for chunk in entries.chunks_mut(checkpoint::MAX_ENTRIES) {
            self.append(&checkpoint::encode(chunk))?;
        }
        let receipts = &self.receipts;
        let sealed = self.w.seal_then(|| receipts.retire());
        // The writer's current key: the next one if the seal promoted it, else
        // the same (a failed promotion keeps it, unerased).
        receipts.install(&self.w);
        sealed?;
        self.w.sync().map_err(io_writer)?;
        self.publish();
        for e in &entries {
            self.last.insert(e.chain, e.seq + 1);
        }
        Ok(entries.len())
    }

    /// Appends a statement (an Event of source `checkpoint`).
    fn append(&mut self, payload: &[u8]) -> Result<u64, WriterError> {
        self.w
            .append(Body::Event {
                source: Source::Checkpoint,
                flags: 0,
                peer: "",
                original_len: None,
                payload: Payload::Raw(payload),
            })
            .map_err(io_writer)
    }

    /// A last checkpoint, and the chain's clean shutdown.
    pub fn close(mut self, store: &Store) -> Result<(), WriterError> {
        let last = self.checkpoint(store);
        // No receipt after the last checkpoint: the key goes with the shutdown's seal.
        self.receipts.retire();
        last?;
        self.w.shutdown("collector stopping")?;
        Ok(())
    }
}

fn io_writer(e: std::io::Error) -> WriterError {
    WriterError::Io {
        what: "appending to the checkpoint log".into(),
        source: e,
    }
}

/// Runs the checkpoint thread: a checkpoint every [`INTERVAL`] until `stop`
/// says so (or its sender is gone), then the last one and the shutdown. A
/// failure raises an alert and is tried again at the next turn.
pub fn run(mut log: CheckpointLog, store: &Store, stop: &mpsc::Receiver<()>) {
    let mut failing = false;
    let mut tips_saved = std::time::Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        if tips_saved.elapsed() >= TIPS_EVERY {
            // After a crash, chains are read back from these tips on.
            store.save_tips();
            tips_saved = std::time::Instant::now();
        }
        match log.checkpoint(store) {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("checkpoints written again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "cannot write a checkpoint; trying again every second");
                store.alert("checkpoint-failed", "", None, &e.to_string());
            }
            Err(_) => {}
        }
    }
    if let Err(e) = log.close(store) {
        tracing::error!(error = %e, "the last checkpoint could not be written");
        store.alert("checkpoint-failed", "", None, &format!("at stop: {e}"));
    }
}
