//! Why the agent could not start, or stopped with an error. Every message
//! names the input, file or thread concerned.

use crate::storage::writer::WriterError;
use crate::transport::tls::TlsError;

/// Why the agent could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// An operating-system call failed; the message says what and on what.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An input could not be bound (its URL: `udp://ADDR`, `unix-dgram://PATH`…).
    #[error("binding {url}: {cause}")]
    Bind {
        /// The input.
        url: String,
        /// Why (shown in the message, not chained again after it).
        cause: std::io::Error,
    },
    /// A certificate or key of a TLS input or of `[ship]`.
    #[error("{what}: {cause}")]
    Tls {
        /// `input tls://ADDR` or `[ship]`.
        what: String,
        /// Which file and why (boxed: a TLS error is large).
        cause: Box<TlsError>,
    },
    /// The chain could not be opened, written or sealed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The configuration asks for what this start cannot give (a socket path
    /// in use, a journal this build cannot read).
    #[error("{0}")]
    Refused(String),
    /// The stamper thread panicked.
    #[error("the stamper thread panicked")]
    StamperPanicked,
    /// Another thread panicked; the agent stopped and sealed its chain.
    #[error(
        "{0}; the agent stopped and sealed its chain (a bug: please report it; a restart \
         resumes the chain)"
    )]
    Panicked(String),
}

/// A bind failure of the input `url`.
pub(crate) fn bind_error(url: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> AgentError {
    move |cause| AgentError::Bind {
        url: url.to_string(),
        cause,
    }
}
