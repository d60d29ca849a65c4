//! `logseal quickstart`: a local CA, a collector and an agent on loopback.
//!
//! ```text
//! DIR/pki/           CA, the collector's and the agent's certificates
//! DIR/collector.toml DIR/agent.toml   the configs it runs (real ones: read them)
//! DIR/agent/         the agent's signer state and spool
//! DIR/store/         the collector's store
//! DIR/*.log          the two processes' logs
//! ```
//!
//! Both run as child processes of this one, in their own process group so that
//! Ctrl-C reaches only this process; it then stops the agent (which seals and
//! ships its last records), then the collector, and verifies the store.

use crate::cmd::pki;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn toml_str(p: &Path) -> String {
    // TOML basic string: escape backslashes and quotes.
    format!(
        "\"{}\"",
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// The host name the quickstart agent uses (must be a certificate name).
fn agent_host() -> String {
    let h = crate::util::host::system_host();
    if pki::check_name(&h).is_ok() {
        h
    } else {
        "quickstart-agent".into()
    }
}

/// Set by quickstart for its children: the pid of the quickstart that started
/// them.
const PARENT_ENV: &str = "LOGSEAL_QUICKSTART_PID";

/// In a child of quickstart: asks the kernel for SIGTERM when quickstart dies
/// (killed, or its terminal closed), so that no agent or collector outlives
/// it; exits at once if it is already gone. Does nothing elsewhere.
pub fn die_with_parent() {
    let Some(pid) = std::env::var_os(PARENT_ENV) else {
        return;
    };
    std::env::remove_var(PARENT_ENV);
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string());
    if parent.as_deref() != pid.to_str() {
        eprintln!("logseal: started by a quickstart that has already exited; stopping");
        std::process::exit(1);
    }
}

fn spawn(exe: &Path, args: &[&str], log: &Path) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    // Appended to, never truncated: a second quickstart on the same directory
    // (refused by the state locks) must not wipe the running one's log.
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new(exe)
        .env(PARENT_ENV, std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

/// Reads `listening …` lines from a child's stdout until `n` have arrived.
/// Waits for `n` `listening ADDR` lines of a child; returns them, and the
/// URL of its `metrics URL` line (printed before them) if any.
fn listening(
    child: &mut Child,
    n: usize,
    log: &Path,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let out = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let tagged = match (
                line.strip_prefix("listening "),
                line.strip_prefix("metrics "),
            ) {
                (Some(a), _) => (false, a.to_string()),
                (None, Some(u)) => (true, u.to_string()),
                _ => continue,
            };
            if tx.send(tagged).is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let mut metrics = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((true, u)) => metrics = Some(u),
            Ok((false, a)) => got.push(a),
            Err(_) => {
                if let Some(st) = child.try_wait()? {
                    bail!(
                        "it exited ({st}) before listening; its log {} says:\n{}",
                        log.display(),
                        crate::storage::fsutil::read_bounded_text(log, 1 << 20).unwrap_or_default()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "it did not start listening within 30 s; see {}",
                        log.display()
                    );
                }
            }
        }
    }
    Ok((got, metrics))
}

fn stop(child: &mut Child, what: &str) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return,
            Ok(Some(st)) => {
                eprintln!("logseal quickstart: the {what} exited with {st}");
                return;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                eprintln!("logseal quickstart: the {what} did not stop in 30 s; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}

/// Makes the quickstart CA and the certificates of the collector and of this
/// host's agent, unless they exist.
fn ensure_pki(pki_dir: &Path, host: &str) -> anyhow::Result<()> {
    if !pki_dir.join("ca.crt").exists() {
        pki::init(pki_dir, "logseal quickstart CA", pki::CA_DAYS)?;
        pki::issue(
            pki_dir,
            "collector",
            pki::Role::Collector,
            pki::HOST_DAYS,
            &["127.0.0.1".into(), "localhost".into()],
        )?;
    }
    if !pki_dir.join(format!("{host}.crt")).exists() {
        pki::issue(pki_dir, host, pki::Role::Agent, pki::HOST_DAYS, &[])?;
    }
    Ok(())
}

/// The collector's configuration.
fn collector_config(store: &Path, p: &pki::Paths) -> String {
    format!(
        "# Written by `logseal quickstart`; see config/collector.toml for every key.\n\
         listen = \"127.0.0.1:0\"\n\
         store = {}\n\
         [tls]\n\
         ca = {}\ncert = {}\nkey = {}\ncrl = {}\n\
         [liveness]\n\
         heartbeat = \"60s\"\n\
         status_interval = \"5s\"\n\
         [metrics]\n\
         listen = \"127.0.0.1:0\"\n",
        toml_str(store),
        toml_str(&p.ca_cert()),
        toml_str(&p.cert("collector")),
        toml_str(&p.key("collector")),
        toml_str(&p.crl()),
    )
}

/// The agent's configuration.
fn agent_config(host: &str, dir: &Path, syslog_addr: &str, caddr: &str, p: &pki::Paths) -> String {
    format!(
        "# Written by `logseal quickstart`; see config/agent.toml for every key.\n\
         host = \"{host}\"\n\
         state_dir = {}\n\
         [[input]]\ntype = \"udp\"\nlisten = \"{syslog_addr}\"\n\
         [[input]]\ntype = \"tcp\"\nlisten = \"{syslog_addr}\"\n\
         [ship]\n\
         collectors = [\"{caddr}\"]\n\
         server_name = \"collector\"\n\
         ca = {}\ncert = {}\nkey = {}\n\
         [metrics]\n\
         listen = \"127.0.0.1:0\"\n",
        toml_str(&dir.join("agent")),
        toml_str(&p.ca_cert()),
        toml_str(&p.cert(host)),
        toml_str(&p.key(host)),
    )
}

/// What runs where, and what to try: printed once both processes listen.
struct Guide<'a> {
    dir: &'a Path,
    host: &'a str,
    syslog_addr: &'a str,
    caddr: &'a str,
    store: &'a Path,
    agent_log: &'a Path,
    collector_log: &'a Path,
    /// The metrics URLs of the agent and the collector.
    metrics: Option<(&'a str, &'a str)>,
}

impl Guide<'_> {
    fn print(&self, exe: &Path) -> anyhow::Result<()> {
        let Guide {
            dir,
            host,
            syslog_addr,
            caddr,
            store,
            agent_log,
            collector_log,
            metrics,
        } = self;
        let (ip, port) = syslog_addr
            .rsplit_once(':')
            .map(|(h, p)| (h.trim_matches(['[', ']']).to_string(), p.to_string()))
            .unwrap_or_default();
        let me = exe.display();
        let mut out = std::io::stdout().lock();
        writeln!(out, "logseal quickstart: running in {}", dir.display())?;
        writeln!(
            out,
            "  agent     host {host}: syslog on udp://{syslog_addr} and tcp://{syslog_addr}; log {}",
            agent_log.display()
        )?;
        writeln!(
            out,
            "  collector {caddr} (mutual TLS); store {}; log {}",
            store.display(),
            collector_log.display()
        )?;
        if let Some((a, c)) = metrics {
            writeln!(out, "  metrics   agent {a}  collector {c}")?;
        }
        writeln!(out)?;
        writeln!(out, "Send a test message:")?;
        writeln!(
            out,
            "  logger --server {ip} --port {port} --udp \"hello from logseal\""
        )?;
        writeln!(
            out,
            "Verify the collector's store (any time, from another terminal; --live: records\n\
             waiting for the next seal are pending, not a failure):"
        )?;
        writeln!(out, "  {me} verify --live {}", store.display())?;
        writeln!(out, "Read it:")?;
        writeln!(out, "  {me} inspect {}", store.display())?;
        writeln!(out)?;
        writeln!(
            out,
            "Ctrl-C stops the agent and the collector and verifies the store."
        )?;
        out.flush()?;
        drop(out);
        Ok(())
    }
}

/// Runs the quickstart until Ctrl-C.
pub fn run(dir: &Path, syslog_addr: &str) -> anyhow::Result<ExitCode> {
    syslog_addr
        .parse::<std::net::SocketAddr>()
        .map_err(|e| anyhow::anyhow!("--syslog-addr {syslog_addr:?}: {e}"))?;
    // Ctrl-C and SIGTERM are handled from the start (the children run in
    // their own process group and do not see the terminal's Ctrl-C).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut signals = crate::util::stop::StopSignals::install(&rt)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let pki_dir = dir.join("pki");
    let host = agent_host();
    ensure_pki(&pki_dir, &host)?;
    let p = pki::Paths {
        dir: pki_dir.clone(),
    };
    let store = dir.join("store");
    let collector_toml = dir.join("collector.toml");
    let collector_cfg = collector_config(&store, &p);
    crate::storage::fsutil::write_atomic(&collector_toml, collector_cfg.as_bytes(), "quickstart")?;

    let exe = std::env::current_exe().context("locating the logseal binary")?;
    let collector_log = dir.join("collector.log");
    let mut collector = spawn(
        &exe,
        &[
            "collector",
            "--config",
            &collector_toml.display().to_string(),
        ],
        &collector_log,
    )?;
    let (caddr, collector_metrics) = match listening(&mut collector, 1, &collector_log) {
        Ok((a, m)) => (a[0].clone(), m),
        Err(e) => {
            let _ = collector.kill();
            return Err(e.context("starting the collector"));
        }
    };

    let agent_toml = dir.join("agent.toml");
    let agent_cfg = agent_config(&host, &dir, syslog_addr, &caddr, &p);
    crate::storage::fsutil::write_atomic(&agent_toml, agent_cfg.as_bytes(), "quickstart")?;
    let agent_log = dir.join("agent.log");
    let mut agent = spawn(
        &exe,
        &["agent", "--config", &agent_toml.display().to_string()],
        &agent_log,
    )?;
    let agent_metrics = match listening(&mut agent, 2, &agent_log) {
        Ok((_, m)) => m,
        Err(e) => {
            let _ = agent.kill();
            stop(&mut collector, "collector");
            return Err(e.context("starting the agent"));
        }
    };

    let guide = Guide {
        dir: &dir,
        host: &host,
        syslog_addr,
        caddr: &caddr,
        store: &store,
        agent_log: &agent_log,
        collector_log: &collector_log,
        metrics: agent_metrics.as_deref().zip(collector_metrics.as_deref()),
    };
    guide.print(&exe)?;

    // Wait for Ctrl-C / SIGTERM, or for a child to die.
    let died = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = signals.recv() => return anyhow::Ok(None),
                _ = tick.tick() => {
                    if let Some(st) = agent.try_wait()? {
                        return Ok(Some(format!("the agent exited ({st}); see {}", agent_log.display())));
                    }
                    if let Some(st) = collector.try_wait()? {
                        return Ok(Some(format!("the collector exited ({st}); see {}", collector_log.display())));
                    }
                }
            }
        }
    })?;
    if let Some(why) = &died {
        eprintln!("logseal quickstart: {why}");
    }
    eprintln!("logseal quickstart: stopping the agent (it seals and ships its last records)…");
    stop(&mut agent, "agent");
    eprintln!("logseal quickstart: stopping the collector…");
    stop(&mut collector, "collector");

    let intact = verify_store(&store, &dir)?;
    Ok(if intact && died.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Verifies the store as `logseal verify STORE` does and prints the report;
/// true if intact.
fn verify_store(store: &Path, dir: &Path) -> anyhow::Result<bool> {
    let (report, files, _) = crate::responder::checkpoints::verify_paths(
        &[store.to_path_buf()],
        Default::default(),
        (false, true),
        (&[], &[]),
        |files, options| crate::responder::verify_files::verify(files, options, |_, _| {}),
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nlogseal verify {}:", store.display())?;
    crate::responder::report::verify_text(&mut out, &report, &files)?;
    writeln!(
        out,
        "\nThe state is kept: run `logseal quickstart --dir {}` again to continue the same chain.",
        dir.display()
    )?;
    Ok(report.intact())
}

/// The options of `logseal quickstart`.
#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    /// Directory for the CA, the agent's state and the store.
    #[arg(long, default_value = "logseal-quickstart")]
    pub dir: std::path::PathBuf,
    /// Where the agent listens for syslog (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:5514")]
    pub syslog_addr: String,
}
