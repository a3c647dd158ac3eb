//! Upstream resilience settings of a pool: balancing policy, active health checks, outlier
//! ejection, retries and their budget. Defaults need no tuning.

use std::time::Duration;

use http::HeaderName;

/// Which HTTP a pool's backends are spoken to in (`protocol` in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// By each backend's URL: `http://` is HTTP/1.1, `h2c://` HTTP/2 with prior knowledge.
    #[default]
    Auto,
    /// HTTP/1.1 (an `h2c://` backend cannot be spoken to so: a configuration error).
    Http1,
    /// HTTP/2, with prior knowledge on `http://` backends.
    Http2,
}

/// The names `protocol` takes.
pub const PROTOCOLS: &[&str] = &["auto", "http1", "h2"];

impl UpstreamProtocol {
    /// The protocol called `name` (one of [`PROTOCOLS`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(UpstreamProtocol::Auto),
            "http1" => Some(UpstreamProtocol::Http1),
            "h2" => Some(UpstreamProtocol::Http2),
            _ => None,
        }
    }
}

/// How a pool picks the backend a request tries first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Round robin, weighted in nginx's smooth order when weights differ.
    #[default]
    RoundRobin,
    /// Uniformly random.
    Random,
    /// Power of two random choices on outstanding requests.
    LeastRequest,
    /// Power of two random choices on peak-EWMA latency × (outstanding + 1), as
    /// linkerd2-proxy balances.
    PeakEwma,
    /// Maglev consistent hashing of a request key: a backend leaving moves only its own keys.
    ConsistentHash(HashKey),
}

// === impl Policy ===

impl Policy {
    /// The policy's name in the file (`round_robin`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::Random => "random",
            Policy::LeastRequest => "least_request",
            Policy::PeakEwma => "peak_ewma",
            Policy::ConsistentHash(_) => "consistent_hash",
        }
    }
}

/// What a consistent-hash pool hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// The request path.
    Path,
}

/// Active health checks: `GET path` on every backend at `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Path requested.
    pub path: String,
    /// Time between checks of one backend (each jittered by up to 10%).
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Statuses that count as healthy (inclusive range).
    pub expected_status: (u16, u16),
    /// Consecutive passes that bring an unhealthy backend back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy backend out.
    pub unhealthy_threshold: u32,
}

/// Passive outlier ejection on consecutive failed answers (as `upstream::classify` decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive failed answers that eject a backend (the key keeps its Envoy name); 0
    /// disables.
    pub consecutive_5xx: u32,
    /// How long an ejected backend is kept out.
    pub ejection_time: Duration,
    /// Largest share of the pool that may be ejected at once, in percent.
    pub max_ejection_percent: u8,
}

/// Retries beyond connect failures (which are always retried, without the budget): for
/// idempotent requests whose body can be replayed, after a connection reset, a per-try
/// timeout or a `retry_on` status, each drawing on the budget and waiting a backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Statuses that make an idempotent request be retried on another backend.
    pub retry_on: Vec<u16>,
    /// Retries allowed as a share of requests, in percent (the retry budget).
    pub budget_percent: u32,
    /// Retries always allowed per second, whatever the share.
    pub budget_min_per_second: u32,
    /// First backoff before a retry (full jitter: a random wait up to it, doubling each time).
    pub backoff: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Largest request body kept so that the request can be sent again.
    pub replay_max_bytes: usize,
}

/// Balancing policy names, as the file and `--policy` take them.
pub const POLICIES: &[&str] = &[
    "round_robin",
    "random",
    "least_request",
    "peak_ewma",
    "consistent_hash",
];

impl Policy {
    /// The policy called `name`; `consistent_hash` needs `hash_key`.
    pub fn from_name(name: &str, hash_key: Option<HashKey>) -> Result<Policy, String> {
        Ok(match name {
            "round_robin" => Policy::RoundRobin,
            "random" => Policy::Random,
            "least_request" => Policy::LeastRequest,
            "peak_ewma" => Policy::PeakEwma,
            "consistent_hash" => Policy::ConsistentHash(hash_key.ok_or_else(|| {
                "consistent_hash needs a hash key: client_ip, path, header:NAME or cookie:NAME"
                    .to_owned()
            })?),
            other => {
                return Err(format!(
                    "unknown policy {other:?} (known: {})",
                    POLICIES.join(", ")
                ))
            }
        })
    }
}

impl std::str::FromStr for HashKey {
    type Err = String;

    /// `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
    fn from_str(text: &str) -> Result<Self, String> {
        let key = match text.split_once(':') {
            None if text == "client_ip" => Some(HashKey::ClientIp),
            None if text == "path" => Some(HashKey::Path),
            Some(("header", name)) => HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(HashKey::Header),
            Some(("cookie", name)) if !name.is_empty() => Some(HashKey::Cookie(name.to_owned())),
            _ => None,
        };
        key.ok_or_else(|| format!("{text:?} is not client_ip, path, header:NAME or cookie:NAME"))
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/health".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            expected_status: (200, 399),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: 5,
            ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            retry_on: vec![502, 503, 504],
            budget_percent: 20,
            budget_min_per_second: 10,
            backoff: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            replay_max_bytes: 64 * 1024,
        }
    }
}
