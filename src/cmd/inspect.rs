//! `logseal inspect`: the records of segment files, readable.

use crate::responder::{report, verify_files};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `logseal inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Segment files or directories, or a JetStream store (nats://…, as for
    /// `verify`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `logseal inspect`: exit 1 if a file could not be read.
pub fn run(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let (paths, _exported, incomplete) = crate::cmd::store::materialize(&a.paths)?;
    let (files, skipped) = verify_files::expand(&paths)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let unreadable = match report::inspect(&mut out, &files, &skipped, a.json)
        .and_then(|n| out.flush().map(|()| n))
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r?,
    };
    if incomplete {
        return Ok(ExitCode::from(1));
    }
    if unreadable > 0 {
        eprintln!("logseal inspect: {unreadable} file(s) could not be read (listed in the output)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
