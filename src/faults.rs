//! Crash points for tests: `LOGSEAL_CRASH_AT=NAME:N` makes the process kill itself
//! with SIGKILL the N-th time it reaches the point NAME (N defaults to 1).
//!
//! This is how the crash-consistency tests stop a real `logseal` process at every
//! step of a seal. SIGKILL runs no destructors and flushes no user-space buffers,
//! exactly like `kill -9`. Without the variable, a point costs one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable naming the crash point.
pub const ENV: &str = "LOGSEAL_CRASH_AT";

static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn plan() -> Option<&'static (String, u64)> {
    PLAN.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (name, n) = match v.rsplit_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().ok()?),
            None => (v, 1),
        };
        Some((name, n))
    })
    .as_ref()
}

/// True if this is the hit of `name` at which the process must die. The caller may
/// do partial work (e.g. write half a frame) and then call [`die`].
pub fn armed(name: &str) -> bool {
    match plan() {
        Some((n, k)) if n == name => HITS.fetch_add(1, Ordering::SeqCst) + 1 == *k,
        _ => false,
    }
}

/// Dies here if the plan says so.
pub fn point(name: &str) {
    if armed(name) {
        die();
    }
}

/// Kills the process with SIGKILL.
pub fn die() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}
