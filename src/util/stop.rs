//! Signals of the long-running commands (agent, collector, quickstart):
//! SIGTERM and SIGINT stop, SIGHUP reloads (the agent and the collector) or
//! stops (quickstart, whose terminal went away). Install the handlers before
//! announcing anything (`listening` lines, READY=1): a signal that arrives
//! right after must be handled, not kill the process (the default action of
//! SIGHUP is to terminate, and systemd counts that as a clean exit).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The installed handlers.
pub struct StopSignals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl StopSignals {
    /// Installs the handlers on `rt`.
    pub fn install(rt: &tokio::runtime::Runtime) -> std::io::Result<StopSignals> {
        rt.block_on(async {
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        })
    }

    /// Resolves when SIGTERM, SIGINT or SIGHUP arrives.
    pub async fn recv(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop,
            _ = self.int.recv() => Asked::Stop,
            _ = self.hup.recv() => Asked::Reload,
        }
    }
}

/// A value a reload replaces: readers take the current one (an `Arc`, cheap
/// to clone) when they start a piece of work, and keep it for that work.
pub struct Reloadable<T>(std::sync::Mutex<std::sync::Arc<T>>);

impl<T> Reloadable<T> {
    /// Holds `v`.
    pub fn new(v: std::sync::Arc<T>) -> Reloadable<T> {
        Reloadable(std::sync::Mutex::new(v))
    }
    /// The current value.
    pub fn get(&self) -> std::sync::Arc<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Replaces the value; work already started keeps the old one.
    pub fn set(&self, v: std::sync::Arc<T>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}
