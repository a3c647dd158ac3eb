//! Process signals: SIGTERM and SIGINT (Ctrl+C) ask for a graceful shutdown.
//!
//! The handlers are installed before the listener opens ([`Signals::install`]), so a SIGTERM
//! that arrives the moment the port accepts is a graceful shutdown too, never a kill.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Installed signal handlers.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT, with the signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
