//! Lenient syslog parsing (RFC 5424 and RFC 3164) for display and queries.
//!
//! Parsed fields are *derived*: the chain keeps the raw bytes, and nothing here
//! runs on the ingest path. Anything that does not fit is left unparsed rather
//! than rejected. RFC 3164 timestamps have no year and no zone: the year is the
//! one (receive year − 1, + 0 or + 1) that puts the timestamp closest to the
//! receive time, which handles the December/January boundary; the zone is taken
//! as UTC. A UTF-8 BOM before the message text (RFC 5424 §6.4) is recognised
//! and not shown; invalid UTF-8 stays bytes.
//!
//! Why not `syslog_loose`: it needs `&str` (so invalid UTF-8 would be lost or
//! rewritten before parsing) and brings chrono with its time-zone database
//! crates; what display and queries need fits in this file, with its own tests.

use crate::util::timefmt::parse_rfc3339;

/// Which syslog format a message looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    Rfc5424,
    /// RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`).
    Rfc3164,
    /// A `<PRI>` followed by something else.
    PriOnly,
    /// Not syslog at all.
    Unknown,
}

/// Derived fields of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Format recognised.
    pub format: Format,
    /// Facility (PRI / 8).
    pub facility: Option<u8>,
    /// Severity (PRI % 8).
    pub severity: Option<u8>,
    /// Timestamp, ns since the Unix epoch (UTC), if one was given and parsed.
    pub time_ns: Option<i64>,
    /// HOSTNAME.
    pub host: Option<&'a str>,
    /// APP-NAME (5424) or TAG (3164).
    pub app: Option<&'a str>,
    /// PROCID (5424) or the `[pid]` of a 3164 tag.
    pub procid: Option<&'a str>,
    /// MSGID (5424).
    pub msgid: Option<&'a str>,
    /// STRUCTURED-DATA (5424), verbatim.
    pub structured_data: Option<&'a str>,
    /// The message text (BOM removed).
    pub msg: &'a [u8],
}

/// Severity names, RFC 5424 table 2.
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn nil(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// Splits off one space-terminated token.
fn token(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
    let t = std::str::from_utf8(&b[..end]).ok()?;
    if t.is_empty() {
        return None;
    }
    Some((t, b.get(end + 1..).unwrap_or(&[])))
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b)
}

/// Parses `raw`, received at `received_ns`.
pub fn parse(raw: &[u8], received_ns: i64) -> Parsed<'_> {
    let unknown = Parsed {
        format: Format::Unknown,
        facility: None,
        severity: None,
        time_ns: None,
        host: None,
        app: None,
        procid: None,
        msgid: None,
        structured_data: None,
        msg: raw,
    };
    let Some(rest) = raw.strip_prefix(b"<") else {
        return unknown;
    };
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return unknown;
    }
    let pri: u16 = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(999);
    if pri > 191 {
        return unknown;
    }
    let body = &rest[digits + 1..];
    let mut p = Parsed {
        format: Format::PriOnly,
        facility: Some((pri / 8) as u8),
        severity: Some((pri % 8) as u8),
        msg: body,
        ..unknown
    };
    if let Some(r) = body.strip_prefix(b"1 ") {
        if let Some(q) = parse_5424(r) {
            return Parsed {
                facility: p.facility,
                severity: p.severity,
                ..q
            };
        }
    }
    if let Some(q) = parse_3164(body, received_ns) {
        return Parsed {
            facility: p.facility,
            severity: p.severity,
            ..q
        };
    }
    p.msg = strip_bom(body);
    p
}

fn parse_5424(r: &[u8]) -> Option<Parsed<'_>> {
    let (ts, r) = token(r)?;
    let (host, r) = token(r)?;
    let (app, r) = token(r)?;
    let (procid, r) = token(r)?;
    let (msgid, r) = token(r)?;
    let (sd, msg) = if r.first() == Some(&b'-') {
        ("-", r.get(2..).unwrap_or(&[]))
    } else if r.first() == Some(&b'[') {
        // Elements end at a ']' not escaped by '\' and not followed by '['.
        let mut i = 0;
        let mut esc = false;
        let mut end = None;
        while i < r.len() {
            match r[i] {
                b'\\' if !esc => esc = true,
                b']' if !esc => {
                    if r.get(i + 1) != Some(&b'[') {
                        end = Some(i + 1);
                        break;
                    }
                    esc = false;
                }
                _ => esc = false,
            }
            i += 1;
        }
        let end = end?;
        (
            std::str::from_utf8(&r[..end]).ok()?,
            r.get(end + 1..).unwrap_or(&[]),
        )
    } else {
        return None;
    };
    Some(Parsed {
        format: Format::Rfc5424,
        facility: None,
        severity: None,
        time_ns: nil(ts).and_then(parse_rfc3339),
        host: nil(host),
        app: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data: nil(sd),
        msg: strip_bom(msg),
    })
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn parse_3164(b: &[u8], received_ns: i64) -> Option<Parsed<'_>> {
    // "Mmm dd hh:mm:ss " (dd may be space-padded)
    if b.len() < 16
        || b[3] != b' '
        || b[6] != b' '
        || b[9] != b':'
        || b[12] != b':'
        || b[15] != b' '
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| &b[..3] == *m)? as u32 + 1;
    let txt = std::str::from_utf8(&b[4..15]).ok()?;
    let day: u32 = txt[..2].trim().parse().ok()?;
    let h: i64 = txt[3..5].parse().ok()?;
    let mi: i64 = txt[6..8].parse().ok()?;
    let se: i64 = txt[9..11].parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let recv_year = i64::from(crate::util::timefmt::year_of(received_ns));
    let small = |v: i64| u8::try_from(v).ok();
    let (mo, d, h, mi, se) = (
        small(i64::from(month))?,
        small(i64::from(day))?,
        small(h)?,
        small(mi)?,
        small(se)?,
    );
    // The year is not sent: the one that puts the time nearest to receipt
    // (February 29 exists only in some).
    let time_ns = [recv_year - 1, recv_year, recv_year + 1]
        .into_iter()
        .filter_map(|y| crate::util::timefmt::utc_ns(y, mo, d, h, mi, se))
        .min_by_key(|t| (t - received_ns).unsigned_abs())?;
    let mut r = &b[16..];
    // HOSTNAME, unless the next token is already the TAG ("app:" or "app[1]:").
    let mut host = None;
    if let Some((t, rest)) = token(r) {
        if !t.ends_with(':') && !t.contains('[') {
            host = Some(t);
            r = rest;
        }
    }
    let tag_end = r
        .iter()
        .position(|&c| c == b':' || c == b' ' || c == b'[')
        .unwrap_or(0);
    let (mut app, mut procid) = (None, None);
    if tag_end > 0 && tag_end <= 48 {
        app = std::str::from_utf8(&r[..tag_end]).ok();
        let mut rest = &r[tag_end..];
        if rest.first() == Some(&b'[') {
            let close = rest.iter().position(|&c| c == b']')?;
            procid = std::str::from_utf8(&rest[1..close]).ok();
            rest = &rest[close + 1..];
        }
        if let Some(m) = rest.strip_prefix(b": ").or_else(|| rest.strip_prefix(b":")) {
            r = m;
        } else {
            app = None;
            procid = None;
        }
    }
    Some(Parsed {
        format: Format::Rfc3164,
        facility: None,
        severity: None,
        time_ns: Some(time_ns),
        host,
        app,
        procid,
        msgid: None,
        structured_data: None,
        msg: strip_bom(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::timefmt::rfc3339;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn rfc5424_with_structured_data_bom_and_nil_values() {
        let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \xef\xbb\xbfAn application event";
        let p = parse(raw, 0);
        assert_eq!(p.format, Format::Rfc5424);
        assert_eq!((p.facility, p.severity), (Some(20), Some(5)));
        assert_eq!(
            rfc3339(p.time_ns.unwrap()),
            "2003-10-11T22:14:15.003000000Z"
        );
        assert_eq!(p.host, Some("mymachine.example.com"));
        assert_eq!(
            (p.app, p.procid, p.msgid),
            (Some("evntslog"), None, Some("ID47"))
        );
        assert_eq!(p.structured_data, Some("[exampleSDID@32473 iut=\"3\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]"));
        assert_eq!(p.msg, b"An application event");
        let p = parse(
            b"<34>1 2003-08-24T05:14:15.000003-07:00 host su - - - 'su root' failed",
            0,
        );
        assert_eq!(
            rfc3339(p.time_ns.unwrap()),
            "2003-08-24T12:14:15.000003000Z"
        );
        assert_eq!(p.structured_data, None);
        assert_eq!(p.msg, b"'su root' failed");
    }

    #[test]
    fn rfc3164_year_is_inferred_across_new_year() {
        // Sent on Dec 31 just before midnight, received just after on Jan 1.
        let p = parse(
            b"<13>Dec 31 23:59:58 web1 sshd[42]: Accepted key",
            at("2027-01-01T00:00:01Z"),
        );
        assert_eq!(p.format, Format::Rfc3164);
        assert_eq!(
            rfc3339(p.time_ns.unwrap()),
            "2026-12-31T23:59:58.000000000Z"
        );
        assert_eq!(
            (p.host, p.app, p.procid),
            (Some("web1"), Some("sshd"), Some("42"))
        );
        assert_eq!(p.msg, b"Accepted key");
        // The time a message without a year gets, by when it was received.
        let time_at =
            |msg: &[u8], received: &str| rfc3339(parse(msg, at(received)).time_ns.unwrap());
        // A sender clock slightly ahead: Jan 1 received on Dec 31.
        let jan1 = time_at(b"<13>Jan  1 00:00:03 web1 app: x", "2026-12-31T23:59:59Z");
        assert_eq!(jan1, "2027-01-01T00:00:03.000000000Z");
        // An ordinary mid-year message.
        let msg = b"<13>Nov 28 11:41:35 app: hello unix";
        let nov = time_at(msg, "2026-11-28T11:41:35Z");
        assert_eq!(nov, "2026-11-28T11:41:35.000000000Z");
        let p = parse(msg, 0);
        assert_eq!((p.host, p.app), (None, Some("app")));
        assert_eq!(p.msg, b"hello unix");
    }

    #[test]
    fn garbage_stays_unparsed_and_invalid_utf8_stays_bytes() {
        assert_eq!(parse(b"hello", 0).format, Format::Unknown);
        assert_eq!(parse(b"<999>x", 0).format, Format::Unknown);
        assert_eq!(parse(b"<>x", 0).format, Format::Unknown);
        let p = parse(b"<13>\xff\xfe not a date", 0);
        assert_eq!(p.format, Format::PriOnly);
        assert_eq!(p.msg, b"\xff\xfe not a date");
        let p = parse(b"<13>1 2026-13-01T00:00:00Z h a - - - m", 0);
        assert_eq!(p.format, Format::Rfc5424);
        assert_eq!(p.time_ns, None, "impossible month is not a time");
        assert!(parse_rfc3339("2026-11-28T12:00:00").is_none(), "no zone");
    }
}
