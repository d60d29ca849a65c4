//! The collector's configuration file (`config/collector.toml` documents every key).

use crate::units::serde_units;
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
    pub listen: String,
    /// Store directory.
    #[serde(default = "d_store")]
    pub store: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "d_log")]
    pub log_level: String,
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
}

fn d_listen() -> String {
    "0.0.0.0:6514".into()
}
fn d_store() -> PathBuf {
    PathBuf::from("/var/lib/logseal/store")
}
fn d_log() -> String {
    "info".into()
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
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted from an agent.
    #[serde(default = "d_frame", deserialize_with = "serde_units::size")]
    pub max_frame: u64,
    /// Agent connections served at once; more are closed at once.
    #[serde(default = "d_conns")]
    pub max_connections: usize,
    /// A connection silent this long is closed (agents ping more often).
    #[serde(default = "d_idle", deserialize_with = "serde_units::duration")]
    pub idle_timeout: Duration,
    /// A TLS handshake must finish within this time.
    #[serde(default = "d_hs", deserialize_with = "serde_units::duration")]
    pub handshake_timeout: Duration,
    /// Size at which a chain's store segment is rotated.
    #[serde(default = "d_seg", deserialize_with = "serde_units::size")]
    pub segment_size: u64,
}

fn d_frame() -> u64 {
    u64::from(crate::transport::proto::DEFAULT_MAX_FRAME)
}
fn d_conns() -> usize {
    1024
}
fn d_idle() -> Duration {
    Duration::from_secs(300)
}
fn d_hs() -> Duration {
    Duration::from_secs(10)
}
fn d_seg() -> u64 {
    256 << 20
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: d_frame(),
            max_connections: d_conns(),
            idle_timeout: d_idle(),
            handshake_timeout: d_hs(),
            segment_size: d_seg(),
        }
    }
}

/// Liveness of hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// The agents' heartbeat (their `chain.heartbeat`).
    #[serde(default = "d_hb", deserialize_with = "serde_units::duration")]
    pub heartbeat: Duration,
    /// A host with no seal for this many heartbeats is reported silent.
    #[serde(default = "d_silent")]
    pub silent_after: u32,
    /// How often `STORE/status.json` is rewritten and silence checked.
    #[serde(default = "d_status", deserialize_with = "serde_units::duration")]
    pub status_interval: Duration,
}

fn d_hb() -> Duration {
    Duration::from_secs(60)
}
fn d_silent() -> u32 {
    3
}
fn d_status() -> Duration {
    Duration::from_secs(10)
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: d_hb(),
            silent_after: d_silent(),
            status_interval: d_status(),
        }
    }
}

impl CollectorConfig {
    /// Parses a configuration file; errors name the key and line.
    pub fn load(path: &Path) -> anyhow::Result<CollectorConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let cfg: CollectorConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        cfg.check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        crate::agent::config::check_log_level(&self.log_level)?;
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("listen = {:?}: {e}", self.listen))?;
        if self.limits.max_frame < 1 << 16 || self.limits.max_frame > 1 << 30 {
            return Err("limits.max_frame must be between 64KiB and 1GiB".into());
        }
        if self.enrollment.mode == EnrollmentMode::Strict && self.enrollment.enrolled.is_none() {
            return Err("enrollment.mode = \"strict\" needs enrollment.enrolled (a file)".into());
        }
        // Opened, not just looked for: "permission denied" is not "no such file".
        for (k, p) in [
            ("tls.ca", Some(&self.tls.ca)),
            ("tls.cert", Some(&self.tls.cert)),
            ("tls.key", Some(&self.tls.key)),
            ("tls.crl", self.tls.crl.as_ref()),
        ] {
            if let Some(p) = p {
                crate::fsutil::open_regular(p)
                    .map_err(|e| format!("{k} = {:?}: {e}", p.display()))?;
            }
        }
        Ok(())
    }
}

/// Reads an enrolled-hosts file: trust anchors, `HOST KEY` per line, as
/// `logseal agent --print-genesis` prints them (docs/FORMAT.md §4.1; older
/// `HOST SHA256:FINGERPRINT` lines are accepted too).
pub fn read_enrolled(path: &Path) -> anyhow::Result<crate::chain::trust::TrustAnchors> {
    use crate::chain::trust::{TrustAnchors, MAX_TRUST_FILE};
    let text = crate::fsutil::read_bounded_text(path, MAX_TRUST_FILE)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    TrustAnchors::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
