//! Hostile bytes: the decoder, the segment reader and the verifier never panic,
//! never loop, and always say what is wrong. Deterministic pseudo-random
//! mutations (xorshift, fixed seeds) of a real chain and of pure noise.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use logseal::chain::frame;
use logseal::chain::Record;
use logseal::storage::segment::{Item, SegmentReader};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn record_decoder_rejects_every_truncation_and_never_panics() {
    let v = logseal::chain::vectors::generate();
    let text = v.text;
    for line in text.lines().filter(|l| l.starts_with("record.")) {
        let hex = line.split_once(": ").unwrap().1;
        let rec = logseal::chain::hex::decode(hex).unwrap();
        assert!(Record::decode(&rec).is_ok());
        for cut in 0..rec.len() {
            let e = Record::decode(&rec[..cut]).unwrap_err();
            assert!(!e.reason.is_empty());
        }
        let mut longer = rec.clone();
        longer.push(0);
        assert_eq!(
            Record::decode(&longer).unwrap_err().reason,
            "trailing bytes after record"
        );
    }
}

#[test]
fn record_decoder_survives_random_mutations() {
    let v = logseal::chain::vectors::generate();
    let recs: Vec<Vec<u8>> = v
        .text
        .lines()
        .filter(|l| l.starts_with("record."))
        .map(|l| logseal::chain::hex::decode(l.split_once(": ").unwrap().1).unwrap())
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let mut r = recs[rng.below(recs.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(r.len());
            r[i] = rng.next() as u8;
        }
        // Must return, Ok or Err; a re-encode of an Ok must give the same bytes
        // (one value, one encoding).
        if let Ok(rec) = Record::decode(&r) {
            assert_eq!(rec.encode(), r, "non-canonical encoding accepted");
        }
    }
}

#[test]
fn segment_reader_and_verifier_survive_noise_and_mutations() {
    let dir = TempDir::new("hostile");
    let log = build_chain(dir.path(), "host-h", 40, 7);
    let good = std::fs::read(&log).unwrap();
    let mut rng = Rng(42);
    for round in 0..400 {
        let mut b = good.clone();
        match round % 4 {
            0 => {
                // random byte flips anywhere after the header
                for _ in 0..1 + rng.below(8) {
                    let i = 16 + rng.below(b.len() - 16);
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // a random slice removed
                let a = 16 + rng.below(b.len() - 16);
                let n = rng.below((b.len() - a).min(300));
                b.drain(a..a + n);
            }
            2 => {
                // random noise inserted
                let a = 16 + rng.below(b.len() - 16);
                let noise: Vec<u8> = (0..rng.below(500)).map(|_| rng.next() as u8).collect();
                b.splice(a..a, noise);
            }
            _ => {
                // pure noise after a valid header, with huge length fields
                b.truncate(16);
                for _ in 0..rng.below(4000) {
                    b.push(rng.next() as u8);
                }
                b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
            }
        }
        let r = verify_bytes(dir.path(), "m.seg", &b);
        if b != good {
            assert!(!r.intact(), "round {round}: mutation not detected");
        }
        // The reader accounts for every byte: frames + damage = file length.
        let mut rd = SegmentReader::new(&b[..]).unwrap();
        let mut covered = 16u64;
        while let Some(item) = rd.next_item().unwrap() {
            covered += match item {
                Item::Frame { payload, .. } => payload.len() as u64 + 9,
                Item::Corrupt { skipped, .. } => skipped,
                Item::TornTail { bytes, .. } => bytes,
            };
        }
        assert_eq!(
            covered,
            b.len() as u64,
            "round {round}: bytes unaccounted for"
        );
    }
}

#[test]
fn a_huge_declared_frame_length_is_not_allocated() {
    let mut b = frame::header().to_vec();
    b.extend_from_slice(&(logseal::chain::frame::MAX_FRAME as u32).to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(b"short");
    let mut rd = SegmentReader::new(&b[..]).unwrap();
    match rd.next_item().unwrap() {
        Some(Item::TornTail {
            offset: 16,
            bytes: 13,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    b[16..20].copy_from_slice(&(logseal::chain::frame::MAX_FRAME as u32 + 1).to_be_bytes());
    let mut rd = SegmentReader::new(&b[..]).unwrap();
    assert!(matches!(
        rd.next_item().unwrap(),
        Some(Item::TornTail {
            reason: "frame length out of range",
            ..
        })
    ));
}

#[test]
fn bad_headers_are_named() {
    assert!(frame::check_header(b"LSEAL")
        .unwrap_err()
        .to_string()
        .contains("shorter than a segment header"));
    let mut h = frame::header();
    h[0] = b'X';
    assert!(frame::check_header(&h)
        .unwrap_err()
        .to_string()
        .contains("bad magic"));
    let mut h = frame::header();
    h[9] = 3; // another version, checksum not recomputed
    assert!(frame::check_header(&h)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
}

#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perm");
    build_chain(dir.path(), "host-p", 3, 2);
    let st = dir.path().join("host-p.state");
    assert_eq!(
        std::fs::metadata(&st).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let f = st.join("signer.state");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Runs `f` on a thread; fails loudly if it has not returned within 30 s (a
/// read that waits on a FIFO never would).
fn within_30s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s (waiting on a FIFO?)"))
}

/// Puts in place of `path`: a FIFO, a symbolic link to /dev/zero, or a sparse
/// file of `huge` bytes.
fn replace_with(path: &std::path::Path, what: &str, huge: u64) {
    let _ = std::fs::remove_file(path);
    match what {
        "fifo" => assert!(std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success()),
        "dev-zero" => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        _ => std::fs::File::create(path).unwrap().set_len(huge).unwrap(),
    }
}

#[test]
fn state_files_that_are_fifos_devices_or_huge_are_refused_naming_the_file() {
    use logseal::storage::segment_log::{LogOptions, SegmentLog};
    let d = TempDir::new("state-kinds");
    for what in ["fifo", "dev-zero", "huge"] {
        // signer.state, read by `stamp` (and the agent) at every start.
        let dir = d.path().join(format!("stamp-{what}"));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("state");
        let out = dir.join("log.seg");
        let stamp = move || {
            let mut c = std::process::Command::new(bin())
                .arg("stamp")
                .arg("--state")
                .arg(&state)
                .arg("--out")
                .arg(&out)
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(b"one line\n");
            c.wait_with_output().unwrap()
        };
        let st = stamp.clone();
        assert!(within_30s("first stamp", st).status.success());
        let signer = dir.join("state").join("signer.state");
        replace_with(&signer, what, 3 << 30);
        let o = within_30s(&format!("stamp with signer.state a {what}"), stamp);
        // Not read (never waited on, never held in memory), and said: a new
        // chain starts whose Genesis records why the state was lost, as for
        // any damaged signer state.
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let expect = if what == "huge" {
            "more than the"
        } else {
            "not a regular file"
        };
        assert_eq!(o.status.code(), Some(0), "{what}: {err}");
        assert!(
            err.contains("state-lost") && err.contains("signer.state") && err.contains(expect),
            "{what}: {err}"
        );
        assert!(std::fs::metadata(&signer).unwrap().is_file());

        // The spool's `acked` file.
        let sdir = d.path().join(format!("spool-{what}"));
        drop(SegmentLog::open(&sdir, LogOptions::default(), |_, _, _| {}).unwrap());
        replace_with(&sdir.join("acked"), what, 3 << 30);
        let s2 = sdir.clone();
        let e = within_30s(&format!("spool with acked a {what}"), move || {
            SegmentLog::open(&s2, LogOptions::default(), |_, _, _| {}).map(|_| ())
        })
        .expect_err("a bad acked file must be refused")
        .to_string();
        assert!(e.contains("acked") && e.contains(expect), "{what}: {e}");

        // The journald input's resume point.
        let jdir = d.path().join(format!("cursor-{what}"));
        std::fs::create_dir_all(&jdir).unwrap();
        replace_with(&jdir.join("journal-cursor"), what, 3 << 30);
        let j2 = jdir.clone();
        let e = within_30s(&format!("cursor file a {what}"), move || {
            logseal::ingest::journal::resume::read_cursor_file(&j2)
        })
        .expect_err("a bad cursor file must be refused")
        .to_string();
        assert!(
            e.contains("journal-cursor") && e.contains(expect),
            "{what}: {e}"
        );

        // The agent's loss counts kept across a stop on a full disk: written
        // in place, so never opened through a link or as a FIFO.
        let udir = d.path().join(format!("unwritten-{what}"));
        std::fs::create_dir_all(&udir).unwrap();
        replace_with(&udir.join("losses.pending"), what, 3 << 30);
        let u2 = udir.clone();
        let e = within_30s(&format!("losses.pending a {what}"), move || {
            logseal::agent::unwritten::Unwritten::open(&u2).map(|_| ())
        })
        .expect_err("a bad losses.pending must be refused")
        .to_string();
        let expect = match what {
            "fifo" => "not a regular file",
            "dev-zero" => "symbolic link",
            _ => "found 3221225472 bytes",
        };
        assert!(
            e.contains("losses.pending") && e.contains(expect),
            "{what}: {e}"
        );
    }
    // Not text: the file is named, not just "stream did not contain valid UTF-8".
    let jdir = d.path().join("cursor-binary");
    std::fs::create_dir_all(&jdir).unwrap();
    std::fs::write(jdir.join("journal-cursor"), b"v1 \xff\xfe").unwrap();
    let e = logseal::ingest::journal::resume::read_cursor_file(&jdir)
        .expect_err("a binary cursor file must be refused")
        .to_string();
    assert!(e.contains("journal-cursor") && e.contains("UTF-8"), "{e}");
}

/// A file built to make resynchronisation quadratic: after a damaged frame,
/// a candidate frame every 10 bytes, each announcing almost 16 MiB (and a
/// wrong CRC), then a valid frame. Reading it must cost work linear in its
/// size, and still find the valid frame.
#[test]
fn resynchronisation_is_linear_in_the_file_size() {
    let d = TempDir::new("resync");
    let mut good = Vec::new();
    logseal::chain::frame::encode_frame(
        logseal::chain::frame::FRAME_RECORD,
        b"\x01 not a record, but a frame whose CRC checks",
        &mut good,
    );
    // 20 MiB: the candidates of the first 4 MiB end inside the file.
    for mib in [18usize, 20] {
        let mut f = logseal::chain::frame::header().to_vec();
        f.extend_from_slice(&good);
        f.extend_from_slice(b"\xff\xff\xff\xff damage");
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        while f.len() < mib << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // len ≈ 16 MiB, a random CRC, type 0x01, format version 1.
            f.extend_from_slice(&(0x00FF_FFF0u32 - (x as u32 & 0xFF)).to_be_bytes());
            f.extend_from_slice(&(x >> 32).to_be_bytes()[4..]);
            f.extend_from_slice(&[1, 1]);
        }
        f.extend_from_slice(&good);
        let path = d.path().join(format!("resync-{mib}.seg"));
        std::fs::write(&path, &f).unwrap();

        let mut r = SegmentReader::open(&path).unwrap();
        let mut kinds = Vec::new();
        while let Some(item) = r.next_item().unwrap() {
            kinds.push(match item {
                Item::Frame { .. } => "frame",
                Item::Corrupt { .. } => "corrupt",
                Item::TornTail { .. } => "torn",
            });
        }
        assert_eq!(kinds, ["frame", "corrupt", "frame"], "{mib} MiB");
        let ratio = r.work() as f64 / f.len() as f64;
        eprintln!("{mib} MiB: work {} bytes, {ratio:.2} × the file", r.work());
        // Before: about 16 MiB of CRC per candidate, 10⁵ × the file.
        assert!(ratio < 8.0, "{mib} MiB: {ratio:.1} × the file size");
    }

    // Damage after every valid frame: each valid frame is followed by a
    // header announcing 16 MiB with a wrong CRC (found by review: the check
    // of the frame after a valid one paid its whole length).
    let mut f = logseal::chain::frame::header().to_vec();
    let mut tiny = Vec::new();
    logseal::chain::frame::encode_frame(logseal::chain::frame::FRAME_RECORD, b"\x01", &mut tiny);
    for _ in 0..20_000 {
        f.extend_from_slice(&tiny);
        f.extend_from_slice(&[0, 0xFF, 0xFF, 0xF0, 0, 0, 0, 0]);
    }
    f.resize(f.len() + (16 << 20) + 16, 0);
    let path = d.path().join("resync-after-frames.seg");
    std::fs::write(&path, &f).unwrap();
    let mut r = SegmentReader::open(&path).unwrap();
    let mut frames = 0;
    while let Some(item) = r.next_item().unwrap() {
        frames += matches!(item, Item::Frame { .. }) as u32;
    }
    assert_eq!(frames, 20_000);
    let ratio = r.work() as f64 / f.len() as f64;
    assert!(ratio < 8.0, "after frames: {ratio:.1} × the file size");
}

/// docs/FORMAT.md §3 read the plain way: at each offset, the frame's bytes
/// checksummed whole. (Quadratic while resynchronising; the reader must find
/// exactly the same items.)
fn reference_items(b: &[u8]) -> Vec<(char, u64, u64)> {
    let valid = |o: usize, strict: bool| -> Option<usize> {
        let h = b.get(o..o + 8)?;
        let len = u32::from_be_bytes(h[..4].try_into().unwrap()) as usize;
        if len == 0 || len > logseal::chain::frame::MAX_FRAME {
            return None;
        }
        let body = b.get(o + 8..o + 8 + len)?;
        if strict {
            let ok = match body[0] {
                logseal::chain::frame::FRAME_RECORD => len < 2 || body[1] == 1,
                logseal::chain::frame::FRAME_REDACTED => {
                    len == 1 + logseal::chain::frame::REDACTED_LEN
                }
                _ => false,
            };
            if !ok {
                return None;
            }
        }
        (logseal::chain::frame::frame_crc(body) == u32::from_be_bytes(h[4..].try_into().unwrap()))
            .then_some(len)
    };
    let mut out = Vec::new();
    let mut p = 16;
    while p < b.len() {
        if let Some(len) = valid(p, false) {
            out.push(('F', p as u64, len as u64));
            p += 8 + len;
            continue;
        }
        let mut q = p + 1;
        while q < b.len() && valid(q, true).is_none() {
            q += 1;
        }
        out.push((
            if q < b.len() { 'C' } else { 'T' },
            p as u64,
            (q - p) as u64,
        ));
        p = q;
    }
    out
}

#[test]
fn resynchronisation_finds_exactly_the_frames_the_format_defines() {
    let mut rng = Rng(7);
    for round in 0..300 {
        let mut b = logseal::chain::frame::header().to_vec();
        for _ in 0..1 + rng.below(12) {
            match rng.below(5) {
                // A valid frame, short or long (past the CRC prefix step).
                0 | 1 => {
                    let choices = [1 + rng.below(60), 60 + rng.below(3000), 70_000];
                    let n = choices[rng.below(3)];
                    let mut payload: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    payload[0] = 1;
                    logseal::chain::frame::encode_frame(1, &payload, &mut b);
                }
                // Noise.
                2 => b.extend((0..rng.below(400)).map(|_| rng.next() as u8)),
                // A candidate header with a wrong CRC, announcing more or less
                // than what follows.
                3 => {
                    let most = if rng.below(2) == 0 { 500 } else { 100_000 };
                    let len = 1 + rng.below(most);
                    b.extend_from_slice(&(len as u32).to_be_bytes());
                    b.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                    b.extend_from_slice(&[1, 1]);
                }
                // A valid frame cut short.
                _ => {
                    let mut f = Vec::new();
                    let n = 2 + rng.below(2000);
                    let payload: Vec<u8> = (0..n).map(|_| 1 + rng.next() as u8 % 3).collect();
                    logseal::chain::frame::encode_frame(1, &payload, &mut f);
                    f.truncate(1 + rng.below(f.len() - 1));
                    b.extend_from_slice(&f);
                }
            }
        }
        let mut r = SegmentReader::new(&b[..]).unwrap();
        let mut got = Vec::new();
        while let Some(item) = r.next_item().unwrap() {
            got.push(match item {
                Item::Frame {
                    offset, payload, ..
                } => ('F', offset, payload.len() as u64 + 1),
                Item::Corrupt {
                    offset, skipped, ..
                } => ('C', offset, skipped),
                Item::TornTail { offset, bytes, .. } => ('T', offset, bytes),
            });
        }
        assert_eq!(got, reference_items(&b), "round {round}");
    }
}

/// A segment of `n` one-record chains: a Genesis each, under its own id.
fn many_geneses(n: u32) -> Vec<u8> {
    use logseal::chain::record::{Body, ChainId, Origin};
    let pk0 = logseal::chain::SecretKey::generate().unwrap().public();
    let mut out = frame::header().to_vec();
    for i in 0..n {
        let mut id = [7u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let rec = Record {
            chain_id: ChainId(id),
            seq: 0,
            time_ns: 1_700_000_000_000_000_000,
            body: Body::Genesis {
                host: "many-host",
                agent: "hostile-test",
                pk0,
                origin: Origin::Fresh,
                predecessor: None,
                note: "",
            },
        }
        .encode();
        frame::encode_frame(logseal::chain::frame::FRAME_RECORD, &rec, &mut out);
    }
    out
}

/// `logseal verify ARGS` with its data segment limited to `mib` MiB (an
/// allocation past it fails and aborts the process).
fn verify_within(mib: u64, args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new("prlimit")
        .arg(format!("--data={}", mib << 20))
        .arg(bin())
        .arg("verify")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn verify_memory_is_bounded_whatever_the_input_holds() {
    let d = TempDir::new("verify-mem");
    // 100 000 chains in 11 MB: 552 MB of state before, and as much again for
    // the JSON report; now about 2 KiB each, counted against the limit.
    let f = d.path().join("geneses.seg");
    std::fs::write(&f, many_geneses(100_000)).unwrap();
    for json in [false, true] {
        let mut args = vec![f.as_os_str()];
        if json {
            args.push("--json".as_ref());
        }
        let o = verify_within(512, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "json {json}: {err}");
        if json {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["chains"].as_array().unwrap().len(), 100_000);
        }
    }
    // With a limit it cannot meet: stopped, said, no verdict (exit 2), and
    // well within the memory given.
    let o = verify_within(
        160,
        &["--max-memory".as_ref(), "64MiB".as_ref(), f.as_os_str()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("verification stopped")
            && err.contains("--max-memory")
            && err.contains("geneses.seg"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("RESULT"));

    // A few Geneses whose host names take the room (a record allows 16 MiB):
    // counted too (found by review: they were not).
    let mut big = frame::header().to_vec();
    let host = "h".repeat(14 << 20);
    for i in 0..5u8 {
        let rec = Record {
            chain_id: logseal::chain::record::ChainId([i; 16]),
            seq: 0,
            time_ns: 1_700_000_000_000_000_000,
            body: logseal::chain::record::Body::Genesis {
                host: &host,
                agent: "hostile-test",
                pk0: [9; 32],
                origin: logseal::chain::record::Origin::Fresh,
                predecessor: None,
                note: "",
            },
        }
        .encode();
        frame::encode_frame(logseal::chain::frame::FRAME_RECORD, &rec, &mut big);
    }
    let f = d.path().join("hosts.seg");
    std::fs::write(&f, &big).unwrap();
    let o = verify_within(
        512,
        &["--max-memory".as_ref(), "64MiB".as_ref(), f.as_os_str()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("verification stopped"), "{err}");
}
