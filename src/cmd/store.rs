//! `logseal store`: a store kept on NATS JetStream, brought to files.

use crate::storage::jetstream::{self, JetStream, JetStreamConfig};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `logseal store …`.
#[derive(clap::Subcommand, Debug)]
pub enum StoreCmd {
    /// Write every chain of a JetStream store into a new directory as
    /// segment files (DIR/chains/HOST/CHAIN/) with DIR/export.json; `logseal
    /// verify DIR` then judges what the stream holds, offline. With
    /// --checkpoints-from, DIR is laid out as a store (DIR/hosts/…) with that
    /// collector's checkpoint log, and `verify DIR` checks the chains
    /// against it too. Exit 1 if a chain's message could not be read (the
    /// others are written).
    Export {
        /// The stream: nats://[USER@]HOST:PORT[,HOST:PORT…][/STREAM]
        /// [?ca=F&cert=F&key=F&password_file=F].
        #[arg(long, value_name = "URL")]
        from: String,
        /// A directory that does not exist yet, or is empty.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// The store directory of a collector writing to the stream: its
        /// checkpoint log (STORE/checkpoints/log/, not its key) is copied in.
        #[arg(long, value_name = "STORE")]
        checkpoints_from: Option<PathBuf>,
    },
}

/// Runs `logseal store`.
pub fn run(c: StoreCmd) -> anyhow::Result<ExitCode> {
    match c {
        StoreCmd::Export {
            from,
            to,
            checkpoints_from,
        } => {
            let layout = match checkpoints_from {
                Some(_) => "hosts",
                None => "chains",
            };
            let exported = export(&from, &to, layout)?;
            if let Some(store) = &checkpoints_from {
                copy_checkpoint_log(store, &to)?;
            }
            let chains = exported.chains.len();
            let records: u64 = exported.chains.iter().map(|c| c.records).sum();
            let problems = exported.problems();
            println!(
                "exported {chains} chain(s), {records} record(s) of stream {} to {}",
                exported.stream,
                to.display()
            );
            for p in &problems {
                eprintln!("logseal store export: {p}");
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Exports the stream a `nats://` URL names into `to`.
pub fn export(url: &str, to: &Path, layout: &str) -> anyhow::Result<jetstream::Exported> {
    let cfg = JetStreamConfig::from_url(url)?;
    let jet = JetStream::open(&cfg, false)?;
    jetstream::export(&jet, to, layout).with_context(|| format!("exporting {url}"))
}

/// Copies the segment files of a collector's checkpoint log (nothing else:
/// not its key state) from `store` into `to`, as a store holds them.
fn copy_checkpoint_log(store: &Path, to: &Path) -> anyhow::Result<()> {
    let from = store.join(crate::collector::checkpoints::DIR).join("log");
    let dest = to.join(crate::collector::checkpoints::DIR).join("log");
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let entries = std::fs::read_dir(&from).with_context(|| {
        format!(
            "{}: the checkpoint log of a collector's store (--checkpoints-from)",
            from.display()
        )
    })?;
    let mut n = 0;
    for e in entries {
        let p = e?.path();
        let regular = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file());
        if regular && p.extension().is_some_and(|x| x == "seg") {
            let name = p.file_name().unwrap_or_default();
            std::fs::copy(&p, dest.join(name))
                .with_context(|| format!("copying {}", p.display()))?;
            n += 1;
        }
    }
    if n == 0 {
        anyhow::bail!("{}: no segment file (no checkpoint log)", from.display());
    }
    Ok(())
}

/// Whether a command-line path is a `nats://` store URL.
pub fn is_url(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.starts_with("nats://"))
}

/// Paths with every `nats://` store exported into a temporary directory
/// (kept while the returned guards live), for `verify` and `inspect`; true
/// if a stream could not be exported whole (each problem on stderr): the
/// run must not pass.
pub fn materialize(paths: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<TempDir>, bool)> {
    let mut out = Vec::new();
    let mut temps = Vec::new();
    let mut incomplete = false;
    for p in paths {
        let Some(url) = p.to_str().filter(|_| is_url(p)) else {
            out.push(p.clone());
            continue;
        };
        let t = TempDir::new()?;
        let exported = export(url, &t.0, "chains")?;
        for problem in exported.problems() {
            eprintln!("logseal: {url}: {problem}");
            incomplete = true;
        }
        out.push(t.0.join("chains"));
        temps.push(t);
    }
    Ok((out, temps, incomplete))
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let p = base.join(format!("logseal-export-{}-{i}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
        anyhow::bail!(
            "no temporary directory could be created in {}",
            base.display()
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
