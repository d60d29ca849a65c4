//! The stream connections of every listener together: which is silent the
//! longest, and closing it when a new connection needs its slot or another
//! connection needs the memory it holds.
//!
//! A listener at `limits.max_connections` does not leave new senders waiting
//! in the backlog behind peers that send nothing: it closes the connection
//! silent the longest (at least [`EVICT_MIN_IDLE`]) and accepts the new one.
//! A framer that finds the shared memory budget used up cuts its message
//! (reported with its length) and asks for the connection silent the longest
//! among those holding memory to be closed. A connection closed this way has
//! its partial message chained as received, as at any disconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A connection silent for less than this is never closed to make room.
pub const EVICT_MIN_IDLE: Duration = Duration::from_secs(1);

/// Why a connection is closed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A new connection on this listener needs a slot.
    Slot(usize),
    /// A framer needs memory from the budget.
    Memory,
}

struct Entry {
    listener: usize,
    busy: Arc<AtomicBool>,
    /// When the peer last sent something (ns since the registry's epoch).
    seen: Arc<AtomicU64>,
    held: Arc<AtomicUsize>,
    close: Arc<Notify>,
    closing: Arc<AtomicBool>,
}

/// Every open stream connection of the agent.
pub struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Entry>>,
    evicted: AtomicU64,
    log: Mutex<(Option<Instant>, u64)>,
}

/// At most one log line per this long about making room.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

impl Default for Registry {
    fn default() -> Self {
        Registry {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            evicted: AtomicU64::new(0),
            log: Mutex::new((None, 0)),
        }
    }
}

impl Registry {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection accepted by `listener`.
    pub fn join(self: &Arc<Self>, listener: usize) -> Conn {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let seen = Arc::new(AtomicU64::new(self.now_ns()));
        let held = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        self.lock().insert(
            id,
            Entry {
                listener,
                busy: busy.clone(),
                seen: seen.clone(),
                held: held.clone(),
                close: close.clone(),
                closing: closing.clone(),
            },
        );
        Conn {
            id,
            busy,
            registry: self.clone(),
            seen,
            held,
            close,
            closing,
        }
    }

    /// Closes the connection silent the longest (for at least
    /// [`EVICT_MIN_IDLE`], and not waiting to hand a batch over) among those
    /// that can meet `need`; false if none.
    pub fn evict(&self, need: Need) -> bool {
        let now = self.now_ns();
        let min = EVICT_MIN_IDLE.as_nanos() as u64;
        let conns = self.lock();
        // Silent the longest; of two silent since the same instant, the older.
        let victim = conns
            .iter()
            .filter(|(_, e)| !e.closing.load(Ordering::Relaxed) && !e.busy.load(Ordering::Relaxed))
            .filter(|(_, e)| match need {
                Need::Slot(l) => e.listener == l,
                Need::Memory => e.held.load(Ordering::Relaxed) > 0,
            })
            .map(|(id, e)| ((e.seen.load(Ordering::Relaxed), *id), e))
            .filter(|((seen, _), _)| now.saturating_sub(*seen) >= min)
            .min_by_key(|(key, _)| *key);
        match victim {
            Some((_, e)) => {
                e.closing.store(true, Ordering::Relaxed);
                e.close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Whether to log about making room now (at most once per
    /// [`LOG_EVERY`]), and how many times it was not since the last line.
    pub fn may_log(&self) -> Option<u64> {
        let mut g = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = &mut *g;
        if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            *held += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(held))
    }

    /// Connections closed to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }
}

/// One registered connection; dropping it unregisters it.
pub struct Conn {
    id: u64,
    busy: Arc<AtomicBool>,
    registry: Arc<Registry>,
    seen: Arc<AtomicU64>,
    held: Arc<AtomicUsize>,
    close: Arc<Notify>,
    closing: Arc<AtomicBool>,
}

impl Conn {
    /// The peer sent something now.
    pub fn touch(&self) {
        self.seen.store(self.registry.now_ns(), Ordering::Relaxed);
    }

    /// The connection is (or is no longer) waiting to hand a batch over: a
    /// peer held back by back-pressure is not silent, and is never closed to
    /// make room.
    pub fn busy(&self, yes: bool) {
        self.busy.store(yes, Ordering::Relaxed);
        if !yes {
            self.touch();
        }
    }

    /// Records how much of the budget the connection holds.
    pub fn holds(&self, bytes: usize) {
        self.held.store(bytes, Ordering::Relaxed);
    }

    /// Resolves once the registry closes this connection to make room.
    pub async fn evicted(&self) {
        self.close.notified().await
    }

    /// The registry chose this connection to close.
    pub fn is_evicted(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// The registry these connections are in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes a connection look silent for `secs` seconds.
    fn silent_for(c: &Conn, secs: u64) {
        let now = c.registry.now_ns();
        c.seen
            .store(now.saturating_sub(secs * 1_000_000_000), Ordering::Relaxed);
    }

    #[test]
    fn the_connection_silent_the_longest_makes_room_and_no_other() {
        // (An epoch in the past, so that silences can be made up.)
        let r = Arc::new(Registry {
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(100))
                .expect("up for 100 s"),
            ..Registry::default()
        });
        let a = r.join(0);
        let b = r.join(0);
        let c = r.join(0);
        let other = r.join(1);
        // Silent for less than EVICT_MIN_IDLE: nobody is closed.
        assert!(!r.evict(Need::Slot(0)));
        silent_for(&a, 5);
        silent_for(&b, 9);
        silent_for(&c, 2);
        silent_for(&other, 60);
        // Only this listener's; the longest silent first; each once.
        assert!(r.evict(Need::Slot(0)));
        assert!(b.is_evicted() && !a.is_evicted() && !other.is_evicted());
        assert!(r.evict(Need::Slot(0)));
        assert!(a.is_evicted());
        // A peer held back by back-pressure is not silent.
        c.busy(true);
        silent_for(&c, 30);
        assert!(!r.evict(Need::Slot(0)));
        c.busy(false);
        assert!(!r.evict(Need::Slot(0)), "handing a batch over is activity");
        // Memory: only a connection that holds some.
        assert!(!r.evict(Need::Memory));
        other.holds(4096);
        assert!(r.evict(Need::Memory));
        assert!(other.is_evicted());
        assert_eq!(r.evicted(), 3);
        drop((a, b, c, other));
        assert_eq!(r.open(), 0);
    }
}
