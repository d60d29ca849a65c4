//! `logseal collector`: checks a configuration or runs a collector.

use crate::cmd::logging::{self, LogArgs};
use crate::collector::config::CollectorConfig;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `logseal collector`.
#[derive(clap::Args, Debug)]
pub struct CollectorArgs {
    /// Configuration file (see config/collector.toml).
    #[arg(long, required_unless_present_any = ["check_config", "store"])]
    pub config: Option<PathBuf>,
    /// Print the trust-anchor line (`HOST KEY`) of the collector's checkpoint
    /// log and exit (with --config, or --store DIR).
    #[arg(long)]
    pub print_genesis: bool,
    /// The store, for --print-genesis without a configuration.
    #[arg(long, value_name = "DIR", requires = "print_genesis")]
    pub store: Option<PathBuf>,
    /// Validate a configuration file and exit (0 valid, 2 invalid).
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub log: LogArgs,
}

/// Runs `logseal collector`, or checks its configuration.
pub fn run(a: CollectorArgs) -> anyhow::Result<ExitCode> {
    if a.print_genesis {
        let store = match (a.config, a.store) {
            (_, Some(s)) => s,
            (Some(c), None) => CollectorConfig::load(&c)?.store,
            (None, None) => anyhow::bail!("--print-genesis needs --config FILE or --store DIR"),
        };
        return crate::cmd::agent::print_anchor(
            &crate::collector::checkpoints::state_dir(&store),
            "it pins the collector's checkpoint log for `logseal verify --trust-file`",
        );
    }
    if let Some(path) = a.check_config {
        let cfg = CollectorConfig::load(&path)?;
        let found = crate::collector::check_files(&cfg);
        for w in &found.warnings {
            eprintln!("{}: warning: {w}", path.display());
        }
        if !found.errors.is_empty() {
            anyhow::bail!("{}:\n  {}", path.display(), found.errors.join("\n  "));
        }
        println!(
            "{}: valid (listen {}, store {})",
            path.display(),
            cfg.listen,
            cfg.store.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let path = a.config.context("--config FILE is required")?;
    let cfg = CollectorConfig::load(&path)?;
    logging::init(cfg.log_level, &a.log)?;
    crate::collector::run(cfg)?;
    Ok(ExitCode::SUCCESS)
}
