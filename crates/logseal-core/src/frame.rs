//! The segment file and the frame a record travels in (docs/FORMAT.md,
//! "Segment files"), as pure functions over byte slices. Reading a file, its
//! torn tail and resynchronisation after damage are the storage layer's
//! (`storage::segment` in the binary crate); what a frame *is* lives here.
//!
//! ```text
//! file   := header frame*
//! header := "LSEALSEG" | version:u16 = 2 | flags:u16 = 0 | crc32c(previous 12 bytes):u32
//! frame  := len:u32 | crc:u32 | body            (len = |body|, 1 ..= MAX_FRAME)
//! body   := type:u8 | payload                   crc = CRC32C(len bytes || body)
//! type   := 0x01 record (payload = encoded record)
//!         | 0x02 redacted record (payload = chain_id[16] seq:u64 kind:u8 leaf[32])
//! ```
//! Integers are big-endian. CRC32C detects accidents, not attacks; the hash
//! chain detects attacks.

use crate::hash::{self, Digest};

/// Largest frame body accepted (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;
/// Frame type: an encoded record.
pub const FRAME_RECORD: u8 = 0x01;
/// Frame type: a redacted record (leaf only).
pub const FRAME_REDACTED: u8 = 0x02;
/// Payload length of a redacted frame.
pub const REDACTED_LEN: usize = 16 + 8 + 1 + 32;
/// Length of a frame's header (`len ‖ crc`).
pub const FRAME_HEADER: usize = 8;

/// File magic.
pub const MAGIC: &[u8; 8] = b"LSEALSEG";
/// Segment format version.
pub const VERSION: u16 = 2;
/// Length of the file header.
pub const HEADER_LEN: u64 = 16;

/// The 16-byte file header.
pub fn header() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&crc.to_be_bytes());
    h
}

/// What is wrong with a segment file's header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer than 16 bytes.
    #[error("file is {0} bytes, shorter than a segment header")]
    Short(usize),
    /// Not the segment magic.
    #[error("not a logseal segment (bad magic)")]
    Magic,
    /// The header's CRC does not match.
    #[error("segment header checksum mismatch")]
    Checksum,
    /// Version 1, whose head step did not bind the kind byte.
    #[error(
        "segment version 1 (written by logseal 0.1, whose head step did not bind \
         the kind byte) is not supported by this version"
    )]
    Version1,
    /// A version this build does not read.
    #[error("unsupported segment version {0} (this build reads {VERSION})")]
    Version(u16),
    /// Flags this build does not know.
    #[error("unknown segment header flags {0:#06x}")]
    Flags(u16),
}

/// Checks a file header (the first 16 bytes of a segment file).
pub fn check_header(h: &[u8]) -> Result<(), HeaderError> {
    if h.len() < 16 {
        return Err(HeaderError::Short(h.len()));
    }
    if &h[..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let crc = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    if crc != crc32c::crc32c(&h[..12]) {
        return Err(HeaderError::Checksum);
    }
    match u16::from_be_bytes([h[8], h[9]]) {
        VERSION => {}
        1 => return Err(HeaderError::Version1),
        v => return Err(HeaderError::Version(v)),
    }
    match u16::from_be_bytes([h[10], h[11]]) {
        0 => Ok(()),
        flags => Err(HeaderError::Flags(flags)),
    }
}

/// CRC of a frame: CRC32C over the 4 length bytes and the body.
pub fn frame_crc(body: &[u8]) -> u32 {
    let len = (body.len() as u32).to_be_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), body)
}

/// Appends one complete frame (header and body) to `out`.
pub fn encode_frame(frame_type: u8, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.push(frame_type);
    out.extend_from_slice(payload);
    seal_frame(out, start);
}

/// The record inside a complete record frame (`len ‖ crc ‖ 0x01 ‖ record`),
/// or `None` if `frame` is not one.
pub fn frame_record(frame: &[u8]) -> Option<&[u8]> {
    match frame.get(FRAME_HEADER) {
        Some(&FRAME_RECORD) => frame.get(FRAME_HEADER + 1..),
        _ => None,
    }
}

/// Appends to `out` a record frame whose payload `encode` writes; returns
/// where the frame starts, or `None` (with `out` as it was) if the record is
/// larger than [`MAX_FRAME`].
pub fn push_record(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> Option<usize> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.push(FRAME_RECORD);
    encode(out);
    if out.len() - start - FRAME_HEADER > MAX_FRAME {
        out.truncate(start);
        return None;
    }
    seal_frame(out, start);
    Some(start)
}

/// Like [`push_record`], returning the record's leaf, `SHA-256(0x00 ‖
/// record)`, hashed in place: the type byte just before the record briefly
/// holds the 0x00 domain byte (the CRC was computed over the real one).
pub fn push_record_frame(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> Option<Digest> {
    let t = push_record(out, encode)? + FRAME_HEADER;
    out[t] = 0x00;
    let leaf = hash::sha256(&out[t..]);
    out[t] = FRAME_RECORD;
    Some(leaf)
}

/// Fills in len and crc of the frame that starts at `start` and runs to the end of `buf`.
fn seal_frame(buf: &mut [u8], start: usize) {
    let body_len = (buf.len() - start - FRAME_HEADER) as u32;
    buf[start..start + 4].copy_from_slice(&body_len.to_be_bytes());
    let crc = frame_crc(&buf[start + FRAME_HEADER..]);
    buf[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_be_bytes());
}

/// The header of a frame: the body length it announces and the CRC it
/// claims, or `None` if `buf` holds fewer than [`FRAME_HEADER`] bytes.
pub fn frame_header(buf: &[u8]) -> Option<(usize, u32)> {
    let h = buf.get(..FRAME_HEADER)?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    Some((len, u32::from_be_bytes([h[4], h[5], h[6], h[7]])))
}

/// A complete frame whose CRC checks, at the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame type byte.
    pub frame_type: u8,
    /// The payload (after the type byte).
    pub payload: &'a [u8],
    /// Bytes the frame takes, header included.
    pub len: usize,
}

/// Why no frame could be taken from the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameFault {
    /// The slice ends before the frame does: `need` bytes make it whole (a
    /// torn tail, or more to read).
    #[error("the bytes end inside a frame ({need} bytes needed)")]
    Incomplete {
        /// Bytes the whole frame takes, header included.
        need: usize,
    },
    /// The announced body length is 0 or above [`MAX_FRAME`].
    #[error("frame length out of range")]
    Length,
    /// The CRC does not match.
    #[error("frame checksum mismatch")]
    Checksum,
}

/// The frame at the start of `buf`: its length is in range, it is complete,
/// and its CRC checks.
pub fn parse_frame(buf: &[u8]) -> Result<Frame<'_>, FrameFault> {
    let (len, crc) = frame_header(buf).ok_or(FrameFault::Incomplete { need: FRAME_HEADER })?;
    if len == 0 || len > MAX_FRAME {
        return Err(FrameFault::Length);
    }
    let body = buf
        .get(FRAME_HEADER..FRAME_HEADER + len)
        .ok_or(FrameFault::Incomplete {
            need: FRAME_HEADER + len,
        })?;
    if frame_crc(body) != crc {
        return Err(FrameFault::Checksum);
    }
    Ok(Frame {
        frame_type: body[0],
        payload: &body[1..],
        len: FRAME_HEADER + len,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_frame_reads_back_and_every_damage_is_named() {
        let mut buf = Vec::new();
        encode_frame(FRAME_RECORD, b"\x01abc", &mut buf);
        let f = parse_frame(&buf).unwrap();
        assert_eq!(
            (f.frame_type, f.payload, f.len),
            (FRAME_RECORD, &b"\x01abc"[..], buf.len())
        );
        assert_eq!(frame_record(&buf), Some(&b"\x01abc"[..]));
        for cut in 0..buf.len() {
            assert!(matches!(
                parse_frame(&buf[..cut]),
                Err(FrameFault::Incomplete { .. })
            ));
        }
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_frame(&bad), Err(FrameFault::Checksum));
        let mut zero = buf.clone();
        zero[..4].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse_frame(&zero), Err(FrameFault::Length));
        let mut huge = buf;
        huge[..4].copy_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert_eq!(parse_frame(&huge), Err(FrameFault::Length));
    }

    #[test]
    fn the_leaf_hashed_in_place_is_the_leaf_of_the_record() {
        let mut buf = vec![9u8; 3];
        let leaf = push_record_frame(&mut buf, |o| o.extend_from_slice(b"\x01rec")).unwrap();
        assert_eq!(leaf, hash::leaf(b"\x01rec"));
        assert_eq!(parse_frame(&buf[3..]).unwrap().payload, b"\x01rec");
    }

    #[test]
    fn a_header_is_checked_field_by_field() {
        assert_eq!(check_header(&header()), Ok(()));
        assert_eq!(check_header(b"LSEAL"), Err(HeaderError::Short(5)));
        let mut h = header();
        h[0] = b'X';
        assert_eq!(check_header(&h), Err(HeaderError::Magic));
        let mut h = header();
        h[15] ^= 1;
        assert_eq!(check_header(&h), Err(HeaderError::Checksum));
        for (v, flags, want) in [
            (1u16, 0u16, HeaderError::Version1),
            (3, 0, HeaderError::Version(3)),
            (VERSION, 4, HeaderError::Flags(4)),
        ] {
            let mut h = header();
            h[8..10].copy_from_slice(&v.to_be_bytes());
            h[10..12].copy_from_slice(&flags.to_be_bytes());
            let crc = crc32c::crc32c(&h[..12]);
            h[12..].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(check_header(&h), Err(want));
        }
    }
}
