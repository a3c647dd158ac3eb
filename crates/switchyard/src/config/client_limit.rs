//! Per-client rate limits (`[client_rate_limit]`, a route's `client_rate_limit`, and
//! `--client-rate-limit`): the table as written, its validation (every problem located by
//! file, line and key) and the validated [`ClientRateLimitConfig`]. The limiter itself is
//! `ratelimit::keyed`.
//!
//! ```toml
//! [client_rate_limit]
//! requests = 10                # per window and client; 0: no limit
//! window = "1s"
//! key = "ip"                   # "ip" | "api_key" | "header:X-Tenant"
//! max_clients = 100000         # keys tracked at once (memory: 16 bytes each)
//! headers = true               # RateLimit-Policy and RateLimit on every response
//! per_role = { paid = 1000 }   # keys with the role `paid` (the highest of a key's roles)
//! per_key = { acme = 5000 }    # the key named `acme` (before its roles)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::defaults;
use super::error::{suggest, Problem};
use super::file::{PositiveDur, Str};

/// Defaults of the per-client limits.
pub mod default {
    use std::time::Duration;

    /// `window`: one second, as `--rate-window`.
    pub const WINDOW: Duration = Duration::from_secs(1);
    /// `max_clients`: 100,000 keys (1.6 MB of slots per limiter). A site sees that many
    /// distinct clients within one window only under a flood of made-up keys; nginx's
    /// `limit_req` zone of the usual 10 MB holds 160,000.
    pub const MAX_CLIENTS: u32 = 100_000;
    /// The largest `max_clients` accepted: 100 million keys, 1.6 GB.
    pub const MAX_CLIENTS_MAX: u32 = 100_000_000;
}

/// What a request is counted under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientKeyKind {
    /// The client's address (`"ip"`): IPv4 by address, IPv6 by its /64 (what one host or
    /// one home network is usually given).
    Ip,
    /// The name of the API key the request presented (`"api_key"`).
    ApiKey,
    /// The value of this request header (`"header:X-Tenant"`).
    Header(HeaderName),
    /// A string claim of the request's verified JWT (`"claim:sub"`; routes with `jwt`).
    Claim(String),
}

/// A validated per-client limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRateLimitConfig {
    /// Requests per window and key (`0`: no limit); keys without a limit of their own.
    pub requests: u32,
    /// The sliding window.
    pub window: Duration,
    /// What requests are counted under. A request without that key (no API key, no such
    /// header) is counted under its client address.
    pub key: ClientKeyKind,
    /// Keys tracked at once; at the cap a new key takes the idlest key's place.
    pub max_clients: u32,
    /// Send `RateLimit-Policy` and `RateLimit` on every response (a `429` always has
    /// `Retry-After`).
    pub headers: bool,
    /// Limits of API keys by role (the highest of a key's roles applies; `0`: no limit).
    pub per_role: Vec<(String, u32)>,
    /// Limits of API keys by name (before their roles; `0`: no limit).
    pub per_key: Vec<(String, u32)>,
}

impl Default for ClientRateLimitConfig {
    fn default() -> Self {
        ClientRateLimitConfig {
            requests: 0,
            window: default::WINDOW,
            key: ClientKeyKind::Ip,
            max_clients: default::MAX_CLIENTS,
            headers: false,
            per_role: Vec::new(),
            per_key: Vec::new(),
        }
    }
}

impl ClientRateLimitConfig {
    /// True when the counts kept under `self` mean the same under `other` (same window,
    /// key and cap): a reload that changes only the limits keeps them.
    pub fn same_counts(&self, other: &ClientRateLimitConfig) -> bool {
        self.window == other.window
            && self.key == other.key
            && self.max_clients == other.max_clients
    }
}

/// `[client_rate_limit]`, or a route's `client_rate_limit`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRateLimitFile {
    /// Requests per window and key; 0: no limit.
    pub requests: Spanned<u32>,
    /// Window length, default 1s.
    pub window: Option<PositiveDur>,
    /// `"ip"`, `"api_key"` or `"header:NAME"`.
    pub key: Option<Spanned<Str>>,
    /// Keys tracked at once.
    pub max_clients: Option<Spanned<u32>>,
    /// `RateLimit-Policy` and `RateLimit` on every response.
    pub headers: Option<bool>,
    /// Limits by role.
    pub per_role: Option<BTreeMap<Spanned<String>, Spanned<u32>>>,
    /// Limits by key name.
    pub per_key: Option<BTreeMap<Spanned<String>, Spanned<u32>>>,
}

/// The key kinds, for suggestions.
const KINDS: &[&str] = &["ip", "api_key", "header:", "claim:"];

/// Checks `file` (at `key`: `client_rate_limit` or `routes[N].client_rate_limit`), pushing
/// every problem to `problems`; `None` when the limit is off (`requests = 0` and no per-key
/// limit) or wrong.
pub fn validate(
    file: &ClientRateLimitFile,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<ClientRateLimitConfig> {
    let before = problems.len();
    let mut error = |span: std::ops::Range<usize>, at: &str, message: String| {
        problems.push(Problem::new(span, Some(format!("{key}.{at}")), message));
    };
    let mut config = ClientRateLimitConfig {
        window: file.window.map_or(default::WINDOW, |w| w.0),
        headers: file.headers.unwrap_or(false),
        ..ClientRateLimitConfig::default()
    };
    let requests = *file.requests.get_ref();
    if requests > defaults::RATE_LIMIT_MAX {
        let max = defaults::RATE_LIMIT_MAX;
        error(
            file.requests.span(),
            "requests",
            format!("must be at most {max}"),
        );
    }
    config.requests = requests;
    if let Some(max) = &file.max_clients {
        match *max.get_ref() {
            n @ 1..=default::MAX_CLIENTS_MAX => config.max_clients = n,
            _ => error(
                max.span(),
                "max_clients",
                format!(
                    "must be between 1 and {} (the default is {})",
                    default::MAX_CLIENTS_MAX,
                    default::MAX_CLIENTS
                ),
            ),
        }
    }
    if let Some(kind) = &file.key {
        match parse_kind(&kind.get_ref().0) {
            Ok(k) => config.key = k,
            Err(message) => {
                let word = kind.get_ref().0.as_str();
                problems.push(
                    Problem::new(kind.span(), Some(format!("{key}.key")), message)
                        .with_suggestion(suggest(word, KINDS)),
                );
            }
        }
    }
    config.per_role = limits(file.per_role.as_ref(), key, "per_role", problems);
    config.per_key = limits(file.per_key.as_ref(), key, "per_key", problems);
    let off = config.requests == 0 && config.per_role.is_empty() && config.per_key.is_empty();
    (problems.len() == before && !off).then_some(config)
}

/// `"ip"`, `"api_key"`, `"header:NAME"` or `"claim:NAME"`.
pub fn parse_kind(text: &str) -> Result<ClientKeyKind, String> {
    match text.trim() {
        "ip" => Ok(ClientKeyKind::Ip),
        "api_key" => Ok(ClientKeyKind::ApiKey),
        other => {
            if let Some(claim) = other.strip_prefix("claim:") {
                let claim = claim.trim();
                if claim.is_empty() {
                    return Err("\"claim:\" needs a claim's name (\"claim:sub\")".to_owned());
                }
                return Ok(ClientKeyKind::Claim(claim.to_owned()));
            }
            let Some(name) = other.strip_prefix("header:") else {
                return Err(format!(
                    "unknown key {other:?} (use \"ip\", \"api_key\", \"header:NAME\" or \"claim:NAME\")"
                ));
            };
            HeaderName::from_bytes(name.trim().as_bytes())
                .map(ClientKeyKind::Header)
                .map_err(|_| format!("{:?} is not a header name", name.trim()))
        }
    }
}

/// `per_role` or `per_key`: names that are words, limits within the counters' range.
fn limits(
    table: Option<&BTreeMap<Spanned<String>, Spanned<u32>>>,
    key: &str,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(String, u32)> {
    let Some(table) = table else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(table.len());
    for (name, limit) in table {
        let at = Some(format!("{key}.{what}.{}", name.get_ref()));
        if !super::auth::valid_word(name.get_ref()) {
            let message = format!("{:?} is not a key name or role", name.get_ref());
            problems.push(Problem::new(name.span(), at, message));
            continue;
        }
        if *limit.get_ref() > defaults::RATE_LIMIT_MAX {
            let message = format!("must be at most {}", defaults::RATE_LIMIT_MAX);
            problems.push(Problem::new(limit.span(), at, message));
            continue;
        }
        out.push((name.get_ref().clone(), *limit.get_ref()));
    }
    out
}

#[cfg(test)]
mod tests;
