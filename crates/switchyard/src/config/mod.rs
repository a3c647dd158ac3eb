//! The validated, immutable configuration the proxy runs with.
//!
//! Sources, in precedence order: command-line flags > defaults (the constants in
//! [`defaults`]). [`crate::cli`] turns flags into a [`Config`]; nothing else builds one
//! except tests, which start from [`Config::default`] and change fields.

pub mod addr;
pub mod duration;

use std::time::Duration;

pub use addr::{BackendUrl, ListenAddr};

/// Default values, one place for all of them. The seed's defaults come first.
pub mod defaults {
    use std::time::Duration;

    /// `--listen`: every interface, port 3000 (the seed's `:3000`).
    pub const LISTEN: &str = ":3000";
    /// `--read-timeout`: time a client has to send a request head (and between body reads).
    pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
    /// `--write-timeout`: time a response may take; also the default upstream timeout.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--rate-limit`: requests per window (per second by default).
    pub const RATE_LIMIT: u32 = 100;
    /// `--rate-window`: the sliding window's length.
    pub const RATE_WINDOW: Duration = Duration::from_secs(1);
    /// `--backends`.
    pub const BACKENDS: &str = "http://localhost:8080";
    /// `--retries`: further backends tried when a connection cannot be established.
    pub const RETRIES: u32 = 2;
    /// `--connect-timeout`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `--circuit-failures`: consecutive failures that open a backend's circuit.
    pub const CIRCUIT_FAILURES: u32 = 5;
    /// `--circuit-open`: how long an open circuit refuses traffic before a trial request.
    pub const CIRCUIT_OPEN: Duration = Duration::from_secs(10);
    /// `--shutdown-timeout`: how long in-flight requests may take to finish on SIGTERM.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--max-header-bytes`: request line plus headers; larger heads get 431.
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    /// `--pool-max-idle`: idle keep-alive connections kept per backend and worker.
    pub const POOL_MAX_IDLE: usize = 128;
    /// `--pool-idle-timeout`: idle upstream connections older than this are closed.
    pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    /// Largest value `--rate-limit` accepts (the limiter packs counts into 20 bits).
    pub const RATE_LIMIT_MAX: u32 = (1 << 20) - 1;
}

/// Everything the proxy needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the proxy listens.
    pub listen: ListenAddr,
    /// Worker threads, each running its own event loop (see `server`).
    pub workers: usize,
    /// How the worker threads run (see `server`).
    pub runtime: RuntimeModel,
    /// Client side timeouts and limits.
    pub downstream: DownstreamConfig,
    /// Global rate limit over all proxied requests.
    pub rate_limit: RateLimitConfig,
    /// The backend pool.
    pub upstream: UpstreamConfig,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Log output.
    pub log: LogConfig,
}

/// Client-side (downstream) limits.
#[derive(Clone, Debug)]
pub struct DownstreamConfig {
    /// Deadline for a request head, counted from the first byte or from the end of the
    /// previous response (so it is also the keep-alive idle timeout, as in Go); also the
    /// longest wait for the next piece of a request body.
    pub read_timeout: Duration,
    /// Longest a response write may stall, waiting for the client or for the backend's
    /// next body bytes.
    pub write_timeout: Duration,
    /// Limit on the request line plus headers; larger gets `431`.
    pub max_header_bytes: usize,
}

/// Rate limiting; `requests == 0` disables it.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

/// The backends and how they are used.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Backends, in round-robin order.
    pub backends: Vec<BackendUrl>,
    /// Other backends tried when a connection could not be established.
    pub retries: u32,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time a backend has to send its response head; `504` after it.
    pub timeout: Duration,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Keep-alive connection pool settings.
    pub pool: PoolConfig,
}

/// Per-backend circuit breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one trial request is let through.
    pub open_duration: Duration,
}

/// Upstream keep-alive pool settings.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Idle connections kept per backend and worker.
    pub max_idle: usize,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
}

/// Log output settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// How worker threads run their event loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RuntimeModel {
    /// One single-threaded event loop per worker thread, all accepting on one socket.
    #[default]
    PerCore,
    /// tokio's work-stealing multi-thread runtime with one thread per worker.
    MultiThread,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

// === impl Config ===

impl Default for Config {
    /// The seed's defaults, except that it listens on `127.0.0.1:0` (a free loopback port) so
    /// that tests can start any number of proxies.
    fn default() -> Self {
        Config {
            listen: ListenAddr {
                ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                port: 0,
            },
            workers: 1,
            runtime: RuntimeModel::PerCore,
            downstream: DownstreamConfig {
                read_timeout: defaults::READ_TIMEOUT,
                write_timeout: defaults::WRITE_TIMEOUT,
                max_header_bytes: defaults::MAX_HEADER_BYTES,
            },
            rate_limit: RateLimitConfig {
                requests: defaults::RATE_LIMIT,
                window: defaults::RATE_WINDOW,
            },
            upstream: UpstreamConfig {
                backends: Vec::new(),
                retries: defaults::RETRIES,
                connect_timeout: defaults::CONNECT_TIMEOUT,
                timeout: defaults::WRITE_TIMEOUT,
                breaker: BreakerConfig {
                    failure_threshold: defaults::CIRCUIT_FAILURES,
                    open_duration: defaults::CIRCUIT_OPEN,
                },
                pool: PoolConfig {
                    max_idle: defaults::POOL_MAX_IDLE,
                    idle_timeout: defaults::POOL_IDLE_TIMEOUT,
                },
            },
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            log: LogConfig::default(),
        }
    }
}
