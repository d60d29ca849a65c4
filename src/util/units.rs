//! Human units in configuration and flags: durations (`500ms`, `1s`, `2m`, `1h`)
//! and sizes (`512`, `64KiB`, `64MiB`, `1GiB`, `10MB`).

use std::time::Duration;

/// Why a duration or a size was refused; each names the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Not a number followed by a unit.
    #[error("invalid duration {0:?} (examples: 500ms, 1s, 2m)")]
    Duration(String),
    /// A unit a duration does not take.
    #[error("invalid duration unit {unit:?} in {text:?} (use ms, s, m or h)")]
    DurationUnit {
        /// The unit.
        unit: String,
        /// The text given.
        text: String,
    },
    /// Zero, negative, or not finite.
    #[error("duration must be positive: {0:?}")]
    NotPositive(String),
    /// Longer than a `Duration` holds.
    #[error("duration {0:?} is too long (at most about 584 942 years)")]
    TooLong(String),
    /// Not a number followed by a unit.
    #[error("invalid size {0:?} (examples: 65536, 64KiB, 1GiB)")]
    Size(String),
    /// A unit a size does not take.
    #[error("invalid size unit {unit:?} in {text:?} (use B, KiB, MiB, GiB, KB, MB, GB)")]
    SizeUnit {
        /// The unit.
        unit: String,
        /// The text given.
        text: String,
    },
    /// More bytes than a `u64` holds.
    #[error("size too large: {0:?}")]
    TooLarge(String),
}

/// Parses a duration: a positive number with unit `ms`, `s` (default), `m`/`min`, `h`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| UnitError::Duration(s.into()))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(UnitError::DurationUnit {
                unit: u.into(),
                text: s.into(),
            })
        }
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(UnitError::NotPositive(s.into()));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| UnitError::TooLong(s.into()))
}

/// Parses a size in bytes: a number with optional unit `B`, `KiB`, `MiB`, `GiB`,
/// `KB`, `MB`, `GB`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| UnitError::Size(s.into()))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(UnitError::SizeUnit {
                unit: u.into(),
                text: s.into(),
            })
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| UnitError::TooLarge(s.into()))
}

/// A size as a config file would give it: `64MiB`, `16380KiB`, `480` (the
/// largest unit that divides it; [`parse_size`] reads it back).
pub fn size_text(n: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n % m == 0 {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// Buckets of latency histograms, in seconds: 100 µs to about 52 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 20)
}

/// serde helpers for these units in config files.
pub mod serde_units {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// A duration given as a string.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// A size given as a string or an integer.
    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl serde::de::Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size: a whole number of bytes or a string such as \"64MiB\"")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| {
                E::custom(format!(
                    "a size cannot be negative ({n}): give a whole number of bytes or a \
                     string such as \"64MiB\""
                ))
            })
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<u64, E> {
            super::parse_size(s).map_err(E::custom)
        }
    }
}

/// The names of the settings whose two values differ (compared by their
/// `Debug` form): what a reload names as needing a restart.
pub fn differing(
    settings: &[(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug)],
) -> Vec<&'static str> {
    settings
        .iter()
        .filter(|(_, a, b)| format!("{a:?}") != format!("{b:?}"))
        .map(|(k, _, _)| *k)
        .collect()
}

/// [`differing`] over fields of two values of one type:
/// `changed_settings!(a, b, { "name": field, "[table]": other_field })`.
macro_rules! changed_settings {
    ($a:expr, $b:expr, { $($name:literal: $field:ident),* $(,)? }) => {
        $crate::util::units::differing(&[$(($name, &$a.$field, &$b.$field)),*])
    };
}
pub(crate) use changed_settings;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_size_is_written_as_it_is_read() {
        for n in [
            0,
            480,
            4096,
            (16 << 20) - 4096,
            64 << 20,
            1 << 30,
            3 << 40,
            1000,
        ] {
            assert_eq!(parse_size(&size_text(n)).unwrap(), n, "{}", size_text(n));
        }
        assert_eq!(size_text(64 << 20), "64MiB");
        assert_eq!(size_text((16 << 20) - 4096), "16380KiB");
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
