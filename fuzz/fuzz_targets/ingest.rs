//! What senders send: the RFC 6587 framer (octet counting and LF framing),
//! fed in pieces, and the syslog parser (RFC 5424 / RFC 3164) on each message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::ingest::framing::{Budget, Framer, FREE_MESSAGE};
use std::sync::Arc;

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
    // The same bytes through two framers sharing a small memory budget (fed
    // alternately, as two connections are): the same messages, or shorter
    // ones reported with their original length; the budget given back.
    let budget = Arc::new(Budget::new(FREE_MESSAGE + 3000));
    let mut pair = [
        Framer::with_budget(max, budget.clone()),
        Framer::with_budget(max, budget.clone()),
    ];
    let mut got: [Vec<(Vec<u8>, Option<u64>)>; 2] = [Vec::new(), Vec::new()];
    let mut at = 0;
    let mut turn = 0;
    while at < rest.len() {
        let end = (at + 700).min(rest.len());
        let (f, out) = (&mut pair[turn], &mut got[turn]);
        f.push(&rest[at..end], &mut |m, cut| out.push((m.to_vec(), cut)));
        at = end;
        turn ^= 1;
    }
    for (f, out) in pair.iter_mut().zip(got.iter_mut()) {
        f.finish(&mut |m, cut| out.push((m.to_vec(), cut)));
        f.settle();
        for (m, cut) in out.iter() {
            assert!(m.len() <= max);
            if let Some(n) = cut {
                assert!(*n > m.len() as u64, "a cut message is shorter than it was");
            }
        }
    }
    drop(pair);
    assert_eq!(budget.used(), 0, "every framer gave its room back");
    for m in &messages {
        let _ = logseal::ingest::syslog::parse(m, 1_700_000_000_000_000_000);
    }
    let _ = logseal::ingest::syslog::parse(data, 0);
});
