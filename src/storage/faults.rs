//! Crash points for tests: `LOGSEAL_CRASH_AT=NAME:N` makes the process kill itself
//! with SIGKILL the N-th time it reaches the point NAME (N defaults to 1).
//!
//! This is how the crash-consistency tests stop a real `logseal` process at every
//! step of a seal. SIGKILL runs no destructors and flushes no user-space buffers,
//! exactly like `kill -9`. Without the variable, a point costs one atomic load.
//!
//! Only in builds with the `fault-injection` feature (the tests'): elsewhere
//! the variables are never read and every point is a no-op.
//!
//! `LOGSEAL_FSYNC_FAIL=N:COUNT` simulates a disk fault at a segment's fdatasync
//! ([`sync_data`]): the one kind of fault here that a test cannot cause for real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable naming the crash point.
pub const ENV: &str = "LOGSEAL_CRASH_AT";

static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn plan() -> Option<&'static (String, u64)> {
    if !cfg!(feature = "fault-injection") {
        return None;
    }
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

/// Environment variable for a simulated disk fault: `LOGSEAL_FSYNC_FAIL=N` or
/// `N:COUNT` makes the N-th (to the N+COUNT-1-th) fdatasync of a segment
/// file's write-behind thread ([`sync_data`]) that has bytes to make durable
/// fail.
pub const FSYNC_ENV: &str = "LOGSEAL_FSYNC_FAIL";

static FSYNC_PLAN: OnceLock<Option<(u64, u64)>> = OnceLock::new();
static FSYNCS: AtomicU64 = AtomicU64::new(0);

/// `fdatasync(file)`, for the write-behind thread, which has written `file`
/// up to `end` and knows it durable up to `durable`.
///
/// **Simulated hardware fault** (tests only; a disk that fails a write cannot
/// be had here): when [`FSYNC_ENV`] selects this call, it does not sync. It
/// overwrites the bytes from `durable` to `end` with 0xEE, the way they may
/// read once the machine restarts after the disk lost them, and fails with
/// an I/O error, as fdatasync reports one. A caller that retried the
/// fdatasync and believed it would keep those bytes.
pub fn sync_data(file: &std::fs::File, durable: u64, end: u64) -> std::io::Result<()> {
    if !cfg!(feature = "fault-injection") {
        return file.sync_data();
    }
    let plan = FSYNC_PLAN.get_or_init(|| {
        let v = std::env::var(FSYNC_ENV).ok()?;
        let (n, count) = match v.split_once(':') {
            Some((n, c)) => (n.parse().ok()?, c.parse().ok()?),
            None => (v.parse().ok()?, 1),
        };
        Some((n, count))
    });
    if let Some((n, count)) = plan.filter(|_| end > durable) {
        let k = FSYNCS.fetch_add(1, Ordering::SeqCst) + 1;
        if k >= n && k < n + count {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&vec![0xEE; (end - durable) as usize], durable)?;
            return Err(std::io::Error::other(format!(
                "fdatasync failed: Input/output error (simulated by {FSYNC_ENV}, call {k})"
            )));
        }
    }
    file.sync_data()
}

/// Environment variable for a simulated bug: `LOGSEAL_PANIC_AT=NAME` makes
/// the code panic at the point NAME ([`panic_point`]).
pub const PANIC_ENV: &str = "LOGSEAL_PANIC_AT";

/// Panics here if [`PANIC_ENV`] names this point (fault-injection builds only).
pub fn panic_point(name: &str) {
    if cfg!(feature = "fault-injection") && std::env::var(PANIC_ENV).is_ok_and(|v| v == name) {
        panic!("{PANIC_ENV}={name}: a simulated bug");
    }
}
