//! Process signals: SIGTERM and SIGINT (Ctrl+C) ask for a graceful shutdown.

/// Resolves when the process receives SIGTERM or SIGINT, with the signal's name.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            // Without signal handlers, fall back to Ctrl+C only.
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
