//! `logseal stamp`: chains newline-delimited messages from stdin into a
//! segment file, sealing every N events, at an interval, and at the end.

use crate::chain::record::{Payload, Source};
use crate::chain::Body;
use crate::storage::writer::{ChainWriter, Opened};
use crate::util::timefmt::now_ns;
use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The options of `logseal stamp`.
#[derive(clap::Args, Debug)]
pub struct StampArgs {
    /// State directory (signer key and resume point). Keep it private.
    #[arg(long)]
    pub state: PathBuf,
    /// Segment file to append to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Host name for a new chain (default: this machine's name).
    #[arg(long)]
    pub host: Option<String>,
    /// Seal after every N events (0: only by interval and at EOF).
    #[arg(long, default_value_t = 0)]
    pub seal_every: u64,
    /// Seal at most this long after the first unsealed event (e.g. 500ms, 1s, 2m).
    #[arg(long, default_value = "1s", value_parser = crate::util::units::parse_duration)]
    pub seal_interval: Duration,
    /// Lines longer than this many bytes are truncated (and flagged) when chained.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_line: usize,
}

/// Stdin is handed over in chunks of this size.
const CHUNK: usize = 256 << 10;

/// Runs `logseal stamp`.
pub fn run(a: StampArgs) -> anyhow::Result<()> {
    // One owner per state directory: a second process is refused, naming the first.
    let _lock = crate::storage::fsutil::lock_dir(&a.state, "state directory")?;
    let host = a.host.map(|h| crate::chain::hostname::canonical(&h));
    let (w, opened) = ChainWriter::open(&a.state, &a.out, host.as_deref())?;
    eprintln!("logseal stamp: {}", opened_line(&w, &opened));
    let first_seq = w.next_seq();
    let mut s = Stamping {
        w,
        seal_every: a.seal_every,
        max_line: a.max_line,
        partial: Vec::new(),
        partial_len: 0,
        events: 0,
        seals: 0,
        since_seal: 0,
        first_unsealed: None,
    };
    let rx = read_stdin();
    loop {
        let timeout = match s.first_unsealed {
            Some(t0) => a.seal_interval.saturating_sub(t0.elapsed()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(timeout) {
            Ok(Ok(chunk)) => s.feed(&chunk)?,
            Ok(Err(e)) => return Err(e).context("reading stdin"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if s.first_unsealed
            .is_some_and(|t| t.elapsed() >= a.seal_interval)
        {
            s.seal()?;
        }
    }
    if s.partial_len > 0 {
        // A last line without a newline is still an event.
        let line = std::mem::take(&mut s.partial);
        s.chain_line(&line, s.partial_len)?;
        s.events += 1;
    }
    let id = s.w.chain_id();
    let last = s.w.shutdown("end of input")?;
    eprintln!(
        "logseal stamp: chained {} event(s) into chain {id} (seq {first_seq}..={last}), {} seal(s), clean shutdown",
        s.events,
        s.seals + 1
    );
    Ok(())
}

/// What opening the chain found, for stderr.
fn opened_line(w: &ChainWriter, opened: &Opened) -> String {
    match opened {
        Opened::New { origin, note } => format!(
            "new chain {} for host {} ({}{})",
            w.chain_id(),
            w.host(),
            origin.name(),
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        ),
        Opened::Resumed {
            after_seq,
            clean,
            torn_bytes,
            rolled_forward,
        } => format!(
            "continuing chain {} after seq {after_seq} ({}{}{})",
            w.chain_id(),
            if *clean {
                "clean shutdown"
            } else {
                "recovered from an unclean stop"
            },
            if *torn_bytes > 0 {
                format!(", cut {torn_bytes} torn bytes")
            } else {
                String::new()
            },
            if *rolled_forward {
                ", completed an interrupted seal"
            } else {
                ""
            }
        ),
    }
}

/// A reader thread hands stdin over in large chunks, so that the interval
/// seal fires even while stdin is idle.
fn read_stdin() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; CHUNK];
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// The chain being stamped and the line being assembled.
struct Stamping {
    w: ChainWriter,
    seal_every: u64,
    max_line: usize,
    /// The current line so far, at most `max_line` bytes of it.
    partial: Vec<u8>,
    /// The current line's true length, beyond `max_line`.
    partial_len: u64,
    events: u64,
    seals: u64,
    since_seal: u64,
    first_unsealed: Option<Instant>,
}

impl Stamping {
    /// Chains the complete lines of `chunk`; keeps an incomplete last one.
    fn feed(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (piece, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = if complete {
                &rest[piece.len() + 1..]
            } else {
                &[]
            };
            self.partial_len += piece.len() as u64;
            if self.partial.is_empty() && complete && piece.len() <= self.max_line {
                self.chain_line(piece, self.partial_len)?; // fast path: no copy
            } else {
                let room = self.max_line.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&piece[..piece.len().min(room)]);
                if !complete {
                    continue;
                }
                let line = std::mem::take(&mut self.partial);
                self.chain_line(&line, self.partial_len)?;
                self.partial = line;
            }
            self.partial.clear();
            self.partial_len = 0;
            self.events += 1;
            self.since_seal += 1;
            self.first_unsealed.get_or_insert_with(Instant::now);
            if self.seal_every > 0 && self.since_seal >= self.seal_every {
                self.seal()?;
            }
        }
        Ok(())
    }

    /// Chains one line; a line cut at `max_line` carries its true length.
    fn chain_line(&mut self, line: &[u8], true_len: u64) -> anyhow::Result<()> {
        let t = now_ns();
        if true_len > line.len() as u64 {
            self.w.append_at(
                t,
                Body::Event {
                    source: Source::Stdin,
                    flags: 0,
                    peer: "",
                    original_len: Some(true_len),
                    payload: Payload::Raw(line),
                },
            )?;
        } else {
            self.w.append_event(t, Source::Stdin, "", line)?;
        }
        Ok(())
    }

    fn seal(&mut self) -> anyhow::Result<()> {
        self.w.seal()?;
        self.seals += 1;
        self.since_seal = 0;
        self.first_unsealed = None;
        Ok(())
    }
}
