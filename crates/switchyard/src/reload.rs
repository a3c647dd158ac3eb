//! Configuration reloads: on SIGHUP and when the `--config` file changes on disk, the file is
//! read and validated again, the command-line flags applied over it, and the result put in
//! force with [`Server::reload`]. An invalid file is rejected with its full error in the log
//! and the proxy keeps serving with the configuration it had.
//!
//! The file is watched by polling its contents (it is small): this sees every way editors and
//! deploy tools replace a file (in place, rename over, symlink swap), and a change is only
//! acted on once the contents are the same on two polls in a row, so several quick writes
//! make one reload. Contents already in force, or already rejected, are not reloaded again.

mod audit;

use std::path::Path;
use std::time::Duration;

use crate::cli::Cli;
use crate::config::{self, Config};
use crate::server::{ReloadError, Server};

/// Reloads the file at `path`, applying `cli`'s given flags; logs and records the outcome.
/// Returns the new version on success.
pub fn reload(
    server: &Server,
    path: &Path,
    cli: &Cli,
    reason: &str,
) -> Result<String, ReloadError> {
    let audit = server.shared().audit.clone();
    let before = server.shared().state().config.clone();
    let mut changes = None;
    let result = Config::load(path)
        .map_err(ReloadError::from)
        .and_then(|mut config| {
            cli.apply(&mut config, true).map_err(ReloadError::Flags)?;
            let version = config
                .source
                .as_ref()
                .map_or_else(String::new, |s| s.version.clone());
            if audit.is_some() {
                changes = Some(audit::changes(&before, &config));
            }
            if config.audit != before.audit || config.process != before.process {
                tracing::warn!(
                    reason,
                    "[audit] and [server] changes apply at the next start"
                );
            }
            server.reload(config)?;
            Ok(version)
        });
    match &result {
        Ok(version) => {
            tracing::info!(reason, version = %version, file = %path.display(), "configuration reloaded");
            server.shared().record_reload(None);
        }
        Err(e) => {
            tracing::error!(reason, file = %path.display(), "configuration rejected, keeping the one in force:\n{e}");
            server.shared().record_reload(Some(e.to_string()));
        }
    }
    if let Some(audit) = &audit {
        let error = result.as_ref().err().map(|e| e.to_string());
        audit::record(audit, &before, path, reason, changes, error);
    }
    result
}

/// Watches the file at `path` and reloads it when its contents change (checked every
/// `interval`). Runs until dropped.
pub async fn watch(server: &Server, path: &Path, cli: &Cli, interval: Duration) {
    let mut attempted: Option<String> = None;
    let mut previous: Option<String> = None;
    loop {
        tokio::time::sleep(interval).await;
        let Ok(text) = std::fs::read_to_string(path) else {
            // Missing for a moment (being replaced): look again later.
            previous = None;
            continue;
        };
        let version = config::version_of(&text);
        let in_force = server.shared().state().version() == Some(version.as_str());
        if in_force || attempted.as_ref() == Some(&version) {
            previous = None;
            continue;
        }
        // Act only on contents seen twice in a row, so a burst of writes makes one reload.
        if previous.as_ref() != Some(&version) {
            previous = Some(version);
            continue;
        }
        attempted = Some(version);
        previous = None;
        let _ = reload(server, path, cli, "file changed");
    }
}
