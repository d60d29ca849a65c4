//! The agent ↔ collector wire protocol (normative text: `docs/PROTOCOL.md`).
//!
//! Over TLS 1.3, a stream of frames: `u32 length (big-endian) ‖ u8 type ‖ body`,
//! where `length` counts the type byte and the body. Integers are big-endian;
//! `str` is a `u32` length and UTF-8 bytes.

use crate::chain::codec::{Dec, Enc};
use crate::chain::ChainId;
use std::io::{self, Read, Write};

/// Protocol magic at the start of Hello.
pub const MAGIC: &[u8; 8] = b"LSEALNET";
/// The newest protocol version this build speaks: version 3 signs every Ack
/// with a receipt (docs/PROTOCOL.md).
pub const VERSION: u16 = 3;
/// The oldest version this build speaks (version 2: the same messages, Acks
/// without receipts).
pub const MIN_VERSION: u16 = 2;
/// The first version whose Acks carry a receipt.
pub const RECEIPTS: u16 = 3;
/// Frames before Welcome are at most this long.
pub const HELLO_MAX: usize = 64 << 10;
/// Default maximum frame size a collector accepts.
pub const DEFAULT_MAX_FRAME: u32 = 16 << 20;
/// A frame reader's buffer at first.
const INITIAL_BUFFER: usize = 16 << 10;
/// A frame reader's buffer grows by at most this much beyond the bytes that
/// have arrived (and at most doubles).
const READ_CHUNK: usize = 64 << 10;

/// Message types.
pub mod t {
    /// agent → collector: versions and host.
    pub const HELLO: u8 = 1;
    /// collector → agent: chosen version and limits.
    pub const WELCOME: u8 = 2;
    /// agent → collector: where does this chain stand?
    pub const POSITION: u8 = 3;
    /// collector → agent: the next seq it needs.
    pub const RESUME: u8 = 4;
    /// agent → collector: records of one chain.
    pub const BATCH: u8 = 5;
    /// collector → agent: a batch is durable.
    pub const ACK: u8 = 6;
    /// either way: a typed error; the sender closes the connection after it.
    pub const ERROR: u8 = 7;
    /// either way: keepalive.
    pub const PING: u8 = 8;
    /// answer to PING.
    pub const PONG: u8 = 9;
    /// peer → collector (version 3): your newest checkpoint, please.
    pub const CHECKPOINT: u8 = 10;
    /// collector → peer: its newest checkpoint, a witness block.
    pub const PUBLISHED: u8 = 11;
}

logseal_core::wire_enum! {
    /// Error codes (in [`Msg::Error`]).
    pub enum Code: u16, from_u16 {
        /// A frame that is not valid here.
        Protocol = 1 => "protocol",
        /// No common protocol version.
        Version = 2 => "version",
        /// A frame longer than the announced maximum.
        FrameTooLarge = 3 => "frame-too-large",
        /// The certificate's host may not write this chain.
        NotYourChain = 4 => "not-your-chain",
        /// The collector holds nothing of this chain and the batch does not start at its Genesis.
        UnknownChain = 5 => "unknown-chain",
        /// The batch does not verify against the chain; it was quarantined.
        Rejected = 6 => "rejected",
        /// The batch holds a record that differs from one already stored; quarantined.
        Conflict = 7 => "conflict",
        /// The chain's genesis key is not enrolled (strict enrollment).
        NotEnrolled = 8 => "not-enrolled",
        /// The collector could not store the batch; retry later.
        Storage = 9 => "storage",
        /// The collector is shutting down or busy; retry later.
        Unavailable = 10 => "unavailable",
        /// The client certificate was revoked while the session was open.
        Revoked = 11 => "revoked",
    }
}

impl Code {
    /// True if retrying the same data later may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, Code::Storage | Code::Unavailable)
    }
}

/// Why a frame's body is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A message whose fields do not decode.
    #[error("malformed frame of type {ty}: {source}")]
    Malformed {
        /// The frame type.
        ty: u8,
        /// Where and why decoding failed.
        source: crate::chain::DecodeError,
    },
    /// A batch whose body does not decode.
    #[error("malformed batch: {0}")]
    MalformedBatch(crate::chain::DecodeError),
    /// A Hello without the protocol's magic.
    #[error("not a logseal hello (bad magic)")]
    NotHello,
    /// A batch frame given to [`Msg::decode`].
    #[error("a batch is decoded with decode_batch")]
    BatchAsMessage,
    /// A frame type this version does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
}

/// A decoded message. Batch bodies are not decoded here (see [`decode_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// agent → collector, first frame.
    Hello {
        /// Lowest version the agent speaks.
        min_version: u16,
        /// Highest version the agent speaks.
        max_version: u16,
        /// The agent's host name (must be a name of its certificate).
        host: String,
        /// Software name and version.
        software: String,
    },
    /// collector → agent, answer to Hello.
    Welcome {
        /// Version chosen.
        version: u16,
        /// Collector name.
        collector: String,
        /// Largest frame the collector accepts.
        max_frame: u32,
        /// The collector closes connections silent for this many seconds.
        idle_secs: u32,
    },
    /// agent → collector.
    Position {
        /// The chain asked about.
        chain: ChainId,
    },
    /// collector → agent.
    Resume {
        /// The chain.
        chain: ChainId,
        /// The collector holds this chain (else `next_seq` is 0).
        known: bool,
        /// Seq of the first record the collector does not hold.
        next_seq: u64,
        /// Version 3, for a chain it holds: the collector's receipt for seq
        /// `next_seq - 1` (docs/FORMAT.md §7.2); else empty.
        receipt: Vec<u8>,
    },
    /// collector → agent.
    Ack {
        /// Batch id being acknowledged (with every earlier batch).
        batch: u64,
        /// The chain.
        chain: ChainId,
        /// Everything below this seq is durable at the collector.
        next_seq: u64,
        /// Version 3: the collector's receipt for seq `next_seq - 1`
        /// (docs/FORMAT.md §7.2); empty in version 2.
        receipt: Vec<u8>,
    },
    /// Typed error; the connection is closed after it.
    Error {
        /// What kind.
        code: u16,
        /// Batch concerned (0: none).
        batch: u64,
        /// Human-readable reason.
        message: String,
    },
    /// Keepalive.
    Ping(u64),
    /// Keepalive answer.
    Pong(u64),
    /// peer → collector (version 3): asks for its newest checkpoint, to
    /// witness it (docs/FORMAT.md §7.4).
    Checkpoint,
    /// collector → peer: its newest durable checkpoint seal, as a witness
    /// block (docs/FORMAT.md §7.1, at most 16 KiB).
    Published {
        /// The block's text.
        block: String,
    },
}

/// Writes one frame of type `ty` with `body`.
pub fn write_frame<W: Write>(w: &mut W, ty: u8, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = ty;
    w.write_all(&head)?;
    w.write_all(body)
}

impl Msg {
    /// Type byte and body.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut b = Vec::new();
        let mut e = Enc(&mut b);
        let ty = match self {
            Msg::Hello {
                min_version,
                max_version,
                host,
                software,
            } => {
                e.fixed(MAGIC);
                e.fixed(&min_version.to_be_bytes());
                e.fixed(&max_version.to_be_bytes());
                e.str(host);
                e.str(software);
                t::HELLO
            }
            Msg::Welcome {
                version,
                collector,
                max_frame,
                idle_secs,
            } => {
                e.fixed(&version.to_be_bytes());
                e.str(collector);
                e.u32(*max_frame);
                e.u32(*idle_secs);
                t::WELCOME
            }
            Msg::Position { chain } => {
                e.fixed(&chain.0);
                t::POSITION
            }
            Msg::Resume {
                chain,
                known,
                next_seq,
                receipt,
            } => {
                e.fixed(&chain.0);
                e.u8(u8::from(*known));
                e.u64(*next_seq);
                if !receipt.is_empty() {
                    e.bytes(receipt);
                }
                t::RESUME
            }
            Msg::Ack {
                batch,
                chain,
                next_seq,
                receipt,
            } => {
                e.u64(*batch);
                e.fixed(&chain.0);
                e.u64(*next_seq);
                if !receipt.is_empty() {
                    e.bytes(receipt);
                }
                t::ACK
            }
            Msg::Error {
                code,
                batch,
                message,
            } => {
                e.fixed(&code.to_be_bytes());
                e.u64(*batch);
                e.str(message);
                t::ERROR
            }
            Msg::Ping(n) => {
                e.u64(*n);
                t::PING
            }
            Msg::Pong(n) => {
                e.u64(*n);
                t::PONG
            }
            Msg::Checkpoint => t::CHECKPOINT,
            Msg::Published { block } => {
                e.str(block);
                t::PUBLISHED
            }
        };
        (ty, b)
    }

    /// Writes the message as one frame.
    pub fn write<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let (ty, body) = self.encode();
        write_frame(w, ty, &body)
    }

    /// Decodes a non-batch frame.
    pub fn decode(ty: u8, body: &[u8]) -> Result<Msg, WireError> {
        let mut d = Dec::new(body);
        let bad = |source| WireError::Malformed { ty, source };
        let u16_ = |d: &mut Dec<'_>| d.array::<2>().map(u16::from_be_bytes);
        let m = match ty {
            t::HELLO => {
                let magic = d.array::<8>().map_err(bad)?;
                if &magic != MAGIC {
                    return Err(WireError::NotHello);
                }
                Msg::Hello {
                    min_version: u16_(&mut d).map_err(bad)?,
                    max_version: u16_(&mut d).map_err(bad)?,
                    host: d.str().map_err(bad)?.to_string(),
                    software: d.str().map_err(bad)?.to_string(),
                }
            }
            t::WELCOME => Msg::Welcome {
                version: u16_(&mut d).map_err(bad)?,
                collector: d.str().map_err(bad)?.to_string(),
                max_frame: d.u32().map_err(bad)?,
                idle_secs: d.u32().map_err(bad)?,
            },
            t::POSITION => Msg::Position {
                chain: ChainId(d.array().map_err(bad)?),
            },
            t::RESUME => Msg::Resume {
                chain: ChainId(d.array().map_err(bad)?),
                known: d.u8().map_err(bad)? != 0,
                next_seq: d.u64().map_err(bad)?,
                receipt: trailing_bytes(&mut d, body.len()).map_err(bad)?,
            },
            t::ACK => Msg::Ack {
                batch: d.u64().map_err(bad)?,
                chain: ChainId(d.array().map_err(bad)?),
                next_seq: d.u64().map_err(bad)?,
                receipt: trailing_bytes(&mut d, body.len()).map_err(bad)?,
            },
            t::ERROR => Msg::Error {
                code: u16_(&mut d).map_err(bad)?,
                batch: d.u64().map_err(bad)?,
                message: d.str().map_err(bad)?.to_string(),
            },
            t::PING => Msg::Ping(d.u64().map_err(bad)?),
            t::PONG => Msg::Pong(d.u64().map_err(bad)?),
            t::CHECKPOINT => Msg::Checkpoint,
            t::PUBLISHED => Msg::Published {
                block: d.str().map_err(bad)?.to_string(),
            },
            t::BATCH => return Err(WireError::BatchAsMessage),
            other => return Err(WireError::UnknownType(other)),
        };
        d.finish().map_err(bad)?;
        Ok(m)
    }
}

/// A last `bytes` field that version 2 leaves out: empty if the body ends here.
fn trailing_bytes(d: &mut Dec<'_>, len: usize) -> Result<Vec<u8>, crate::chain::DecodeError> {
    if d.pos() < len {
        d.bytes().map(<[u8]>::to_vec)
    } else {
        Ok(Vec::new())
    }
}

/// Starts a batch body in `out`: id, chain, and a record count patched by
/// [`finish_batch`].
pub fn begin_batch(out: &mut Vec<u8>, id: u64, chain: ChainId) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&chain.0);
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Adds one encoded record to a batch body.
pub fn push_record(out: &mut Vec<u8>, rec: &[u8]) {
    out.extend_from_slice(&(rec.len() as u32).to_be_bytes());
    out.extend_from_slice(rec);
}

/// Writes the record count into a batch body.
pub fn finish_batch(out: &mut [u8], count: u32) {
    out[24..28].copy_from_slice(&count.to_be_bytes());
}

/// A decoded batch: its id, chain and records (slices of the frame body).
#[derive(Debug)]
pub struct Batch<'a> {
    /// Batch id (increasing per connection).
    pub id: u64,
    /// The chain all records belong to.
    pub chain: ChainId,
    /// Encoded records, in order.
    pub records: Vec<&'a [u8]>,
}

/// Where the parts of a batch body are: decoded once, then lent out as a
/// [`Batch`] over the same body as often as needed.
#[derive(Debug, Clone)]
pub struct BatchLayout {
    /// Batch id.
    pub id: u64,
    /// The chain.
    pub chain: ChainId,
    /// Each record's byte range in the body.
    pub records: Vec<std::ops::Range<usize>>,
}

impl BatchLayout {
    /// Decodes a batch body's layout.
    pub fn decode(body: &[u8]) -> Result<BatchLayout, WireError> {
        let mut d = Dec::new(body);
        let bad = WireError::MalformedBatch;
        let id = d.u64().map_err(bad)?;
        let chain = ChainId(d.array().map_err(bad)?);
        let n = d.u32().map_err(bad)?;
        let mut records = Vec::with_capacity((n as usize).min(body.len() / 4));
        for _ in 0..n {
            let len = d.u32().map_err(bad)? as usize;
            let start = d.pos();
            d.take(len).map_err(bad)?;
            records.push(start..start + len);
        }
        d.finish().map_err(bad)?;
        Ok(BatchLayout { id, chain, records })
    }

    /// The batch over `body`, the bytes this layout was decoded from.
    pub fn batch<'a>(&self, body: &'a [u8]) -> Batch<'a> {
        Batch {
            id: self.id,
            chain: self.chain,
            records: self.records.iter().map(|r| &body[r.clone()]).collect(),
        }
    }
}

/// Decodes a batch body.
pub fn decode_batch(body: &[u8]) -> Result<Batch<'_>, WireError> {
    BatchLayout::decode(body).map(|l| l.batch(body))
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No complete frame yet (read timeout); call again, nothing is lost.
    #[error("timed out waiting for a frame")]
    Timeout,
    /// The peer closed the connection at a frame boundary.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame ({0} bytes of it received)")]
    Truncated(usize),
    /// A frame longer than allowed.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// An empty frame (no type byte).
    #[error("empty frame (length 0)")]
    Empty,
    /// Transport error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads frames from a stream that may time out, keeping partial frames across
/// timeouts.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }
}

impl FrameReader {
    /// True if a whole frame is buffered (or buffered bytes already tell that
    /// the next frame is bad): [`next`](Self::next) will not read.
    pub fn has_frame(&self) -> bool {
        !matches!(self.complete(usize::MAX), Ok(None))
    }

    fn complete(&self, max: usize) -> Result<Option<usize>, ReadError> {
        let avail = self.end - self.start;
        if avail < 4 {
            return Ok(None);
        }
        let b = &self.buf[self.start..self.start + 4];
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len == 0 {
            return Err(ReadError::Empty);
        }
        if len > max {
            return Err(ReadError::TooLarge { len, max });
        }
        Ok((avail >= 4 + len).then_some(len))
    }

    /// The next frame (type, body), reading from `r` as needed. At most `max`
    /// bytes of type and body.
    pub fn next<R: Read>(&mut self, r: &mut R, max: usize) -> Result<(u8, &[u8]), ReadError> {
        loop {
            if let Some(len) = self.complete(max)? {
                return Ok(self.take(len));
            }
            match r.read(self.room()) {
                Ok(n) => self.filled(n)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// [`next`](Self::next) from an asynchronous stream. Cancel-safe: what
    /// was read before the future is dropped stays buffered for the next call.
    pub async fn next_async<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: usize,
    ) -> Result<(u8, &[u8]), ReadError> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(len) = self.complete(max)? {
                return Ok(self.take(len));
            }
            match r.read(self.room()).await {
                Ok(n) => self.filled(n)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Takes the whole frame of `len` bytes at the start of the buffer.
    fn take(&mut self, len: usize) -> (u8, &[u8]) {
        let s = self.start;
        self.start += 4 + len;
        (self.buf[s + 4], &self.buf[s + 5..s + 4 + len])
    }

    /// Room for the next read: compacts, then grows to hold the whole frame.
    fn room(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let need = if self.end >= 4 {
            4 + u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
        } else {
            4
        };
        if self.buf.len() <= self.end {
            // Grow with what arrives, not with what the length prefix
            // announces: a peer cannot make us hold a frame it does not
            // send (at most twice what arrived, plus one chunk).
            let grow = (self.end + READ_CHUNK).max(self.buf.len() * 2);
            self.buf.resize(grow.min(need.max(self.end + 1)), 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`room`](Self::room); 0: the peer closed.
    fn filled(&mut self, n: usize) -> Result<(), ReadError> {
        match n {
            0 if self.end == 0 => Err(ReadError::Closed),
            0 => Err(ReadError::Truncated(self.end)),
            n => {
                self.end += n;
                Ok(())
            }
        }
    }

    /// What a failed read means.
    fn failed(&self, e: io::Error) -> ReadError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadError::Timeout,
            io::ErrorKind::UnexpectedEof if self.end == 0 => ReadError::Closed,
            _ => ReadError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_announced_length_is_not_allocated_before_it_arrives() {
        let mut data = (16u32 << 20).to_be_bytes().to_vec();
        data.extend_from_slice(&[7; 100]);
        let mut fr = FrameReader::default();
        let mut r = &data[..];
        assert!(matches!(
            fr.next(&mut r, 32 << 20),
            Err(ReadError::Truncated(104))
        ));
        // Its initial buffer, not the 16 MiB announced.
        assert_eq!(fr.buf.len(), INITIAL_BUFFER);
        // A whole large frame still arrives whole, in pieces.
        let body = vec![9u8; 3 << 20];
        let mut data = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        data.push(t::BATCH);
        data.extend_from_slice(&body);
        let mut fr = FrameReader::default();
        let mut r = &data[..];
        let (ty, got) = fr.next(&mut r, 32 << 20).unwrap();
        assert_eq!((ty, got.len()), (t::BATCH, body.len()));
    }

    #[test]
    fn a_bad_message_says_what_is_wrong_with_it() {
        assert_eq!(Msg::decode(99, b""), Err(WireError::UnknownType(99)));
        assert_eq!(Msg::decode(t::BATCH, b""), Err(WireError::BatchAsMessage));
        assert_eq!(
            Msg::decode(t::HELLO, b"NOTMAGIC\0\x01\0\x01"),
            Err(WireError::NotHello)
        );
        let (ty, body) = Msg::Ping(7).encode();
        assert!(matches!(
            Msg::decode(ty, &body[..body.len() - 1]),
            Err(WireError::Malformed { ty: t::PING, .. })
        ));
        let mut trailing = body.clone();
        trailing.push(0);
        assert!(matches!(
            Msg::decode(ty, &trailing),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            BatchLayout::decode(&[0; 27]),
            Err(WireError::MalformedBatch(_))
        ));
    }

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Msg::Hello {
                min_version: 1,
                max_version: 1,
                host: "web-01".into(),
                software: "logseal 0".into(),
            },
            Msg::Welcome {
                version: 1,
                collector: "c".into(),
                max_frame: 99,
                idle_secs: 5,
            },
            Msg::Resume {
                chain: ChainId([3; 16]),
                known: true,
                next_seq: 42,
                receipt: Vec::new(),
            },
            Msg::Resume {
                chain: ChainId([3; 16]),
                known: true,
                next_seq: 42,
                receipt: b"a receipt".to_vec(),
            },
            Msg::Ack {
                batch: 1,
                chain: ChainId([3; 16]),
                next_seq: 42,
                receipt: Vec::new(),
            },
            Msg::Ack {
                batch: 1,
                chain: ChainId([3; 16]),
                next_seq: 42,
                receipt: b"another".to_vec(),
            },
            Msg::Error {
                code: 6,
                batch: 7,
                message: "no".into(),
            },
            Msg::Ping(9),
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            m.write(&mut wire).unwrap();
        }
        let mut r = FrameReader::default();
        let mut cur = std::io::Cursor::new(wire);
        for m in &msgs {
            let (ty, body) = r.next(&mut cur, 1 << 20).unwrap();
            assert_eq!(&Msg::decode(ty, body).unwrap(), m);
        }
        assert!(matches!(r.next(&mut cur, 1 << 20), Err(ReadError::Closed)));
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut wire = Vec::new();
        write_frame(&mut wire, t::PING, &[0; 100]).unwrap();
        let mut r = FrameReader::default();
        assert!(matches!(
            r.next(&mut std::io::Cursor::new(wire.clone()), 50),
            Err(ReadError::TooLarge { len: 101, max: 50 })
        ));
        let mut r = FrameReader::default();
        wire.truncate(20);
        assert!(matches!(
            r.next(&mut std::io::Cursor::new(wire), 1000),
            Err(ReadError::Truncated(20))
        ));
    }

    #[test]
    fn batch_round_trip() {
        let mut b = Vec::new();
        begin_batch(&mut b, 5, ChainId([1; 16]));
        push_record(&mut b, b"abc");
        push_record(&mut b, b"");
        finish_batch(&mut b, 2);
        let d = decode_batch(&b).unwrap();
        assert_eq!((d.id, d.chain), (5, ChainId([1; 16])));
        assert_eq!(d.records, vec![&b"abc"[..], &b""[..]]);
        b.push(0);
        assert!(decode_batch(&b).is_err());
    }
}
