//! The top level of the file: its scalar keys, `[admin]`, `[[listeners]]`, `[rate_limit]`
//! (also the shape of a route's `rate_limit`) and `[websocket]`.

use serde::Deserialize;
use toml::Spanned;

use super::{Dur, PositiveDur, Str, TlsFile};

/// Top-level scalar settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    /// Worker threads.
    pub workers: Option<u16>,
    /// Drain time on SIGTERM.
    pub shutdown_timeout: Option<Dur>,
    /// `text` or `json`.
    pub log_format: Option<Spanned<Str>>,
    /// The security headers of every route that has no `security_headers` of its own.
    pub security_headers: Option<Spanned<super::limits::SecurityHeadersFile>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// A separate listener for the admin endpoints; without it they are served on every
    /// proxy listener.
    pub listen: Option<Spanned<Str>>,
    /// Path of the health endpoint.
    pub health_path: Option<Spanned<Str>>,
    /// Path of the metrics endpoint.
    pub metrics_path: Option<Spanned<Str>>,
    /// Status `/health` answers with when the proxy is `DOWN` (200 to 599).
    pub down_status: Option<Spanned<u16>>,
    /// A file holding the bearer token `/metrics` requires (`/health` stays open).
    pub token_file: Option<Spanned<Str>>,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// `:3000`, `127.0.0.1:3000`, `[::1]:3000`.
    pub address: Spanned<Str>,
    /// See `--read-timeout`.
    pub read_timeout: Option<PositiveDur>,
    /// See `--write-timeout`.
    pub write_timeout: Option<PositiveDur>,
    /// See `--max-header-bytes`.
    pub max_header_bytes: Option<Spanned<usize>>,
    /// HTTPS: certificates and client authentication (see `--tls-cert`).
    pub tls: Option<Spanned<TlsFile>>,
    /// A plaintext listener that answers every request (but the admin endpoints) with a
    /// `308` to the same URL over HTTPS.
    pub redirect_to_https: Option<Spanned<bool>>,
    /// The port of those redirects (default: the first HTTPS listener's, else 443).
    pub https_port: Option<Spanned<u16>>,
    /// CIDR blocks that may talk to this listener (empty: any not denied).
    pub allow_ip: Option<Vec<Spanned<Str>>>,
    /// CIDR blocks that may not.
    pub deny_ip: Option<Vec<Spanned<Str>>>,
    /// Connections from `[access] trusted_proxies` start with a PROXY protocol header (v1
    /// or v2) naming the client.
    pub proxy_protocol: Option<Spanned<bool>>,
    /// Client connections on this listener (over `[limits]`'s).
    pub max_connections: Option<u32>,
    /// Client connections per client IP on this listener (over `[limits]`'s).
    pub max_connections_per_ip: Option<u32>,
}

/// A rate limit (`[rate_limit]`, or a route's `rate_limit`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// Requests per window; 0 disables.
    pub requests: Spanned<u32>,
    /// Window length, default 1s.
    pub window: Option<PositiveDur>,
}

/// `[websocket]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketFile {
    /// Tunnels open at once; `0` refuses every upgrade.
    pub max_tunnels: Option<u32>,
    /// A tunnel with no byte either way for this long is closed.
    pub idle_timeout: Option<PositiveDur>,
}
