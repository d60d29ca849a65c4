//! The `logseal` command line: parses and dispatches to [`logseal::cmd`].

use clap::{CommandFactory, Parser, Subcommand};
use logseal::cmd;
use std::path::PathBuf;
use std::process::ExitCode;

/// The version, and whether the journald input is built in (a packaged
/// binary must say it is: its default config reads the journal).
#[cfg(feature = "journald")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (journald input built in)");
#[cfg(not(feature = "journald"))]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (without the journald input: cargo feature \"journald\")"
);

#[derive(Parser)]
#[command(
    name = "logseal",
    version = VERSION,
    about = "Tamper-evident logs: hash chains sealed with forward-secure keys"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Chain newline-delimited messages from stdin into a segment file.
    Stamp(cmd::stamp::StampArgs),
    /// Verify segment files or directories of them. Exit 0: every chain intact
    /// (or pending with --live); 1: a chain is broken or unanchored, or
    /// something outside the chains was found; 2: usage or I/O error.
    Verify(cmd::verify::VerifyArgs),
    /// Print the records of segment files, readable.
    Inspect(cmd::inspect::InspectArgs),
    /// Print the newest seal of a store's checkpoint log as a block to keep
    /// outside the collector's reach; `logseal verify STORE --checkpoint FILE`
    /// later proves the store's log still holds it (not cut or rewritten).
    /// Exit 1 if the log cannot be witnessed (missing, not believed, no seal).
    Checkpoint(cmd::checkpoint::CheckpointArgs),
    /// Run the agent: syslog inputs chained into a local spool and shipped to collectors.
    ///
    /// Signals: SIGTERM or SIGINT stop it (inputs closed, a `shutdown` record
    /// and a final seal, exit 0); SIGHUP loads the certificates and keys of the
    /// TLS inputs and of [ship] again (other settings need a restart). One
    /// agent per state directory: a second one exits 2 naming the first's PID.
    /// A start that fails (a port in use, a missing certificate, a bad journal)
    /// exits 2 before the chain is touched.
    Agent(cmd::agent::AgentArgs),
    /// Run a collector: receive, verify and store agents' chains over mutual TLS.
    ///
    /// Signals: SIGTERM or SIGINT stop it (open sessions finish, exit 0);
    /// SIGHUP loads the certificate, key, CA and CRL again. The CRL file is
    /// also looked at every second; a CRL that is unreadable, holds no CRL, is
    /// not signed by the CA or is older than the one in use is refused at start
    /// and, on reload, keeps the one in use (an alert says so); sessions of
    /// certificates a new CRL revokes are ended. One collector per store.
    Collector(cmd::collector::CollectorArgs),
    /// Is this agent or collector sealing and shipping? A short summary (or
    /// --json) read from the status file the process keeps (every 5 s for an
    /// agent, every status_interval for a collector, and once at its stop):
    /// it works while the process runs and after it stopped.
    ///
    /// Exit status as a Nagios plugin's: 0 OK, 1 WARNING (no collector, a
    /// backlog older than 15 minutes, a spool 80 % full, batches quarantined),
    /// 2 CRITICAL (not running, a seal older than twice the heartbeat, a full
    /// spool, a silent host, a damaged chain), 3 UNKNOWN (no status to read).
    Status(cmd::status::StatusArgs),
    /// Try it: a local CA, a collector and an agent on loopback; Ctrl-C stops
    /// them and verifies the store.
    Quickstart(cmd::quickstart::QuickstartArgs),
    /// A small certificate authority for agents and collectors (mutual TLS).
    ///
    /// Rotation. The agent and the collector warn in their log, their metrics
    /// and `logseal status` 30 days before a certificate they use expires.
    /// To renew one (nothing is ever overwritten, so move the old files aside):
    ///
    ///   mv D/HOST.crt D/HOST.crt.old; mv D/HOST.key D/HOST.key.old
    ///   logseal pki issue --dir D --name HOST --role agent   (or collector, with its --san)
    ///
    /// install the new HOST.crt and HOST.key where the old ones were, and
    /// `systemctl reload logseal-agent` (or logseal-collector): SIGHUP loads
    /// them, and the next connection uses them. The old certificate stays
    /// valid until it expires. If a key may be compromised, first
    /// `logseal pki revoke --dir D --name HOST` (every certificate of HOST so
    /// far; collectors read the new crl.pem within a second), then issue as
    /// above. `logseal pki crl --dir D` re-signs the CRL for 30 days: run it
    /// from cron well within that, and copy crl.pem to the collectors.
    /// Replacing the CA itself is not automated.
    #[command(subcommand)]
    Pki(cmd::pki::PkiCmd),
    /// A store kept on NATS JetStream (`[jetstream]` of the collector).
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// Write man pages (logseal.1 and one per command) into a directory.
    #[command(hide = true)]
    Man {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the format test vectors (for docs/FORMAT.md and crates/logseal-core/tests/vectors).
    #[command(hide = true)]
    GenVectors {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    cmd::quickstart::die_with_parent();
    let result = match Cli::parse().cmd {
        Cmd::Stamp(a) => cmd::stamp::run(a).map(|()| ExitCode::SUCCESS),
        Cmd::Verify(a) => cmd::verify::run(a),
        Cmd::Inspect(a) => cmd::inspect::run(a),
        Cmd::Checkpoint(a) => cmd::checkpoint::run(a),
        Cmd::Pki(c) => cmd::pki::run(c).map(|()| ExitCode::SUCCESS),
        Cmd::Man { out } => cmd::man::write(Cli::command(), &out).map(|()| ExitCode::SUCCESS),
        Cmd::GenVectors { out } => cmd::vectors::write(out).map(|()| ExitCode::SUCCESS),
        Cmd::Agent(a) => cmd::agent::run(a),
        Cmd::Collector(a) => cmd::collector::run(a),
        Cmd::Quickstart(a) => cmd::quickstart::run(&a.dir, &a.syslog_addr),
        Cmd::Status(a) => cmd::status::run(a),
        Cmd::Store(c) => cmd::store::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Control characters from paths or data (escape sequences, CR) are
            // shown escaped, never sent raw to the terminal; line breaks stay
            // (a config error shows its line and a caret under it).
            let msg = format!("{e:#}");
            let shown: String = msg
                .split('\n')
                .map(logseal::chain::describe::safe)
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("logseal: error: {shown}");
            ExitCode::from(2)
        }
    }
}
