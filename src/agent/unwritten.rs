//! Loss counts that could not reach the spool at a stop, kept for the next
//! start.
//!
//! Stopping on a full disk, the stamper chains Loss records for what it had to
//! drop, but the final writes fail and those records never reach the spool:
//! the count would vanish with the process. So every Loss record not yet
//! durable, and every count no record could be made for, is written at such a
//! stop to `STATE/losses.pending`, and the next start chains a Loss record for
//! each entry its chain does not already hold (a record that did reach the
//! spool is recognised by its chain and seq), seals, and clears the file.
//!
//! A full disk has no room for a new file, so this one is made at start, at
//! its full size ([`FILE_SIZE`], written with zeros, not sparse), and is
//! rewritten **in place** at the stop: overwriting allocated blocks needs no
//! free space on ext4, XFS or tmpfs (a copy-on-write file system such as btrfs
//! may still refuse; the error is then logged with the counts). This is the
//! one state file not replaced by rename: it holds two slots, each with a
//! generation and a CRC32C, written alternately and fdatasync'd; a write torn
//! by a crash spoils only the slot being written, and the other one stands.
//!
//! Events chained but not yet written when such a stop fails are counted the
//! same way: an entry names their chain and seqs, and the next start chains a
//! Loss record for those of them the spool does not hold.
//!
//! Slot ([`SLOT`] bytes): `"LSLOSS01"`, generation (u64), entry count (u16),
//! the entries, zeros, and the CRC32C of everything before it in the slot in
//! its last 4 bytes (integers big-endian). Entry ([`ENTRY`] bytes): chain id
//! (16), seq (u64: of the Loss record, or of the first of the events; all ones
//! if none was appended), what it counts (u8: 0 a Loss record's count, 1 the
//! events at seq, seq + 1, …), source (u8), reason (u8), count (u64), first
//! and last receive time (i64 ns).

use crate::chain::record::{LossReason, Source};
use crate::chain::ChainId;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "losses.pending";
/// Bytes of one slot.
pub const SLOT: usize = 8 << 10;
/// The file's size: two slots.
pub const FILE_SIZE: u64 = 2 * SLOT as u64;
/// Bytes of one entry.
pub const ENTRY: usize = 51;
const MAGIC: &[u8; 8] = b"LSLOSS01";
const HEAD: usize = 8 + 8 + 2;
/// Entries a slot holds.
pub const MAX_ENTRIES: usize = (SLOT - HEAD - 4) / ENTRY;

/// One count of lost events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCount {
    /// The chain the Loss record was appended to.
    pub chain: ChainId,
    /// The seq of the Loss record, or of the first event; `None` if no
    /// record could be appended.
    pub seq: Option<u64>,
    /// The count is of Event records (seq, seq + 1, …) appended but not
    /// written, not a Loss record's.
    pub events: bool,
    /// Where the events were lost.
    pub source: Source,
    /// Why.
    pub reason: LossReason,
    /// How many.
    pub count: u64,
    /// Receive time of the first (ns since the epoch).
    pub first_ns: i64,
    /// Receive time of the last.
    pub last_ns: i64,
}

impl LostCount {
    /// How many of the events counted are not in a chain `chain` whose last
    /// record found at start is `after_seq` (all of them if that is another
    /// chain); for a Loss record's count, all of it unless the record is there.
    pub fn missing_from(&self, chain: ChainId, after_seq: Option<u64>) -> u64 {
        let (Some(seq), Some(after)) = (self.seq, after_seq) else {
            return self.count;
        };
        if chain != self.chain {
            return self.count;
        }
        if !self.events {
            return if seq <= after { 0 } else { self.count };
        }
        let there = after.saturating_add(1).saturating_sub(seq).min(self.count);
        self.count - there
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chain.0);
        out.extend_from_slice(&self.seq.unwrap_or(u64::MAX).to_be_bytes());
        out.push(u8::from(self.events));
        out.push(self.source as u8);
        out.push(self.reason as u8);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.first_ns.to_be_bytes());
        out.extend_from_slice(&self.last_ns.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<LostCount> {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let seq = u64_at(16);
        Some(LostCount {
            chain: ChainId(b[..16].try_into().ok()?),
            seq: (seq != u64::MAX).then_some(seq),
            events: match b[24] {
                0 => false,
                1 => true,
                _ => return None,
            },
            source: Source::from_u8(b[25])?,
            reason: LossReason::from_u8(b[26])?,
            count: u64_at(27),
            first_ns: u64_at(35) as i64,
            last_ns: u64_at(43) as i64,
        })
    }
}

/// Merges counts of one source and reason into one entry without a seq, until
/// they fit a slot. (Only with more inputs than a slot has entries; a count
/// whose record did reach the spool may then be chained twice: too many
/// losses reported, never too few.)
fn fit(mut counts: Vec<LostCount>) -> Vec<LostCount> {
    if counts.len() <= MAX_ENTRIES {
        return counts;
    }
    let mut merged: Vec<LostCount> = Vec::new();
    for c in counts.drain(..) {
        match merged
            .iter_mut()
            .find(|m| (m.source, m.reason) == (c.source, c.reason))
        {
            Some(m) => {
                m.count = m.count.saturating_add(c.count);
                m.first_ns = m.first_ns.min(c.first_ns);
                m.last_ns = m.last_ns.max(c.last_ns);
                m.seq = None;
            }
            None => merged.push(LostCount {
                seq: None,
                events: false,
                ..c
            }),
        }
    }
    merged.truncate(MAX_ENTRIES);
    merged
}

fn encode_slot(generation: u64, counts: &[LostCount]) -> Vec<u8> {
    let mut s = Vec::with_capacity(SLOT);
    s.extend_from_slice(MAGIC);
    s.extend_from_slice(&generation.to_be_bytes());
    s.extend_from_slice(&(counts.len() as u16).to_be_bytes());
    for c in counts {
        c.encode(&mut s);
    }
    s.resize(SLOT - 4, 0);
    let crc = crc32c::crc32c(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// (generation, entries) of a slot, if it is valid.
fn decode_slot(s: &[u8]) -> Option<(u64, Vec<LostCount>)> {
    let (body, crc) = s.split_at(SLOT - 4);
    if &body[..8] != MAGIC || crc32c::crc32c(body).to_be_bytes() != crc {
        return None;
    }
    let generation = u64::from_be_bytes(body[8..16].try_into().ok()?);
    let n = u16::from_be_bytes(body[16..18].try_into().ok()?) as usize;
    if n > MAX_ENTRIES {
        return None;
    }
    let counts = body[HEAD..HEAD + n * ENTRY]
        .chunks_exact(ENTRY)
        .map(LostCount::decode)
        .collect::<Option<Vec<_>>>()?;
    Some((generation, counts))
}

/// The file, open for rewriting in place.
#[derive(Debug)]
pub struct Unwritten {
    file: File,
    path: PathBuf,
    generation: u64,
}

impl Unwritten {
    /// Opens the file in `state_dir`, making it (full size, empty) if it does
    /// not exist; returns it with the counts a previous stop left. A file that
    /// is not a regular file of [`FILE_SIZE`] bytes is an error naming it.
    pub fn open(state_dir: &Path) -> io::Result<(Unwritten, Vec<LostCount>)> {
        let path = state_dir.join(FILE_NAME);
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(
                    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
                )
                .open(&path)
        };
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::storage::fsutil::write_atomic(
                    &path,
                    &vec![0; FILE_SIZE as usize],
                    "losses-pending",
                )
                .map_err(named)?;
                open().map_err(named)?
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(named(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a symbolic link (a state file is never followed)",
                )))
            }
            Err(e) => return Err(named(e)),
        };
        let meta = file.metadata().map_err(named)?;
        if !meta.is_file() || meta.len() != FILE_SIZE {
            return Err(named(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "expected a regular file of {FILE_SIZE} bytes (counts of lost events kept \
                     for the next start), found {} bytes{}",
                    meta.len(),
                    if meta.is_file() {
                        ""
                    } else {
                        " that is not a regular file"
                    }
                ),
            )));
        }
        let mut buf = vec![0u8; FILE_SIZE as usize];
        file.read_exact_at(&mut buf, 0).map_err(named)?;
        let slots: Vec<_> = buf.chunks_exact(SLOT).map(decode_slot).collect();
        for (i, slot) in buf.chunks_exact(SLOT).enumerate() {
            // (A slot never written is all zeros.)
            if slots[i].is_none() && slot.iter().any(|&b| b != 0) {
                tracing::warn!(
                    file = %path.display(),
                    slot = i,
                    "a slot of the loss counts kept across a stop is damaged (a write torn by a \
                     crash?): the other slot is used; counts only the damaged one held are lost"
                );
            }
        }
        let newest = slots.into_iter().flatten().max_by_key(|(g, _)| *g);
        let (generation, counts) = newest.unwrap_or((0, Vec::new()));
        Ok((
            Unwritten {
                file,
                path,
                generation,
            },
            counts,
        ))
    }

    /// Replaces what the file holds with `counts`, in place (the slot not
    /// holding the current generation), and makes it durable.
    pub fn save(&mut self, counts: Vec<LostCount>) -> io::Result<()> {
        let counts = fit(counts);
        let generation = self.generation + 1;
        let slot = encode_slot(generation, &counts);
        let at = (generation % 2) * SLOT as u64;
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.path.display()));
        self.file.write_all_at(&slot, at).map_err(named)?;
        self.file.sync_data().map_err(named)?;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests: crafting damaged files
mod tests {
    use super::*;

    fn count(n: u64, seq: Option<u64>, source: Source) -> LostCount {
        LostCount {
            chain: ChainId([7; 16]),
            seq,
            events: false,
            source,
            reason: LossReason::SpoolFull,
            count: n,
            first_ns: -5,
            last_ns: 1_800_000_000_000_000_000,
        }
    }

    #[test]
    fn counts_survive_a_reopen_and_a_torn_slot_leaves_the_other() {
        let d = std::env::temp_dir().join(format!("logseal-unwritten-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (mut u, got) = Unwritten::open(&d).unwrap();
        assert!(got.is_empty());
        let first = vec![
            count(3, Some(9), Source::SyslogTcp),
            count(4, None, Source::SyslogUdp),
        ];
        u.save(first.clone()).unwrap();
        assert_eq!(Unwritten::open(&d).unwrap().1, first);
        let second = vec![count(5, Some(11), Source::SyslogUnix)];
        u.save(second.clone()).unwrap();
        assert_eq!(Unwritten::open(&d).unwrap().1, second);
        // A crash tears the slot being written: the one before stands.
        let (mut u, _) = Unwritten::open(&d).unwrap();
        u.save(vec![count(6, None, Source::Stdin)]).unwrap();
        let path = d.join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = (u.generation % 2) as usize * SLOT + HEAD + 3;
        bytes[torn] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Unwritten::open(&d).unwrap().1, second);
        // Wrong size: refused, naming the file.
        std::fs::write(&path, b"short").unwrap();
        let e = Unwritten::open(&d).err().unwrap().to_string();
        assert!(e.contains(FILE_NAME) && e.contains("5 bytes"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn what_the_chain_already_holds_is_not_counted_again() {
        let chain = ChainId([7; 16]);
        let other = ChainId([8; 16]);
        let loss = count(40, Some(10), Source::SyslogUdp);
        assert_eq!(loss.missing_from(chain, Some(10)), 0, "the record is there");
        assert_eq!(loss.missing_from(chain, Some(9)), 40);
        assert_eq!(loss.missing_from(other, Some(99)), 40, "another chain");
        assert_eq!(loss.missing_from(chain, None), 40);
        let events = LostCount {
            events: true,
            ..count(5, Some(10), Source::SyslogTcp)
        };
        assert_eq!(events.missing_from(chain, Some(9)), 5);
        assert_eq!(
            events.missing_from(chain, Some(11)),
            3,
            "seqs 10 and 11 are there"
        );
        assert_eq!(events.missing_from(chain, Some(14)), 0);
        assert_eq!(events.missing_from(chain, Some(u64::MAX)), 0);
        let none = count(7, None, Source::SyslogTcp);
        assert_eq!(none.missing_from(chain, Some(99)), 7, "never appended");
    }

    #[test]
    fn more_counts_than_a_slot_holds_are_merged_never_dropped() {
        let many: Vec<LostCount> = (0..MAX_ENTRIES as u64 + 10)
            .map(|i| {
                count(
                    i + 1,
                    Some(i),
                    if i % 2 == 0 {
                        Source::SyslogTcp
                    } else {
                        Source::SyslogUdp
                    },
                )
            })
            .collect();
        let total: u64 = many.iter().map(|c| c.count).sum();
        let fitted = fit(many);
        assert_eq!(fitted.len(), 2);
        assert_eq!(fitted.iter().map(|c| c.count).sum::<u64>(), total);
        assert!(fitted.iter().all(|c| c.seq.is_none()));
    }
}
