//! Logging of the long-running commands (`agent`, `collector`): level and
//! format from the command line or the configuration.

/// Log options of the long-running commands.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log level (error, warn, info, debug, trace); overrides `log_level` of
    /// the configuration file.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<crate::util::config::LogLevel>,
    /// Log lines on stderr as text, or as one JSON object per line (for a log
    /// shipper; control characters in fields are escaped either way).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // a doc comment would become clap's help of the value
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up logging to stderr: the level from `--log-level`, else the
/// configuration's (both parsed already), in the format asked for.
pub fn init(config_level: crate::util::config::LogLevel, log: &LogArgs) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = log.log_level.unwrap_or(config_level).tracing();
    // The NATS client's own lines (every PING and request at debug) only
    // from warnings up: logseal logs what it does with the stream itself.
    let quiet = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("async_nats", tracing::Level::WARN);
    let fmt = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    match log.log_format {
        LogFormat::Text => fmt.finish().with(quiet).init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(quiet)
            .init(),
    }
    Ok(())
}
