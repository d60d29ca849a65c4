//! The multi-segment spool under the chain writer: rotation, resume, recovery,
//! acknowledgement, and refusal to append after a missing segment.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use logseal::chain::record::Source;
use logseal::chain::verify::{Problem, Unverified, Verdict};
use logseal::storage::segment::OpenError;
use logseal::storage::segment_log::{segment_bases, LogOptions, SegmentLog};
use logseal::storage::writer::{ChainWriter, Opened};
use std::path::Path;

const SMALL: LogOptions = LogOptions {
    segment_bytes: 4096,
    write_behind: false,
};

fn open(
    dir: &Path,
) -> Result<(ChainWriter<SegmentLog>, Opened), logseal::storage::writer::WriterError> {
    let spool_dir = dir.join("spool");
    ChainWriter::open_log(&dir.join("state"), Some("spool-host"), "spool", |each| {
        SegmentLog::open(&spool_dir, SMALL, each)
    })
}

fn write(w: &mut ChainWriter<SegmentLog>, from: u32, to: u32) {
    for i in from..=to {
        w.append_event(
            logseal::util::timefmt::now_ns(),
            Source::SyslogTcp,
            "127.0.0.1:1",
            format!("spooled message {i}").as_bytes(),
        )
        .unwrap();
        if i % 50 == 0 {
            w.seal().unwrap();
        }
    }
}

fn verify_dir(dir: &Path) -> logseal::chain::verify::Report {
    let (files, _) = logseal::responder::verify_files::expand(&[dir.to_path_buf()]).unwrap();
    logseal::responder::verify_files::verify(&files, Default::default(), |_, _| {}).unwrap()
}

#[test]
fn chain_spans_many_segments_and_resumes() {
    let d = TempDir::new("spool");
    let (mut w, opened) = open(d.path()).unwrap();
    assert!(matches!(opened, Opened::New { .. }));
    write(&mut w, 1, 1000);
    w.shutdown("first run").unwrap();
    let n1 = segment_bases(&d.path().join("spool")).unwrap().len();
    assert!(n1 > 5, "rotation happened: {n1} segments");

    let (mut w, opened) = open(d.path()).unwrap();
    assert!(
        matches!(opened, Opened::Resumed { clean: true, .. }),
        "{opened:?}"
    );
    write(&mut w, 1001, 1500);
    w.shutdown("second run").unwrap();

    let r = verify_dir(&d.path().join("spool"));
    assert!(r.intact(), "{:?}", problems(&r));
    assert_eq!(r.chains.len(), 1);
    assert_eq!(r.chains[0].events, 1500);
    // The CLI accepts the agent's whole state directory too.
    let r = verify_dir(d.path());
    assert!(r.intact());
}

#[test]
fn acknowledged_segments_are_deleted_and_the_chain_continues() {
    let d = TempDir::new("spool");
    let (mut w, _) = open(d.path()).unwrap();
    write(&mut w, 1, 600);
    w.shutdown("run").unwrap();
    let spool_dir = d.path().join("spool");
    let before = segment_bases(&spool_dir).unwrap();
    let (mut sp, _) = SegmentLog::open(&spool_dir, SMALL, |_, _, _| {}).unwrap();
    let cut = before[before.len() / 2];
    sp.set_acked(cut).unwrap();
    drop(sp);
    let after = segment_bases(&spool_dir).unwrap();
    assert_eq!(
        after[0], cut,
        "segments wholly below the ack are gone, the rest kept"
    );
    assert_eq!(after.len(), before.len() - before.len() / 2);

    let (mut w, opened) = open(d.path()).unwrap();
    assert!(
        matches!(opened, Opened::Resumed { clean: true, .. }),
        "{opened:?}"
    );
    write(&mut w, 601, 700);
    w.shutdown("run 2").unwrap();
    let r = verify_dir(&spool_dir);
    // The acknowledged start has no Genesis: the chain is unanchored (never
    // intact), says where it starts, and names the records before its first
    // seal as unverified; no problem is found in what is there.
    assert!(!r.intact());
    let c = &r.chains[0];
    assert_eq!(c.verdict, Verdict::Unanchored, "{:?}", problems(&r));
    assert!(problems(&r).is_empty(), "{:?}", problems(&r));
    let from = c.unanchored_from.expect("unanchored start reported");
    assert!(from > 0 && c.first_seq == Some(from));
    let u = &c.unverified[0];
    assert_eq!((u.first_seq, u.why), (from, Unverified::Unanchored));
    assert!(u.last_seq < c.last_seal_seq.unwrap());
    assert!(c.key_from_data.is_some());
    // The `acked` file is the host's own word: with or without it, the same verdict.
    std::fs::remove_file(spool_dir.join("acked")).unwrap();
    let r2 = verify_dir(&spool_dir);
    assert_eq!(r2.chains[0].verdict, Verdict::Unanchored);
    assert_eq!(r2.chains[0].unverified, c.unverified);
}

#[test]
fn a_missing_middle_segment_stops_the_writer() {
    let d = TempDir::new("spool");
    let (mut w, _) = open(d.path()).unwrap();
    write(&mut w, 1, 600);
    w.shutdown("run").unwrap();
    let spool_dir = d.path().join("spool");
    let bases = segment_bases(&spool_dir).unwrap();
    std::fs::remove_file(spool_dir.join(format!("{:020}.seg", bases[2]))).unwrap();
    match open(d.path()) {
        Err(logseal::storage::writer::WriterError::Log(OpenError::Damaged { reason, .. })) => {
            assert!(reason.contains("segment is missing"), "{reason}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("appended after a missing segment"),
    }
    // And the verifier names the gap.
    let r = verify_dir(&spool_dir);
    assert!(
        problems(&r)
            .iter()
            .any(|p| matches!(p, Problem::Gap { .. })),
        "{:?}",
        problems(&r)
    );
}

#[test]
fn torn_tail_of_the_last_segment_is_cut_and_saved() {
    let d = TempDir::new("spool");
    let (mut w, _) = open(d.path()).unwrap();
    write(&mut w, 1, 120);
    w.shutdown("run").unwrap();
    let spool_dir = d.path().join("spool");
    let last = *segment_bases(&spool_dir).unwrap().last().unwrap();
    let path = spool_dir.join(format!("{last:020}.seg"));
    let len = std::fs::metadata(&path).unwrap().len();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"\x00\x00\x00\x20abc")
        .unwrap();
    let (w, opened) = open(d.path()).unwrap();
    assert!(
        matches!(
            opened,
            Opened::Resumed {
                clean: false,
                torn_bytes: 7,
                ..
            }
        ),
        "{opened:?}"
    );
    w.shutdown("after recovery").unwrap();
    assert!(spool_dir
        .join(format!("{last:020}.seg.torn-{len}"))
        .exists());
    let r = verify_dir(&spool_dir);
    assert!(r.intact(), "{:?}", problems(&r));
}
