//! The `switchyard` binary: parse flags, load the configuration, set up logging, run until
//! SIGTERM/SIGINT (reloading on SIGHUP and file changes), map failure to an exit code.

use std::process::ExitCode;

use switchyard::cli::{Cli, Command};
use switchyard::reload;
use switchyard::server::{self, shutdown};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_args(std::env::args()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", switchyard::cli::one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    if cli.command == Some(Command::Check) {
        return check(&cli);
    }
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchyard: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = switchyard::telemetry::init(config.log.format) {
        eprintln!("switchyard: {e}");
        return ExitCode::from(2);
    }
    // The control thread only waits for signals and file changes; the workers do the work.
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchyard: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = control.block_on(async {
        let shutdown_timeout = config.shutdown_timeout;
        let source = config.source.clone();
        let mut signals = shutdown::Signals::install()?;
        let (server, _demo_backends) = match cli.command {
            Some(Command::Demo) => {
                let mut config = config;
                if !cli.given("rate_limit") {
                    // The seed's scenario: 40 requests in a row at 20 per second show 429s.
                    config.rate_limit.requests = switchyard::demo::RATE_LIMIT;
                }
                let rate_limit = config.rate_limit.requests;
                let demo = switchyard::demo::start(config).await?;
                println!("{}", switchyard::demo::instructions(&demo, rate_limit));
                (demo.server, demo.backends)
            }
            _ => (server::start(config)?, Vec::new()),
        };
        let signal = {
        let watch = async {
            match &source {
                Some(s) if s.watch_interval.is_some() => {
                    let interval = s.watch_interval.unwrap_or_default();
                    reload::watch(&server, &s.path, &cli, interval).await
                }
                _ => std::future::pending().await,
            }
        };
        tokio::pin!(watch);
        loop {
            tokio::select! {
                request = signals.recv() => match request {
                    shutdown::Request::Shutdown(signal) => break signal,
                    shutdown::Request::Reload => match &cli.config {
                        Some(path) => {
                            let _ = reload::reload(&server, path, &cli, "SIGHUP");
                        }
                        None => tracing::warn!("SIGHUP: no --config file to reload"),
                    },
                },
                () = &mut watch => {}
            }
        }
        };
        tracing::info!(signal, timeout = ?shutdown_timeout, "shutting down: draining in-flight requests");
        let report = server.shutdown().await;
        if report.drained {
            tracing::info!("shutdown complete");
        } else {
            tracing::warn!("shutdown timeout reached: remaining connections were closed");
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `switchyard check --config FILE`.
fn check(cli: &Cli) -> ExitCode {
    let Some(path) = &cli.config else {
        eprintln!("switchyard check: give the file to check with --config FILE");
        return ExitCode::from(2);
    };
    match cli.load_config() {
        Ok(config) => {
            println!(
                "{}: OK (version {}, {} listener(s), {} pool(s), {} route(s))",
                path.display(),
                config.source.as_ref().map_or("-", |s| s.version.as_str()),
                config.listeners.len(),
                config.pools.len(),
                config.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
