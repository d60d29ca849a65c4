//! SIGTERM and SIGINT for the long-running commands (agent, collector,
//! quickstart). Install the handlers before announcing anything (`listening`
//! lines, READY=1): a signal that arrives right after must stop the process
//! cleanly, not kill it.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The installed handlers.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers on `rt`.
    pub fn install(rt: &tokio::runtime::Runtime) -> std::io::Result<StopSignals> {
        rt.block_on(async {
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        })
    }

    /// Resolves when SIGTERM or SIGINT arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
