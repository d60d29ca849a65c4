//! The collector's configuration file (`config/collector.toml` documents every key).

use crate::util::config::{
    durations_in_range, in_range, size_in_range, ConfigError, ListenAddr, LogLevel, ValueError,
};
use crate::util::units::serde_units;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole collector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Name announced to agents; empty: the system host name.
    #[serde(default)]
    pub name: String,
    /// Address to listen on for agents (mutual TLS).
    #[serde(default = "d_listen")]
    pub listen: ListenAddr,
    /// Store directory.
    #[serde(default = "d_store")]
    pub store: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Certificates.
    pub tls: TlsConfig,
    /// Admission of hosts.
    #[serde(default)]
    pub enrollment: EnrollmentConfig,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Liveness of hosts.
    #[serde(default)]
    pub liveness: Liveness,
    /// The Prometheus endpoint (`[metrics]`); absent: none.
    #[serde(default)]
    pub metrics: Option<crate::monitor::metrics::MetricsConfig>,
    /// Peer collectors whose checkpoints this one witnesses (`[witness]`).
    #[serde(default)]
    pub witness: WitnessConfig,
    /// The JetStream stream holding the chains (`[jetstream]`); absent: the
    /// store's own files. `store` still holds this collector's own state.
    #[serde(default)]
    pub jetstream: Option<crate::storage::jetstream::JetStreamConfig>,
    /// The file this configuration was read from (a reload reads it again to
    /// name the settings that changed and need a restart).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn d_listen() -> ListenAddr {
    ListenAddr(std::net::SocketAddr::from(([0, 0, 0, 0], 6514)))
}
fn d_store() -> PathBuf {
    PathBuf::from("/var/lib/logseal/store")
}

/// Certificates of the collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA that issues agents' certificates (PEM).
    pub ca: PathBuf,
    /// The collector's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CRL (PEM), re-read when the file changes; empty: none.
    #[serde(default)]
    pub crl: Option<PathBuf>,
}

/// `first-use` or `strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollmentMode {
    /// Pin a host's genesis key the first time it is seen.
    #[default]
    FirstUse,
    /// Accept only registered genesis fingerprints.
    Strict,
}

/// Admission of hosts.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// `first-use` or `strict`.
    #[serde(default)]
    pub mode: EnrollmentMode,
    /// For `strict`: a file of `HOST SHA256:FINGERPRINT` lines (`#` comments),
    /// as printed by `logseal agent --print-genesis`.
    #[serde(default)]
    pub enrolled: Option<PathBuf>,
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted from an agent.
    #[serde(deserialize_with = "serde_units::size")]
    pub max_frame: u64,
    /// Authenticated agent sessions served at once; more are refused
    /// (`Error unavailable`: the agent retries later).
    pub max_connections: usize,
    /// Connections whose TLS handshake and Hello are not done yet, in all;
    /// more are closed at once.
    pub max_unauthenticated: usize,
    /// The same, from one IP address.
    pub max_unauthenticated_per_address: usize,
    /// A connection silent this long is closed (agents ping more often).
    #[serde(deserialize_with = "serde_units::duration")]
    pub idle_timeout: Duration,
    /// The TLS handshake and the Hello must be done within this time (one
    /// deadline, however slowly bytes arrive).
    #[serde(deserialize_with = "serde_units::duration")]
    pub handshake_timeout: Duration,
    /// Size at which a chain's store segment is rotated.
    #[serde(deserialize_with = "serde_units::size")]
    pub segment_size: u64,
    /// Refused batches kept in quarantine per host, in bytes; beyond it they
    /// are refused without being kept (and an alert says so).
    #[serde(deserialize_with = "serde_units::size")]
    pub quarantine_per_host: u64,
    /// The same, for all hosts together.
    #[serde(deserialize_with = "serde_units::size")]
    pub quarantine_total: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: u64::from(crate::transport::proto::DEFAULT_MAX_FRAME),
            max_connections: 1024,
            max_unauthenticated: 64,
            max_unauthenticated_per_address: 8,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            segment_size: 256 << 20,
            quarantine_per_host: 64 << 20,
            quarantine_total: 1 << 30,
        }
    }
}

/// Peer collectors whose checkpoints this one fetches and records in its
/// own checkpoint log (docs/FORMAT.md §7.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// How often each peer is asked for its newest checkpoint.
    #[serde(deserialize_with = "serde_units::duration")]
    pub every: Duration,
    /// The peers.
    #[serde(rename = "peer")]
    pub peers: Vec<WitnessPeer>,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            every: Duration::from_secs(60),
            peers: Vec::new(),
        }
    }
}

/// Most peers one collector witnesses.
pub const MAX_PEERS: usize = 64;

/// A peer collector to witness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessPeer {
    /// Where it listens for agents, `HOST:PORT`.
    pub address: String,
    /// Its name: the name its certificate must be valid for, and the
    /// collector its checkpoint log names.
    pub name: String,
    /// Its checkpoint log's genesis key fingerprint (`SHA256:` and 32
    /// lowercase hex digits, as `logseal checkpoint` prints it); a block
    /// from another log is refused. Absent: any log of that name.
    #[serde(default)]
    pub genesis: Option<String>,
}

/// Liveness of hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Liveness {
    /// The agents' heartbeat (their `chain.heartbeat`).
    #[serde(deserialize_with = "serde_units::duration")]
    pub heartbeat: Duration,
    /// A host with no seal for this many heartbeats is reported silent.
    pub silent_after: u32,
    /// How often `STORE/status.json` is rewritten and silence checked.
    #[serde(deserialize_with = "serde_units::duration")]
    pub status_interval: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_secs(60),
            silent_after: 3,
            status_interval: Duration::from_secs(10),
        }
    }
}

impl CollectorConfig {
    /// Parses a configuration file; errors name the key and line.
    pub fn load(path: &Path) -> Result<CollectorConfig, ConfigError> {
        let mut cfg = Self::parse(&crate::storage::fsutil::read_config(path)?, path)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses and checks a configuration's text; errors name the key and line.
    pub fn parse(text: &str, path: &Path) -> Result<CollectorConfig, ConfigError> {
        let cfg: CollectorConfig = ConfigError::parse(text, path)?;
        cfg.check().map_err(ConfigError::value(path))?;
        Ok(cfg)
    }

    /// The settings of `other` that differ from this one's, by name.
    pub fn changed(&self, other: &CollectorConfig) -> Vec<&'static str> {
        crate::util::units::changed_settings!(self, other, {
            "name": name, "listen": listen, "store": store, "log_level": log_level,
            "[tls] paths": tls, "[enrollment]": enrollment, "[limits]": limits,
            "[liveness]": liveness, "[metrics]": metrics, "[witness]": witness,
            "[jetstream]": jetstream,
        })
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), ValueError> {
        let l = &self.limits;
        size_in_range("limits.max_frame", l.max_frame, 1 << 16, 1 << 30)?;
        in_range(
            "limits.max_connections",
            l.max_connections as u64,
            1,
            1 << 20,
        )?;
        in_range(
            "limits.max_unauthenticated",
            l.max_unauthenticated as u64,
            1,
            1 << 20,
        )?;
        in_range(
            "limits.max_unauthenticated_per_address",
            l.max_unauthenticated_per_address as u64,
            1,
            1 << 20,
        )?;
        size_in_range("limits.segment_size", l.segment_size, 4096, 1 << 30)?;
        size_in_range(
            "limits.quarantine_per_host",
            l.quarantine_per_host,
            0,
            1 << 40,
        )?;
        size_in_range("limits.quarantine_total", l.quarantine_total, 0, 1 << 44)?;
        let (ms, s) = (Duration::from_millis, Duration::from_secs);
        let live = &self.liveness;
        durations_in_range(&[
            ("limits.idle_timeout", l.idle_timeout, s(1), s(24 * 3600)),
            (
                "limits.handshake_timeout",
                l.handshake_timeout,
                ms(100),
                s(600),
            ),
            ("liveness.heartbeat", live.heartbeat, s(1), s(3600)),
            (
                "liveness.status_interval",
                live.status_interval,
                ms(100),
                s(3600),
            ),
        ])?;
        self.witness.check()?;
        if let Some(j) = &self.jetstream {
            j.check().map_err(|e| match e {
                crate::storage::jetstream::JetStreamConfigError::Value { key, problem } => {
                    ValueError::refused(key, problem)
                }
                other => ValueError::refused("jetstream", other.to_string()),
            })?;
        }
        // heartbeat × silent_after is when a host is called silent.
        in_range("liveness.silent_after", live.silent_after.into(), 1, 1000)?;
        if self.enrollment.mode == EnrollmentMode::Strict && self.enrollment.enrolled.is_none() {
            return Err(ValueError::refused(
                "enrollment.mode = \"strict\"",
                "needs enrollment.enrolled (a file)",
            ));
        }
        // The files themselves are checked by `collector::check_files`
        // (--check-config: all at once) and at start.
        Ok(())
    }
}

impl WitnessConfig {
    fn check(&self) -> Result<(), ValueError> {
        let s = Duration::from_secs;
        durations_in_range(&[("witness.every", self.every, s(1), s(24 * 3600))])?;
        in_range(
            "witness.peer (count)",
            self.peers.len() as u64,
            0,
            MAX_PEERS as u64,
        )?;
        for p in &self.peers {
            if let Err(e) = crate::chain::hostname::check(&p.name) {
                return Err(ValueError::refused("witness.peer.name", e.to_string()));
            }
            if !p
                .address
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
            {
                return Err(ValueError::refused(
                    "witness.peer.address",
                    format!("{:?} is not HOST:PORT", p.address),
                ));
            }
            if let Some(g) = &p.genesis {
                let ok = g.strip_prefix("SHA256:").is_some_and(|h| {
                    h.len() == 32
                        && h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if !ok {
                    return Err(ValueError::refused(
                        "witness.peer.genesis",
                        format!("{g:?} is not SHA256: and 32 lowercase hex digits"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Reads an enrolled-hosts file: trust anchors, `HOST KEY` per line, as
/// `logseal agent --print-genesis` prints them (docs/FORMAT.md §4.1; older
/// `HOST SHA256:FINGERPRINT` lines are accepted too).
pub fn read_enrolled(path: &Path) -> Result<crate::chain::trust::TrustAnchors, ConfigError> {
    use crate::chain::trust::{TrustAnchors, MAX_TRUST_FILE};
    let text = crate::storage::fsutil::read_bounded_text(path, MAX_TRUST_FILE)
        .map_err(ConfigError::io(path))?;
    TrustAnchors::parse(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(witness: &str) -> Result<CollectorConfig, ConfigError> {
        let text = format!("{witness}\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n");
        CollectorConfig::parse(&text, Path::new("collector.toml"))
    }

    #[test]
    fn a_witness_peer_is_checked_at_load_naming_the_key() {
        let peer = |address: &str, name: &str, genesis: &str| {
            format!("[witness]\n[[witness.peer]]\naddress = \"{address}\"\nname = \"{name}\"\n{genesis}")
        };
        let ok = parse(&peer("10.0.0.2:6514", "collector-b", "")).unwrap();
        assert_eq!(ok.witness.peers[0].name, "collector-b");
        assert_eq!(ok.witness.every, Duration::from_secs(60));
        let pin = format!("genesis = \"SHA256:{}\"", "0a".repeat(16));
        assert!(parse(&peer("b.example:6514", "b.example", &pin)).is_ok());
        for (bad, key) in [
            (peer("10.0.0.2", "collector-b", ""), "witness.peer.address"),
            (peer(":6514", "collector-b", ""), "witness.peer.address"),
            (peer("b:99999", "collector-b", ""), "witness.peer.address"),
            (peer("b:6514", "Collector_B", ""), "witness.peer.name"),
            (
                peer("b:6514", "b", "genesis = \"SHA256:0A\""),
                "witness.peer.genesis",
            ),
            (
                peer(
                    "b:6514",
                    "b",
                    &format!("genesis = \"SHA256:{}\"", "0A".repeat(16)),
                ),
                "witness.peer.genesis",
            ),
            ("[witness]\nevery = \"10ms\"".into(), "witness.every"),
            (
                format!(
                    "[witness]\n{}",
                    "[[witness.peer]]\naddress = \"b:1\"\nname = \"b\"\n".repeat(65)
                ),
                "witness.peer",
            ),
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert!(parse("[witness]\nevry = \"1s\"").is_err());
    }
}
