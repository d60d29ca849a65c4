//! Write-behind for segment files: a pool of threads that does the `pwrite`s
//! and the `fdatasync`s, so that the thread building frames (the agent's
//! stamper, a collector's session) does not also pay for copying every byte
//! into the page cache, nor wait for the disk.
//!
//! **One pool per process, not a thread per file.** A collector holds a file
//! open for every chain of every host it serves; a thread each would make its
//! threads grow with the fleet. Work on a file (buffers to write, an fdatasync
//! asked for, an abandon or a stop) puts it on the pool's queue once; a pool
//! thread takes it, does all its work, and takes the next. Requests for one
//! file that arrive while it waits are served by one fdatasync (group commit
//! per file); files are synced [`POOL_THREADS`] at a time at most, so the
//! file system's journal can commit them together. The pool starts a thread
//! only when every one it has is busy: the agent, with one spool, has one.
//! Idle, the pool's threads wait on a condition variable: no timer.
//!
//! The owner hands over full buffers with [`WriteBehind::submit`] and gets an
//! empty one back; at most [`MAX_QUEUED`] buffers wait, after which `submit`
//! waits (memory stays bounded, and a slow disk slows the owner down).
//! Buffers are written in order, each at the file offset it was given.
//!
//! A failed write (a full disk, an I/O error) cuts the file back to where that
//! write began, so no torn frame is left, keeps the failed buffer and those
//! after it queued, and stops. The owner's next call returns the error; taking
//! it lets the thread try again, so the owner's usual retry loop (the
//! stamper's "holding input until it succeeds") retries the queued writes in
//! order and nothing handed over is lost. `sync` returns only when every buffer
//! handed over before it is written and fdatasynced.
//!
//! **A failed fdatasync is not retried as such.** After one, Linux may have
//! dropped the pages it could not write (or marked them clean) and report the
//! next fdatasync as a success, though the bytes never reached the disk. So
//! the thread keeps every buffer it wrote until an fdatasync covering it
//! succeeds ([`MAX_HELD`] at most: it syncs early rather than hold more), and
//! after a failed one it queues all of them again: the retry writes them anew
//! at the same offsets before it syncs, and the durable offset moves only past
//! bytes written and synced without an error in between. What was in the file
//! before the write-behind started is durable already: opening a segment fdatasyncs
//! it ([`crate::storage::segment::SegmentWriter::open_append`]).
//!
//! [`WriteBehind::abandon`] (the collector, giving up on a chain after a
//! storage error) cuts the file back to its durable offset, so that what is
//! read back from it afterwards is only what was durable.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Seconds each fsync of a spool or store file took, in this process (the
/// metrics endpoint reports it as `logseal_fsync_seconds`).
pub static FSYNC_SECONDS: std::sync::LazyLock<prometheus_client::metrics::histogram::Histogram> =
    std::sync::LazyLock::new(|| {
        prometheus_client::metrics::histogram::Histogram::new(crate::util::units::latency_buckets())
    });

/// Buffers waiting to be written at most; `submit` waits beyond this.
pub const MAX_QUEUED: usize = 4;

/// Buffers written and kept until an fdatasync covers them, at most; the
/// file is synced before more are written.
pub const MAX_HELD: usize = 16;

/// Threads of the pool at most: files written or synced at once.
pub const POOL_THREADS: usize = 8;

struct Job {
    offset: u64,
    buf: Vec<u8>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Written since the last successful fdatasync, in order: written again
    /// if the next one fails.
    held: VecDeque<Job>,
    /// Written buffers, cleared, for the owner to fill again.
    spare: Vec<Vec<u8>>,
    /// A write is in progress (its job is out of the queue).
    writing: bool,
    /// File offset up to which `sync` was asked for.
    sync_wanted: u64,
    /// File offset up to which everything is written and fdatasynced.
    synced: u64,
    /// File offset up to which everything is written.
    written: u64,
    /// The last failure, until the owner takes it (then the pool retries).
    error: Option<io::Error>,
    stop: bool,
    /// Stop without writing more, cutting the file back to its durable offset.
    abandon: bool,
    /// On the pool's queue or being served by a pool thread.
    scheduled: bool,
    /// Stopped: nothing more is done for the file.
    done: bool,
    /// Called after each fdatasync or failure (a session waiting for acks).
    wakers: Vec<Waker>,
}

impl State {
    /// The pool has something to do for the file.
    fn has_work(&self) -> bool {
        if self.done {
            return false;
        }
        if self.abandon || (self.stop && self.error.is_some()) {
            return true;
        }
        if self.error.is_some() {
            return false;
        }
        (!self.queue.is_empty() && self.held.len() < MAX_HELD)
            || self.sync_wanted > self.synced
            || self.held.len() >= MAX_HELD
            || self.stop
    }
}

/// Told when an fdatasync (or a failure) changed what [`WriteBehind::synced`]
/// returns: a cheap call (it may run on a pool thread).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    file: Arc<File>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the file on the pool's queue if it has work and is not there.
    fn schedule(self: &Arc<Self>, mut g: MutexGuard<'_, State>) {
        if g.scheduled || !g.has_work() {
            return;
        }
        g.scheduled = true;
        drop(g);
        POOL.push(self.clone());
    }

    /// Notifies the owner and the wakers of a change.
    fn changed(&self, g: &mut State) {
        self.changed.notify_all();
        for w in &g.wakers {
            w();
        }
    }
}

/// The write-behind of one segment file, served by the pool.
pub struct WriteBehind {
    shared: Arc<Shared>,
}

impl WriteBehind {
    /// Starts write-behind for `file`, whose bytes up to `durable` are written
    /// and fdatasynced (so that a failed fdatasync later only concerns bytes
    /// the pool wrote, and can write again).
    pub fn start(file: Arc<File>, durable: u64) -> io::Result<WriteBehind> {
        POOL.ready()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                written: durable,
                synced: durable,
                sync_wanted: durable,
                ..State::default()
            }),
            changed: Condvar::new(),
            file,
        });
        Ok(WriteBehind { shared })
    }

    /// Calls `waker` after every fdatasync or failure from now on.
    pub fn add_waker(&self, waker: Waker) {
        let mut g = self.shared.lock();
        if !g.wakers.iter().any(|w| Arc::ptr_eq(w, &waker)) {
            g.wakers.push(waker);
        }
    }

    /// No longer calls `waker`.
    pub fn remove_waker(&self, waker: &Waker) {
        self.shared.lock().wakers.retain(|w| !Arc::ptr_eq(w, waker));
    }

    /// Waits until `done` holds, or returns the error that stopped writing
    /// (taking it lets the pool retry).
    fn wait_for(&self, done: impl Fn(&State) -> bool) -> io::Result<MutexGuard<'_, State>> {
        let mut g = self.shared.lock();
        loop {
            if let Some(e) = g.error.take() {
                self.shared.changed.notify_all();
                self.shared.schedule(g);
                return Err(e);
            }
            if done(&g) {
                return Ok(g);
            }
            g = self.shared.wait(g);
        }
    }

    /// Queues `buf` to be written at `offset` and returns an empty buffer to
    /// fill next. Waits while [`MAX_QUEUED`] buffers are queued. If an earlier
    /// write failed, returns that error and `buf` untouched (the pool then
    /// retries the queued writes).
    pub fn submit(&self, offset: u64, buf: Vec<u8>) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
        let mut g = match self.wait_for(|s| s.queue.len() < MAX_QUEUED) {
            Ok(g) => g,
            Err(e) => return Err((e, buf)),
        };
        g.queue.push_back(Job { offset, buf });
        let spare = g.spare.pop().unwrap_or_default();
        self.shared.schedule(g);
        Ok(spare)
    }

    /// Waits until everything submitted is written (not synced).
    pub fn wait_written(&self) -> io::Result<()> {
        self.wait_for(|s| s.queue.is_empty() && !s.writing)
            .map(drop)
    }

    /// Asks for everything up to file offset `upto` to be written and
    /// fdatasynced, without waiting; [`synced`](Self::synced) tells when.
    pub fn request_sync(&self, upto: u64) {
        let mut g = self.shared.lock();
        if g.sync_wanted < upto {
            g.sync_wanted = upto;
            self.shared.schedule(g);
        }
    }

    /// The file offset up to which everything is written and fdatasynced, or
    /// the error that stopped writing (taking it lets the pool retry).
    pub fn synced(&self) -> io::Result<u64> {
        self.wait_for(|_| true).map(|g| g.synced)
    }

    /// The file offset up to which everything is written and fdatasynced, or
    /// `None` while an error stops writing (left for the owner to take).
    pub fn synced_now(&self) -> Option<u64> {
        let g = self.shared.lock();
        g.error.is_none().then_some(g.synced)
    }

    /// Waits until everything up to file offset `upto` is written and fdatasynced.
    pub fn sync(&self, upto: u64) -> io::Result<()> {
        self.request_sync(upto);
        self.wait_for(|s| s.synced >= upto).map(drop)
    }

    /// Stops without writing what is queued, and cuts the file back to the
    /// offset up to which it is known durable (the bytes after it may not be
    /// on disk, whatever reading the file now shows).
    pub fn abandon(self) {
        self.shared.lock().abandon = true;
        // Drop waits for the pool, which sees `abandon` first.
    }
}

impl Drop for WriteBehind {
    /// Writes what is queued (unless writing is failing), then stops.
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        g.stop = true;
        self.shared.schedule(g);
        let mut g = self.shared.lock();
        while !g.done {
            g = self.shared.wait(g);
        }
    }
}

/// Does what the file has to do, up to one fdatasync: returns with the lock
/// held, after that fdatasync (the pool puts the file back at the end of its
/// queue if it has more: a chain that is always busy cannot keep a thread
/// from the others) or with nothing left to do (or the file done).
fn serve<'a>(shared: &'a Shared, mut g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    let file = &*shared.file;
    loop {
        if g.done {
            return g;
        }
        if g.abandon {
            // The file may be longer than `written` (a failed fdatasync
            // queued bytes to be written again): compare its length.
            let keep = g.synced;
            drop(g);
            if !matches!(file.metadata(), Ok(m) if m.len() <= keep) {
                let cut = file.set_len(keep).and_then(|()| file.sync_all());
                if let Err(e) = cut {
                    tracing::error!(error = %e, offset = keep, "could not cut a segment back to its durable end; what follows it may not be on disk");
                }
            }
            g = shared.lock();
            g.done = true;
            shared.changed(&mut g);
            g.wakers.clear();
            return g;
        }
        if g.error.is_none() {
            if g.held.len() < MAX_HELD {
                if let Some(job) = g.queue.pop_front() {
                    g.writing = true;
                    drop(g);
                    let r = file.write_all_at(&job.buf, job.offset);
                    if r.is_err() {
                        // No torn frame stays behind: cut back to where this write began.
                        let _ = file.set_len(job.offset);
                    }
                    g = shared.lock();
                    g.writing = false;
                    match r {
                        Ok(()) => {
                            g.written = job.offset + job.buf.len() as u64;
                            g.held.push_back(job);
                        }
                        Err(e) => {
                            g.queue.push_front(job);
                            g.error = Some(e);
                        }
                    }
                    shared.changed(&mut g);
                    continue;
                }
            }
            if g.sync_wanted > g.synced || g.held.len() >= MAX_HELD {
                let target = g.written;
                let from = g.synced;
                drop(g);
                let t = std::time::Instant::now();
                let r = crate::storage::faults::sync_data(file, from, target);
                FSYNC_SECONDS.observe(t.elapsed().as_secs_f64());
                g = shared.lock();
                match r {
                    Ok(()) => {
                        g.synced = g.synced.max(target);
                        let held = std::mem::take(&mut g.held);
                        for mut job in held {
                            job.buf.clear();
                            if g.spare.len() <= MAX_QUEUED {
                                g.spare.push(job.buf);
                            }
                        }
                    }
                    Err(e) => {
                        // Write everything since the last good fdatasync again
                        // before the next one (see the module comment).
                        let held = std::mem::take(&mut g.held);
                        if let Some(first) = held.front() {
                            g.written = first.offset;
                        }
                        for job in held.into_iter().rev() {
                            g.queue.push_front(job);
                        }
                        g.error = Some(e);
                    }
                }
                shared.changed(&mut g);
                if !g.stop {
                    return g;
                }
                continue;
            }
        }
        if g.stop && (g.error.is_some() || g.queue.is_empty()) {
            g.done = true;
            shared.changed(&mut g);
            g.wakers.clear();
        }
        return g;
    }
}

/// The process's write-behind threads and the files waiting for one.
struct Pool {
    queue: Mutex<PoolQueue>,
    work: Condvar,
}

#[derive(Default)]
struct PoolQueue {
    files: VecDeque<Arc<Shared>>,
    threads: usize,
    idle: usize,
}

static POOL: std::sync::LazyLock<Pool> = std::sync::LazyLock::new(|| Pool {
    queue: Mutex::new(PoolQueue::default()),
    work: Condvar::new(),
});

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure the pool has a thread: write-behind must not be started
    /// without one (the owner would wait for ever).
    fn ready(&'static self) -> io::Result<()> {
        let mut q = self.lock();
        if q.threads == 0 {
            self.spawn(&mut q)?;
        }
        Ok(())
    }

    fn spawn(&'static self, q: &mut PoolQueue) -> io::Result<()> {
        std::thread::Builder::new()
            .name("logseal-writer".into())
            .spawn(move || self.run())?;
        q.threads += 1;
        Ok(())
    }

    fn push(&'static self, file: Arc<Shared>) {
        let mut q = self.lock();
        q.files.push_back(file);
        if q.idle == 0 && q.threads < POOL_THREADS {
            // Every thread busy (a slow fdatasync): one more, if it can start.
            // If it cannot start, the threads there are serve the file.
            if let Err(e) = self.spawn(&mut q) {
                tracing::warn!(error = %e, "could not start another write-behind thread");
            }
        }
        drop(q);
        self.work.notify_one();
    }

    fn run(&self) {
        let mut q = self.lock();
        loop {
            let Some(file) = q.files.pop_front() else {
                q.idle += 1;
                q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
                q.idle -= 1;
                continue;
            };
            drop(q);
            let mut g = serve(&file, file.lock());
            // Work that came while the lock was not held is served now: the
            // flag stays set until the file has none left.
            g.scheduled = false;
            let again = g.has_work();
            if again {
                g.scheduled = true;
            }
            drop(g);
            q = self.lock();
            if again {
                q.files.push_back(file);
            }
        }
    }
}
