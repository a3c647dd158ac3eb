//! Command-line flags: the seed's five (same names, same defaults) plus the knobs of the
//! features the seed did not have. Go-style single-dash forms (`-rate-limit=20`) are accepted.
//!
//! Without `--config`, the flags describe the whole proxy. With it, the file does, and only
//! the flags given on the command line override it (flags > file > defaults); see
//! [`Cli::apply`] for what each flag overrides.

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::upstream::POLICIES;
use crate::config::{
    defaults, duration, validate, BackendConfig, BackendUrl, Config, ConfigError, HashKey,
    HealthCheckConfig, ListenAddr, LogFormat, Policy, RuntimeModel,
};

/// switchyard: an HTTP reverse proxy and load balancer.
///
/// Round robin over --backends, a sliding-window rate limit, a circuit breaker per backend,
/// retries on backends that cannot be reached, and /health and /metrics on the same port.
/// With --config, a TOML file describes listeners, pools and routes, and is reloaded on
/// SIGHUP or when it changes.
#[derive(Parser, Debug, Clone)]
#[command(name = "switchyard", version, max_term_width = 100)]
pub struct Cli {
    /// What to run; without one, the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration file (TOML). Flags given on the command line override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on: `:PORT` (every interface), `IP:PORT` or `[IPv6]:PORT`.
    #[arg(long, global = true, default_value = defaults::LISTEN, value_name = "ADDR")]
    pub listen: ListenAddr,

    /// Time a client has to send a request head; also the keep-alive idle timeout and the
    /// longest pause allowed within a request body.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub read_timeout: Duration,

    /// Longest a response may stall while being written (client not reading, or backend not
    /// sending); also the default --upstream-timeout.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_positive_duration, value_name = "DUR")]
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

    /// Balancing policy: round_robin, random, least_request, peak_ewma or consistent_hash.
    #[arg(long, global = true, default_value = "round_robin", value_name = "POLICY",
          value_parser = clap::builder::PossibleValuesParser::new(POLICIES))]
    pub policy: String,

    /// What consistent_hash hashes: client_ip, path, header:NAME or cookie:NAME.
    #[arg(long, global = true, value_name = "KEY", value_parser = parse_hash_key)]
    pub hash_key: Option<HashKey>,

    /// Path of active health checks (GET every --health-interval); none when not given.
    #[arg(long, global = true, value_name = "PATH")]
    pub health_check: Option<String>,

    /// Time between active health checks of a backend.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub health_interval: Duration,

    /// Limit on a whole request, all retries included (none by default).
    #[arg(long, global = true, value_parser = parse_positive_duration, value_name = "DUR")]
    pub request_timeout: Option<Duration>,

    /// Concurrent requests per backend; more wait up to 1s, then 503 (no limit by default).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Statuses that make an idempotent request be retried on another backend.
    #[arg(long, global = true, default_value = "502,503,504", value_delimiter = ',', value_name = "CODES",
          value_parser = clap::value_parser!(u16).range(429..=599))]
    pub retry_on: Vec<u16>,

    /// Ramp-up time of a backend that comes back (0s: none).
    #[arg(long, global = true, default_value = "0s", value_parser = parse_duration, value_name = "DUR")]
    pub slow_start: Duration,

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

    /// The flags given on the command line (not defaulted), by id.
    #[arg(skip)]
    pub explicit: Vec<String>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start two built-in test backends and the proxy in front of them, and print the curl
    /// commands to try (the proxy listens on --listen, :3000 by default).
    Demo,
    /// Check the --config file (and the flags given with it) without starting; exits 1 and
    /// prints every problem found when it is invalid.
    Check,
}

/// The long flags that also work in Go's single-dash form.
const GO_FLAGS: &[&str] = &[
    "config",
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
    "policy",
    "hash-key",
    "health-check",
    "health-interval",
    "request-timeout",
    "max-connections",
    "retry-on",
    "slow-start",
    "workers",
    "runtime",
    "log-format",
];

// === impl Cli ===

impl Cli {
    /// Parses `args` (with the program name first), accepting Go-style flags.
    pub fn try_parse_args(args: impl IntoIterator<Item = String>) -> Result<Self, clap::Error> {
        let matches =
            Cli::command().try_get_matches_from(test_server::go_style_args(args, GO_FLAGS))?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.explicit = explicit_ids(&matches);
        Ok(cli)
    }

    /// True when `--flag` (by its id, e.g. `rate_limit`) was given on the command line.
    pub fn given(&self, id: &str) -> bool {
        self.explicit.iter().any(|e| e == id)
    }

    /// The configuration to run: the `--config` file with the flags given on the command
    /// line applied over it, or the flags alone.
    pub fn load_config(&self) -> Result<Config, LoadError> {
        match &self.config {
            Some(path) => {
                let mut config = Config::load(path)?;
                self.apply(&mut config, true).map_err(LoadError::Flags)?;
                Ok(config)
            }
            None => {
                let mut config = Config::single_pool(Vec::new());
                config.workers = validate::default_workers();
                self.apply(&mut config, false)?;
                Ok(config)
            }
        }
    }

    /// Applies the flags to `config`: all of them (`only_given == false`, no file) or only
    /// those given on the command line. `--listen` sets the first listener; the timeouts and
    /// header limit every listener; `--backends` the pool's backends (only when there is one
    /// pool); the other upstream flags every pool; the rest the globals.
    pub fn apply(&self, config: &mut Config, only_given: bool) -> Result<(), String> {
        let set = |id: &str| !only_given || self.given(id);
        if set("listen") {
            if let Some(first) = config.listeners.first_mut() {
                first.addr = self.listen;
            }
        }
        for l in &mut config.listeners {
            if set("read_timeout") {
                l.read_timeout = self.read_timeout;
            }
            if set("write_timeout") {
                l.write_timeout = self.write_timeout;
            }
            if set("max_header_bytes") {
                l.max_header_bytes = self.max_header_bytes;
            }
        }
        if set("rate_limit") {
            config.rate_limit.requests = self.rate_limit;
        }
        if set("rate_window") {
            config.rate_limit.window = self.rate_window;
        }
        if set("backends") {
            match config.pools.as_mut_slice() {
                [only] => {
                    only.backends = self
                        .backends
                        .iter()
                        .map(|url| BackendConfig {
                            url: url.clone(),
                            weight: 1,
                        })
                        .collect();
                }
                pools => {
                    return Err(format!(
                        "--backends cannot be used with a configuration of {} pools: set the backends in the file",
                        pools.len()
                    ))
                }
            }
        }
        // --upstream-timeout defaults to --write-timeout.
        let upstream_timeout = self.upstream_timeout.unwrap_or(self.write_timeout);
        let upstream_timeout_given = self.given("upstream_timeout") || self.given("write_timeout");
        for pool in &mut config.pools {
            if set("retries") {
                pool.retries = self.retries;
            }
            if set("connect_timeout") {
                pool.connect_timeout = self.connect_timeout;
            }
            if !only_given || upstream_timeout_given {
                pool.timeout = upstream_timeout;
            }
            if set("circuit_failures") {
                pool.breaker.failure_threshold = self.circuit_failures;
            }
            if set("circuit_open") {
                pool.breaker.open_duration = self.circuit_open;
            }
            if set("pool_max_idle") {
                pool.keepalive.max_idle = self.pool_max_idle;
            }
            if set("pool_idle_timeout") {
                pool.keepalive.idle_timeout = self.pool_idle_timeout;
            }
            if set("policy") || self.given("hash_key") {
                pool.policy = Policy::from_name(&self.policy, self.hash_key.clone())
                    .map_err(|e| format!("--policy: {e} (give it with --hash-key)"))?;
            }
            if let Some(path) = &self.health_check {
                let check = pool
                    .health_check
                    .get_or_insert_with(HealthCheckConfig::default);
                check.path = path.clone();
            }
            if let Some(check) = &mut pool.health_check {
                if set("health_interval") {
                    check.interval = self.health_interval;
                }
            }
            if let Some(t) = self.request_timeout {
                pool.request_timeout = Some(t);
            }
            if let Some(n) = self.max_connections {
                pool.max_connections = Some(n);
            }
            if set("retry_on") {
                pool.retry.retry_on = self.retry_on.clone();
            }
            if set("slow_start") {
                pool.slow_start = self.slow_start;
            }
        }
        if let Some(w) = self.workers {
            config.workers = usize::from(w);
        }
        if set("runtime") {
            config.runtime = self.runtime;
        }
        if set("shutdown_timeout") {
            config.shutdown_timeout = self.shutdown_timeout;
        }
        if set("log_format") {
            config.log.format = self.log_format;
        }
        Ok(())
    }
}

/// Why no configuration could be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is invalid.
    #[error(transparent)]
    File(#[from] ConfigError),
    /// A flag cannot be applied to it.
    #[error("{0}")]
    Flags(String),
}

impl From<String> for LoadError {
    fn from(s: String) -> Self {
        LoadError::Flags(s)
    }
}

fn explicit_ids(matches: &ArgMatches) -> Vec<String> {
    let mut ids: Vec<String> = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect();
    if let Some((_, sub)) = matches.subcommand() {
        ids.extend(explicit_ids(sub));
    }
    ids
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
    validate::positive(parse_duration(s)?)
}

fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    s.parse()
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
        let config = cli.load_config().unwrap();
        let listener = config.listeners[0];
        assert_eq!(listener.addr.to_string(), ":3000");
        assert_eq!(listener.read_timeout, Duration::from_secs(5));
        assert_eq!(listener.write_timeout, Duration::from_secs(10));
        let pool = &config.pools[0];
        assert_eq!(pool.timeout, Duration::from_secs(10));
        assert_eq!(config.rate_limit.requests, 100);
        assert_eq!(pool.backends.len(), 1);
        assert_eq!(pool.backends[0].url.to_string(), "http://localhost:8080");
        assert_eq!(pool.retries, 2);
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
        let config = cli.load_config().unwrap();
        assert_eq!(config.listeners[0].addr.port, 4000);
        assert_eq!(config.rate_limit.requests, 20);
        assert_eq!(config.pools[0].backends.len(), 2);
        assert_eq!(config.listeners[0].read_timeout, Duration::from_secs(90));
        assert!(cli.given("rate_limit") && cli.given("listen") && !cli.given("retries"));
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
    fn subcommands_take_global_flags() {
        let cli = parse(&["demo", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(cli.command, Some(Command::Demo));
        assert_eq!(cli.listen.port, 0);
        assert!(cli.given("listen"));
        let cli = parse(&["check", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.command, Some(Command::Check));
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn resilience_flags_set_the_pool() {
        let cli = parse(&[
            "--policy=consistent_hash",
            "--hash-key=header:x-user",
            "--health-check=/healthz",
            "--health-interval=2s",
            "--max-connections=10",
            "--retry-on=503",
        ])
        .unwrap();
        let config = cli.load_config().unwrap();
        let pool = &config.pools[0];
        assert!(matches!(
            pool.policy,
            Policy::ConsistentHash(HashKey::Header(_))
        ));
        let check = pool.health_check.as_ref().unwrap();
        assert_eq!(
            (check.path.as_str(), check.interval),
            ("/healthz", Duration::from_secs(2))
        );
        assert_eq!(pool.max_connections, Some(10));
        assert_eq!(pool.retry.retry_on, [503]);
        let err = parse(&["--policy=consistent_hash"])
            .unwrap()
            .load_config()
            .unwrap_err();
        assert!(err.to_string().contains("--hash-key"), "{err}");
        assert!(parse(&["--policy=fastest"]).is_err());
    }

    #[test]
    fn only_given_flags_override_a_file() {
        let cli = parse(&["--rate-limit", "7"]).unwrap();
        let mut config = Config::single_pool(Vec::new());
        config.pools[0].retries = 9;
        config.pools.push(crate::config::PoolConfig::named("other"));
        cli.apply(&mut config, true).unwrap();
        assert_eq!(config.rate_limit.requests, 7);
        assert_eq!(
            config.pools[0].retries, 9,
            "not given: the file's value stays"
        );
        let cli = parse(&["--backends", "http://a:1"]).unwrap();
        assert!(
            cli.apply(&mut config, true).is_err(),
            "--backends with two pools"
        );
    }
}
