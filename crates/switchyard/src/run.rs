//! What the binary runs, as library functions: [`run`] starts the proxy (or the demo) and owns
//! it until shutdown; [`supervise`] is its loop, which tests drive in-process through a
//! channel of [`Control`]s; [`check`] is `switchyard check`.
//!
//! [`run`] builds the control runtime (one thread that only waits for signals and file
//! changes; the workers do the work), installs the signal handlers *before* a listener opens
//! (so a SIGTERM the moment the port accepts is a graceful shutdown too), turns each signal
//! into a [`Control`] (SIGHUP → reload, SIGUSR1 → reopen the audit log, SIGTERM/SIGINT →
//! shutdown), starts the proxy and hands it to [`supervise`]. [`supervise`] reloads on
//! [`Control::Reload`] and when the `--config` file changes ([`reload::watch`]), reloads
//! certificates when their files change ([`server::tls::watch`]), reopens the audit log on
//! [`Control::ReopenLogs`], and on [`Control::Shutdown`] drains the proxy
//! ([`Server::shutdown`]). Once the proxy listens, [`log_started`] writes the one start-up
//! summary.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cli::{Cli, Command, LoadError};
use crate::config::{defaults, Config};
use crate::ops::{PidError, PidFile};
use crate::server::shutdown::{Request, Signals};
use crate::server::{self, Server, ShutdownReport, StartError};
use crate::telemetry::json::AsJson;
use crate::{demo, reload};

/// What the process is asked to do while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the `--config` file again and put it in force (see [`reload::reload`]).
    Reload {
        /// Why, for the log (`"SIGHUP"`).
        reason: &'static str,
    },
    /// Reopen the audit log file by its name (SIGUSR1, after logrotate renamed it).
    ReopenLogs,
    /// Drain in-flight requests and stop.
    Shutdown {
        /// What asked, for the log (`"SIGTERM"`, `"SIGINT"`).
        signal: &'static str,
    },
}

/// Why [`run`] could not run the proxy.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The control runtime could not be built.
    #[error("cannot start")]
    Runtime(#[source] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The proxy (or the demo's backends) could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The `--pid-file` could not be written.
    #[error(transparent)]
    PidFile(#[from] PidError),
}

/// Runs the proxy described by `config` (the demo for `switchyard demo`) until SIGTERM or
/// SIGINT, reloading on SIGHUP and when the `--config` file changes; then drains it. Logging
/// should be set up before. Returns how the drain went.
pub fn run(cli: Cli, config: Config) -> Result<ShutdownReport, RunError> {
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    control.block_on(async {
        let signals = Signals::install().map_err(RunError::Signals)?;
        let (controls, receiver) = mpsc::channel(8);
        tokio::spawn(forward_signals(signals, controls));
        // The demo's backends are served by this runtime until the drain is over.
        let (server, _demo_backends) = match cli.command {
            Some(Command::Demo) => {
                let demo = start_demo(&cli, config).await?;
                log_started(&demo.server);
                (demo.server, demo.backends)
            }
            _ => {
                let server = server::start(config)?;
                log_started(&server);
                (server, Vec::new())
            }
        };
        // Written once the listeners are bound, removed when dropped (after the drain).
        let _pid_file = PidFile::create_if(cli.pid_file.as_deref())?;
        Ok(supervise(server, &cli, receiver).await)
    })
}

/// The start-up summary, one line: the software version, the configuration file and its
/// version (hash; both absent when running from flags), the proxy listeners, the workers,
/// the admin endpoints and each pool with its policy and backends. Lists and tables are
/// JSON (arrays and objects in JSON log lines, see [`crate::telemetry::json`]).
pub fn log_started(server: &Server) {
    let state = server.shared().state();
    let config = &state.config;
    let addrs = server.listener_addrs();
    let listen: Vec<String> = addrs
        .iter()
        .filter(|(_, admin)| !admin)
        .map(|(addr, _)| addr.to_string())
        .collect();
    let health = &state.admin.health_path;
    let admin = serde_json::json!({
        "listen": addrs.iter().find(|(_, admin)| *admin).map(|(addr, _)| addr.to_string()),
        "health": health,
        "live": format!("{health}/live"),
        "ready": format!("{health}/ready"),
        "metrics": state.admin.metrics_path,
    });
    let pools: Vec<serde_json::Value> = config
        .pools
        .iter()
        .map(|pool| {
            let backends: Vec<String> = pool.backends.iter().map(|b| b.url.to_string()).collect();
            serde_json::json!({
                "name": pool.name,
                "policy": pool.policy.name(),
                "backends": backends,
            })
        })
        .collect();
    let file = config.source.as_ref().map(|s| s.path.display().to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config_file = file.as_deref(),
        config_version = state.version(),
        listen = ?AsJson(&listen),
        workers = config.workers,
        admin = ?AsJson(&admin),
        pools = ?AsJson(&pools),
        "switchyard started"
    );
}

/// Turns each signal into a [`Control`] until nobody listens.
async fn forward_signals(mut signals: Signals, controls: mpsc::Sender<Control>) {
    loop {
        let control = match signals.recv().await {
            Request::Shutdown(signal) => Control::Shutdown { signal },
            Request::Reload => Control::Reload { reason: "SIGHUP" },
            Request::ReopenLogs => Control::ReopenLogs,
        };
        if controls.send(control).await.is_err() {
            return;
        }
    }
}

/// `switchyard demo`: its rate limit unless `--rate-limit` is given, two backends, and the
/// commands to try printed.
async fn start_demo(cli: &Cli, mut config: Config) -> Result<demo::Demo, StartError> {
    if !cli.given("rate_limit") {
        // The seed's scenario: 40 requests in a row at 20 per second show 429s.
        config.rate_limit.requests = demo::RATE_LIMIT;
    }
    let rate_limit = config.rate_limit.requests;
    let demo = demo::start(config).await?;
    println!("{}", demo::instructions(&demo, rate_limit));
    Ok(demo)
}

/// Owns `server` until shutdown: reloads the `--config` file on [`Control::Reload`] and, when
/// the configuration in force at the start says so (`source.watch_interval`), whenever the
/// file changes; drains on [`Control::Shutdown`], or once every sender of `controls` is gone
/// (nobody is left to ask). Logs as the binary does.
pub async fn supervise(
    server: Server,
    cli: &Cli,
    mut controls: mpsc::Receiver<Control>,
) -> ShutdownReport {
    let started = server.shared().state();
    // Workers drain within the timeout they were started with: a reload does not change it.
    let shutdown_timeout = started.config.shutdown_timeout;
    let watched = started
        .config
        .source
        .as_ref()
        .and_then(|s| Some((s.path.clone(), s.watch_interval?)));
    drop(started);
    let signal = until_shutdown(&server, cli, watched, &mut controls).await;
    tracing::info!(signal, timeout = ?shutdown_timeout, "shutting down: draining in-flight requests");
    let report = server.shutdown().await;
    if report.drained {
        tracing::info!("shutdown complete");
    } else {
        tracing::warn!("shutdown timeout reached: remaining connections were closed");
    }
    report
}

/// Reloads as asked and as the watched file changes; returns what asked for the shutdown.
async fn until_shutdown(
    server: &Server,
    cli: &Cli,
    watched: Option<(PathBuf, Duration)>,
    controls: &mut mpsc::Receiver<Control>,
) -> &'static str {
    let watch = async {
        if let Some((path, interval)) = &watched {
            reload::watch(server, path, cli, *interval).await;
        }
        std::future::pending::<Infallible>().await
    };
    tokio::pin!(watch);
    let certificates = server::tls::watch(server, defaults::WATCH_INTERVAL);
    tokio::pin!(certificates);
    loop {
        tokio::select! {
            control = controls.recv() => match control {
                Some(Control::Reload { reason }) => reload_config(server, cli, reason),
                Some(Control::ReopenLogs) => match &server.shared().audit {
                    Some(audit) => audit.reopen(),
                    None => tracing::info!("SIGUSR1: no audit log to reopen"),
                },
                Some(Control::Shutdown { signal }) => return signal,
                None => return "end of controls",
            },
            never = &mut watch => match never {},
            () = &mut certificates => {}
        }
    }
}

/// Reloads the `--config` file (and with it every certificate), if there is one, else the
/// certificates whose files changed; the outcome is logged and recorded.
fn reload_config(server: &Server, cli: &Cli, reason: &'static str) {
    match &cli.config {
        Some(path) => {
            let _ = reload::reload(server, path, cli, reason);
        }
        None if !server.tls_acceptors().is_empty() => {
            if !server.reload_certificates() {
                tracing::info!("{reason}: no certificate changed");
            }
        }
        None => tracing::warn!("{reason}: no --config file to reload"),
    }
}

/// Why `switchyard check` found nothing to accept.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No `--config` was given.
    #[error("give the file to check with --config FILE")]
    NoFile,
    /// The file, or a flag given with it, is invalid.
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

/// `switchyard check --config FILE`: loads the file with the flags given applied, and
/// returns the line to print when it is valid (version and what it defines).
pub fn check(cli: &Cli) -> Result<String, CheckError> {
    let Some(path) = &cli.config else {
        return Err(CheckError::NoFile);
    };
    let config = cli.load_config()?;
    Ok(format!(
        "{}: OK (version {}, {} listener(s), {} pool(s), {} route(s))",
        path.display(),
        config.source.as_ref().map_or("-", |s| s.version.as_str()),
        config.listeners.len(),
        config.pools.len(),
        config.routes.len()
    ))
}
