//! What senders send: the RFC 6587 framer (octet counting and LF framing),
//! fed in pieces, and the syslog parser (RFC 5424 / RFC 3164) on each message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::ingest::framing::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max = 1 + first as usize * 4;
    let mut f = Framer::new(max);
    let mut messages = Vec::new();
    let mut emit = |m: &[u8], original: Option<u64>| {
        assert!(m.len() <= max, "message of {} bytes, max {max}", m.len());
        if let Some(n) = original {
            assert!(n >= m.len() as u64);
        }
        messages.push(m.to_vec());
    };
    // In pieces of varying size, as reads return them.
    let mut at = 0;
    let mut step = 1;
    while at < rest.len() {
        let end = (at + step).min(rest.len());
        f.push(&rest[at..end], &mut emit);
        at = end;
        step = step * 3 % 17 + 1;
    }
    f.finish(&mut emit);
    for m in &messages {
        let _ = logseal::syslog::parse(m, 1_700_000_000_000_000_000);
    }
    let _ = logseal::syslog::parse(data, 0);
});
