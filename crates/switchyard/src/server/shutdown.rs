//! Process signals: SIGTERM and SIGINT (Ctrl+C) ask for a graceful shutdown; SIGHUP for a
//! configuration reload; SIGUSR1 for reopening the audit log (after logrotate renamed it).
//!
//! The handlers are installed before the listener opens ([`Signals::install`]), so a SIGTERM
//! that arrives the moment the port accepts is a graceful shutdown too, never a kill.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Installed signal handlers.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT, by name.
    Shutdown(&'static str),
    /// SIGHUP.
    Reload,
    /// SIGUSR1.
    ReopenLogs,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Resolves at the next signal.
    pub async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Shutdown("SIGTERM"),
            _ = self.int.recv() => Request::Shutdown("SIGINT"),
            _ = self.hup.recv() => Request::Reload,
            _ = self.usr1.recv() => Request::ReopenLogs,
        }
    }
}

/// Resolves once `flag` is set.
pub async fn stopped(flag: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once the server is dropped.
    let _ = flag.wait_for(|stop| *stop).await;
}
