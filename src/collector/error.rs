//! Why a collector could not start. Every message names the file, key or
//! address concerned.

use crate::transport::crl::CrlError;
use crate::transport::tls::TlsError;
use crate::util::config::ConfigError;
use std::path::PathBuf;

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
        listen: crate::util::config::ListenAddr,
        /// Why (shown in the message, not chained again after it).
        cause: std::io::Error,
    },
    /// The checkpoint log's Genesis could not be read back.
    #[error("checkpoint log: {0}")]
    CheckpointGenesis(#[from] crate::storage::signer::StateError),
    /// The checkpoint log (`STORE/checkpoints/`) could not be opened.
    #[error("checkpoint log: {0}")]
    CheckpointLog(crate::storage::writer::WriterError),
    /// The certificate, key, CA or CRL (`[tls]`), or the CRL floor the store
    /// keeps.
    #[error("{cause}{}", if *.against_floor { FLOOR_HINT } else { "" })]
    Tls {
        /// Why.
        cause: TlsLoadError,
        /// Whether a CRL was compared with the floor the store keeps.
        against_floor: bool,
    },
    /// The client configuration for witnessing peers (`[witness]`, with
    /// the `[tls]` certificate: it needs the clientAuth usage too).
    #[error("[witness] with the [tls] certificate: {0}")]
    WitnessTls(TlsError),
    /// The JetStream stream (`[jetstream]`) could not be reached or used.
    #[error("[jetstream]: {0}")]
    JetStream(#[from] crate::storage::jetstream::JetStreamError),
}

const FLOOR_HINT: &str = " (compared with the CRLs this store's collector used before, in \
     crl-floor.json; delete that file to accept an older CRL on purpose)";

/// Why the collector's TLS files (`[tls]`) could not become its
/// configuration, at start or at a reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsLoadError {
    /// The client CA, read for checking the CRL.
    #[error("tls.ca: {0}")]
    Ca(TlsError),
    /// The CRL file.
    #[error("tls.crl: {0}")]
    Crl(CrlError),
    /// The CRL file is older than the lists in use.
    #[error("tls.crl: {path}: {cause}")]
    CrlRollback {
        /// The file.
        path: PathBuf,
        /// Which list, and how much older.
        cause: CrlError,
    },
    /// The certificate, key or CA.
    #[error(transparent)]
    Server(TlsError),
    /// `STORE/crl-floor.json` does not parse.
    #[error(
        "{path}: {cause} (it records how recent the CRLs in use were; delete it to accept \
         any CRL the CA signed)"
    )]
    Floor {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: CrlError,
    },
    /// `STORE/crl-floor.json` is unreadable.
    #[error("{path}: {cause}")]
    FloorRead {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}
