//! The agent's chaining pipeline in pieces: events staged (encoded, framed and
//! hashed) apart from the chain writer, appended by the head step alone, with
//! the spool written and synced by its write-behind thread.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures

mod common;
use common::*;
use logseal::agent::stage;
use logseal::chain::record::{Body, Payload, Source};
use logseal::chain::verify::Problem;
use logseal::ingest::Batch;
use logseal::storage::segment_log::{LogOptions, SegmentLog};
use logseal::storage::writebehind::WriteBehind;
use logseal::storage::writer::ChainWriter;
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, write_behind: bool) -> ChainWriter<SegmentLog> {
    let spool_dir = dir.join("spool");
    let opts = LogOptions {
        segment_bytes: 64 << 10,
        write_behind,
    };
    ChainWriter::open_log(&dir.join("state"), Some("pipe-host"), "pipeline", |each| {
        SegmentLog::open(&spool_dir, opts, each)
    })
    .unwrap()
    .0
}

fn batch(from: u32, n: u32) -> Batch {
    let mut b = Batch::with_capacity(
        Source::SyslogTcp,
        Arc::from("10.0.0.7:5140"),
        1_795_824_000_000_000_000,
        0,
    );
    for i in from..from + n {
        let m = format!("<13>1 2026-11-28T12:00:00Z web-01 app - - - numbered {i:08}");
        b.push(m.as_bytes(), None);
    }
    b
}

/// What the stamper's fallback does for an event that was not staged.
fn append_plain(w: &mut ChainWriter<SegmentLog>, b: &Batch, i: usize) {
    let item = b.items[i];
    w.append_at(
        b.time_ns,
        Body::Event {
            source: b.source,
            flags: 0,
            peer: &b.peer,
            original_len: item.original_len,
            payload: Payload::Raw(b.bytes(&item)),
        },
    )
    .unwrap();
}

fn report(dir: &Path) -> logseal::chain::verify::Report {
    let (files, _) = logseal::responder::verify_files::expand(&[dir.to_path_buf()]).unwrap();
    logseal::responder::verify_files::verify(&files, Default::default(), |_, _| {}).unwrap()
}

/// The payloads of the Event records in a spool, in chain order.
fn events(dir: &Path) -> Vec<String> {
    let (files, _) = logseal::responder::verify_files::expand(&[dir.to_path_buf()]).unwrap();
    let mut out = Vec::new();
    for f in files {
        let mut r = logseal::storage::segment::SegmentReader::open(&f).unwrap();
        while let Some(item) = r.next_item().unwrap() {
            if let logseal::storage::segment::Item::Frame { payload, .. } = item {
                let rec = logseal::chain::Record::decode(payload).unwrap();
                if let Body::Event {
                    payload: Payload::Raw(m),
                    ..
                } = rec.body
                {
                    out.push(String::from_utf8_lossy(m).into_owned());
                }
            }
        }
    }
    out
}

#[test]
fn staged_events_make_the_same_chain_as_events_encoded_in_place() {
    // Same events, same times, one spool chained by staging (with seals that
    // shift the seqs in between), one by the writer alone: both verify intact
    // and hold the same events in the same order.
    let staged_dir = TempDir::new("pipe-staged");
    let plain_dir = TempDir::new("pipe-plain");
    let mut ws = open(staged_dir.path(), true);
    let mut wp = open(plain_dir.path(), false);
    let chain = ws.chain_id();
    // The stager's count, without knowing about seals.
    let mut count = ws.next_seq();
    let mut shift = 0u64;
    let (mut staged_ok, mut fell_back) = (0u32, 0u32);
    for k in 0..40u32 {
        let b = batch(k * 100, 100);
        let st = stage::stage(&b, chain, count, count + shift).unwrap();
        count += b.items.len() as u64;
        let mut staged = Some(st);
        for i in 0..b.items.len() {
            if let Some(st) = &staged {
                if ws
                    .append_staged(st.first_seq + i as u64, st.frame(i), &st.leaves[i])
                    .unwrap()
                {
                    staged_ok += 1;
                    append_plain(&mut wp, &b, i);
                    continue;
                }
                // As the stamper does: correct the shift, encode the rest here.
                shift = ws.next_seq() - (st.base + i as u64);
                staged = None;
            }
            append_plain(&mut ws, &b, i);
            fell_back += 1;
            append_plain(&mut wp, &b, i);
        }
        if k % 7 == 3 {
            // A seal between two staged batches: the next one is a seq behind.
            ws.seal().unwrap();
            wp.seal().unwrap();
        }
        if k % 5 == 0 {
            ws.sync().unwrap();
        }
    }
    ws.shutdown("test").unwrap();
    wp.shutdown("test").unwrap();
    // Six seals, each followed by one batch staged a seq behind (re-encoded);
    // the corrected shift makes every other batch match.
    assert_eq!((staged_ok, fell_back), (3400, 600));
    for d in [staged_dir.path(), plain_dir.path()] {
        let r = report(d);
        assert!(r.intact(), "{}: {:?}", d.display(), r.chains[0].problems);
        assert_eq!(r.chains[0].events, 4000);
    }
    let got = events(staged_dir.path());
    assert_eq!(got, events(plain_dir.path()));
    let want: Vec<String> = (0..4000)
        .map(|i| format!("<13>1 2026-11-28T12:00:00Z web-01 app - - - numbered {i:08}"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_staged_frame_with_the_wrong_seq_is_refused_and_nothing_is_appended() {
    let d = TempDir::new("pipe-wrong-seq");
    let mut w = open(d.path(), true);
    let b = batch(0, 3);
    let next = w.next_seq();
    let st = stage::stage(&b, w.chain_id(), next + 1, next + 1).unwrap();
    let pos = w.log().position();
    assert!(!w
        .append_staged(st.first_seq, st.frame(0), &st.leaves[0])
        .unwrap());
    assert_eq!(w.log().position(), pos);
    assert_eq!(w.next_seq(), next);
    w.shutdown("test").unwrap();
    assert!(report(d.path()).intact());
}

#[test]
fn write_behind_survives_a_crash_after_sync_and_loses_only_unsynced_records() {
    // Records synced through the write-behind thread are on disk for a reader
    // that opens the files afresh; the spool reopens and resumes the chain.
    let d = TempDir::new("pipe-wb");
    let mut w = open(d.path(), true);
    for k in 0..20 {
        let b = batch(k * 50, 50);
        for i in 0..b.items.len() {
            append_plain(&mut w, &b, i);
        }
    }
    w.seal().unwrap();
    let synced = w.log().synced().unwrap();
    assert_eq!(
        synced,
        w.log().position(),
        "a seal waits for the write-behind sync"
    );
    drop(w); // no shutdown record: like a crash after the seal
    let r = report(d.path());
    assert_eq!(r.chains[0].events, 1000);
    assert!(
        r.chains[0]
            .problems
            .iter()
            .all(|p| matches!(p.problem, Problem::UnsealedTail { .. })),
        "{:?}",
        r.chains[0].problems
    );
    let mut w = open(d.path(), true);
    append_plain(&mut w, &batch(1000, 1), 0);
    w.shutdown("test").unwrap();
    let r = report(d.path());
    assert!(r.intact(), "{:?}", r.chains[0].problems);
    assert_eq!(r.chains[0].events, 1001);
}

#[test]
fn a_failed_write_behind_write_is_reported_and_kept_for_a_retry() {
    // /dev/full refuses every write with ENOSPC: the error comes back to the
    // owner, and a second sync tries the same queued buffer again (it fails
    // again rather than being dropped and reported as synced).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let wb = WriteBehind::start(Arc::new(f), 0).unwrap();
    let spare = wb.submit(0, vec![0x42; 4096]).unwrap();
    assert!(spare.is_empty());
    let e = wb.sync(4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
    let e = wb.sync(4096).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "retried, still ENOSPC: {e}");
    assert_eq!(wb.synced().unwrap_or(0), 0, "nothing claimed durable");
    let e = wb.wait_written().unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(28),
        "still queued, still failing: {e}"
    );
}
