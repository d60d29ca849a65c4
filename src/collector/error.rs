//! Why a collector could not start. Every message names the file, key or
//! address concerned.

use crate::util::config::ConfigError;

/// Why a collector could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectorError {
    /// An operating-system call failed; the message says what and on what.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The enrolled-hosts file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening address could not be bound.
    #[error("binding {listen}: {cause}")]
    Bind {
        /// `listen` of the configuration.
        listen: String,
        /// Why (shown in the message, not chained again after it).
        cause: std::io::Error,
    },
    /// The certificate, key, CA or CRL (`[tls]`), or the CRL floor the store
    /// keeps.
    #[error("{0}")]
    Tls(String),
}
