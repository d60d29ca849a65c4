//! What an operator's tools read: `logseal status` on any status file (an
//! agent's or a collector's; the file is in a directory the service writes,
//! so a compromised service chooses its bytes) and the metrics endpoint's
//! request heads (anyone who reaches the port chooses them).
//!
//! Checked: an answer for any bytes, never a panic; the text holds no
//! control character but the newline (host names and other strings from the
//! file are escaped); the exit code is a Nagios level; the JSON parses. A
//! head's method and path are parts of it; its end is within the bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        let now = 1_800_000_000_000_000_000i64 + i64::from(sel) * 1_000_000_000;
        let (code, text, json) = logseal::monitor::status::judge_bytes(sel & 2 == 0, rest, now);
        assert!(code <= 3, "exit code {code}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a control character in the text: {text:?}"
        );
        assert!(text.starts_with("LOGSEAL "), "{text:?}");
        serde_json::from_str::<serde_json::Value>(&json).expect("the JSON answer parses");
    } else {
        if let Some(end) = logseal::monitor::metrics::head_end(rest) {
            assert!(end + 4 <= logseal::monitor::metrics::HEAD_MAX);
            assert_eq!(&rest[end..end + 4], b"\r\n\r\n");
        }
        let head = String::from_utf8_lossy(rest);
        let r = logseal::monitor::metrics::Request::parse(&head);
        assert!(head.contains(r.method) && head.contains(r.path));
        assert!(!r.path.contains('?') && !r.method.contains(' '));
    }
});
