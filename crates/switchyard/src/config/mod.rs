//! The validated, immutable configuration the proxy runs with.
//!
//! Sources, in precedence order: command-line flags > configuration file > defaults (the
//! constants in [`defaults`]). Without `--config`, the flags alone describe one listener, one
//! pool (`default`) and one route taking every request to it, exactly as the seed did.
//!
//! - [`file`](mod@file): the TOML as written (serde types), read section by section;
//! - [`validate`]: file → [`Config`], with every problem found located in the file;
//! - [`error`]: errors that name the file, line, column and key;
//! - [`route`]: route matching and rewriting settings;
//! - [`tls`]: a listener's TLS settings, and reading certificates and keys;
//! - [`upstream`]: a pool's balancing policy, health checks, outlier ejection and retries;
//! - [`upstream_tls`]: TLS to a pool's `https://` backends (CA, server name, client
//!   certificate), read from [`pem`] files;
//! - [`auth`]: access control (API keys, key sources, trusted proxies, a route's needs),
//!   [`cidr`]: CIDR blocks and IP rules; [`jwt`]: JWT bearer tokens (keys, checks, a
//!   route's claims); [`forward_auth`]: a route's forward auth;
//! - [`limits`]: request and connection limits, security headers; [`client_limit`]: the
//!   per-client rate limits;
//! - [`addr`], [`duration`]: listen addresses, backend URLs, Go durations.

pub mod addr;
pub mod audit;
pub mod auth;
pub mod cidr;
pub mod client_limit;
pub mod defaults;
pub mod duration;
pub mod error;
pub mod file;
pub mod forward_auth;
pub mod jwt;
pub mod limits;
mod listener;
pub mod pem;
pub mod route;
pub mod tls;
pub mod upstream;
pub mod upstream_tls;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use addr::{BackendUrl, ListenAddr, Scheme};
pub use audit::{AuditConfig, AuditTarget, ProcessConfig};
pub use auth::{AccessConfig, RouteAccess};
pub use cidr::{CidrSet, IpRules};
pub use error::ConfigError;
pub use limits::{ConnLimits, Limits, OverLimit, RouteLimits, SecurityHeaders};
pub use listener::ListenerConfig;
pub use route::{
    ClientMatch, HeaderEdits, HostMatch, PathMatch, PathRewrite, RouteAction, RouteConfig,
    RouteMatch,
};
pub use tls::TlsConfig;
pub use upstream::{
    HashKey, HealthCheckConfig, OutlierConfig, Policy, RetryConfig, UpstreamProtocol,
};
pub use upstream_tls::UpstreamTlsConfig;

/// Everything the proxy needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the proxy listens (at least one).
    pub listeners: Vec<ListenerConfig>,
    /// The admin endpoints.
    pub admin: AdminConfig,
    /// Worker threads, each running its own event loop (see `server`).
    pub workers: usize,
    /// How the worker threads run (see `server`).
    pub runtime: RuntimeModel,
    /// Global rate limit over all proxied requests.
    pub rate_limit: RateLimitConfig,
    /// Per-client rate limit over all proxied requests (`[client_rate_limit]`).
    pub client_rate_limit: Option<client_limit::ClientRateLimitConfig>,
    /// The backend pools.
    pub pools: Vec<PoolConfig>,
    /// The routes, in precedence order (see [`route`]).
    pub routes: Vec<RouteConfig>,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// WebSocket tunnels.
    pub websocket: WebSocketConfig,
    /// Request and connection limits (`[limits]`).
    pub limits: Limits,
    /// Log output.
    pub log: LogConfig,
    /// Access control: API keys, where requests carry them, trusted proxies.
    pub access: AccessConfig,
    /// The audit log of security events (`[audit]`; off by default).
    pub audit: AuditConfig,
    /// The user and group to serve as (`[server]`).
    pub process: ProcessConfig,
    /// The file this configuration came from, if any.
    pub source: Option<Source>,
}

/// Where a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// A short hash of its contents (hex), shown as the config version.
    pub version: String,
    /// The SHA-256 of its contents (hex), for the audit log.
    pub sha256: String,
    /// How often the file is checked for changes (`None`: not watched).
    pub watch_interval: Option<Duration>,
}

/// The admin endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// A listener of their own; `None`: served on every proxy listener.
    pub listen: Option<ListenAddr>,
    /// Path of the health endpoint.
    pub health_path: String,
    /// Path of the metrics endpoint.
    pub metrics_path: String,
    /// Status of `/health` when a pool has no available backend (`DOWN`).
    pub down_status: http::StatusCode,
    /// The digest of the bearer token the metrics endpoint requires (`None`: open).
    pub token: Option<auth::SecretDigest>,
}

/// WebSocket tunnels (HTTP/1.1 `Upgrade: websocket`), over all listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSocketConfig {
    /// Tunnels open at once; one more upgrade gets `503`.
    pub max_tunnels: u32,
    /// A tunnel with no byte either way for this long is closed.
    pub idle_timeout: Duration,
}

/// Rate limiting; `requests == 0` disables it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

/// A named pool of backends and how they are used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name, referred to by routes.
    pub name: String,
    /// Backends, in round-robin order.
    pub backends: Vec<BackendConfig>,
    /// Other backends tried for one request: after a connect failure (any method), and for
    /// idempotent requests whose body can be replayed also after a connection reset, a
    /// per-try timeout or a [`RetryConfig::retry_on`] status, within the retry budget.
    pub retries: u32,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time a backend has to send its response head; `504` after it.
    pub timeout: Duration,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Keep-alive connection pool settings.
    pub keepalive: KeepAliveConfig,
    /// Which HTTP its backends are spoken to in (with each backend's URL scheme).
    pub protocol: UpstreamProtocol,
    /// Requests one HTTP/2 connection to a backend carries at once (per worker); beyond, a
    /// further connection opens.
    pub max_streams_per_connection: u32,
    /// Balancing policy.
    pub policy: Policy,
    /// Active health checks, if configured.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive outlier ejection.
    pub outlier: OutlierConfig,
    /// Which answers are retried beyond connect failures, the retry budget and backoff.
    pub retry: RetryConfig,
    /// Limit on a whole request, all attempts included (`None`: only the per-try timeout).
    pub request_timeout: Option<Duration>,
    /// Concurrent requests per backend; more wait up to `queue_timeout`, then 503.
    pub max_connections: Option<u32>,
    /// How long a request waits for a backend under `max_connections`.
    pub queue_timeout: Duration,
    /// A recovered backend's share of traffic ramps up over this long (zero: at once).
    pub slow_start: Duration,
    /// When every backend is unavailable, send to all of them anyway (Envoy's panic mode)
    /// instead of answering 503.
    pub panic_mode: bool,
    /// TLS to its `https://` backends.
    pub tls: UpstreamTlsConfig,
}

/// One backend of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendConfig {
    /// Where it is.
    pub url: BackendUrl,
    /// Relative weight (round robin gives it this many turns per cycle).
    pub weight: u32,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAliveConfig {
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
    /// The seed's defaults with no backend, except that it listens on `127.0.0.1:0` (a free
    /// loopback port) so that tests can start any number of proxies.
    fn default() -> Self {
        Config {
            listeners: vec![ListenerConfig {
                addr: ListenAddr {
                    ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                    port: 0,
                },
                ..ListenerConfig::default()
            }],
            admin: AdminConfig::default(),
            workers: 1,
            runtime: RuntimeModel::PerCore,
            rate_limit: RateLimitConfig {
                requests: defaults::RATE_LIMIT,
                window: defaults::RATE_WINDOW,
            },
            client_rate_limit: None,
            pools: vec![PoolConfig::named(defaults::POOL_NAME)],
            routes: vec![RouteConfig::catch_all(defaults::POOL_NAME)],
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            websocket: WebSocketConfig::default(),
            limits: Limits::default(),
            log: LogConfig::default(),
            access: AccessConfig::default(),
            audit: AuditConfig::default(),
            process: ProcessConfig::default(),
            source: None,
        }
    }
}

impl Config {
    /// The configuration of the seed's usage: one pool of `backends`, every request to it.
    pub fn single_pool(backends: Vec<BackendUrl>) -> Self {
        let mut config = Config::default();
        config.pools[0].backends = backends
            .into_iter()
            .map(|url| BackendConfig { url, weight: 1 })
            .collect();
        config
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
        validate::from_text(path, &text)
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_tunnels: defaults::MAX_TUNNELS,
            idle_timeout: defaults::TUNNEL_IDLE_TIMEOUT,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            health_path: defaults::HEALTH_PATH.to_owned(),
            metrics_path: defaults::METRICS_PATH.to_owned(),
            down_status: defaults::DOWN_STATUS,
            token: None,
        }
    }
}

impl PoolConfig {
    /// A pool with default settings and no backends.
    pub fn named(name: &str) -> Self {
        PoolConfig {
            name: name.to_owned(),
            backends: Vec::new(),
            retries: defaults::RETRIES,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            timeout: defaults::WRITE_TIMEOUT,
            breaker: BreakerConfig {
                failure_threshold: defaults::CIRCUIT_FAILURES,
                open_duration: defaults::CIRCUIT_OPEN,
            },
            keepalive: KeepAliveConfig {
                max_idle: defaults::POOL_MAX_IDLE,
                idle_timeout: defaults::POOL_IDLE_TIMEOUT,
            },
            protocol: UpstreamProtocol::Auto,
            max_streams_per_connection: defaults::MAX_STREAMS_PER_CONNECTION,
            policy: Policy::default(),
            health_check: None,
            outlier: OutlierConfig::default(),
            retry: RetryConfig::default(),
            request_timeout: None,
            max_connections: None,
            queue_timeout: Duration::from_secs(1),
            slow_start: Duration::ZERO,
            panic_mode: false,
            tls: UpstreamTlsConfig::default(),
        }
    }
}

/// A short, stable hash of a configuration file's text (FNV-1a, 64 bits, as 12 hex digits).
pub fn version_of(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")[..12].to_owned()
}
