//! `logseal checkpoint`: the newest accepted seal of a store's checkpoint
//! log, as a block to keep elsewhere (docs/FORMAT.md §7.1).

use crate::chain::verify::Options;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `logseal checkpoint`.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// The collector's store.
    #[arg(long)]
    pub store: PathBuf,
    /// File of trust anchors (`HOST KEY` per line): the collector's line
    /// pins its checkpoint log, as for `logseal verify`.
    #[arg(long = "trust-file", value_name = "F")]
    pub trust_file: Option<PathBuf>,
    /// Write the block to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `logseal checkpoint`: exit 0 with the block, 1 if the log cannot be
/// witnessed (missing, not believed, no seal yet), 2 on a usage or I/O error.
pub fn run(a: CheckpointArgs) -> anyhow::Result<ExitCode> {
    if !a.store.is_dir() {
        anyhow::bail!("--store {}: not a directory", a.store.display());
    }
    let options = Options {
        anchors: super::verify::trust_anchors(&[], a.trust_file.as_ref())?,
        ..Options::default()
    };
    let w = match crate::responder::checkpoints::newest_seal(&a.store, &options) {
        Ok(w) => w,
        Err(e @ crate::responder::witness::WitnessError::NotBelieved { .. }) => {
            eprintln!(
                "logseal checkpoint: {}",
                crate::chain::describe::safe(&e.to_string())
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    match &a.out {
        Some(f) => crate::storage::fsutil::write_atomic(f, w.text().as_bytes(), "checkpoint")
            .with_context(|| format!("writing {}", f.display()))?,
        None => print!("{}", w.text()),
    }
    Ok(ExitCode::SUCCESS)
}
