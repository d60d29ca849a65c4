//! logseal: tamper-evident logs.
//!
//! Every event is stamped into a per-host hash chain and sealed with Ed25519
//! signatures under a forward-secure key that evolves at every seal. The byte
//! format is specified in `docs/FORMAT.md`.
//!
//! The pipeline, stage by stage:
//! - [`chain`]: the core, the crate `logseal-core` (records, encoding,
//!   hashing, seals, the frame format, the verifier); no I/O.
//! - [`storage`]: segment files, the chain writer, the signer state, the
//!   spool, write-behind, atomic state files.
//! - [`ingest`]: syslog listeners and framing, the syslog parser, the journald
//!   reader.
//! - [`agent`]: the agent's lifecycle, stager and stamper.
//! - [`transport`]: the wire protocol, TLS, the shipper.
//! - [`collector`]: the server, the store, enrollment.
//! - [`responder`]: verify and inspect over files, and their reports.
//! - [`monitor`]: metrics, `logseal status`, certificate deadlines.
//! - [`cmd`]: `pki` and `quickstart`; [`util`]: small shared helpers.

pub mod agent;
pub use logseal_core as chain;
pub mod cmd;
pub mod collector;
pub mod ingest;
pub mod monitor;
pub mod responder;
pub mod storage;
pub mod transport;
pub mod util;

/// Prints a line on stdout for whoever started the process (`listening URL`,
/// `metrics URL`): a daemon whose launcher stopped reading (a closed pipe) goes
/// on; `println!` would panic.
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
}
