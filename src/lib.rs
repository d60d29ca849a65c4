//! logseal: tamper-evident logs.
//!
//! Every event is stamped into a per-host hash chain and sealed with Ed25519
//! signatures under a forward-secure key that evolves at every seal. The byte
//! format is specified in `docs/FORMAT.md`.
//!
//! - [`chain`]: the core (records, encoding, hashing, seals, verifier); no I/O.
//! - [`segment`]: the on-disk record-log format.
//! - [`signer`], [`writer`]: the key state and the crash-consistent chain writer.

pub mod access;
pub mod agent;
pub mod chain;
pub mod collector;
pub mod crcspan;
pub mod expiry;
pub mod faults;
pub mod fsutil;
pub mod hex;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod pki;
pub mod quickstart;
pub mod report;
pub mod segment;
pub mod signer;
pub mod spool;
pub mod status;
pub mod stop;
pub mod syslog;
pub mod timefmt;
pub mod transport;
pub mod units;
pub mod vectors;
pub mod verify_files;
pub mod writebehind;
pub mod writer;

/// Prints a line on stdout for whoever started the process (`listening URL`,
/// `metrics URL`): a daemon whose launcher stopped reading (a closed pipe) goes
/// on; `println!` would panic.
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
}
