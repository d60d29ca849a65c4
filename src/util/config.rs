//! What the agent's and the collector's config files share.

use std::path::PathBuf;

/// Largest configuration file read.
pub const MAX_CONFIG: u64 = 1 << 20;

/// Checks a `log_level` value (agent and collector configs).
pub fn check_log_level(level: &str) -> Result<(), String> {
    if matches!(level, "error" | "warn" | "info" | "debug" | "trace") {
        Ok(())
    } else {
        Err(format!(
            "log_level {level:?}: use error, warn, info, debug or trace"
        ))
    }
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
    /// Not valid (syntax, unknown key, bad value); the message names the line.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What and where.
        message: String,
    },
}
