//! The `switchyard` binary: parse flags, load the configuration, set up logging, run the
//! library's [`switchyard::run()`] (which owns signals, reloads and shutdown), map failure to an
//! exit code (2: bad flags or configuration; 1: the proxy cannot run, or `check` found the
//! file invalid).

use std::process::ExitCode;

use switchyard::cli::{Cli, Command};
use switchyard::CheckError;

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
    if let Some(Command::HashKey(args)) = &cli.command {
        let result =
            switchyard::cli::hash_key::run(args, &mut std::io::stdin(), &mut std::io::stdout());
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchyard hash-key: {e}");
                ExitCode::from(2)
            }
        };
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
    match switchyard::run(cli, config) {
        Ok(_report) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

/// `switchyard check --config FILE`: 0 when valid, 1 when not, 2 without a file.
fn check(cli: &Cli) -> ExitCode {
    match switchyard::check(cli) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e @ CheckError::NoFile) => {
            eprintln!("switchyard check: {e}");
            ExitCode::from(2)
        }
        Err(CheckError::Invalid(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
