//! One encoded record: the decoder, and what is derived from a record (leaf,
//! kind, the journal cursor an agent resumes from, journald fields), and a
//! collector checkpoint payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use logseal::chain::hash;
use logseal::chain::Record;

fuzz_target!(|data: &[u8]| {
    let _ = hash::leaf(data);
    if let Ok(mut entries) = logseal::chain::checkpoint::decode(data) {
        // What decodes re-encodes to the same bytes (sorted, each chain once).
        assert_eq!(logseal::chain::checkpoint::encode(&mut entries), data);
    }
    let _ = hash::kind_of(data);
    // The agent reads its resume point from the last journald event it chained.
    let _ = logseal::ingest::journal::resume::journal_cursor_of(data);
    let mut fields = Vec::new();
    logseal::ingest::journal::split_fields(data, &mut fields);
    for (name, value) in &fields {
        assert!(name.len() + value.len() <= data.len());
    }
    if let Ok(r) = Record::decode(data) {
        // What decodes re-encodes to a record that decodes alike.
        let again = r.encode();
        let r2 = Record::decode(&again).expect("a re-encoded record decodes");
        assert_eq!(r2.seq, r.seq);
        assert_eq!(r2.chain_id, r.chain_id);
    }
});
