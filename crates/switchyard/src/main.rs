//! The `switchyard` binary: parse flags, run the subcommands that do not start the proxy
//! (`check`, `print-config`, `hash-key`, `reload`, `stop`, `version`, `completions`,
//! `manpage`), else
//! load the configuration, set up logging, run the library's [`switchyard::run()`] (which
//! owns signals, reloads and shutdown), and map failure to an exit code (2: bad flags or
//! configuration, or root without `--user` or `--allow-root`; 1: the proxy cannot run,
//! `check` found the file invalid, or `reload` / `stop` could not signal).

use std::process::ExitCode;
use std::time::Duration;

use switchyard::cli::{Cli, Command};
use switchyard::ops;
use switchyard::CheckError;

// The global allocator: the system's (glibc malloc) unless a cargo feature picks another;
// BENCHMARKS.md ("Allocator and memory returned") has the measurements behind the default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: switchyard::allocator::MiMalloc = switchyard::allocator::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How much longer than `--shutdown-timeout` `switchyard stop` waits for the process to end.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    match &cli.command {
        Some(Command::Check) => return check(&cli),
        Some(Command::Proxy) if !cli.given("backends") => {
            eprintln!("switchyard proxy: give the backends with --to URL[,URL...] (see --help)");
            return ExitCode::from(2);
        }
        Some(Command::PrintConfig) => return print_config(&cli),
        Some(Command::Reload) => {
            return signalled(
                "reload",
                "reloading",
                ops::pid::reload(cli.pid_file.as_deref()),
            )
        }
        Some(Command::Stop) => {
            let wait = cli.shutdown_timeout + STOP_GRACE;
            let stopped = ops::pid::stop(cli.pid_file.as_deref(), wait);
            return signalled("stop", "stopped", stopped);
        }
        Some(Command::Version) => {
            print!("{}", ops::version());
            return ExitCode::SUCCESS;
        }
        Some(Command::Completions { shell }) => {
            ops::completions(*shell, &mut std::io::stdout().lock());
            return ExitCode::SUCCESS;
        }
        Some(Command::Manpage) => {
            if let Err(e) = ops::manpage(&mut std::io::stdout().lock()) {
                eprintln!("switchyard manpage: {e}");
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
        Some(Command::HashKey(args)) => {
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
        Some(Command::Demo | Command::Proxy) | None => {}
    }
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchyard: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    // Root only to bind low ports, then --user; or root allowed knowingly.
    if switchyard::server::privileges::root_refused(&config.process, cli.allow_root) {
        eprintln!(
            "switchyard: {}",
            switchyard::server::privileges::ROOT_REFUSED
        );
        return ExitCode::from(2);
    }
    if let Err(e) = switchyard::telemetry::init(config.log.format) {
        eprintln!("switchyard: {e}");
        return ExitCode::from(2);
    }
    match switchyard::run(cli, config) {
        Ok(_report) => ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: several errors write their cause into their own message.
            eprintln!("switchyard: {}", switchyard::errors::Chain(&e));
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

/// `switchyard print-config [FLAGS]`: the TOML on stdout; 2 with `--config` or bad flags.
fn print_config(cli: &Cli) -> ExitCode {
    // The flags must make a valid proxy, as they would when run.
    if let Err(e) = cli.load_config() {
        eprintln!("switchyard: invalid configuration:\n{e}");
        return ExitCode::from(2);
    }
    match ops::print_config(cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchyard print-config: {e}");
            ExitCode::from(2)
        }
    }
}

/// The outcome of `reload` / `stop`: one line, 0 or 1.
fn signalled(what: &str, done: &str, outcome: Result<i32, ops::PidError>) -> ExitCode {
    match outcome {
        Ok(pid) => {
            println!("switchyard {what}: process {pid} {done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchyard {what}: {}", switchyard::errors::Chain(&e));
            ExitCode::FAILURE
        }
    }
}
