//! Command-line flags: the seed's five (same names, same defaults) plus the knobs of the
//! features the seed did not have. Go-style single-dash forms (`-rate-limit=20`) are accepted.
//!
//! Without `--config`, the flags describe the whole proxy. With it, the file does, and only
//! the flags given on the command line override it (flags > file > defaults); see
//! [`Cli::apply`] for what each flag overrides.
//!
//! [`Command`] lists the subcommands; [`Cli::clap_command`] is the clap command the binary
//! parses with (and generates completions and the man page from), each subcommand's help
//! showing what applies to it.

mod access;
mod apply;
mod args;
mod command;
pub mod hash_key;
mod process;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use clap::{FromArgMatches, Parser, Subcommand};

use crate::config::upstream::POLICIES;
use crate::config::{
    defaults, validate, BackendUrl, CidrSet, Config, ConfigError, HashKey, ListenAddr, LogFormat,
    RuntimeModel,
};
pub use args::one_line_error;
use args::{
    parse_cidrs, parse_duration, parse_hash_key, parse_header_limit, parse_on_off,
    parse_positive_duration, parse_size,
};

/// switchyard: an HTTP reverse proxy and load balancer.
///
/// Round robin over --backends, a sliding-window rate limit, a circuit breaker per backend,
/// retries on another backend (after a connect failure; for idempotent requests also after a
/// reset, a timeout or a --retry-on status, within a retry budget), and /health and /metrics
/// on the same port.
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
    #[arg(long, visible_alias = "from", global = true, default_value = defaults::LISTEN, value_name = "ADDR")]
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

    /// Requests allowed per --rate-window from each client IP (IPv6: each /64), on top of
    /// --rate-limit; 0 (the default) disables it.
    #[arg(long, global = true, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(defaults::RATE_LIMIT_MAX)))]
    pub client_rate_limit: u32,

    /// Comma-separated backend URLs, balanced round robin.
    #[arg(long, visible_alias = "to", global = true, default_value = defaults::BACKENDS, value_delimiter = ',', value_name = "URLS")]
    pub backends: Vec<BackendUrl>,

    /// Further backends to try: after a connect failure (any method: the request never
    /// reached the backend), and for idempotent requests also after a connection reset, a
    /// per-try timeout (--upstream-timeout) or a --retry-on status, within the retry budget.
    /// 0 gives the seed's behaviour.
    #[arg(long, global = true, default_value_t = defaults::RETRIES, value_name = "N")]
    pub retries: u32,

    /// Time a backend has to start its response before the client gets 504
    /// [default: --write-timeout].
    #[arg(long, global = true, value_parser = parse_positive_duration, value_name = "DUR")]
    pub upstream_timeout: Option<Duration>,

    /// Time allowed to open a TCP connection to a backend.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub connect_timeout: Duration,

    /// Consecutive failures (no answer: connect errors, resets, timeouts; or a failed answer:
    /// 5xx but 501/505, a body that broke off) that open a backend's circuit.
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

    /// Largest request body, counted as it streams (`10MiB`, `512KiB`; `0`: no limit; default
    /// 100MiB); larger gets 413. Routes and pools with their own `max_body_size` keep it.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_body_size: Option<u64>,

    /// Requests on one client connection (`0`: no limit; default 10000, nginx's
    /// `keepalive_requests`); the last is answered with `Connection: close`, or `GOAWAY`.
    #[arg(long, global = true, value_name = "N")]
    pub max_requests_per_connection: Option<u32>,

    /// Client connections open at once per listener (`0`: no limit; default 50000); more are
    /// closed at once.
    #[arg(long, global = true, value_name = "N")]
    pub max_client_connections: Option<u32>,

    /// Client connections open at once from one IP per listener (default `0`: no limit);
    /// more are closed at once.
    #[arg(long, global = true, value_name = "N")]
    pub max_connections_per_ip: Option<u32>,

    /// Idle keep-alive connections kept per backend and worker thread.
    #[arg(long, global = true, default_value_t = defaults::POOL_MAX_IDLE, value_name = "N")]
    pub pool_max_idle: usize,

    /// Idle upstream connections older than this are closed instead of reused.
    #[arg(long, global = true, default_value = "90s", value_parser = parse_positive_duration, value_name = "DUR")]
    pub pool_idle_timeout: Duration,

    /// Balancing policy.
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

    /// Statuses that make an idempotent request be retried on another backend (within the
    /// retry budget and --retries).
    #[arg(long, global = true, default_value = "502,503,504", value_delimiter = ',', value_name = "CODES",
          value_parser = clap::value_parser!(u16).range(429..=599))]
    pub retry_on: Vec<u16>,

    /// PEM file of the CAs that https:// backends' certificates are verified against,
    /// instead of the system's roots (every pool; overrides a pool's tls.ca).
    #[arg(long, global = true, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Ramp-up time of a backend that comes back (0s: none).
    #[arg(long, global = true, default_value = "0s", value_parser = parse_duration, value_name = "DUR")]
    pub slow_start: Duration,

    /// Worker threads [default: $TOKIO_WORKER_THREADS, else one per CPU].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Event loop model: `per-core` (default) or `multi-thread` (kept for benchmarking).
    #[arg(long, global = true, value_enum, default_value_t = RuntimeModel::PerCore, hide = true)]
    pub runtime: RuntimeModel,

    /// Serve the --listen listener over HTTPS only, with this certificate chain (PEM, the
    /// certificate first, then its intermediates); ALPN h2 and http/1.1. Needs --tls-key.
    /// Reloaded when the file changes and on SIGHUP.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by one of these CAs (PEM bundle): mutual TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// TLS session resumption (rotated tickets): on or off (off: every connection makes a
    /// full handshake).
    #[arg(long, global = true, default_value = "on", value_name = "on|off", value_parser = parse_on_off(),
          action = clap::ArgAction::Set)]
    pub tls_resumption: bool,

    /// Log line format. The level comes from $RUST_LOG (default: info, which logs every
    /// request; warn turns request logging off).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Every proxied request needs an API key from this file (`NAME sha256:HEX [role,role]`
    /// per line; `switchyard hash-key` makes a line). Missing or unknown key: 401.
    #[arg(long, global = true, value_name = "FILE")]
    pub api_keys: Option<PathBuf>,

    /// Only clients in these comma-separated CIDR blocks may connect to the listeners
    /// (others get 403).
    #[arg(long, global = true, value_name = "CIDRS", value_parser = parse_cidrs)]
    pub allow_ip: Option<CidrSet>,

    /// Clients in these comma-separated CIDR blocks get 403 on every listener.
    #[arg(long, global = true, value_name = "CIDRS", value_parser = parse_cidrs)]
    pub deny_ip: Option<CidrSet>,

    /// Proxies (comma-separated CIDR blocks) whose X-Forwarded-For names the client; from any
    /// other peer the peer is the client.
    #[arg(long, global = true, value_name = "CIDRS", value_parser = parse_cidrs)]
    pub trusted_proxies: Option<CidrSet>,

    /// Connections from the trusted proxies start with a PROXY protocol header (v1 or v2,
    /// as a TCP load balancer sends) naming the client; needs --trusted-proxies.
    #[arg(long, global = true)]
    pub proxy_protocol: bool,

    /// /metrics needs `Authorization: Bearer TOKEN`, TOKEN being this file's contents
    /// (/health stays open).
    #[arg(long, global = true, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Write the process id to this file once the listeners are bound (removed at exit);
    /// `switchyard reload` and `switchyard stop` read it.
    #[arg(long, global = true, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Write security events (authentication failures, refusals summarised per client,
    /// reloads, admin access) as JSON lines to this file (`-`: standard output); reopened
    /// on SIGUSR1.
    #[arg(long, global = true, value_name = "PATH")]
    pub audit_log: Option<String>,

    /// Once the listeners are bound, switch to this user (name or id); needs root.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// With --user, switch to this group (name or id) instead of the user's own.
    #[arg(long, global = true, value_name = "NAME")]
    pub group: Option<String>,

    /// Run as root without --user (refused otherwise; SWITCHYARD_ALLOW_ROOT=1 does the same).
    #[arg(long, global = true)]
    pub allow_root: bool,

    /// The flags given on the command line (not defaulted), by id.
    #[arg(skip)]
    pub explicit: Vec<String>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start two built-in test backends and the proxy in front of them, and print the curl
    /// commands to try (the proxy listens on --listen, :3000 by default).
    Demo,
    /// A one-line reverse proxy: `switchyard proxy --from :3000 --to http://127.0.0.1:8080`
    /// (--from is --listen, --to is --backends; the other flags apply as without a
    /// subcommand).
    Proxy,
    /// Print the configuration file (TOML) equivalent to the flags given, to grow from flags
    /// into a file: `switchyard print-config --to http://127.0.0.1:8080 > switchyard.toml`.
    #[command(visible_alias = "adapt")]
    PrintConfig,
    /// Check the --config file (and the flags given with it) without starting; exits 1 and
    /// prints every problem found when it is invalid.
    Check,
    /// Read an API key's secret on standard input and print its key-file line,
    /// `NAME sha256:HEX [roles]` (the secret itself is stored nowhere).
    HashKey(hash_key::HashKeyArgs),
    /// Make the switchyard whose pid is in --pid-file reload its configuration (SIGHUP).
    Reload,
    /// Make the switchyard whose pid is in --pid-file drain and exit (SIGTERM), and wait
    /// until it has (at most --shutdown-timeout and 5 s more).
    Stop,
    /// Print the version and build details.
    Version,
    /// Print a shell completion script: `switchyard completions bash >
    /// /etc/bash_completion.d/switchyard`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `switchyard manpage > switchyard.1; man ./switchyard.1`.
    Manpage,
}

// === impl Cli ===

impl Cli {
    /// Parses `args` (with the program name first), accepting Go-style flags.
    pub fn try_parse_args(args: impl IntoIterator<Item = String>) -> Result<Self, clap::Error> {
        let matches = Cli::clap_command().try_get_matches_from(args::normalise(args))?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.explicit = args::explicit_ids(&matches);
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
