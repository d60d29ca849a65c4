//! Journal cursors: `s=SEQNUM_ID;i=SEQNUM;b=BOOT_ID;m=MONOTONIC;t=REALTIME;x=XOR`
//! (all hex), as sd_journal_get_cursor() writes them. The agent chains the
//! cursor text and reads the seqnum, seqnum id, boot id and times from it:
//! libsystemd before 254 has no call that returns the seqnum.

/// The parts of a cursor the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Seqnum id, 32 lowercase hex digits.
    pub seqnum_id: String,
    /// Sequence number within the seqnum id.
    pub seqnum: u64,
    /// Boot id, 32 lowercase hex digits.
    pub boot_id: String,
    /// Monotonic time within the boot, µs.
    pub monotonic_usec: u64,
    /// Wall-clock time, µs since the Unix epoch.
    pub realtime_usec: u64,
}

fn id128(v: &str) -> Option<String> {
    (v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

impl Cursor {
    /// Parses a cursor; `None` if a part the agent needs is missing or malformed.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (mut s, mut i, mut b, mut m, mut t) = (None, None, None, None, None);
        for part in text.split(';') {
            let (k, v) = part.split_once('=')?;
            match k {
                "s" => s = Some(id128(v)?),
                "i" => i = Some(u64::from_str_radix(v, 16).ok()?),
                "b" => b = Some(id128(v)?),
                "m" => m = Some(u64::from_str_radix(v, 16).ok()?),
                "t" => t = Some(u64::from_str_radix(v, 16).ok()?),
                _ => {}
            }
        }
        Some(Cursor {
            seqnum_id: s?,
            seqnum: i?,
            boot_id: b?,
            monotonic_usec: m?,
            realtime_usec: t?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_journalctl_shows() {
        // From `journalctl --show-cursor` on systemd 252.
        let c = Cursor::parse("s=440e97f337d84de4aa2d889ae7bfcb75;i=5;b=e3cdf31fa74f4f93ad727b6374d6bacd;m=478fb7e30;t=66158a11e58fe;x=3d6af023a485ca94").expect("parses");
        assert_eq!(c.seqnum_id, "440e97f337d84de4aa2d889ae7bfcb75");
        assert_eq!(c.seqnum, 5);
        assert_eq!(c.boot_id, "e3cdf31fa74f4f93ad727b6374d6bacd");
        assert_eq!(c.monotonic_usec, 0x478fb7e30);
        assert_eq!(c.realtime_usec, 0x66158a11e58fe);
    }

    #[test]
    fn refuses_broken_cursors() {
        for bad in [
            "",
            "s=1;i=5;b=e3cdf31fa74f4f93ad727b6374d6bacd;m=1;t=1",
            "s=440e97f337d84de4aa2d889ae7bfcb75;i=zz;b=e3cdf31fa74f4f93ad727b6374d6bacd;m=1;t=1",
            "s=440e97f337d84de4aa2d889ae7bfcb75;b=e3cdf31fa74f4f93ad727b6374d6bacd;m=1;t=1",
            "garbage",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
