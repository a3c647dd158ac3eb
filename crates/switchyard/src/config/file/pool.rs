//! `[pools.NAME]` and its tables: backends (URL strings or tables with a weight), circuit
//! breaker, health checks, outlier detection, retries and TLS to `https://` backends.

use std::fmt;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{Dur, PositiveDur, Size, Str};

/// One `[pools.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    /// Backend URLs, or `{ url = "...", weight = N }` tables.
    pub backends: Spanned<Vec<Spanned<BackendFile>>>,
    /// Balancing policy.
    pub policy: Option<Spanned<Str>>,
    /// See `--retries`.
    pub retries: Option<u32>,
    /// See `--connect-timeout`.
    pub connect_timeout: Option<PositiveDur>,
    /// See `--upstream-timeout`.
    pub timeout: Option<PositiveDur>,
    /// Circuit breaker settings.
    pub circuit_breaker: Option<BreakerFile>,
    /// See `--pool-max-idle`.
    pub max_idle_connections: Option<usize>,
    /// See `--pool-idle-timeout`.
    pub idle_timeout: Option<PositiveDur>,
    /// For `consistent_hash`: `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
    pub hash_key: Option<Spanned<Str>>,
    /// Active health checks.
    pub health_check: Option<HealthCheckFile>,
    /// Passive outlier ejection.
    pub outlier_detection: Option<OutlierFile>,
    /// Retries and their budget.
    pub retry: Option<RetryFile>,
    /// Limit on a whole request, all attempts included.
    pub request_timeout: Option<PositiveDur>,
    /// Concurrent requests per backend.
    pub max_connections: Option<Spanned<u32>>,
    /// Wait for a backend under `max_connections`.
    pub queue_timeout: Option<PositiveDur>,
    /// Ramp-up time of a recovered backend.
    pub slow_start: Option<Dur>,
    /// Send to every backend when none is available.
    pub panic_mode: Option<bool>,
    /// `"auto"`, `"http1"` or `"h2"`.
    pub protocol: Option<Spanned<Str>>,
    /// Requests one HTTP/2 backend connection carries at once.
    pub max_streams_per_connection: Option<Spanned<u32>>,
    /// TLS to the pool's `https://` backends.
    pub tls: Option<Spanned<UpstreamTlsFile>>,
    /// Largest request body of the routes to this pool that do not set their own.
    pub max_body_size: Option<Size>,
}

/// `[pools.NAME.tls]` (or `tls = { ... }`): how `https://` backends are verified, and the
/// client certificate shown to them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM file of the CAs trusted instead of the system's roots.
    pub ca: Option<Spanned<Str>>,
    /// Name verified and sent as SNI instead of each backend's host.
    pub server_name: Option<Spanned<Str>>,
    /// PEM file of the client certificate chain (with `key`).
    pub cert: Option<Spanned<Str>>,
    /// PEM file of the client certificate's private key (with `cert`).
    pub key: Option<Spanned<Str>>,
    /// Accept any backend certificate (default false).
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

/// `[pools.NAME.health_check]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    /// Path requested (default `/health`).
    pub path: Option<Spanned<Str>>,
    /// Time between checks (default 5s).
    pub interval: Option<PositiveDur>,
    /// Time a check may take (default 1s).
    pub timeout: Option<PositiveDur>,
    /// `"200-399"` or `"200"` (default 200-399).
    pub expected_status: Option<Spanned<Str>>,
    /// Passes that bring a backend back (default 2).
    pub healthy_threshold: Option<Spanned<u32>>,
    /// Failures that take a backend out (default 3).
    pub unhealthy_threshold: Option<Spanned<u32>>,
}

/// `[pools.NAME.outlier_detection]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    /// Consecutive failed answers that eject (default 5; 0 disables).
    pub consecutive_5xx: Option<u32>,
    /// Ejection length (default 30s).
    pub ejection_time: Option<PositiveDur>,
    /// Largest ejected share of the pool, percent (default 50).
    pub max_ejection_percent: Option<Spanned<u8>>,
}

/// `[pools.NAME.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Statuses retried for idempotent requests (default [502, 503, 504]).
    pub retry_on: Option<Vec<Spanned<u16>>>,
    /// Retries as a share of requests, percent (default 20).
    pub budget_percent: Option<u32>,
    /// Retries always allowed per second (default 10).
    pub budget_min_per_second: Option<u32>,
    /// First backoff (default 25ms).
    pub backoff: Option<Dur>,
    /// Longest backoff (default 250ms).
    pub backoff_max: Option<Dur>,
    /// Largest request body kept for replay (default 65536).
    pub replay_max_bytes: Option<usize>,
}

/// A backend: a URL string, or a table with a weight.
#[derive(Debug, Clone)]
pub struct BackendFile {
    /// The URL.
    pub url: Str,
    /// Relative weight (default 1).
    pub weight: Option<u32>,
}

impl<'de> Deserialize<'de> for BackendFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BackendVisitor;
        impl<'de> Visitor<'de> for BackendVisitor {
            type Value = BackendFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL string or a table { url = \"...\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BackendFile, E> {
                let url = Str::deserialize(v.into_deserializer())?;
                Ok(BackendFile { url, weight: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BackendFile, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Detailed {
                    url: Str,
                    weight: Option<u32>,
                }
                let d = Detailed::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(BackendFile {
                    url: d.url,
                    weight: d.weight,
                })
            }
        }
        d.deserialize_any(BackendVisitor)
    }
}

/// `[pools.NAME.circuit_breaker]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    /// See `--circuit-failures`.
    pub failures: Option<Spanned<u32>>,
    /// See `--circuit-open`.
    pub open_duration: Option<Dur>,
}
