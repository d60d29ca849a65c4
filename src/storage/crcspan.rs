//! CRC32C of a span of bytes from CRCs of prefixes: what makes the segment
//! reader's resynchronisation linear in the file size.
//!
//! CRC32C (init and final XOR 0xFFFFFFFF) is affine in its input, so for any
//! byte strings `A` and `B`
//!
//! ```text
//! crc(A ‖ B) = crc(A) · x^(8·|B|)  ⊕  crc(B)          (mod the CRC polynomial)
//! ```
//!
//! (zlib's `crc32_combine`). With `C(i)` the CRC of the bytes from a fixed base
//! to position `i`, the CRC of the bytes between positions `s` and `e` is
//! `C(e) ⊕ C(s) · x^(8·(e−s))`: two prefix values and one multiplication,
//! whatever the length of the span. [`Prefixes`] keeps `C` at every
//! [`STEP`]-th position, so `C(i)` costs at most `STEP` bytes of CRC.
//!
//! This only changes how fast a reader finds the frames that docs/FORMAT.md §3
//! defines; which frames it finds is the same.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// The CRC32C polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a · b` modulo the polynomial, both in reflected order (`1 << 31` is 1).
fn mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0;
    let mut m = 1u32 << 31;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// Nibble digits of a length: enough for any `u32` length.
const DIGITS: usize = 8;

/// `TABLE[k][d] = x^(8 · d · 16^k)`: the operator of `d · 16^k` zero bytes.
fn table() -> &'static [[u32; 16]; DIGITS] {
    static T: OnceLock<[[u32; 16]; DIGITS]> = OnceLock::new();
    T.get_or_init(|| {
        let one = 1u32 << 31;
        let mut t = [[one; 16]; DIGITS];
        // x^8: the operator of one zero byte.
        let mut unit = one;
        for _ in 0..8 {
            unit = mul(unit, 1 << 30);
        }
        for row in t.iter_mut() {
            for d in 1..16 {
                row[d] = mul(row[d - 1], unit);
            }
            // The next digit's unit: 16 times this one's.
            unit = mul(row[15], unit);
        }
        t
    })
}

/// `crc · x^(8·len)`: the CRC register after `len` more zero bytes, in the
/// form the combination above needs. At most [`DIGITS`] multiplications.
pub fn shift(crc: u32, len: u32) -> u32 {
    let t = table();
    let mut p = crc;
    let mut n = len;
    let mut k = 0;
    while n != 0 {
        let d = (n & 15) as usize;
        if d != 0 {
            p = mul(t[k][d], p);
        }
        n >>= 4;
        k += 1;
    }
    p
}

/// CRC32C of `A ‖ B` from `crc(A)`, `crc(B)` and `|B|`.
pub fn combine(crc_a: u32, crc_b: u32, len_b: u32) -> u32 {
    shift(crc_a, len_b) ^ crc_b
}

/// Distance between two kept prefix values.
pub const STEP: u64 = 64;

/// CRC32C values of the prefixes of a byte stream, from a base position, kept
/// at every [`STEP`]-th position over a window that only moves forward.
///
/// Memory: one `u32` per [`STEP`] bytes of the window; the reader keeps the
/// window at most one frame (16 MiB) long: 1 MiB.
#[derive(Debug, Default)]
pub struct Prefixes {
    /// Position where the prefixes start (`C(base)` is the CRC of nothing: 0).
    base: u64,
    /// Index (from `base`, in steps) of `kept[0]`.
    first: u64,
    /// `C(base + (first + i) · STEP)`.
    kept: VecDeque<u32>,
    /// Bytes checksummed so far.
    work: std::cell::Cell<u64>,
}

impl Prefixes {
    /// Bytes checksummed so far.
    pub fn work(&self) -> u64 {
        self.work.get()
    }

    /// Position of the last kept value, if any.
    fn last(&self) -> Option<u64> {
        let n = self.kept.len() as u64;
        (n > 0).then(|| self.base + (self.first + n - 1) * STEP)
    }

    /// Makes `C` available from `from` up to `to` (positions), reading bytes
    /// with `bytes(a, b)`, which must answer for every position from
    /// `from − STEP` up to `to`. Values before `from − STEP` are dropped.
    pub fn cover<'a>(&mut self, from: u64, to: u64, bytes: &dyn Fn(u64, u64) -> &'a [u8]) {
        // Values wholly behind the window are of no more use.
        while self.kept.len() > 1 && self.base + (self.first + 1) * STEP <= from {
            self.kept.pop_front();
            self.first += 1;
        }
        // The last value must be where bytes can still be read to go on
        // (`from − STEP` or later); if not, start again at `from`.
        if self.last().map_or(true, |l| l + STEP < from) {
            self.base = from;
            self.first = 0;
            self.kept.clear();
            self.kept.push_back(0);
        }
        while let Some(l) = self.last() {
            if l + STEP > to {
                break;
            }
            let c = self.kept.back().copied().unwrap_or(0);
            self.work.set(self.work.get() + STEP);
            self.kept
                .push_back(crc32c::crc32c_append(c, bytes(l, l + STEP)));
        }
    }

    /// `C(pos)`, for a position [`cover`](Self::cover)ed.
    pub fn at<'a>(&self, pos: u64, bytes: &dyn Fn(u64, u64) -> &'a [u8]) -> u32 {
        let j = (pos - self.base) / STEP;
        let p = self.base + j * STEP;
        let c = self.kept[(j - self.first) as usize];
        self.work.set(self.work.get() + (pos - p));
        crc32c::crc32c_append(c, bytes(p, pos))
    }

    /// CRC32C of the bytes from `s` to `e`, both [`cover`](Self::cover)ed.
    pub fn span<'a>(&self, s: u64, e: u64, bytes: &dyn Fn(u64, u64) -> &'a [u8]) -> u32 {
        self.at(e, bytes) ^ shift(self.at(s, bytes), (e - s) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn combine_matches_the_crc_of_the_concatenation() {
        let d = data(5000);
        for (a, b) in [(0, 0), (0, 1), (1, 0), (3, 17), (100, 4000), (4999, 1)] {
            let (x, y) = d.split_at(a);
            let y = &y[..b];
            let mut whole = x.to_vec();
            whole.extend_from_slice(y);
            assert_eq!(
                combine(crc32c::crc32c(x), crc32c::crc32c(y), b as u32),
                crc32c::crc32c(&whole),
                "{a} {b}"
            );
        }
        // Long spans: every nibble of the length used.
        let big = data(0x0012_3457);
        let (x, y) = big.split_at(11);
        assert_eq!(
            combine(crc32c::crc32c(x), crc32c::crc32c(y), y.len() as u32),
            crc32c::crc32c(&big)
        );
    }

    #[test]
    fn spans_from_prefixes_match_direct_crcs_as_the_window_moves() {
        let d = data(40_000);
        let bytes = |a: u64, b: u64| &d[a as usize..b as usize];
        let mut p = Prefixes::default();
        let mut s = 5u64;
        let mut furthest = 0;
        while s + 3000 < d.len() as u64 {
            let e = s + 1 + (s * 7919) % 2900;
            p.cover(s, e, &bytes);
            furthest = furthest.max(e);
            assert_eq!(
                p.span(s, e, &bytes),
                crc32c::crc32c(&d[s as usize..e as usize]),
                "{s}..{e}"
            );
            // Only what lies ahead is kept.
            assert!(p.kept.len() as u64 <= (furthest - s) / STEP + 3);
            // Jumps of every size, forward only.
            s += 1 + (s * 31) % 700;
        }
    }
}
