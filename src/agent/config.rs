//! The agent's configuration file (`config/agent.toml` documents every key).
//!
//! Unknown keys are errors that name the key and its line.

use crate::ingest::journal::config::{JournalSource, JournalStart, JournaldConfig};
use crate::util::config::ConfigError;
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
    #[serde(default = "default_log_level")]
    pub log_level: String,
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
        crate::util::units::differing(&[
            ("host", &self.host, &other.host),
            ("state_dir", &self.state_dir, &other.state_dir),
            ("log_level", &self.log_level, &other.log_level),
            ("[chain]", &self.chain, &other.chain),
            ("[spool]", &self.spool, &other.spool),
            ("[limits]", &self.limits, &other.limits),
            ("[[input]]", &self.inputs, &other.inputs),
            ("[ship]", &self.ship, &other.ship),
            ("[journald]", &self.journald, &other.journald),
            ("[metrics]", &self.metrics, &other.metrics),
        ])
    }
}

/// Shipping to collectors over mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// Collectors as `HOST:PORT`, tried in order; the next one on failure.
    pub collectors: Vec<String>,
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
fn default_log_level() -> String {
    "info".into()
}

/// When seals are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Seal at most this long after the first unsealed record while events flow.
    #[serde(default = "d_seal", deserialize_with = "serde_units::duration")]
    pub seal_interval: Duration,
    /// Seal this often when idle (a heartbeat that proves the agent is alive).
    #[serde(default = "d_heartbeat", deserialize_with = "serde_units::duration")]
    pub heartbeat: Duration,
}

fn d_seal() -> Duration {
    Duration::from_secs(1)
}
fn d_heartbeat() -> Duration {
    Duration::from_secs(60)
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            seal_interval: d_seal(),
            heartbeat: d_heartbeat(),
        }
    }
}

/// The durable spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Size at which a new segment file is started.
    #[serde(default = "d_segment", deserialize_with = "serde_units::size")]
    pub segment_size: u64,
    /// Size cap: when reached, inputs that can wait are slowed down and UDP
    /// messages are dropped and counted in a Loss record.
    #[serde(default = "d_max", deserialize_with = "serde_units::size")]
    pub max_size: u64,
    /// Group commit: records are fsynced at most this long after being appended.
    #[serde(default = "d_commit", deserialize_with = "serde_units::duration")]
    pub commit_interval: Duration,
}

fn d_segment() -> u64 {
    64 << 20
}
fn d_max() -> u64 {
    1 << 30
}
fn d_commit() -> Duration {
    Duration::from_millis(10)
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_size: d_segment(),
            max_size: d_max(),
            commit_interval: d_commit(),
        }
    }
}

/// Limits on inputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Longer messages are truncated to this size (and flagged with their length).
    #[serde(default = "d_max_msg", deserialize_with = "serde_units::size")]
    pub max_message: u64,
    /// Open stream connections per listener; more wait to be accepted.
    #[serde(default = "d_conns")]
    pub max_connections: usize,
    /// A stream connection silent this long is closed.
    #[serde(default = "d_idle", deserialize_with = "serde_units::duration")]
    pub idle_timeout: Duration,
    /// Memory the buffers of all stream connections together may take beyond
    /// a small room each (long messages held across reads, large reads).
    #[serde(default = "d_stream_memory", deserialize_with = "serde_units::size")]
    pub stream_memory: u64,
}

fn d_max_msg() -> u64 {
    64 << 10
}
fn d_conns() -> usize {
    1024
}
fn d_idle() -> Duration {
    Duration::from_secs(600)
}
fn d_stream_memory() -> u64 {
    64 << 20
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: d_max_msg(),
            max_connections: d_conns(),
            idle_timeout: d_idle(),
            stream_memory: d_stream_memory(),
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
        listen: String,
    },
    /// Syslog over TCP; RFC 6587 octet-counting or LF framing, detected per connection.
    Tcp {
        /// Address to bind.
        listen: String,
    },
    /// Syslog over TLS (RFC 5425), framed like TCP.
    Tls {
        /// Address to bind, e.g. `0.0.0.0:6514`.
        listen: String,
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
    pub fn from_url(url: &str) -> Result<Input, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?}: expected udp://ADDR, tcp://ADDR, unix-dgram:///PATH or unix-stream:///PATH")
        })?;
        match scheme {
            "udp" => Ok(Input::Udp {
                listen: rest.into(),
            }),
            "tcp" => Ok(Input::Tcp {
                listen: rest.into(),
            }),
            "unix-dgram" => Ok(Input::UnixDgram {
                path: rest.into(),
                when_full: WhenFull::Drop,
            }),
            "unix-stream" => Ok(Input::UnixStream { path: rest.into() }),
            other => Err(format!(
                "{url:?}: unknown scheme {other:?} (udp, tcp, unix-dgram, unix-stream: \
                 the names of the config's input types)"
            )),
        }
    }
}

impl AgentConfig {
    /// Parses a config from text.
    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
        let mut cfg: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        // One form of a host name everywhere: `WEB-02.` is `web-02`.
        cfg.host = crate::chain::hostname::canonical(&cfg.host);
        cfg.check().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        // A regular file of bounded size: a FIFO or a device given by mistake is
        // refused, not waited on.
        let text = crate::storage::fsutil::read_bounded_text(path, crate::util::config::MAX_CONFIG)
            .map_err(|cause| ConfigError::Io {
                path: path.to_path_buf(),
                cause,
            })?;
        let mut cfg = Self::parse(&text, path)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Checks values that the types alone do not.
    pub fn check(&self) -> Result<(), String> {
        crate::util::config::check_log_level(&self.log_level)?;
        if !self.host.is_empty() {
            crate::chain::hostname::check(&self.host).map_err(|e| format!("host: {e}"))?;
        }
        if self.limits.max_message < 480 || self.limits.max_message > (16 << 20) - 4096 {
            return Err("limits.max_message must be between 480 bytes and 16 MiB - 4 KiB".into());
        }
        // Every number has a range, checked here: a value that parses but
        // cannot work is refused at load, never met as a panic or a wrap later.
        in_range("spool.segment_size", self.spool.segment_size, 4096, 1 << 30)?;
        in_range("spool.max_size", self.spool.max_size, 8192, 1 << 50)?;
        if self.spool.max_size < self.spool.segment_size.saturating_mul(2) {
            return Err("spool.max_size must be at least twice spool.segment_size".into());
        }
        in_range(
            "limits.stream_memory",
            self.limits.stream_memory,
            1 << 20,
            1 << 40,
        )?;
        if self.limits.stream_memory < self.limits.max_message.saturating_mul(2) {
            return Err("limits.stream_memory must be at least twice limits.max_message".into());
        }
        in_range(
            "limits.max_connections",
            self.limits.max_connections as u64,
            1,
            1 << 20,
        )?;
        let ms = |n: u64| Duration::from_millis(n);
        let hours = |n: u64| Duration::from_secs(n * 3600);
        for (k, v, lo, hi) in [
            (
                "chain.seal_interval",
                self.chain.seal_interval,
                ms(1),
                hours(24),
            ),
            ("chain.heartbeat", self.chain.heartbeat, ms(100), hours(24)),
            (
                "spool.commit_interval",
                self.spool.commit_interval,
                ms(0),
                ms(60_000),
            ),
            (
                "limits.idle_timeout",
                self.limits.idle_timeout,
                ms(100),
                hours(24 * 30),
            ),
        ] {
            in_range_duration(k, v, lo, hi)?;
        }
        if let Some(ship) = &self.ship {
            if ship.collectors.is_empty() {
                return Err("ship.collectors is empty: name at least one HOST:PORT".into());
            }
            for c in &ship.collectors {
                if c.rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(format!("ship.collectors: {c:?} is not HOST:PORT"));
                }
            }
            in_range("ship.batch_records", ship.batch_records as u64, 1, 1 << 20)?;
            in_range("ship.window", ship.window as u64, 1, 4096)?;
            let ms = |n: u64| Duration::from_millis(n);
            for (k, v, lo, hi) in [
                ("ship.keepalive", ship.keepalive, ms(100), ms(3_600_000)),
                ("ship.backoff_max", ship.backoff_max, ms(10), ms(3_600_000)),
                (
                    "ship.drain_timeout",
                    ship.drain_timeout,
                    ms(0),
                    ms(3_600_000),
                ),
            ] {
                in_range_duration(k, v, lo, hi)?;
            }
            if ship.batch_size < 4096 || ship.batch_size > 64 << 20 {
                return Err("ship.batch_size must be between 4KiB and 64MiB".into());
            }
        }
        if let Some(j) = &self.journald {
            JournalSource::parse(&j.journal)?;
            JournalStart::parse(&j.start)?;
            crate::ingest::journal::Filter::new(j)?;
            if j.max_entry_size < 4096 || j.max_entry_size > (16 << 20) - 65536 {
                return Err(
                    "journald.max_entry_size must be between 4 KiB and 16 MiB - 64 KiB".into(),
                );
            }
            if !cfg!(feature = "journald") {
                return Err("[journald]: this logseal was built without journald support (cargo feature \"journald\", needs libsystemd)".into());
            }
        }
        for i in &self.inputs {
            if let Input::UnixDgram { path, .. } | Input::UnixStream { path } = i {
                if !path.is_absolute() {
                    return Err(format!(
                        "input path {:?}: a unix socket input needs an absolute path",
                        path.display()
                    ));
                }
            }
            if let Input::Udp { listen } | Input::Tcp { listen } | Input::Tls { listen, .. } = i {
                if listen.parse::<std::net::SocketAddr>().is_err() {
                    return Err(format!(
                        "input listen {listen:?} is not an address like 0.0.0.0:514 or [::1]:514"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `key`'s value must lie in `lo..=hi`.
pub(crate) fn in_range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key} = {v}: must be between {lo} and {hi}"))
    }
}

/// `key`'s duration must lie in `lo..=hi`.
pub(crate) fn in_range_duration(
    key: &str,
    v: Duration,
    lo: Duration,
    hi: Duration,
) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key} = {v:?}: must be between {lo:?} and {hi:?}"))
    }
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
        let e = Input::from_url("unix:///run/a.sock").unwrap_err();
        assert!(e.contains("unix-dgram") && e.contains("\"unix\""), "{e}");
    }
}
