//! `logseal status`: a Nagios-style verdict on an agent or a collector.

use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `logseal status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The agent's or the collector's configuration file (which one is
    /// told by its keys) [default: /etc/logseal/agent.toml].
    #[arg(long, conflicts_with_all = ["state", "store"])]
    pub config: Option<PathBuf>,
    /// An agent's state directory.
    #[arg(long, conflicts_with = "store")]
    pub state: Option<PathBuf>,
    /// A collector's store.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// The verdict and the status file as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `logseal status`: which process to look at, from the options.
pub fn run(a: StatusArgs) -> anyhow::Result<ExitCode> {
    use crate::monitor::status::Target;
    let target = match (a.config, a.state, a.store) {
        (_, Some(dir), _) => Target::Agent(dir),
        (_, _, Some(dir)) => Target::Collector(dir),
        (config, None, None) => {
            let path = config.unwrap_or_else(|| PathBuf::from("/etc/logseal/agent.toml"));
            match crate::agent::config::AgentConfig::load(&path) {
                Ok(c) => Target::Agent(c.state_dir),
                Err(agent_err) => match crate::collector::config::CollectorConfig::load(&path) {
                    Ok(c) => Target::Collector(c.store),
                    Err(collector_err) => {
                        eprintln!(
                            "logseal status: {} is neither an agent's nor a collector's configuration:
                               as an agent's: {agent_err:#}
  as a collector's: {collector_err:#}",
                            path.display()
                        );
                        return Ok(ExitCode::from(3));
                    }
                },
            }
        }
    };
    Ok(crate::monitor::status::run(target, a.json))
}
