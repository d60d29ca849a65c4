//! `logseal agent`: checks a configuration, prints the Genesis, or runs the
//! agent (from a configuration file, or a quick run from the options).

use crate::agent::config::{AgentConfig, Input};
use crate::cmd::logging::{self, LogArgs};
use crate::ingest::journal::config::{JournalSource, JournaldConfig};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `logseal agent`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Configuration file (see config/agent.toml).
    #[arg(long, conflicts_with_all = ["listen", "journal", "check_config"])]
    pub config: Option<PathBuf>,
    /// Validate a configuration file and exit (0 valid, 2 invalid).
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// Quick run without a file: inputs as URLs (udp://ADDR, tcp://ADDR,
    /// unix-dgram:///PATH, unix-stream:///PATH); repeatable. Needs --state.
    #[arg(long, value_name = "URL", requires = "state")]
    pub listen: Vec<String>,
    /// Quick run: chain the journal too — `system`, `namespace:NAME`, or a
    /// directory of journal files. Needs --state.
    #[arg(long, value_name = "system|DIR", requires = "state")]
    pub journal: Option<String>,
    /// With --journal: stop cleanly once the end of the journal is reached
    /// (chain a set of journal files, then exit).
    #[arg(long, requires = "journal")]
    pub stop_at_journal_end: bool,
    /// State directory for a quick run (signer state and spool).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Host name for a quick run's new chain.
    #[arg(long)]
    pub host: Option<String>,
    /// Print the host, chain and genesis-key fingerprint of the chain in the
    /// state directory (for a collector's strict enrollment) and exit.
    #[arg(long)]
    pub print_genesis: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub log: LogArgs,
}

/// Runs `logseal agent`.
pub fn run(a: AgentArgs) -> anyhow::Result<ExitCode> {
    if a.print_genesis {
        return print_genesis(a.config, a.state);
    }
    if let Some(path) = a.check_config {
        return check_config(&path);
    }
    let cfg = match (a.config, a.state) {
        (Some(path), _) => AgentConfig::load(&path)?,
        (None, Some(state)) => quick_config(
            state,
            a.host,
            &a.listen,
            a.journal.map(|j| (j, a.stop_at_journal_end)),
        )?,
        (None, None) => bail!(
            "give --config FILE, or --listen URL... and/or --journal system|DIR with --state DIR"
        ),
    };
    if cfg.inputs.is_empty() && cfg.journald.is_none() {
        bail!("no inputs configured: add [[input]] tables, a [journald] table, --listen URLs or --journal");
    }
    logging::init(cfg.log_level, &a.log)?;
    crate::agent::run(cfg)?;
    Ok(ExitCode::SUCCESS)
}

/// `--check-config FILE`: exit 0 valid, 2 invalid (every error listed).
fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig::load(path)?;
    let errors = crate::agent::check_files(&cfg);
    if !errors.is_empty() {
        bail!("{}:\n  {}", path.display(), errors.join("\n  "));
    }
    let journal = match &cfg.journald {
        Some(j) => format!(", journal {}", j.journal),
        None => String::new(),
    };
    println!(
        "{}: valid ({} input(s){journal}, state in {})",
        path.display(),
        cfg.inputs.len(),
        cfg.state_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A quick run's configuration: the defaults, the state directory, the
/// inputs as URLs and the journal from the options.
fn quick_config(
    state: PathBuf,
    host: Option<String>,
    listen: &[String],
    journal: Option<(String, bool)>,
) -> anyhow::Result<AgentConfig> {
    let mut cfg = AgentConfig::parse("", std::path::Path::new("(defaults)"))?;
    cfg.state_dir = state;
    cfg.host = crate::chain::hostname::canonical(&host.unwrap_or_default());
    if !cfg.host.is_empty() {
        crate::chain::hostname::check(&cfg.host).map_err(|e| anyhow::anyhow!("--host: {e}"))?;
    }
    for url in listen {
        cfg.inputs.push(Input::from_url(url)?);
    }
    if let Some((j, stop_at_end)) = journal {
        cfg.journald = Some(JournaldConfig {
            journal: JournalSource::from_arg(&j).context("--journal")?,
            stop_at_end,
            ..JournaldConfig::default()
        });
    }
    cfg.check()?;
    Ok(cfg)
}

/// `--print-genesis`: the trust-anchor line of the chain in the state directory.
fn print_genesis(config: Option<PathBuf>, state: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = match (config, state) {
        (Some(c), _) => AgentConfig::load(&c)?.state_dir,
        (None, Some(s)) => s,
        (None, None) => bail!("--print-genesis needs --config FILE or --state DIR"),
    };
    print_anchor(
        &dir,
        "it goes into a collector's enrolled file and `logseal verify --trust-file`",
    )
}

/// Prints the trust-anchor line of the chain kept in `dir` (stdout), and its
/// chain and fingerprint (stderr), saying where the line goes.
pub(crate) fn print_anchor(dir: &std::path::Path, goes: &str) -> anyhow::Result<ExitCode> {
    let (chain, host, pk0) = crate::storage::writer::read_anchor(dir)?;
    println!("{}", crate::chain::trust::line(&host, &pk0));
    eprintln!(
        "chain {chain}, genesis key fingerprint {} (the line above is a trust anchor: {goes})",
        crate::chain::hash::fingerprint(&pk0)
    );
    Ok(ExitCode::SUCCESS)
}
