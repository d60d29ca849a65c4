//! The `logseal` command line.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use logseal::chain::record::Source;
use logseal::responder::{report, verify_files};
use logseal::storage::writer::{ChainWriter, Opened};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    Stamp {
        /// State directory (signer key and resume point). Keep it private.
        #[arg(long)]
        state: PathBuf,
        /// Segment file to append to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Host name for a new chain (default: this machine's name).
        #[arg(long)]
        host: Option<String>,
        /// Seal after every N events (0: only by interval and at EOF).
        #[arg(long, default_value_t = 0)]
        seal_every: u64,
        /// Seal at most this long after the first unsealed event (e.g. 500ms, 1s, 2m).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        seal_interval: Duration,
        /// Lines longer than this many bytes are truncated (and flagged) when chained.
        #[arg(long, default_value_t = 1 << 20)]
        max_line: usize,
    },
    /// Verify segment files or directories of them. Exit 0: every chain intact
    /// (or pending with --live); 1: a chain is broken or unanchored, or
    /// something outside the chains was found; 2: usage or I/O error.
    Verify {
        /// Segment files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// A trusted genesis key bound to its host, `HOST=KEY` (KEY: 64 hex
        /// digits, as `logseal agent --print-genesis` prints); repeatable.
        #[arg(long = "trust-key", value_name = "HOST=KEY")]
        trust_key: Vec<String>,
        /// File of trust anchors, `HOST KEY` per line (# comments): the lines
        /// `logseal agent --print-genesis` prints, the collector's enrolled file.
        #[arg(long = "trust-file", value_name = "F")]
        trust_file: Option<PathBuf>,
        /// The input is live (a running agent's spool or collector's store):
        /// records after the newest seal are pending, not a problem, while that
        /// seal is younger than --max-pending-age.
        #[arg(long)]
        live: bool,
        /// With --live: the oldest the newest seal may be for its tail to be
        /// pending (default 3 heartbeats, 180s).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "live")]
        max_pending_age: Option<Duration>,
        /// With --live: judge the tail's age as of this time (ns since the Unix
        /// epoch) instead of the clock (for tests and re-examinations).
        #[arg(long, value_name = "NS", requires = "live", hide = true)]
        now_ns: Option<i64>,
        /// The most memory the verification state may take (default 512MiB;
        /// 64MiB to 1TiB). An input that needs more (very many chains or
        /// seals) is refused with exit 2, never judged in part.
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        max_memory: Option<u64>,
    },
    /// Print the records of segment files, readable.
    Inspect {
        /// Segment files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent: syslog inputs chained into a local spool and shipped to collectors.
    ///
    /// Signals: SIGTERM or SIGINT stop it (inputs closed, a `shutdown` record
    /// and a final seal, exit 0); SIGHUP loads the certificates and keys of the
    /// TLS inputs and of [ship] again (other settings need a restart). One
    /// agent per state directory: a second one exits 2 naming the first's PID.
    /// A start that fails (a port in use, a missing certificate, a bad journal)
    /// exits 2 before the chain is touched.
    Agent {
        /// Configuration file (see config/agent.toml).
        #[arg(long, conflicts_with_all = ["listen", "journal", "check_config"])]
        config: Option<PathBuf>,
        /// Validate a configuration file and exit (0 valid, 2 invalid).
        #[arg(long, value_name = "FILE")]
        check_config: Option<PathBuf>,
        /// Quick run without a file: inputs as URLs (udp://ADDR, tcp://ADDR,
        /// unix-dgram:///PATH, unix-stream:///PATH); repeatable. Needs --state.
        #[arg(long, value_name = "URL", requires = "state")]
        listen: Vec<String>,
        /// Quick run: chain the journal too — `system`, `namespace:NAME`, or a
        /// directory of journal files. Needs --state.
        #[arg(long, value_name = "system|DIR", requires = "state")]
        journal: Option<String>,
        /// With --journal: stop cleanly once the end of the journal is reached
        /// (chain a set of journal files, then exit).
        #[arg(long, requires = "journal")]
        stop_at_journal_end: bool,
        /// State directory for a quick run (signer state and spool).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Host name for a quick run's new chain.
        #[arg(long)]
        host: Option<String>,
        /// Print the host, chain and genesis-key fingerprint of the chain in the
        /// state directory (for a collector's strict enrollment) and exit.
        #[arg(long)]
        print_genesis: bool,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Run a collector: receive, verify and store agents' chains over mutual TLS.
    ///
    /// Signals: SIGTERM or SIGINT stop it (open sessions finish, exit 0);
    /// SIGHUP loads the certificate, key, CA and CRL again. The CRL file is
    /// also looked at every second; a CRL that is unreadable, holds no CRL, is
    /// not signed by the CA or is older than the one in use is refused at start
    /// and, on reload, keeps the one in use (an alert says so); sessions of
    /// certificates a new CRL revokes are ended. One collector per store.
    Collector {
        /// Configuration file (see config/collector.toml).
        #[arg(long, required_unless_present = "check_config")]
        config: Option<PathBuf>,
        /// Validate a configuration file and exit (0 valid, 2 invalid).
        #[arg(long, value_name = "FILE")]
        check_config: Option<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Is this agent or collector sealing and shipping? A short summary (or
    /// --json) read from the status file the process keeps (every 5 s for an
    /// agent, every status_interval for a collector, and once at its stop):
    /// it works while the process runs and after it stopped.
    ///
    /// Exit status as a Nagios plugin's: 0 OK, 1 WARNING (no collector, a
    /// backlog older than 15 minutes, a spool 80 % full, batches quarantined),
    /// 2 CRITICAL (not running, a seal older than twice the heartbeat, a full
    /// spool, a silent host, a damaged chain), 3 UNKNOWN (no status to read).
    Status {
        /// The agent's or the collector's configuration file (which one is
        /// told by its keys) [default: /etc/logseal/agent.toml].
        #[arg(long, conflicts_with_all = ["state", "store"])]
        config: Option<PathBuf>,
        /// An agent's state directory.
        #[arg(long, conflicts_with = "store")]
        state: Option<PathBuf>,
        /// A collector's store.
        #[arg(long)]
        store: Option<PathBuf>,
        /// The verdict and the status file as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Try it: a local CA, a collector and an agent on loopback; Ctrl-C stops
    /// them and verifies the store.
    Quickstart {
        /// Directory for the CA, the agent's state and the store.
        #[arg(long, default_value = "logseal-quickstart")]
        dir: PathBuf,
        /// Where the agent listens for syslog (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5514")]
        syslog_addr: String,
    },
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
    Pki {
        #[command(subcommand)]
        cmd: PkiCmd,
    },
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

/// Log options of the long-running commands.
#[derive(Args, Debug, Clone)]
struct LogArgs {
    /// Log level (error, warn, info, debug, trace); overrides `log_level` of
    /// the configuration file.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log lines on stderr as text, or as one JSON object per line (for a log
    /// shipper; control characters in fields are escaped either way).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum PkiCmd {
    /// Create a CA (ca.crt, ca.key, an empty crl.pem) in a new directory.
    Init {
        /// The CA directory (created, mode 0700).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "logseal CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = logseal::cmd::pki::CA_DAYS)]
        days: u32,
    },
    /// Issue a key and certificate for a host (NAME.crt, NAME.key).
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Host name: the certificate's subject alternative name. For an agent it
        /// must be the host name its chain carries.
        #[arg(long)]
        name: String,
        /// agent (client certificate) or collector (server certificate).
        #[arg(long, value_enum)]
        role: logseal::cmd::pki::Role,
        /// Further names the certificate is valid for (DNS names or IP
        /// addresses, e.g. the address agents dial); repeatable.
        #[arg(long = "san", value_name = "NAME|IP")]
        san: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = logseal::cmd::pki::HOST_DAYS)]
        days: u32,
    },
    /// Revoke every certificate issued for a host and re-sign crl.pem.
    Revoke {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Host name.
        #[arg(long)]
        name: String,
    },
    /// Re-sign crl.pem (it is valid for 30 days).
    Crl {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn pki(cmd: PkiCmd) -> anyhow::Result<()> {
    use logseal::cmd::pki;
    match cmd {
        PkiCmd::Init { dir, name, days } => {
            let ca = pki::init(&dir, &name, days)?;
            println!("CA certificate: {}", ca.display());
            println!("CRL:            {}", dir.join("crl.pem").display());
            println!("keep {} private", dir.join("ca.key").display());
        }
        PkiCmd::Issue {
            dir,
            name,
            role,
            san,
            days,
        } => {
            let f = pki::issue(&dir, &name, role, days, &san)?;
            println!("certificate: {}", f.cert.display());
            println!("key:         {} (mode 0600)", f.key.display());
            println!("valid until: {}", f.not_after);
        }
        PkiCmd::Revoke { dir, name } => {
            let n = pki::revoke(&dir, &name)?;
            println!(
                "revoked {n} certificate(s) of {name}; CRL: {}",
                dir.join("crl.pem").display()
            );
        }
        PkiCmd::Crl { dir } => {
            println!("CRL: {}", pki::refresh_crl(&dir)?.display());
        }
    }
    Ok(())
}

fn parse_memory(s: &str) -> Result<u64, String> {
    let n = logseal::util::units::parse_size(s)?;
    if !(64 << 20..=1 << 40).contains(&n) {
        return Err(format!("{s}: between 64MiB and 1TiB"));
    }
    Ok(n)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    logseal::util::units::parse_duration(s)
}

fn main() -> ExitCode {
    logseal::cmd::quickstart::die_with_parent();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Stamp {
            state,
            out,
            host,
            seal_every,
            seal_interval,
            max_line,
        } => {
            stamp(state, out, host, seal_every, seal_interval, max_line).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Verify {
            paths,
            json,
            trust_key,
            trust_file,
            live,
            max_pending_age,
            now_ns,
            max_memory,
        } => verify(
            paths,
            json,
            trust_key,
            trust_file,
            max_memory,
            live.then(|| {
                (
                    now_ns.unwrap_or_else(logseal::util::timefmt::now_ns),
                    max_pending_age.unwrap_or(Duration::from_secs(180)),
                )
            }),
        ),
        Cmd::Inspect { paths, json } => inspect(paths, json),
        Cmd::Pki { cmd } => pki(cmd).map(|_| ExitCode::SUCCESS),
        Cmd::Man { out } => man_pages(&out).map(|_| ExitCode::SUCCESS),
        Cmd::GenVectors { out } => gen_vectors(out).map(|_| ExitCode::SUCCESS),
        Cmd::Agent {
            config,
            check_config,
            listen,
            journal,
            stop_at_journal_end,
            state,
            host,
            print_genesis,
            log,
        } => {
            if print_genesis {
                print_genesis_of(config, state)
            } else {
                agent(
                    config,
                    check_config,
                    listen,
                    journal.map(|j| (j, stop_at_journal_end)),
                    state,
                    host,
                    &log,
                )
            }
        }
        Cmd::Collector {
            config,
            check_config,
            log,
        } => collector(config, check_config, &log),
        Cmd::Quickstart { dir, syslog_addr } => logseal::cmd::quickstart::run(&dir, &syslog_addr),
        Cmd::Status {
            config,
            state,
            store,
            json,
        } => status(config, state, store, json),
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

fn stamp(
    state: PathBuf,
    out: PathBuf,
    host: Option<String>,
    seal_every: u64,
    seal_interval: Duration,
    max_line: usize,
) -> anyhow::Result<()> {
    // One owner per state directory: a second process is refused, naming the first.
    let _lock = logseal::storage::fsutil::lock_dir(&state, "state directory")?;
    let host = host.map(|h| logseal::chain::hostname::canonical(&h));
    let (mut w, opened) = ChainWriter::open(&state, &out, host.as_deref())?;
    match &opened {
        Opened::New { origin, note } => eprintln!(
            "logseal stamp: new chain {} for host {} ({}{})",
            w.chain_id(),
            w.host(),
            origin.name(),
            if note.is_empty() {
                String::new()
            } else {
                format!(": {note}")
            }
        ),
        Opened::Resumed {
            after_seq,
            clean,
            torn_bytes,
            rolled_forward,
        } => eprintln!(
            "logseal stamp: continuing chain {} after seq {after_seq} ({}{}{})",
            w.chain_id(),
            if *clean {
                "clean shutdown"
            } else {
                "recovered from an unclean stop"
            },
            if *torn_bytes > 0 {
                format!(", cut {torn_bytes} torn bytes")
            } else {
                String::new()
            },
            if *rolled_forward {
                ", completed an interrupted seal"
            } else {
                ""
            }
        ),
    }
    let first_seq = w.next_seq();

    // A reader thread hands stdin over in large chunks so that the interval
    // seal fires even while stdin is idle.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });

    let mut partial: Vec<u8> = Vec::new();
    let mut partial_len: u64 = 0; // true length of the current line, beyond `max_line`
    let mut events = 0u64;
    let mut seals = 0u64;
    let mut first_unsealed: Option<Instant> = None;
    let mut since_seal = 0u64;
    let chain_line = |w: &mut ChainWriter, line: &[u8], true_len: u64| -> anyhow::Result<()> {
        let t = logseal::util::timefmt::now_ns();
        if true_len > line.len() as u64 {
            w.append_at(
                t,
                logseal::chain::Body::Event {
                    source: Source::Stdin,
                    flags: 0,
                    peer: "",
                    original_len: Some(true_len),
                    payload: logseal::chain::record::Payload::Raw(line),
                },
            )?;
        } else {
            w.append_event(t, Source::Stdin, "", line)?;
        }
        Ok(())
    };
    loop {
        let timeout = match first_unsealed {
            Some(t0) => seal_interval.saturating_sub(t0.elapsed()),
            None => Duration::from_secs(3600),
        };
        let msg = rx.recv_timeout(timeout);
        let chunk = match msg {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => return Err(e).context("reading stdin"),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(chunk) = chunk {
            let mut rest: &[u8] = &chunk;
            while !rest.is_empty() {
                let (piece, complete) = match memchr(b'\n', rest) {
                    Some(i) => (&rest[..i], true),
                    None => (rest, false),
                };
                rest = if complete {
                    &rest[piece.len() + 1..]
                } else {
                    &[]
                };
                partial_len += piece.len() as u64;
                let room = max_line.saturating_sub(partial.len());
                let line: &[u8] = if partial.is_empty() && complete && piece.len() <= max_line {
                    piece // fast path: no copy
                } else {
                    partial.extend_from_slice(&piece[..piece.len().min(room)]);
                    if !complete {
                        continue;
                    }
                    &partial
                };
                chain_line(&mut w, line, partial_len)?;
                partial.clear();
                partial_len = 0;
                events += 1;
                since_seal += 1;
                first_unsealed.get_or_insert_with(Instant::now);
                if seal_every > 0 && since_seal >= seal_every {
                    w.seal()?;
                    seals += 1;
                    since_seal = 0;
                    first_unsealed = None;
                }
            }
        }
        if first_unsealed.is_some_and(|t| t.elapsed() >= seal_interval) {
            w.seal()?;
            seals += 1;
            since_seal = 0;
            first_unsealed = None;
        }
    }
    if partial_len > 0 {
        // A last line without a newline is still an event.
        let line = std::mem::take(&mut partial);
        chain_line(&mut w, &line, partial_len)?;
        events += 1;
    }
    let id = w.chain_id();
    let last = w.shutdown("end of input")?;
    seals += 1;
    eprintln!(
        "logseal stamp: chained {events} event(s) into chain {id} (seq {first_seq}..={last}), {seals} seal(s), clean shutdown"
    );
    Ok(())
}

/// Writes `logseal.1` and `logseal-CMD.1` for every visible command (and
/// `logseal-pki-CMD.1` for the pki commands): clap's NAME, SYNOPSIS (as typed:
/// `logseal agent`), DESCRIPTION and OPTIONS, then the FILES, SIGNALS, EXIT
/// STATUS, EXAMPLES and SEE ALSO sections of [`man_extra`].
fn man_pages(out: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = Cli::command().name("logseal").disable_help_subcommand(true);
    cmd.build();
    let pages: Vec<(String, String)> =
        std::iter::once(("logseal".to_string(), "logseal".to_string()))
            .chain(
                cmd.get_subcommands()
                    .filter(|c| !c.is_hide_set())
                    .flat_map(|sub| {
                        let n = sub.get_name().to_string();
                        std::iter::once((format!("logseal-{n}"), format!("logseal {n}"))).chain(
                            sub.get_subcommands()
                                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                                .map(move |ss| {
                                    (
                                        format!("logseal-{n}-{}", ss.get_name()),
                                        format!("logseal {n} {}", ss.get_name()),
                                    )
                                }),
                        )
                    }),
            )
            .collect();
    let all: Vec<&str> = pages.iter().map(|(f, _)| f.as_str()).collect();
    for (file, typed) in &pages {
        let mut words = typed.split(' ').skip(1);
        let mut c = cmd.clone();
        for w in words.by_ref() {
            let next = c
                .find_subcommand(w)
                .with_context(|| format!("no subcommand {w}"))?
                .clone()
                .disable_help_subcommand(true);
            c = next;
        }
        let c = c.name(file.clone()).bin_name(typed.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .date("2026-11-30")
            .source(concat!("logseal ", env!("CARGO_PKG_VERSION")))
            .manual("logseal manual")
            .render(&mut buf)?;
        // clap lists subcommands as NAME-SUB(1); pages exist for each.
        buf.extend_from_slice(man_extra(file, &all).as_bytes());
        let path = out.join(format!("{file}.1"));
        logseal::storage::fsutil::write_atomic(&path, &buf, "man")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The hand-written sections of a man page (roff), by page.
fn man_extra(page: &str, all: &[&str]) -> String {
    let mut s = String::new();
    let files_agent = ".TP\n/etc/logseal/agent.toml\nThe agent's configuration (every key, commented, with its default).\n\
        .TP\n/var/lib/logseal/agent/\nIts state directory: the signer state, the Genesis copy, the spool, \\fBstatus.json\\fR, the lock.\n\
        .TP\n/etc/logseal/pki/\nCertificates and keys named in [ship] and TLS inputs.\n\
        .TP\n/run/logseal/log.sock\nThe unix socket input of the packaged configuration.\n";
    let files_collector = ".TP\n/etc/logseal/collector.toml\nThe collector's configuration.\n\
        .TP\n/var/lib/logseal/store/\nThe store: hosts/HOST/CHAIN/*.seg, quarantine/, alerts.jsonl, \\fBstatus.json\\fR, crl-floor.json, the lock.\n\
        .TP\n/etc/logseal/pki/\nca.crt, collector.crt, collector.key, crl.pem.\n";
    match page {
        "logseal" => {
            s += ".SH FILES\n";
            s += files_agent;
            s += files_collector;
            s += ".SH EXIT STATUS\n\
                 0: success (\\fBverify\\fR: intact or pending). 1: \\fBverify\\fR found a chain \
                 broken or unanchored, or \\fBinspect\\fR could not read a file. 2: a usage, \
                 configuration or I/O error, or a start that failed (the chain untouched). \
                 \\fBstatus\\fR exits as a Nagios plugin (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal quickstart\n\
                 logseal verify /var/lib/logseal/store\n\
                 logseal status --config /etc/logseal/agent.toml\n\
                 logseal pki issue --dir ./pki --name web-01 --role agent\n.fi\n";
        }
        "logseal-agent" => {
            s += ".SH FILES\n";
            s += files_agent;
            s += ".SH SIGNALS\n\
                 .TP\nSIGTERM, SIGINT\nStop the inputs, chain what arrived, write a \\fIshutdown\\fR \
                 record and a final seal, ship the last records (drain_timeout), exit 0.\n\
                 .TP\nSIGHUP\nLoad the certificates and keys of the TLS inputs and of [ship] again; \
                 other settings need a restart (the log names those that changed).\n";
            s += ".SH EXIT STATUS\n\
                 0 after a clean stop. 2 when the start fails (a port in use, a missing certificate, \
                 a bad journal, another agent on the state directory): the chain is left as it was; \
                 2 also after a failure while running (the chain sealed if it could be; the log says why).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal agent --config /etc/logseal/agent.toml\n\
                 logseal agent --check-config /etc/logseal/agent.toml\n\
                 logseal agent --listen udp://127.0.0.1:5514 --listen tcp://127.0.0.1:5514 --state /tmp/st\n\
                 logseal agent --journal /var/log/journal --stop-at-journal-end --state /tmp/case\n\
                 logseal agent --print-genesis --config /etc/logseal/agent.toml\n.fi\n";
        }
        "logseal-collector" => {
            s += ".SH FILES\n";
            s += files_collector;
            s += ".SH SIGNALS\n\
                 .TP\nSIGTERM, SIGINT\nStop accepting, finish open sessions, save the tips, exit 0.\n\
                 .TP\nSIGHUP\nLoad the certificate, key, CA and CRL again (the CRL file is also \
                 looked at every second).\n";
            s += ".SH EXIT STATUS\n0 after a clean stop; 2 when the start fails (a bad or stale \
                 configuration, a CRL that does not check out, another collector on the store).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal collector --config /etc/logseal/collector.toml\n\
                 logseal collector --check-config /etc/logseal/collector.toml\n.fi\n";
        }
        "logseal-verify" => {
            s += ".SH EXIT STATUS\n0: every chain intact (or pending, with --live). 1: a chain \
                 broken or unanchored. 2: a usage or I/O error, or more memory needed than \
                 --max-memory.\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal verify /var/lib/logseal/store\n\
                 logseal verify --json --trust-file enrolled case/\n.fi\n";
        }
        "logseal-status" => {
            s += ".SH FILES\n.TP\nSTATE/status.json, STORE/status.json\nWritten by the agent \
                 (every 5 s) and the collector (every status_interval), and at their stop.\n";
            s += ".SH EXIT STATUS\n0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as a Nagios plugin.\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal status --config /etc/logseal/agent.toml\n\
                 logseal status --store /var/lib/logseal/store --json\n.fi\n";
        }
        _ => {}
    }
    let others: Vec<String> = all
        .iter()
        .filter(|p| **p != page)
        .map(|p| format!("\\fB{p}\\fR(1)"))
        .collect();
    s += ".SH SEE ALSO\n";
    s += &others.join(", ");
    s += "\n";
    s
}

/// Sets up logging to stderr: the level from `--log-level`, else the
/// configuration's (both checked), in the format asked for.
fn init_logging(config_level: &str, log: &LogArgs) -> anyhow::Result<()> {
    let level = log.log_level.as_deref().unwrap_or(config_level);
    logseal::util::config::check_log_level(level).map_err(|e| match &log.log_level {
        Some(_) => anyhow::anyhow!("--log-level: {e}"),
        None => anyhow::Error::msg(e),
    })?;
    let level: tracing::Level = level.parse().unwrap_or(tracing::Level::INFO);
    let fmt = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    match log.log_format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

fn print_genesis_of(config: Option<PathBuf>, state: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = match (config, state) {
        (Some(c), _) => logseal::agent::config::AgentConfig::load(&c)?.state_dir,
        (None, Some(s)) => s,
        (None, None) => bail!("--print-genesis needs --config FILE or --state DIR"),
    };
    let bytes = logseal::storage::writer::read_genesis(&dir).map_err(anyhow::Error::msg)?;
    let g = logseal::chain::Record::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("genesis record in {}: {e}", dir.display()))?;
    let logseal::chain::Body::Genesis { pk0, host, .. } = g.body else {
        bail!(
            "{}: the genesis copy is not a Genesis record",
            dir.display()
        );
    };
    println!("{}", logseal::chain::trust::line(host, &pk0));
    eprintln!(
        "chain {}, genesis key fingerprint {} (the line above is a trust anchor: it goes into a collector's enrolled file and `logseal verify --trust-file`)",
        g.chain_id,
        logseal::chain::hash::fingerprint(&pk0)
    );
    Ok(ExitCode::SUCCESS)
}

/// `logseal status`: which process to look at, from the options.
fn status(
    config: Option<PathBuf>,
    state: Option<PathBuf>,
    store: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use logseal::monitor::status::Target;
    let target = match (config, state, store) {
        (_, Some(dir), _) => Target::Agent(dir),
        (_, _, Some(dir)) => Target::Collector(dir),
        (config, None, None) => {
            let path = config.unwrap_or_else(|| PathBuf::from("/etc/logseal/agent.toml"));
            match logseal::agent::config::AgentConfig::load(&path) {
                Ok(c) => Target::Agent(c.state_dir),
                Err(agent_err) => match logseal::collector::config::CollectorConfig::load(&path) {
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
    Ok(logseal::monitor::status::run(target, json))
}

fn collector(
    config: Option<PathBuf>,
    check_config: Option<PathBuf>,
    log: &LogArgs,
) -> anyhow::Result<ExitCode> {
    use logseal::collector::config::CollectorConfig;
    if let Some(path) = check_config {
        let cfg = CollectorConfig::load(&path)?;
        let found = logseal::collector::check_files(&cfg);
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
    let path = config.context("--config FILE is required")?;
    let cfg = CollectorConfig::load(&path)?;
    init_logging(&cfg.log_level, log)?;
    logseal::collector::run(cfg)?;
    Ok(ExitCode::SUCCESS)
}

fn agent(
    config: Option<PathBuf>,
    check_config: Option<PathBuf>,
    listen: Vec<String>,
    journal: Option<(String, bool)>,
    state: Option<PathBuf>,
    host: Option<String>,
    log: &LogArgs,
) -> anyhow::Result<ExitCode> {
    use logseal::agent::config::{AgentConfig, Input};
    use logseal::ingest::journal::config::JournaldConfig;
    if let Some(path) = check_config {
        let cfg = AgentConfig::load(&path)?;
        let errors = logseal::agent::check_files(&cfg);
        if !errors.is_empty() {
            anyhow::bail!("{}:\n  {}", path.display(), errors.join("\n  "));
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
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = match (config, state) {
        (Some(path), _) => AgentConfig::load(&path)?,
        (None, Some(state)) => {
            let mut cfg = AgentConfig::parse("", std::path::Path::new("(defaults)"))?;
            cfg.state_dir = state;
            cfg.host = logseal::chain::hostname::canonical(&host.unwrap_or_default());
            if !cfg.host.is_empty() {
                logseal::chain::hostname::check(&cfg.host)
                    .map_err(|e| anyhow::anyhow!("--host: {e}"))?;
            }
            for url in &listen {
                cfg.inputs
                    .push(Input::from_url(url).map_err(anyhow::Error::msg)?);
            }
            if let Some((j, stop_at_end)) = journal {
                let j = if j == "system" || j.starts_with("namespace:") || j.starts_with('/') {
                    j
                } else {
                    // A relative directory.
                    format!("./{j}")
                };
                cfg.journald = Some(JournaldConfig {
                    journal: j,
                    stop_at_end,
                    ..JournaldConfig::default()
                });
            }
            cfg.check().map_err(anyhow::Error::msg)?;
            cfg
        }
        (None, None) => bail!(
            "give --config FILE, or --listen URL... and/or --journal system|DIR with --state DIR"
        ),
    };
    if cfg.inputs.is_empty() && cfg.journald.is_none() {
        bail!("no inputs configured: add [[input]] tables, a [journald] table, --listen URLs or --journal");
    }
    init_logging(&cfg.log_level, log)?;
    logseal::agent::run(cfg)?;
    Ok(ExitCode::SUCCESS)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Reads the trust anchors of `--trust-key` and `--trust-file`.
fn trust_anchors(
    trust_key: &[String],
    trust_file: Option<&PathBuf>,
) -> anyhow::Result<logseal::chain::trust::TrustAnchors> {
    use logseal::chain::trust::{TrustAnchors, MAX_TRUST_FILE};
    let mut anchors = TrustAnchors::none();
    for k in trust_key {
        anchors
            .add_arg(k)
            .map_err(|e| anyhow::anyhow!("--trust-key: {e} (expected HOST=KEY)"))?;
    }
    if let Some(f) = trust_file {
        let text = logseal::storage::fsutil::read_bounded_text(f, MAX_TRUST_FILE)
            .with_context(|| format!("reading trust file {}", f.display()))?;
        let before = anchors.len();
        anchors
            .extend_from(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        if anchors.len() == before {
            bail!("trust file {} holds no anchors", f.display());
        }
    }
    Ok(anchors)
}

fn verify(
    paths: Vec<PathBuf>,
    json: bool,
    trust_key: Vec<String>,
    trust_file: Option<PathBuf>,
    memory_limit: Option<u64>,
    live: Option<(i64, Duration)>,
) -> anyhow::Result<ExitCode> {
    use logseal::chain::verify::{Live, Options};
    let anchors = trust_anchors(&trust_key, trust_file.as_ref())?;
    let live = live.map(|(now_ns, age)| Live {
        now_ns,
        max_age_ns: i64::try_from(age.as_nanos()).unwrap_or(i64::MAX),
    });
    let options = Options {
        anchors,
        live,
        memory_limit,
    };
    let (files, skipped) = verify_files::expand(&paths)?;
    let report = if rustix::termios::isatty(std::io::stderr()) {
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .collect();
        let total: u64 = sizes.iter().sum::<u64>().max(1);
        let mut last = Instant::now();
        let r = verify_files::verify(&files, options, |i, pos| {
            if last.elapsed() >= Duration::from_millis(200) {
                last = Instant::now();
                let done: u64 = sizes[..i].iter().sum::<u64>() + pos;
                eprint!(
                    "\rverifying {}/{} files, {} of {} MB ({}%)   ",
                    i + 1,
                    files.len(),
                    done >> 20,
                    total >> 20,
                    done.saturating_mul(100) / total
                );
            }
        });
        eprint!("\r{:70}\r", "");
        r?
    } else {
        verify_files::verify(&files, options, |_, _| {})?
    };
    let code = if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    // A reader that stops early (`verify … | head`) does not change the verdict.
    match write_verify_output(&report, &files, &skipped, json) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(code),
    }
}

fn write_verify_output(
    report: &logseal::chain::verify::Report,
    files: &[PathBuf],
    skipped: &[verify_files::Skipped],
    json: bool,
) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &report::verify_json(report, files, skipped))?;
        writeln!(out)?;
    } else {
        for s in skipped {
            writeln!(
                out,
                "skipped {} ({})",
                report::safe_path(&s.path),
                s.why.describe()
            )?;
        }
        report::verify_text(&mut out, report, files)?;
    }
    out.flush()
}

fn inspect(paths: Vec<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let (files, skipped) = verify_files::expand(&paths)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let unreadable = match report::inspect(&mut out, &files, &skipped, json)
        .and_then(|n| out.flush().map(|()| n))
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r?,
    };
    if unreadable > 0 {
        eprintln!("logseal inspect: {unreadable} file(s) could not be read (listed in the output)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn gen_vectors(out: PathBuf) -> anyhow::Result<()> {
    let v = logseal::chain::vectors::generate();
    std::fs::create_dir_all(&out)?;
    logseal::storage::fsutil::write_atomic(
        &out.join("chain-v1.txt"),
        v.text.as_bytes(),
        "vectors",
    )?;
    logseal::storage::fsutil::write_atomic(&out.join("chain-v1.seg"), &v.segment, "vectors")?;
    logseal::storage::fsutil::write_atomic(
        &out.join("chain-v1-redacted.seg"),
        &v.redacted,
        "vectors",
    )?;
    let neg = out.join("negative");
    for f in logseal::chain::vectors::negative::generate() {
        for (rel, bytes) in &f.files {
            let p = neg.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            logseal::storage::fsutil::write_atomic(&p, bytes, "vectors")?;
        }
        let mut text = serde_json::to_string_pretty(&f.expected)?;
        text.push('\n');
        logseal::storage::fsutil::write_atomic(
            &neg.join(logseal::chain::vectors::negative::sidecar(&f)),
            text.as_bytes(),
            "vectors",
        )?;
    }
    Ok(())
}
