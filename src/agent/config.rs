//! The agent's configuration file (`config/agent.toml` documents every key).
//!
//! Unknown keys are errors that name the key and its line.

use crate::ingest::journal::config::JournaldConfig;
use crate::util::config::{
    durations_in_range, in_range, size_in_range, ConfigError, HostPort, ListenAddr, LogLevel,
    ValueError,
};
use crate::util::units::serde_units;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Host name written into a new chain's Genesis; empty: the system host name.
    #[serde(default)]
    pub host: String,
    /// Directory of the signer state and the spool.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Sealing.
    #[serde(default)]
    pub chain: ChainConfig,
    /// The spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Limits on inputs.
    #[serde(default)]
    pub limits: Limits,
    /// Inputs (`[[input]]` tables).
    #[serde(default, rename = "input")]
    pub inputs: Vec<Input>,
    /// Shipping to collectors (`[ship]`); absent: records stay in the spool.
    #[serde(default)]
    pub ship: Option<ShipConfig>,
    /// The journald input (`[journald]`); absent: the journal is not read.
    #[serde(default)]
    pub journald: Option<JournaldConfig>,
    /// The Prometheus endpoint (`[metrics]`); absent: none.
    #[serde(default)]
    pub metrics: Option<crate::monitor::metrics::MetricsConfig>,
    /// The file this configuration was read from (a reload reads it again to
    /// name the settings that changed and need a restart).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl AgentConfig {
    /// The settings of `other` that differ from this one's, by name.
    pub fn changed(&self, other: &AgentConfig) -> Vec<&'static str> {
        crate::util::units::changed_settings!(self, other, {
            "host": host, "state_dir": state_dir, "log_level": log_level, "[chain]": chain,
            "[spool]": spool, "[limits]": limits, "[[input]]": inputs, "[ship]": ship,
            "[journald]": journald, "[metrics]": metrics,
        })
    }
}

/// Shipping to collectors over mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// Collectors as `HOST:PORT`, tried in order; the next one on failure.
    pub collectors: Vec<HostPort>,
    /// Name the collectors' certificates must carry; empty: the HOST part of each address.
    #[serde(default)]
    pub server_name: String,
    /// CA that issued the collectors' certificates (PEM).
    pub ca: PathBuf,
    /// This agent's certificate (PEM); its name must be the chain's host name.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Records per batch at most.
    #[serde(default = "d_batch_records")]
    pub batch_records: usize,
    /// Bytes per batch at most.
    #[serde(default = "d_batch_size", deserialize_with = "serde_units::size")]
    pub batch_size: u64,
    /// Batches sent ahead of their acknowledgement.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Ping an idle connection this often.
    #[serde(default = "d_keepalive", deserialize_with = "serde_units::duration")]
    pub keepalive: Duration,
    /// Longest wait between reconnection attempts (backoff doubles up to it, with jitter).
    #[serde(default = "d_backoff", deserialize_with = "serde_units::duration")]
    pub backoff_max: Duration,
    /// At shutdown, keep shipping the last records for at most this long.
    #[serde(default = "d_drain", deserialize_with = "serde_units::duration")]
    pub drain_timeout: Duration,
    /// Refuse a collector that does not sign receipts (protocol version 2);
    /// false only while collectors are upgraded.
    #[serde(default = "d_true")]
    pub require_receipts: bool,
}

fn d_true() -> bool {
    true
}

fn d_batch_records() -> usize {
    4096
}
fn d_batch_size() -> u64 {
    1 << 20
}
fn d_window() -> usize {
    32
}
fn d_keepalive() -> Duration {
    Duration::from_secs(30)
}
fn d_backoff() -> Duration {
    Duration::from_secs(30)
}
fn d_drain() -> Duration {
    Duration::from_secs(5)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/logseal/agent")
}

/// When seals are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// Seal at most this long after the first unsealed record while events flow.
    #[serde(deserialize_with = "serde_units::duration")]
    pub seal_interval: Duration,
    /// Seal this often when idle (a heartbeat that proves the agent is alive).
    #[serde(deserialize_with = "serde_units::duration")]
    pub heartbeat: Duration,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            seal_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(60),
        }
    }
}

/// The durable spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Size at which a new segment file is started.
    #[serde(deserialize_with = "serde_units::size")]
    pub segment_size: u64,
    /// Size cap: when reached, inputs that can wait are slowed down and UDP
    /// messages are dropped and counted in a Loss record.
    #[serde(deserialize_with = "serde_units::size")]
    pub max_size: u64,
    /// Group commit: records are fsynced at most this long after being appended.
    #[serde(deserialize_with = "serde_units::duration")]
    pub commit_interval: Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_size: 64 << 20,
            max_size: 1 << 30,
            commit_interval: Duration::from_millis(10),
        }
    }
}

/// Limits on inputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longer messages are truncated to this size (and flagged with their length).
    #[serde(deserialize_with = "serde_units::size")]
    pub max_message: u64,
    /// Open stream connections per listener; more wait to be accepted.
    pub max_connections: usize,
    /// A stream connection silent this long is closed.
    #[serde(deserialize_with = "serde_units::duration")]
    pub idle_timeout: Duration,
    /// Memory the buffers of all stream connections together may take beyond
    /// a small room each (long messages held across reads, large reads).
    #[serde(deserialize_with = "serde_units::size")]
    pub stream_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 << 10,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(600),
            stream_memory: 64 << 20,
        }
    }
}

/// One input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Input {
    /// Syslog over UDP, one message per datagram.
    Udp {
        /// Address to bind, e.g. `0.0.0.0:514`.
        listen: ListenAddr,
    },
    /// Syslog over TCP; RFC 6587 octet-counting or LF framing, detected per connection.
    Tcp {
        /// Address to bind.
        listen: ListenAddr,
    },
    /// Syslog over TLS (RFC 5425), framed like TCP.
    Tls {
        /// Address to bind, e.g. `0.0.0.0:6514`.
        listen: ListenAddr,
        /// PEM certificate chain of this input.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
        /// If set, clients must present a certificate issued by this CA (PEM).
        #[serde(default)]
        client_ca: Option<PathBuf>,
    },
    /// A `/dev/log`-style unix datagram socket.
    UnixDgram {
        /// Socket path (an existing socket file is replaced).
        path: PathBuf,
        /// When the spool is full: `drop` (count in a Loss record; senders
        /// calling syslog(3) never hang) or `block` (senders wait: fail closed).
        #[serde(default)]
        when_full: WhenFull,
    },
    /// A unix stream socket, framed like TCP.
    UnixStream {
        /// Socket path (an existing socket file is replaced).
        path: PathBuf,
    },
}

/// What a datagram input does while the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Read on, drop what cannot be chained, count it (a Loss record).
    #[default]
    Drop,
    /// Stop reading: the kernel's socket buffer fills and senders wait.
    Block,
}

impl Input {
    /// Parses a `--listen` URL: `udp://ADDR`, `tcp://ADDR`, `unix-dgram:///PATH`
    /// (datagram) or `unix-stream:///PATH`.
    pub fn from_url(url: &str) -> Result<Input, ValueError> {
        let bad = |why: String| ValueError::refused("--listen", format!("{url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("expected udp://ADDR, tcp://ADDR, unix-dgram:///PATH or unix-stream:///PATH".into())
        })?;
        let addr = || rest.parse::<ListenAddr>().map_err(|e| bad(e.to_string()));
        let input = match scheme {
            "udp" => Input::Udp { listen: addr()? },
            "tcp" => Input::Tcp { listen: addr()? },
            "unix-dgram" => Input::UnixDgram {
                path: rest.into(),
                when_full: WhenFull::Drop,
            },
            "unix-stream" => Input::UnixStream { path: rest.into() },
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?} (udp, tcp, unix-dgram, unix-stream: \
                     the names of the config's input types)"
                )))
            }
        };
        input.check()?;
        Ok(input)
    }

    /// What the types alone do not check: a socket path is absolute.
    fn check(&self) -> Result<(), ValueError> {
        match self {
            Input::UnixDgram { path, .. } | Input::UnixStream { path } if !path.is_absolute() => {
                Err(ValueError::refused(
                    "input path",
                    format!(
                        "{:?}: a unix socket input needs an absolute path",
                        path.display()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl AgentConfig {
    /// Parses a config from text.
    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
        let mut cfg: AgentConfig = ConfigError::parse(text, path)?;
        // One form of a host name everywhere: `WEB-02.` is `web-02`.
        cfg.host = crate::chain::hostname::canonical(&cfg.host);
        cfg.check().map_err(ConfigError::value(path))?;
        Ok(cfg)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let mut cfg = Self::parse(&crate::storage::fsutil::read_config(path)?, path)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Checks values that the types alone do not.
    pub fn check(&self) -> Result<(), ValueError> {
        if !self.host.is_empty() {
            crate::chain::hostname::check(&self.host)
                .map_err(|e| ValueError::refused("host", format!("is not valid: {e}")))?;
        }
        // Every number has a range, checked here: a value that parses but
        // cannot work is refused at load, never met as a panic or a wrap later.
        let (l, sp) = (&self.limits, &self.spool);
        size_in_range("limits.max_message", l.max_message, 480, (16 << 20) - 4096)?;
        size_in_range("spool.segment_size", sp.segment_size, 4096, 1 << 30)?;
        size_in_range("spool.max_size", sp.max_size, 8192, 1 << 50)?;
        at_least_twice(
            "spool.max_size",
            sp.max_size,
            "spool.segment_size",
            sp.segment_size,
        )?;
        size_in_range("limits.stream_memory", l.stream_memory, 1 << 20, 1 << 40)?;
        at_least_twice(
            "limits.stream_memory",
            l.stream_memory,
            "limits.max_message",
            l.max_message,
        )?;
        in_range(
            "limits.max_connections",
            l.max_connections as u64,
            1,
            1 << 20,
        )?;
        let ms = |n: u64| Duration::from_millis(n);
        let hours = |n: u64| Duration::from_secs(n * 3600);
        durations_in_range(&[
            (
                "chain.seal_interval",
                self.chain.seal_interval,
                ms(1),
                hours(24),
            ),
            ("chain.heartbeat", self.chain.heartbeat, ms(100), hours(24)),
            (
                "spool.commit_interval",
                sp.commit_interval,
                ms(0),
                ms(60_000),
            ),
            (
                "limits.idle_timeout",
                l.idle_timeout,
                ms(100),
                hours(24 * 30),
            ),
        ])?;
        if let Some(ship) = &self.ship {
            ship.check()?;
        }
        if let Some(j) = &self.journald {
            size_in_range(
                "journald.max_entry_size",
                j.max_entry_size,
                4096,
                (16 << 20) - 65536,
            )?;
            if !cfg!(feature = "journald") {
                return Err(ValueError::refused(
                    "[journald]",
                    "cannot be used: this logseal was built without journald support \
                     (cargo feature \"journald\", needs libsystemd)",
                ));
            }
        }
        self.inputs.iter().try_for_each(Input::check)
    }
}

impl ShipConfig {
    fn check(&self) -> Result<(), ValueError> {
        if self.collectors.is_empty() {
            return Err(ValueError::refused(
                "ship.collectors",
                "is empty: name at least one HOST:PORT",
            ));
        }
        in_range("ship.batch_records", self.batch_records as u64, 1, 1 << 20)?;
        in_range("ship.window", self.window as u64, 1, 4096)?;
        size_in_range("ship.batch_size", self.batch_size, 4096, 64 << 20)?;
        let ms = |n: u64| Duration::from_millis(n);
        durations_in_range(&[
            ("ship.keepalive", self.keepalive, ms(100), ms(3_600_000)),
            ("ship.backoff_max", self.backoff_max, ms(10), ms(3_600_000)),
            (
                "ship.drain_timeout",
                self.drain_timeout,
                ms(0),
                ms(3_600_000),
            ),
        ])
    }
}

/// `key`'s value must be at least twice `other`'s.
fn at_least_twice(key: &str, v: u64, other: &str, o: u64) -> Result<(), ValueError> {
    if v < o.saturating_mul(2) {
        return Err(ValueError::refused(
            key,
            format!("must be at least twice {other} ({v} < 2 × {o})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Input;

    #[test]
    fn a_listen_url_uses_the_name_of_the_input_type() {
        assert!(matches!(
            Input::from_url("unix-dgram:///run/a.sock"),
            Ok(Input::UnixDgram { .. })
        ));
        assert!(matches!(
            Input::from_url("unix-stream:///run/a.sock"),
            Ok(Input::UnixStream { .. })
        ));
        // The old `unix://` is refused with the names to use.
        let e = Input::from_url("unix:///run/a.sock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unix-dgram") && e.contains("\"unix\""), "{e}");
        // An address is parsed here, once; a relative socket path is refused.
        let e = Input::from_url("tcp://localhost:514")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not an address"), "{e}");
        let e = Input::from_url("unix-stream://a.sock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute path"), "{e}");
    }
}
