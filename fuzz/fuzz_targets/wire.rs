//! What agents send a collector: protocol frames, messages and batches, and
//! the collector's per-chain tip fed the records of a segment.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::chain::hash;
use logseal::chain::tip::Tip;
use logseal::chain::frame;
use logseal::storage::segment::{Item, SegmentReader};
use logseal::transport::proto::{self, FrameReader, Msg};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Some((&ty, body)) = rest.split_first() {
                let _ = Msg::decode(ty, body);
            }
        }
        1 => {
            if let Ok(b) = proto::decode_batch(rest) {
                for rec in b.records {
                    let _ = hash::leaf(rec);
                }
            }
        }
        2 => {
            let mut fr = FrameReader::default();
            let mut r = rest;
            while let Ok((ty, body)) = fr.next(&mut r, 1 << 20) {
                let _ = Msg::decode(ty, body);
            }
        }
        _ => {
            // A segment's records applied to a tip, as a store does.
            let mut file = frame::header().to_vec();
            file.extend_from_slice(rest);
            let mut rd = SegmentReader::new(&file[..]).expect("a valid header");
            let mut tip: Option<Tip> = None;
            while let Ok(Some(item)) = rd.next_item() {
                let Item::Frame { payload, .. } = item else {
                    continue;
                };
                let leaf = hash::leaf(payload);
                match &mut tip {
                    None => tip = Tip::from_genesis(payload, &leaf).ok(),
                    Some(t) => {
                        let _ = t.apply(payload, &leaf);
                    }
                }
            }
        }
    }
});
