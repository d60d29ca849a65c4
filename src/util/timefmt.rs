//! Time, the one module for it: the wall clock as the code reads it
//! ([`now_ns`]), RFC 3339 rendering and parsing of record times (UTC,
//! nanoseconds), and calendar dates. The calendar is the `time` crate's;
//! nothing here does date arithmetic by hand.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in ns since the Unix epoch (negative before 1970).
pub fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Formats ns since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339(ns: i64) -> String {
    // Every i64 of ns is a date of years 1677 to 2262, well within `time`'s.
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// The year (UTC) of a time in ns since the Unix epoch.
pub fn year_of(ns: i64) -> i32 {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .map(|t| t.year())
        .unwrap_or(1970)
}

/// ns since the Unix epoch of a date and time of day in UTC (`second` may be
/// 60, a leap second, taken as the first second of the next minute); None
/// for a date that does not exist (February 30) or is out of range.
pub fn utc_ns(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<i64> {
    i64::try_from(utc_ns_wide(year, month, day, hour, minute, second)?).ok()
}

/// [`utc_ns`] before the range check: the whole second's ns may lie outside
/// i64 while the instant with its fraction and offset does not.
fn utc_ns_wide(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<i128> {
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(month).ok()?,
        day,
    )
    .ok()?;
    let leap = u8::from(second == 60);
    let tod = time::Time::from_hms(hour, minute, second - leap).ok()?;
    let t = time::PrimitiveDateTime::new(date, tod).assume_utc();
    Some(t.unix_timestamp_nanos() + i128::from(leap) * 1_000_000_000)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339; a space may stand
/// for the `T`) into ns since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 9)];
        frac_ns = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.get(3..4) == Some(":") =>
        {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Outside what ns since the epoch can hold (before 1677, after 2262): None.
    let small = |v: i64| u8::try_from(v).ok();
    let at = utc_ns_wide(y, small(mo)?, small(d)?, small(h)?, small(mi)?, small(sec)?)?;
    i64::try_from(at - i128::from(offset) * 1_000_000_000 + i128::from(frac_ns)).ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, rfc3339};

    #[test]
    fn times_out_of_range_or_not_ascii_are_refused_not_a_panic() {
        for s in [
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "1677-09-21T00:12:43.145224191Z",
            "2262-04-11T23:47:16.854775808Z",
            "2026-11-30T05:10:58+0\u{20ac}0",
            "2026-11-30T05:10:58.5\u{20ac}",
            "2026-11-30T05:10:58+\u{20ac}:00",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
        // The extremes rfc3339 writes read back.
        for ns in [i64::MIN, i64::MAX, 0, -1] {
            assert_eq!(parse_rfc3339(&rfc3339(ns)), Some(ns), "{ns}");
        }
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-02-29T12:34:56.5Z"),
            Some(951_827_696_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T14:34:56.500+02:00"),
            Some(951_827_696_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28 00:00:00Z"),
            Some(1_795_824_000_000_000_000)
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-13-01T00:00:00Z",
            "2026-11-28T00:00:00",
            "2026-11-28T00:00:00.Z",
            "2026-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "+026-11-28T00:00:00Z",
            "2026-11-28T10:00:00+99:99",
            "2026-11-28T10:00:00+24:00",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
    #[test]
    fn a_leap_second_is_the_next_minutes_first() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29T12:34:56.5Z = 951827696.5 s (leap day of a leap century year)
        assert_eq!(
            rfc3339(951_827_696_500_000_000),
            "2000-02-29T12:34:56.500000000Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        // 2026-11-28T00:00:00Z = 1795824000 s
        assert_eq!(
            rfc3339(1_795_824_000_000_000_000),
            "2026-11-28T00:00:00.000000000Z"
        );
    }
}
