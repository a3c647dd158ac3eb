//! Limits on what a client may send and hold, and the security headers of responses: the
//! validated settings, their defaults, and the sizes they are written in (`"10MiB"`).
//!
//! - [`Limits`] (`[limits]`, and `--max-body-size`): the request body size and URI length
//!   every route has unless it sets its own, and the connection limits of every listener;
//! - [`RouteLimits`] (keys of a `[[routes]]` entry, `max_body_size` also of a pool): body
//!   size, allowed methods and content types;
//! - [`ConnLimits`]: connections per listener and per client IP, requests per connection and
//!   concurrent requests per client IP;
//! - [`SecurityHeaders`]: headers added to (and removed from) a route's responses.

use http::{HeaderValue, Method};

/// Default values of the limits, each chosen so that a normal site never reaches it.
pub mod defaults {
    /// `max_body_size`: 100 MiB. nginx's 1 MiB refuses ordinary photo uploads; 100 MB is
    /// what Cloudflare's plans let through by default, so sites already live within it. The
    /// body streams (it is never buffered whole), so the limit protects backends, not
    /// switchyard's memory.
    pub const MAX_BODY_SIZE: u64 = 100 * 1024 * 1024;
    /// `max_uri_length`: 8 KiB, as nginx's `large_client_header_buffers` (browsers and
    /// CDNs cap URLs near there too).
    pub const MAX_URI_LENGTH: usize = 8 * 1024;
    /// `max_connections`: open client connections per listener. Each costs a socket and
    /// about 20 KiB idle, so 50,000 bound it near 1 GiB; a server holding more raises it
    /// (and `ulimit -n`).
    pub const MAX_CONNECTIONS: u32 = 50_000;
    /// `max_connections_per_ip`: off. Behind a load balancer without the PROXY protocol
    /// every connection comes from its address, a carrier-grade NAT puts thousands of
    /// mobile users behind one, and a load test runs from one machine: a default cap
    /// would refuse them all (nginx's `limit_conn` and HAProxy's per-source limits are
    /// opt-in too).
    pub const MAX_CONNECTIONS_PER_IP: u32 = 0;
    /// `max_requests_per_connection`: then `Connection: close` (HTTP/1.1) or `GOAWAY`
    /// (HTTP/2). Ten times nginx's `keepalive_requests`: a reconnect per 10,000 requests
    /// costs nothing, and it bounds what one connection can be used for.
    pub const MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;
    /// `response_buffer`: 32 KiB queued per slow client (hyper's own default, about 400
    /// KiB, made a client that stopped reading a 10 MB response cost 290 KiB). nginx holds
    /// up to its `proxy_buffers`, 8 × 4 or 8 KiB by default.
    pub const RESPONSE_BUFFER: usize = 32 * 1024;
    /// `max_backend_header_bytes`: 32 KiB, the listeners' own head limit (nginx's
    /// `proxy_buffer_size` is one page, 4 or 8 KiB). hyper reads an HTTP/1.1 backend's body
    /// at most this much at a time, so it also sizes the chunks a slow client holds (about
    /// three of them): 16 KiB held 72 KiB instead of 90 per slow reader, but cost 1.5 times
    /// the CPU per MiB of a large body (twice the reads and writes), so it stays at 32 KiB.
    pub const MAX_BACKEND_HEADER_BYTES: usize = 32 * 1024;
}

/// Limits every route and listener has unless it sets its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes; `0`: no limit. Larger gets `413`.
    pub max_body_size: u64,
    /// Longest request target (path and query) in bytes. Longer gets `414`.
    pub max_uri_length: usize,
    /// The connection limits of every listener.
    pub connections: ConnLimits,
    /// Largest response head a backend may send (more is a `502`); also the most of an
    /// HTTP/1.1 backend's body read at once.
    pub max_backend_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_size: defaults::MAX_BODY_SIZE,
            max_uri_length: defaults::MAX_URI_LENGTH,
            connections: ConnLimits::default(),
            max_backend_header_bytes: defaults::MAX_BACKEND_HEADER_BYTES,
        }
    }
}

/// A listener's connection limits; `0` means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Client connections open at once on the listener.
    pub max_connections: u32,
    /// Client connections open at once from one IP address on the listener.
    pub max_connections_per_ip: u32,
    /// What a connection beyond those limits gets.
    pub over_limit: OverLimit,
    /// Requests served on one connection; the last one is answered with `Connection:
    /// close` (HTTP/1.1), or the connection gets a `GOAWAY` (HTTP/2).
    pub max_requests_per_connection: u32,
    /// Requests in progress at once from one IP address on the listener (all its
    /// connections together); one more gets `503`.
    pub max_requests_per_ip: u32,
    /// Response bytes queued for one client (per HTTP/1.1 connection, per HTTP/2 stream)
    /// before switchyard stops reading the backend's body: a slow reader's backpressure
    /// reaches the backend instead of growing buffers. Also the flow-control window of each
    /// stream to an HTTP/2 backend.
    pub response_buffer: usize,
}

impl ConnLimits {
    /// True when connections must be counted per client IP.
    pub fn per_ip(&self) -> bool {
        self.max_connections_per_ip != 0 || self.max_requests_per_ip != 0
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            over_limit: OverLimit::Close,
            max_requests_per_connection: defaults::MAX_REQUESTS_PER_CONNECTION,
            max_requests_per_ip: 0,
            response_buffer: defaults::RESPONSE_BUFFER,
        }
    }
}

/// What a connection over a connection limit gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverLimit {
    /// Closed at once, nothing read or written (`"close"`, the default): the cheapest.
    #[default]
    Close,
    /// Its first request is answered `503` with `Connection: close` (`"503"`), so that a
    /// client sees why.
    Unavailable,
}

/// A route's own limits (the body size may come from its pool).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RouteLimits {
    /// Largest request body in bytes (`0`: no limit); `None`: the `[limits]` one.
    pub max_body_size: Option<u64>,
    /// Methods the route takes, and the `Allow` header of its `405`; `None`: any.
    pub allowed_methods: Option<(Vec<Method>, HeaderValue)>,
    /// Media types (`application/json`, `text/*`) a request body may have, lower case;
    /// empty: any. A body of another type, or without `Content-Type`, gets `415`.
    pub allowed_content_types: Vec<String>,
    /// Security headers of the route's responses.
    pub security_headers: Option<SecurityHeaders>,
}

/// Headers set on a route's responses (when the backend did not set them) and removed
/// from them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`, sent only over TLS (an HTTPS listener's own `hsts`
    /// wins).
    pub hsts: Option<HeaderValue>,
    /// `X-Content-Type-Options`.
    pub content_type_options: Option<HeaderValue>,
    /// `X-Frame-Options`.
    pub frame_options: Option<HeaderValue>,
    /// `Content-Security-Policy: frame-ancestors ...`, when the response has no CSP.
    pub frame_ancestors: Option<HeaderValue>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<HeaderValue>,
    /// Remove `Server` and `X-Powered-By` from the backend's responses.
    pub hide_server: bool,
}

impl SecurityHeaders {
    /// `security_headers = "recommended"`.
    pub fn recommended() -> Self {
        SecurityHeaders {
            hsts: Some(HeaderValue::from_static("max-age=31536000")),
            content_type_options: Some(HeaderValue::from_static("nosniff")),
            frame_options: Some(HeaderValue::from_static("SAMEORIGIN")),
            frame_ancestors: Some(HeaderValue::from_static("frame-ancestors 'self'")),
            referrer_policy: Some(HeaderValue::from_static("strict-origin-when-cross-origin")),
            hide_server: true,
        }
    }
}

/// Parses a size: a whole number of bytes, optionally followed by a unit (`B`, `KiB`,
/// `MiB`, `GiB`, `TiB` or the decimal `KB`, `MB`, `GB`, `TB`; case-insensitive, a space
/// allowed before it): `"10MiB"`, `"512KiB"`, `"0"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("size {text:?} is negative"));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let invalid = || {
        format!("invalid size {text:?}: write bytes with a unit, as \"10MiB\", \"512KiB\" or \"0\"")
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("2 mb"), Ok(2_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("-1MiB").unwrap_err().contains("negative"));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10 MiBs").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
    }
}
