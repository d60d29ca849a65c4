//! The host this process runs on.

/// The system's host name (`uname -n`), in canonical form (lower case, no
/// trailing dot; see [`crate::chain::hostname`]).
pub fn system_host() -> String {
    crate::chain::hostname::canonical(&rustix::system::uname().nodename().to_string_lossy())
}
