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
//! Memory per connection is bounded by the maximum message size.

/// Largest octet count taken as a count (1 GiB).
pub const MAX_COUNT: u64 = 1 << 30;

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

/// The framer of one connection.
pub struct Framer {
    max: usize,
    state: State,
    /// The current message (at most `max` bytes kept).
    buf: Vec<u8>,
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
        }
    }

    fn keep(&mut self, b: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&b[..b.len().min(room)]);
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
                    if self.buf.is_empty() && n as u64 == left && declared as usize <= self.max {
                        // Fast path: the whole message is in this read.
                        emit(&data[..n], None);
                        self.state = State::Start;
                    } else {
                        self.keep(&data[..n]);
                        if n as u64 == left {
                            let cut = (declared > self.max as u64).then_some(declared);
                            emit(&self.buf, cut);
                            self.buf.clear();
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
                            let cut = (total > self.max as u64).then_some(total);
                            emit(&self.buf, cut);
                            self.buf.clear();
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
            State::Count(_, n) => {
                let cut = (usize::from(n) > self.max).then_some(n.into());
                emit(&self.buf, cut)
            }
            State::Body { left, declared } => {
                let got = declared - left;
                let cut = (got < declared || declared > self.max as u64).then_some(declared);
                emit(&self.buf, cut);
            }
            State::Line { total } => {
                let cut = (total > self.max as u64).then_some(total);
                emit(&self.buf, cut);
            }
        }
        self.buf.clear();
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
