//! The frame a record travels in, in a segment file and in a batch
//! (docs/FORMAT.md §2): `len u32 | type u8 | payload | crc32c u32`. What the
//! verifier needs to know of it lives here, in the core; the file around the
//! frames is [`crate::storage::segment`].

/// Largest frame body accepted (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;
/// Frame type: an encoded record.
pub const FRAME_RECORD: u8 = 0x01;
/// Frame type: a redacted record (leaf only).
pub const FRAME_REDACTED: u8 = 0x02;
/// Payload length of a redacted frame.
pub const REDACTED_LEN: usize = 16 + 8 + 1 + 32;
