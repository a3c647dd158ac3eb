//! Command-line flags: the seed's five (same names, same defaults) plus the knobs of the
//! features the seed did not have. Go-style single-dash forms (`-rate-limit=20`) are accepted.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{
    defaults, duration, BackendUrl, BreakerConfig, Config, DownstreamConfig, ListenAddr, LogConfig,
    LogFormat, PoolConfig, RateLimitConfig, RuntimeModel, UpstreamConfig,
};

/// switchyard: an HTTP reverse proxy and load balancer.
///
/// Round robin over --backends, a sliding-window rate limit, a circuit breaker per backend,
/// retries on backends that cannot be reached, and /health and /metrics on the same port.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, max_term_width = 100)]
pub struct Cli {
    /// What to run; without one, the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on: `:PORT` (every interface), `IP:PORT` or `[IPv6]:PORT`.
    #[arg(long, global = true, default_value = defaults::LISTEN, value_name = "ADDR")]
    pub listen: ListenAddr,

    /// Time a client has to send a request head; also the keep-alive idle timeout and the
    /// longest pause allowed within a request body.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    pub read_timeout: Duration,

    /// Longest a response may stall while being written (client not reading, or backend not
    /// sending); also the default --upstream-timeout.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub write_timeout: Duration,

    /// Requests allowed per --rate-window over all proxied requests; 0 disables the limit.
    #[arg(long, global = true, default_value_t = defaults::RATE_LIMIT, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(defaults::RATE_LIMIT_MAX)))]
    pub rate_limit: u32,

    /// Length of the rate limit's sliding window.
    #[arg(long, global = true, default_value = "1s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub rate_window: Duration,

    /// Comma-separated backend URLs, balanced round robin.
    #[arg(long, global = true, default_value = defaults::BACKENDS, value_delimiter = ',', value_name = "URLS")]
    pub backends: Vec<BackendUrl>,

    /// Further backends to try when a connection to one cannot be established (the request
    /// never reached it, so trying another is always safe). 0 gives the seed's behaviour.
    #[arg(long, global = true, default_value_t = defaults::RETRIES, value_name = "N")]
    pub retries: u32,

    /// Time a backend has to start its response before the client gets 504
    /// [default: --write-timeout].
    #[arg(long, global = true, value_parser = parse_positive_duration, value_name = "DUR")]
    pub upstream_timeout: Option<Duration>,

    /// Time allowed to open a TCP connection to a backend.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub connect_timeout: Duration,

    /// Consecutive failures (connect errors, timeouts, 502/503/504) that open a backend's
    /// circuit.
    #[arg(long, global = true, default_value_t = defaults::CIRCUIT_FAILURES, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub circuit_failures: u32,

    /// How long an open circuit keeps traffic away before one trial request is let through.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub circuit_open: Duration,

    /// How long SIGTERM/SIGINT waits for in-flight requests before exiting.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    pub shutdown_timeout: Duration,

    /// Largest request head (request line and headers) accepted; larger gets 431.
    #[arg(long, global = true, default_value_t = defaults::MAX_HEADER_BYTES, value_name = "BYTES",
          value_parser = parse_header_limit)]
    pub max_header_bytes: usize,

    /// Idle keep-alive connections kept per backend and worker thread.
    #[arg(long, global = true, default_value_t = defaults::POOL_MAX_IDLE, value_name = "N")]
    pub pool_max_idle: usize,

    /// Idle upstream connections older than this are closed instead of reused.
    #[arg(long, global = true, default_value = "90s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub pool_idle_timeout: Duration,

    /// Worker threads [default: $TOKIO_WORKER_THREADS, else one per CPU].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Event loop model: `per-core` (default) or `multi-thread` (kept for benchmarking).
    #[arg(long, global = true, value_enum, default_value_t = RuntimeModel::PerCore, hide = true)]
    pub runtime: RuntimeModel,

    /// Log line format. The level comes from $RUST_LOG (default: info, which logs every
    /// request; warn turns request logging off).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start two built-in test backends and the proxy in front of them, and print the curl
    /// commands to try (the proxy listens on --listen, :3000 by default).
    Demo,
}

/// The long flags that also work in Go's single-dash form.
const GO_FLAGS: &[&str] = &[
    "listen",
    "read-timeout",
    "write-timeout",
    "rate-limit",
    "rate-window",
    "backends",
    "retries",
    "upstream-timeout",
    "connect-timeout",
    "circuit-failures",
    "circuit-open",
    "shutdown-timeout",
    "max-header-bytes",
    "pool-max-idle",
    "pool-idle-timeout",
    "workers",
    "runtime",
    "log-format",
];

// === impl Cli ===

impl Cli {
    /// Parses `args` (with the program name first), accepting Go-style flags.
    pub fn try_parse_args(args: impl IntoIterator<Item = String>) -> Result<Self, clap::Error> {
        Cli::try_parse_from(test_server::go_style_args(args, GO_FLAGS))
    }

    /// Builds the configuration the flags describe.
    pub fn to_config(&self) -> Config {
        let workers = self
            .workers
            .map(usize::from)
            .or_else(|| {
                std::env::var("TOKIO_WORKER_THREADS")
                    .ok()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
            })
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        Config {
            listen: self.listen,
            workers,
            runtime: self.runtime,
            downstream: DownstreamConfig {
                read_timeout: self.read_timeout,
                write_timeout: self.write_timeout,
                max_header_bytes: self.max_header_bytes,
            },
            rate_limit: RateLimitConfig {
                requests: self.rate_limit,
                window: self.rate_window,
            },
            upstream: UpstreamConfig {
                backends: self.backends.clone(),
                retries: self.retries,
                connect_timeout: self.connect_timeout,
                timeout: self.upstream_timeout.unwrap_or(self.write_timeout),
                breaker: BreakerConfig {
                    failure_threshold: self.circuit_failures,
                    open_duration: self.circuit_open,
                },
                pool: PoolConfig {
                    max_idle: self.pool_max_idle,
                    idle_timeout: self.pool_idle_timeout,
                },
            },
            shutdown_timeout: self.shutdown_timeout,
            log: LogConfig {
                format: self.log_format,
            },
        }
    }
}

/// Renders a clap error as the one line a user needs: what was wrong, with the flag and value.
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("switchyard: {first} (see --help)")
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be greater than 0".to_owned()),
        d => Ok(d),
    }
}

fn parse_header_limit(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    // hyper's read buffer cannot be smaller than 8 KiB.
    if !(8192..=1 << 20).contains(&n) {
        return Err("must be between 8192 and 1048576".to_owned());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(
            std::iter::once("switchyard")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn seed_defaults() {
        let cli = parse(&[]).unwrap();
        let config = cli.to_config();
        assert_eq!(config.listen.to_string(), ":3000");
        assert_eq!(config.downstream.read_timeout, Duration::from_secs(5));
        assert_eq!(config.downstream.write_timeout, Duration::from_secs(10));
        assert_eq!(config.upstream.timeout, Duration::from_secs(10));
        assert_eq!(config.rate_limit.requests, 100);
        assert_eq!(config.upstream.backends.len(), 1);
        assert_eq!(
            config.upstream.backends[0].to_string(),
            "http://localhost:8080"
        );
        assert_eq!(config.upstream.retries, 2);
        assert_eq!(cli.command, None);
    }

    #[test]
    fn go_style_and_seed_example() {
        let cli = parse(&[
            "-listen=:4000",
            "-rate-limit=20",
            "--backends=http://localhost:8080,http://localhost:8081",
            "-read-timeout",
            "1m30s",
        ])
        .unwrap();
        let config = cli.to_config();
        assert_eq!(config.listen.port, 4000);
        assert_eq!(config.rate_limit.requests, 20);
        assert_eq!(config.upstream.backends.len(), 2);
        assert_eq!(config.downstream.read_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_flag_and_value() {
        for (args, flag, value) in [
            (&["--rate-limit=abc"][..], "--rate-limit", "abc"),
            (&["--backends=ftp://x"][..], "--backends", "ftp://x"),
            (&["--listen=:99999"][..], "--listen", ":99999"),
            (&["--read-timeout=5"][..], "--read-timeout", "5"),
            (&["-write-timeout=soon"][..], "--write-timeout", "soon"),
        ] {
            let err = parse(args).unwrap_err();
            let line = one_line_error(&err);
            assert!(line.contains(flag), "{line}");
            assert!(line.contains(value), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn demo_takes_global_flags() {
        let cli = parse(&["demo", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(cli.command, Some(Command::Demo));
        assert_eq!(cli.listen.port, 0);
    }
}
