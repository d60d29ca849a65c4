//! What the agent's and the collector's config files share: the error types,
//! the typed values both use (log level, listen address), and the range
//! checks.
//!
//! A config is parsed once, at load, into typed values: a value that does not
//! parse is refused there, with the key and the line, and never parsed again.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest configuration file read.
pub const MAX_CONFIG: u64 = 1 << 20;

/// Implements `TryFrom<String>` (what `#[serde(try_from = "String")]` uses)
/// over the type's `FromStr`, whose error is a [`ValueError`].
macro_rules! parsed_from_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = $crate::util::config::ValueError;

            fn try_from(s: String) -> Result<$t, $crate::util::config::ValueError> {
                s.parse()
            }
        }
    )*};
}
pub(crate) use parsed_from_string;

parsed_from_string!(LogLevel, ListenAddr, HostPort);

/// `log_level` (agent and collector configs, `--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// And warnings.
    Warn,
    /// And what an operator follows (the default).
    #[default]
    Info,
    /// And per-connection detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level for `tracing`.
    pub fn tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<LogLevel, ValueError> {
        Ok(match s {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                return Err(ValueError::refused(
                    "log_level",
                    format!("{s:?}: use error, warn, info, debug or trace"),
                ))
            }
        })
    }
}

/// An address to listen on (`0.0.0.0:514`, `[::1]:6514`): parsed at load, so
/// a host name is refused there rather than resolved at bind time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenAddr(pub SocketAddr);

impl std::str::FromStr for ListenAddr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<ListenAddr, ValueError> {
        s.parse().map(ListenAddr).map_err(|_| {
            ValueError::refused(
                "listen",
                format!("{s:?} is not an address like 0.0.0.0:514 or [::1]:514"),
            )
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A peer to connect to, `HOST:PORT` (a name or an address; an IPv6
/// address in brackets): the host part is resolved at each connection and is
/// the name its certificate must carry unless another is configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    /// Name or address, without brackets.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::str::FromStr for HostPort {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<HostPort, ValueError> {
        let bad = || ValueError::refused("ship.collectors", format!("{s:?} is not HOST:PORT"));
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A value that parses but cannot be used; each names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A number or a duration outside the range the code works in.
    #[error("{key} = {value}: must be between {lo} and {hi}")]
    OutOfRange {
        /// The key, `table.key`.
        key: &'static str,
        /// The value given.
        value: String,
        /// The least allowed.
        lo: String,
        /// The most allowed.
        hi: String,
    },
    /// Any other refusal: the key (or keys) and what was expected.
    #[error("{key} {problem}")]
    Refused {
        /// The key, `table.key`.
        key: String,
        /// What is wrong and what was expected.
        problem: String,
    },
}

impl ValueError {
    /// A refusal of `key`'s value, saying why.
    pub fn refused(key: impl Into<String>, problem: impl Into<String>) -> ValueError {
        ValueError::Refused {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// `key`'s value must lie in `lo..=hi`.
pub fn in_range(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ValueError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ValueError::OutOfRange {
            key,
            value: v.to_string(),
            lo: lo.to_string(),
            hi: hi.to_string(),
        })
    }
}

/// `key`'s size in bytes must lie in `lo..=hi`; the message gives them in
/// the units a config file uses.
pub fn size_in_range(key: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ValueError> {
    use crate::util::units::size_text;
    in_range(key, v, lo, hi).map_err(|_| ValueError::OutOfRange {
        key,
        value: size_text(v),
        lo: size_text(lo),
        hi: size_text(hi),
    })
}

/// `key`'s durations must each lie in their `lo..=hi`.
pub fn durations_in_range(
    checks: &[(&'static str, Duration, Duration, Duration)],
) -> Result<(), ValueError> {
    for &(key, v, lo, hi) in checks {
        if !(lo..=hi).contains(&v) {
            return Err(ValueError::OutOfRange {
                key,
                value: format!("{v:?}"),
                lo: format!("{lo:?}"),
                hi: format!("{hi:?}"),
            });
        }
    }
    Ok(())
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable.
    #[error("{path}: {cause}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause (shown in the message, not chained again after it).
        cause: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type or form;
    /// the message names the key and the line.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What and where.
        message: String,
    },
    /// A value that parsed but cannot be used.
    #[error("{path}: {cause}")]
    Value {
        /// File.
        path: PathBuf,
        /// The key and why.
        cause: ValueError,
    },
}

impl ConfigError {
    /// `path` could not be read.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
        move |cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }

    /// Parses TOML text into `T`, the error naming the file, key and line.
    pub fn parse<T: serde::de::DeserializeOwned>(
        text: &str,
        path: &std::path::Path,
    ) -> Result<T, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// A value of `path` that cannot be used.
    pub fn value(path: &std::path::Path) -> impl FnOnce(ValueError) -> ConfigError + '_ {
        move |cause| ConfigError::Value {
            path: path.to_path_buf(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_and_a_listen_address_are_parsed_once_with_the_key_named() {
        assert_eq!("debug".parse::<LogLevel>(), Ok(LogLevel::Debug));
        let e = "loud".parse::<LogLevel>().unwrap_err().to_string();
        assert!(e.contains("log_level") && e.contains("\"loud\""), "{e}");
        assert_eq!(
            "[::1]:514".parse::<ListenAddr>().unwrap().to_string(),
            "[::1]:514"
        );
        let e = "localhost:514"
            .parse::<ListenAddr>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"localhost:514\" is not an address"), "{e}");
    }

    #[test]
    fn a_peer_is_host_and_port_with_ipv6_in_brackets() {
        for (text, host, port) in [
            ("collector.example:6514", "collector.example", 6514),
            ("10.0.0.1:1", "10.0.0.1", 1),
            ("[::1]:6514", "::1", 6514),
        ] {
            let hp: HostPort = text.parse().unwrap();
            assert_eq!((hp.host.as_str(), hp.port), (host, port), "{text}");
            assert_eq!(hp.to_string(), text);
        }
        for bad in [
            "c",
            "c:",
            ":6514",
            "c:99999",
            "c:0",
            "::1:6514",
            "[::1:6514",
            "c:-1",
        ] {
            let e = bad.parse::<HostPort>().unwrap_err().to_string();
            assert!(e.contains("is not HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_range_names_the_key_and_both_bounds() {
        assert!(in_range("a.b", 5, 1, 10).is_ok());
        let e = in_range("a.b", 11, 1, 10).unwrap_err().to_string();
        assert_eq!(e, "a.b = 11: must be between 1 and 10");
        let s = Duration::from_secs;
        let e = durations_in_range(&[("x", s(1), s(1), s(2)), ("y", s(3), s(1), s(2))])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("y = 3s"), "{e}");
    }
}
