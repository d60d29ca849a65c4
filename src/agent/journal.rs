//! The journald input's place in the agent's start: its configuration is
//! checked and the journal opened before the chain is touched; the reader
//! starts once the chain is open, after the last entry chained. A build
//! without the `journald` feature refuses a `[journald]` table (the config
//! check says so first).

use super::config::AgentConfig;
use super::error::AgentError;
use crate::ingest::journal::config::JournaldConfig;
use crate::ingest::journal::ReaderStats;
use crate::ingest::Batch;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, watch, Notify};

/// The journal reader's configuration, checked at start (none can exist
/// without the `journald` feature).
#[cfg(feature = "journald")]
pub(super) type JournalConfig = crate::ingest::journal::reader::ReaderConfig;
#[cfg(not(feature = "journald"))]
pub(super) type JournalConfig = std::convert::Infallible;

/// The journald reader's configuration, checked and the journal opened once,
/// before the chain is touched; the resume point is added once it is open.
#[cfg_attr(not(feature = "journald"), allow(unused_variables))]
pub(super) fn prepare(cfg: &AgentConfig, j: &JournaldConfig) -> Result<JournalConfig, AgentError> {
    #[cfg(not(feature = "journald"))]
    {
        Err(AgentError::Refused(
            "[journald]: this logseal was built without journald support".into(),
        ))
    }
    #[cfg(feature = "journald")]
    {
        use crate::ingest::journal::config::JournalSource;
        use crate::ingest::journal::{reader, resume, Filter};
        reader::check(&j.journal)?;
        if j.journal == JournalSource::System {
            if let Some(why) = crate::ingest::journal::system_journal_missing() {
                tracing::warn!("[journald] {why}");
            }
        }
        // The resume point is read again once the chain is open (a torn tail
        // may be cut then); reading it now refuses a damaged one before the
        // chain is touched.
        resume::resume_cursor(&cfg.state_dir, &cfg.state_dir.join("spool")).map_err(
            crate::util::in_doing(format_args!("finding the last journal entry chained")),
        )?;
        Ok(reader::ReaderConfig {
            source: j.journal.clone(),
            start: j.start,
            filter: Filter::new(j),
            max_entry: j.max_entry_size as usize,
            resume: None,
            peer: j.journal.to_string().into(),
            stop_at_end: j.stop_at_end,
            done: Arc::new(Notify::new()),
            state_dir: cfg.state_dir.clone(),
        })
    }
}

/// The reader thread and its statistics, when there is a `[journald]` table.
pub(super) type Started = (Option<JoinHandle<()>>, Option<Arc<ReaderStats>>);

/// Starts the journald reader, if configured, after the last entry chained
/// (read from the spool, which the writer has already cut back to whole
/// records).
#[cfg_attr(not(feature = "journald"), allow(unused_variables))]
pub(super) fn start(
    journal_cfg: Option<JournalConfig>,
    cfg: &AgentConfig,
    spool_dir: &Path,
    tx: &mpsc::Sender<Batch>,
    stop: &watch::Receiver<bool>,
    done: &Arc<Notify>,
) -> Result<Started, AgentError> {
    let Some(rcfg) = journal_cfg else {
        return Ok((None, None));
    };
    #[cfg(not(feature = "journald"))]
    {
        match rcfg {}
    }
    #[cfg(feature = "journald")]
    {
        use crate::ingest::journal::{reader, resume};
        let mut rcfg = rcfg;
        rcfg.resume = resume::resume_cursor(&cfg.state_dir, spool_dir).map_err(
            crate::util::in_doing(format_args!("finding the last journal entry chained")),
        )?;
        rcfg.done = done.clone();
        let name = rcfg.peer.clone();
        let stats = Arc::new(ReaderStats::default());
        let h = reader::spawn(rcfg, tx.clone(), stop.clone(), stats.clone())?;
        crate::announce(format_args!("reading journal {name}"));
        Ok((Some(h), Some(stats)))
    }
}
