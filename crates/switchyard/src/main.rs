//! The `switchyard` binary: parse flags, set up logging, run, map failure to an exit code.

use std::process::ExitCode;

use switchyard::cli::{Cli, Command};
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
    let config = cli.to_config();
    if let Err(e) = switchyard::telemetry::init(config.log.format) {
        eprintln!("switchyard: {e}");
        return ExitCode::from(2);
    }
    // The control thread only waits for signals; the workers do the work.
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
        let mut signals = shutdown::Signals::install()?;
        let (server, _demo_backends) = match cli.command {
            Some(Command::Demo) => {
                let demo = switchyard::demo::start(config.clone()).await?;
                println!("{}", switchyard::demo::instructions(&demo, config.rate_limit.requests));
                (demo.server, demo.backends)
            }
            None => (server::start(config)?, Vec::new()),
        };
        let signal = signals.recv().await;
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
