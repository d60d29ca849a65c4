//! RFC 6587 framing of syslog over a byte stream, detected frame by frame:
//! a frame that starts with a digit is *octet-counted* (`MSG-LEN SP MSG`),
//! anything else is *LF-terminated* (non-transparent framing).
//!
//! Pure and incremental: feed it whatever the socket returned; it calls back
//! with each complete message. Nothing is dropped:
//! - a message longer than the maximum is cut to the maximum and reported with
//!   its original length (the rest is read and discarded);
//! - an octet count that is not a number below 1 GiB is not a count: the frame
//!   is read as LF-terminated instead (its bytes are chained as received);
//! - at end of stream a partial message is delivered as it is (with the length
//!   it announced, if it was octet-counted and cut short).
//!
//! Memory per connection is bounded by the maximum message size, and all
//! connections together by a shared [`Budget`]: a framer holds a message of
//! up to [`FREE_MESSAGE`] bytes on its own and takes from the budget for a
//! longer one. When the budget has nothing left, the message is cut where the
//! framer's room ends and reported with its length, exactly as a message
//! longer than the maximum is (the cut is in the chain, never silent).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest octet count taken as a count (1 GiB).
pub const MAX_COUNT: u64 = 1 << 30;

/// Bytes of a message a framer holds without taking from the budget.
pub const FREE_MESSAGE: usize = 2 << 10;

/// Memory shared by the framers and read buffers of every stream connection.
#[derive(Debug)]
pub struct Budget {
    total: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Budget {
        Budget {
            total,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if that leaves the budget used at most up to `ceiling`.
    pub fn take_below(&self, n: usize, ceiling: usize) -> bool {
        let ceiling = ceiling.min(self.total);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&v| v <= ceiling)
            })
            .is_ok()
    }

    /// Takes `n` bytes if the budget has them.
    pub fn take(&self, n: usize) -> bool {
        self.take_below(n, self.total)
    }

    /// Gives back `n` bytes taken before.
    pub fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Start,
    /// Reading the digits of an octet count (value so far, digits so far).
    Count(u64, u8),
    /// Reading an octet-counted body: bytes still to read of the declared count.
    Body { left: u64, declared: u64 },
    /// Reading an LF-terminated message (total length so far).
    Line { total: u64 },
}

impl Drop for Framer {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give(self.charged);
        }
    }
}

/// The framer of one connection.
pub struct Framer {
    max: usize,
    state: State,
    /// The current message (at most `room` bytes kept).
    buf: Vec<u8>,
    /// The budget the room beyond [`FREE_MESSAGE`] is taken from (none: the
    /// room is `max`).
    budget: Option<Arc<Budget>>,
    /// Bytes of the current message this framer may hold.
    room: usize,
    /// Bytes of `room` taken from the budget.
    charged: usize,
    /// Messages cut because the budget had nothing left.
    starved: u64,
    /// The current message is one of them.
    short: bool,
}

/// A message handed to the callback: the bytes (at most the maximum) and, if it
/// was cut, the length it had.
pub type Emit<'a> = &'a mut dyn FnMut(&[u8], Option<u64>);

impl Framer {
    /// A framer that keeps at most `max` bytes per message.
    pub fn new(max: usize) -> Framer {
        Framer {
            max,
            state: State::Start,
            buf: Vec::new(),
            budget: None,
            room: max,
            charged: 0,
            starved: 0,
            short: false,
        }
    }

    /// A framer that keeps at most `max` bytes per message, and takes what it
    /// holds beyond [`FREE_MESSAGE`] from `budget`.
    pub fn with_budget(max: usize, budget: Arc<Budget>) -> Framer {
        let mut f = Framer::new(max);
        f.room = FREE_MESSAGE.min(max);
        f.budget = Some(budget);
        f
    }

    /// Bytes of the message it holds now.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Bytes this framer holds from the budget.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// How many messages were cut short because the budget was used up.
    pub fn starved(&self) -> u64 {
        self.starved
    }

    /// Gives back what the budget lent beyond the message now held (call it
    /// once the messages emitted are passed on).
    pub fn settle(&mut self) {
        let Some(budget) = &self.budget else { return };
        if self.charged == 0 || self.buf.len() > FREE_MESSAGE {
            return;
        }
        let mut small = Vec::with_capacity(self.buf.len());
        small.extend_from_slice(&self.buf);
        self.buf = small;
        budget.give(self.charged);
        self.charged = 0;
        self.room = FREE_MESSAGE.min(self.max);
    }

    fn keep(&mut self, b: &[u8]) {
        let want = b.len().min(self.max.saturating_sub(self.buf.len()));
        let need = self.buf.len() + want;
        // Once cut, a message takes nothing more (no gap inside what is kept).
        if need > self.room && !self.short {
            self.grow(need);
        }
        let n = want.min(self.room.saturating_sub(self.buf.len()));
        self.buf.extend_from_slice(&b[..n]);
    }

    /// Makes room for `need` bytes (doubling, up to `max`) from the budget;
    /// without it the room stays as it is and the message will be cut.
    fn grow(&mut self, need: usize) {
        let Some(budget) = &self.budget else { return };
        let wide = need.max(self.room.saturating_mul(2)).min(self.max);
        for target in [wide, need] {
            let extra = target - self.room;
            if budget.take(extra) {
                self.charged += extra;
                self.room = target;
                self.buf.reserve_exact(target - self.buf.len());
                return;
            }
        }
        if !self.short {
            self.short = true;
            self.starved += 1;
        }
    }

    /// The original length to report for the message held, if it was cut.
    fn cut(&self, total: u64) -> Option<u64> {
        (total > self.buf.len() as u64).then_some(total)
    }

    /// Feeds received bytes.
    pub fn push(&mut self, mut data: &[u8], emit: Emit<'_>) {
        while !data.is_empty() {
            match self.state {
                State::Start => {
                    let c = data[0];
                    if c.is_ascii_digit() && c != b'0' {
                        self.state = State::Count(0, 0);
                    } else if c == b'\n' {
                        // An empty line between frames carries nothing.
                        data = &data[1..];
                    } else {
                        self.state = State::Line { total: 0 };
                    }
                }
                State::Count(v, n) => {
                    let c = data[0];
                    if c.is_ascii_digit() && n < 10 {
                        // Kept in case they start a plain line (within max).
                        self.keep(&[c]);
                        self.state = State::Count(v * 10 + u64::from(c - b'0'), n + 1);
                        data = &data[1..];
                    } else if c == b' ' && v > 0 && v <= MAX_COUNT {
                        self.buf.clear();
                        self.state = State::Body {
                            left: v,
                            declared: v,
                        };
                        data = &data[1..];
                    } else {
                        // Not an octet count: the digits start an LF-terminated message.
                        self.state = State::Line { total: n.into() };
                    }
                }
                State::Body { left, declared } => {
                    let n = (left as usize).min(data.len());
                    if self.buf.is_empty() && n as u64 == left && declared <= self.max as u64 {
                        // Fast path: the whole message is in this read.
                        emit(&data[..n], None);
                        self.state = State::Start;
                    } else {
                        self.keep(&data[..n]);
                        if n as u64 == left {
                            emit(&self.buf, self.cut(declared));
                            self.buf.clear();
                            self.short = false;
                            self.state = State::Start;
                        } else {
                            self.state = State::Body {
                                left: left - n as u64,
                                declared,
                            };
                        }
                    }
                    data = &data[n..];
                }
                State::Line { total } => match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        let total = total + i as u64;
                        if self.buf.is_empty() && i <= self.max {
                            emit(&data[..i], None);
                        } else {
                            self.keep(&data[..i]);
                            emit(&self.buf, self.cut(total));
                            self.buf.clear();
                            self.short = false;
                        }
                        self.state = State::Start;
                        data = &data[i + 1..];
                    }
                    None => {
                        self.keep(data);
                        self.state = State::Line {
                            total: total + data.len() as u64,
                        };
                        data = &[];
                    }
                },
            }
        }
    }

    /// End of stream: delivers a partial message, if any.
    pub fn finish(&mut self, emit: Emit<'_>) {
        match self.state {
            State::Start => {}
            State::Count(_, n) => emit(&self.buf, self.cut(n.into())),
            // (A body cut short by the end of the stream is cut too.)
            State::Body { declared, .. } => emit(&self.buf, self.cut(declared)),
            State::Line { total } => emit(&self.buf, self.cut(total)),
        }
        self.buf.clear();
        self.short = false;
        self.state = State::Start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, Option<u64>)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut |b, cut| out.push((b.to_vec(), cut)));
        }
        f.finish(&mut |b, cut| out.push((b.to_vec(), cut)));
        out
    }

    fn msgs(v: &[(Vec<u8>, Option<u64>)]) -> Vec<String> {
        v.iter()
            .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// Found by the `ingest` fuzz target: digits that turn out not to be an
    /// octet count were kept whole, past `max`.
    #[test]
    fn digits_that_are_no_count_stay_within_max() {
        for (stream, want_cut) in [
            (&b"1234567x not a count\n"[..], 20u64),
            (&b"12345678"[..], 8),
        ] {
            for (m, cut) in frames(3, &[stream]) {
                assert!(m.len() <= 3, "{m:?}");
                assert_eq!(cut, Some(want_cut));
            }
        }
    }

    #[test]
    fn octet_counted_and_lf_mixed_and_split_anywhere() {
        let stream = b"5 <1>ab3 <2>\n<3>line\n10 <4>x\ny\nz1245>bad count\n";
        let want = vec!["<1>ab", "<2>", "<3>line", "<4>x\ny\nz12", "45>bad count"];
        assert_eq!(msgs(&frames(100, &[stream])), want);
        // Every split point gives the same messages.
        for i in 0..stream.len() {
            assert_eq!(
                msgs(&frames(100, &[&stream[..i], &stream[i..]])),
                want,
                "split at {i}"
            );
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(msgs(&frames(100, &bytes)), want);
    }

    #[test]
    fn long_messages_are_cut_and_keep_their_length() {
        let mut s = b"20 ".to_vec();
        s.extend_from_slice(&[b'a'; 20]);
        s.extend_from_slice(&[b'b'; 30]);
        s.push(b'\n');
        s.extend_from_slice(b"<1>ok\n");
        let out = frames(10, &[&s]);
        assert_eq!(out[0], (vec![b'a'; 10], Some(20)));
        assert_eq!(out[1], (vec![b'b'; 10], Some(30)));
        assert_eq!(out[2], (b"<1>ok".to_vec(), None));
    }

    /// Framers share a budget: a message that needs more than the budget has
    /// left is cut where its room ends and reported with its length; the room
    /// is given back once the message is passed on.
    #[test]
    fn a_used_up_budget_cuts_messages_and_settling_gives_it_back() {
        let budget = Arc::new(Budget::new(8 << 10));
        let max = 64 << 10;
        let line = |c: u8, len: usize| {
            let mut m = vec![c; len];
            m.push(b'\n');
            m
        };
        // (length, first byte, cut) of each message: no megabyte diffs.
        let mut out: Vec<(usize, u8, Option<u64>)> = Vec::new();
        let mut a = Framer::with_budget(max, budget.clone());
        let mut b = Framer::with_budget(max, budget.clone());
        // `a` holds half of a long line (and all of the budget), in pieces.
        for piece in line(b'a', 20 << 10)[..10 << 10].chunks(1000) {
            a.push(piece, &mut |m, cut| out.push((m.len(), m[0], cut)));
        }
        assert_eq!(a.charged(), 8 << 10);
        assert_eq!(budget.used(), 8 << 10);
        // `b` gets no more than its free room: its line is cut there.
        for piece in line(b'b', 20 << 10).chunks(3000) {
            b.push(piece, &mut |m, cut| out.push((m.len(), m[0], cut)));
        }
        assert_eq!(out, vec![(FREE_MESSAGE, b'b', Some(20 << 10))]);
        assert_eq!((b.starved(), b.charged()), (1, 0));
        // `a` is cut at 10 KiB, what its room holds; later bytes of the same
        // line are not kept even once the budget has room again.
        out.clear();
        for piece in line(b'a', 20 << 10)[10 << 10..].chunks(1000) {
            a.push(piece, &mut |m, cut| out.push((m.len(), m[0], cut)));
        }
        assert_eq!(out, vec![(10 << 10, b'a', Some(20 << 10))]);
        assert_eq!(a.starved(), 1);
        a.settle();
        assert_eq!((a.charged(), budget.used()), (0, 0));
        // With the budget back, a line as long as the room it can take is whole.
        out.clear();
        let c = line(b'c', FREE_MESSAGE + (8 << 10));
        b.push(&c[..5000], &mut |m, cut| out.push((m.len(), m[0], cut)));
        b.push(&c[5000..], &mut |m, cut| out.push((m.len(), m[0], cut)));
        assert_eq!(out, vec![(c.len() - 1, b'c', None)]);
        assert_eq!(budget.used(), 8 << 10);
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0, "a dropped framer gives its room back");
    }

    #[test]
    fn absurd_counts_and_half_frames() {
        // 99999999999 is not taken as a count: the line is kept as a message.
        let out = frames(64, &[b"99999999999 <1>msg\n"]);
        assert_eq!(msgs(&out), vec!["99999999999 <1>msg"]);
        // A half frame then end of stream: delivered, with the length it announced.
        let out = frames(64, &[b"30 <1>only part"]);
        assert_eq!(out, vec![(b"<1>only part".to_vec(), Some(30))]);
        // An unterminated last line is a message.
        assert_eq!(msgs(&frames(64, &[b"<1>a\n<2>b"])), vec!["<1>a", "<2>b"]);
        // Leading zero is not an octet count.
        assert_eq!(msgs(&frames(64, &[b"05 <1>x\n"])), vec!["05 <1>x"]);
    }
}
