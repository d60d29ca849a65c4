//! CRC32C of spans from prefixes (what makes resynchronisation linear)
//! against the CRC of the bytes themselves, for spans chosen by the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::storage::crcspan::{self, Prefixes};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, bytes) = data.split_at(data.len().min(64));
    let n = bytes.len() as u64;
    if n == 0 {
        return;
    }
    let get = |a: u64, b: u64| &bytes[a as usize..b as usize];
    let mut p = Prefixes::default();
    let mut s = 0u64;
    for pair in ctl.chunks(2) {
        // Windows that only move forward, as in the reader.
        s += pair[0] as u64;
        if s >= n {
            break;
        }
        let len = 1 + (*pair.get(1).unwrap_or(&0) as u64 * 131) % (n - s).max(1);
        let e = (s + len).min(n);
        if e <= s {
            continue;
        }
        p.cover(s, e, &get);
        assert_eq!(
            p.span(s, e, &get),
            crc32c::crc32c(&bytes[s as usize..e as usize]),
            "{s}..{e}"
        );
    }
    let (a, b) = bytes.split_at(bytes.len() / 2);
    assert_eq!(
        crcspan::combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len() as u32),
        crc32c::crc32c(bytes)
    );
});
