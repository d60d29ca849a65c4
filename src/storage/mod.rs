//! Storage: what is on disk and how it gets there crash-consistently.
//!
//! Invariants every module here keeps:
//! - A state file is replaced atomically ([`fsutil::write_atomic`]: temp file,
//!   fsync, rename, fsync the directory) and read with a size bound; nothing
//!   else writes one.
//! - A segment file only grows by whole frames; a torn last frame (a crash
//!   mid-write) is cut off at the next open and kept beside the file, never
//!   silently dropped ([`segment`]).
//! - A record is durable only once its fsync returned; a failed fsync is
//!   never taken for success, and the bytes are written again
//!   ([`writebehind`]).
//! - No key signs twice: the signer state names the next key before a seal is
//!   written, and a seal interrupted by a crash is completed or redone
//!   ([`signer`], [`writer`]).
//!
//! - [`segment`]: the record-log file format (frames, CRC32C, resynchronisation)
//!   and [`crcspan`], the CRCs of spans it resynchronises with.
//! - [`writebehind`]: the write-behind thread of a spool or store segment.
//! - [`writer`]: the chain writer (open, recover, append, seal).
//! - [`signer`]: the forward-secure key's state file.
//! - [`segment_log`]: one chain's segment files in a directory: the agent's
//!   spool (until a collector acknowledges them) and each chain of a store.
//! - [`fsutil`]: the atomic write and the bounded read.
//! - [`faults`]: crash points and injected disk faults, for tests only.

pub mod access;
pub mod crcspan;
pub mod faults;
pub mod fsutil;
pub mod jetstream;
pub mod segment;
pub mod segment_log;
pub mod signer;
pub mod writebehind;
pub mod writer;
