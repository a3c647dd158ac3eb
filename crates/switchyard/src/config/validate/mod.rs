//! File → [`Config`]: defaults filled in, values checked, references resolved, routes put in
//! precedence order. Every problem is collected (never only the first) with its place in the
//! file; nothing here panics on any input.
//!
//! This module is the entry ([`from_text`]) and the merge of the sections into one
//! [`Config`]; each section is checked by its own module:
//!
//! - `listener.rs`: `[[listeners]]`, and which addresses overlap; `tls.rs` their `tls`
//!   tables (the certificate files they name included) and the checks of routes against them;
//! - `admin.rs`: `[admin]`;
//! - `access.rs`: `[access]` (API keys, key sources, trusted proxies), the IP lists of
//!   listeners and routes, a route's `access`, `[admin] token_file`; `jwt.rs` `[access.jwt]`
//!   and a route's `jwt*` keys;
//! - `admin.rs`: `[admin]`; `limits.rs`: `[limits]` and the limits and security headers of
//!   routes;
//! - `pool.rs`: `[pools.NAME]`: backends, policy, timeouts, breaker, health checks, outlier
//!   ejection, retries, limits; `pool_tls.rs` its `tls` table (the files it names are read
//!   and checked);
//! - `route.rs`: `[[routes]]`: actions, path rewrites, precedence and unreachable routes;
//!   `route_match.rs` their `match` tables and `headers.rs` their header edits;
//! - `audit.rs`: `[audit]` and `[server]` (user and group).

mod access;
mod admin;
mod audit;
mod headers;
mod jwt;
mod limits;
mod listener;
mod pool;
mod pool_tls;
mod route;
mod route_match;
mod tls;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::error::{suggest, Problem};
use super::file::{self, Document, GlobalFile};
use super::{defaults, Config, ConfigError, LogFormat, RateLimitConfig, Source, WebSocketConfig};

pub use super::upstream::POLICIES;
pub use access::{add_env, read_token};

/// Parses and validates the text of the file at `path`.
pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let doc = file::read(text, &mut problems);
    if doc.unparsed {
        return Err(ConfigError::new(path, text, problems));
    }
    let base = path.parent().unwrap_or(Path::new(""));
    let mut config = build(doc, base, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::new(path, text, problems));
    }
    config.source = Some(Source {
        path: path.to_owned(),
        version: super::version_of(text),
        sha256: super::tls::sha256(text.as_bytes()).to_hex(),
        watch_interval: Some(defaults::WATCH_INTERVAL),
    });
    Ok(config)
}

/// Worker threads when nothing says: `$TOKIO_WORKER_THREADS`, else one per CPU.
pub fn default_workers() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Checks a duration is not zero where zero has no meaning (used by the flags too).
pub fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than 0".to_owned())
    } else {
        Ok(d)
    }
}

/// Where the problems found are collected.
struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
}

// === impl Checker ===

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.problems
            .push(Problem::new(span, Some(key.into()), message.into()));
    }

    fn error_suggest(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        word: &str,
        candidates: &[&str],
    ) {
        self.problems.push(
            Problem::new(span, Some(key.into()), message.into())
                .with_suggestion(suggest(word, candidates)),
        );
    }
}

/// The sections of `doc`, checked one by one, merged over the defaults. Files the
/// configuration names are taken from `base` when their path is relative.
fn build(doc: Document, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let mut c = Checker { problems };
    let mut config = Config {
        workers: default_workers(),
        ..Config::default()
    };
    global(&doc.global, &mut config, &mut c);
    let (listeners, served) = listener::listeners(&doc.listeners, base, &mut c);
    config.listeners = listeners;
    config.admin = admin::admin(doc.admin.as_ref(), &config.listeners, &mut c);
    config.admin.token = access::admin_token(doc.admin.as_ref(), base, &mut c);
    config.access = access::access(doc.access.as_ref(), base, &mut c);
    listener::proxy_protocol_trust(
        &doc.listeners,
        config.access.trusted_proxies.is_some(),
        &mut c,
    );
    access::keys_needed(&doc.routes, &config.access, &mut c);
    jwt::checks(&doc.routes, &config.access, &mut c);
    if let Some(rl) = &doc.rate_limit {
        config.rate_limit = rate_limit(rl, "rate_limit", &mut c);
    }
    if let Some(file) = &doc.client_rate_limit {
        let problems = &mut *c.problems;
        config.client_rate_limit =
            super::client_limit::validate(file, "client_rate_limit", problems);
    }
    if let Some(ws) = &doc.websocket {
        config.websocket = websocket(ws);
    }
    config.pools = doc
        .pools
        .iter()
        .map(|(name, p)| pool::pool(name, p, &mut c))
        .collect();
    config.routes = route::routes(
        &doc.routes,
        &doc.routes_set_aside,
        &config.pools,
        &doc.broken_pools,
        &mut c,
    );
    tls::cross_checks(&doc, &config.listeners, &served, &mut c);
    if let Some(l) = &doc.limits {
        config.limits = limits::limits(l, &mut c);
    }
    limits::inherit_body_size(&mut config.routes, &doc.pools);
    limits::inherit_security_headers(
        &mut config.routes,
        doc.global.security_headers.as_ref(),
        &mut c,
    );
    if let Some(a) = &doc.audit {
        config.audit = audit::audit(a, base, &mut c);
    }
    if let Some(s) = &doc.server {
        config.process = audit::server(s, &mut c);
    }
    config
}

/// The top-level scalars: `workers`, `shutdown_timeout`, `log_format`.
fn global(file: &GlobalFile, config: &mut Config, c: &mut Checker<'_>) {
    if let Some(w) = file.workers {
        config.workers = usize::from(w.max(1));
    }
    if let Some(d) = file.shutdown_timeout {
        config.shutdown_timeout = d.0;
    }
    if let Some(format) = &file.log_format {
        match format.get_ref().0.as_str() {
            "text" => config.log.format = LogFormat::Text,
            "json" => config.log.format = LogFormat::Json,
            other => c.error_suggest(
                format.span(),
                "log_format",
                format!("unknown log format {other:?} (use \"text\" or \"json\")"),
                other,
                &["text", "json"],
            ),
        }
    }
}

/// `[rate_limit]`, or a route's `rate_limit` (`key` says which).
fn rate_limit(file: &file::RateLimitFile, key: &str, c: &mut Checker<'_>) -> RateLimitConfig {
    let requests = *file.requests.get_ref();
    if requests > defaults::RATE_LIMIT_MAX {
        c.error(
            file.requests.span(),
            format!("{key}.requests"),
            format!("must be at most {}", defaults::RATE_LIMIT_MAX),
        );
    }
    RateLimitConfig {
        requests: requests.min(defaults::RATE_LIMIT_MAX),
        window: file.window.map_or(defaults::RATE_WINDOW, |w| w.0),
    }
}

/// `[websocket]`: every value the file can hold is valid (`max_tunnels = 0` refuses every
/// upgrade; a zero `idle_timeout` is already refused by its type).
fn websocket(file: &file::WebSocketFile) -> WebSocketConfig {
    let defaults = WebSocketConfig::default();
    WebSocketConfig {
        max_tunnels: file.max_tunnels.unwrap_or(defaults.max_tunnels),
        idle_timeout: file.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
    }
}

/// A path as a route or health check takes it: from `/`, without query, fragment or space.
fn valid_path(p: &str) -> bool {
    p.starts_with('/') && !p.contains(['?', '#', ' '])
}
