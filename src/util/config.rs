//! What the agent's and the collector's config files share.

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
