//! A segment file's bytes after its header: the reader (with its
//! resynchronisation), the record decoder, the verifier and both reports.
//! Checks beyond "no panic": every byte is accounted for, the reader's work
//! stays linear, and no control byte from the data reaches the text report.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::chain::verify::{Options, Verifier};
use logseal::chain::frame;
use logseal::storage::segment::{Item, SegmentReader};
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let mut file = frame::header().to_vec();
    file.extend_from_slice(data);
    let mut r = SegmentReader::new(&file[..]).expect("a valid header");
    let mut v = Verifier::new(Options::default());
    v.begin_file(0, None);
    let mut covered = frame::HEADER_LEN;
    while let Some(item) = r.next_item().expect("reading from memory") {
        match item {
            Item::Frame {
                offset,
                frame_type,
                payload,
            } => {
                covered += payload.len() as u64 + 9;
                v.frame(offset, frame_type, payload);
            }
            Item::Corrupt {
                offset,
                skipped,
                reason,
            } => {
                covered += skipped;
                v.damage(offset, skipped, reason, false);
            }
            Item::TornTail {
                offset,
                bytes,
                reason,
            } => {
                covered += bytes;
                v.damage(offset, bytes, reason, true);
            }
        }
    }
    assert_eq!(covered, file.len() as u64, "bytes unaccounted for");
    assert!(
        r.work() <= 8 * file.len() as u64 + (1 << 20),
        "reader work {} for {} bytes",
        r.work(),
        file.len()
    );
    let report = v.finish();
    let files = [PathBuf::from("fuzz.seg")];
    let json = serde_json::to_vec(&logseal::responder::report::verify_json(&report, &files, &[])).unwrap();
    serde_json::from_slice::<serde_json::Value>(&json).expect("well-formed JSON");
    let mut text = Vec::new();
    logseal::responder::report::verify_text(&mut text, &report, &files).unwrap();
    assert!(
        !text.iter().any(|&b| b == 0x1b || b == 0x07 || b == b'\r'),
        "a control byte in the text report"
    );
});
