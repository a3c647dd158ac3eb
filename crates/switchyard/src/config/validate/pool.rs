//! `[pools.NAME]`: backends, balancing policy, connection timeouts and keep-alive, circuit
//! breaker, active health checks, outlier ejection, retries and per-backend limits; TLS to
//! its `https://` backends is in `pool_tls.rs`.

use std::collections::HashSet;

use toml::Spanned;

use super::{valid_path, Checker, POLICIES};
use crate::config::file::{BreakerFile, HealthCheckFile, OutlierFile, PoolFile, RetryFile, Str};
use crate::config::upstream::{
    HashKey, HealthCheckConfig, OutlierConfig, Policy, RetryConfig, UpstreamProtocol, PROTOCOLS,
};
use crate::config::{BackendConfig, BackendUrl, BreakerConfig, PoolConfig, Scheme};

/// The pool `name`, its settings over the defaults.
pub(super) fn pool(name: &Spanned<String>, p: &PoolFile, c: &mut Checker<'_>) -> PoolConfig {
    let key = format!("pools.{}", name.get_ref());
    let mut pool = PoolConfig::named(name.get_ref());
    pool.backends = backends(p, &key, c);
    pool.policy = policy(p, &key, c);
    connections(p, &mut pool);
    protocol(p, &key, &mut pool, c);
    if let Some(b) = &p.circuit_breaker {
        breaker(b, &key, &mut pool.breaker, c);
    }
    if let Some(h) = &p.health_check {
        pool.health_check = Some(health_check(h, &key, c));
    }
    if let Some(o) = &p.outlier_detection {
        outlier(o, &key, &mut pool.outlier, c);
    }
    if let Some(r) = p.retries {
        pool.retries = r;
    }
    if let Some(r) = &p.retry {
        retry(r, &key, &mut pool.retry, c);
    }
    limits(p, &key, &mut pool, c);
    pool.tls = super::pool_tls::tls(p, &key, c);
    pool
}

/// `backends`: at least one, each a valid URL listed once, weights from 1.
fn backends(p: &PoolFile, key: &str, c: &mut Checker<'_>) -> Vec<BackendConfig> {
    if p.backends.get_ref().is_empty() {
        c.error(
            p.backends.span(),
            format!("{key}.backends"),
            "a pool needs at least one backend",
        );
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, b) in p.backends.get_ref().iter().enumerate() {
        let bkey = format!("{key}.backends[{i}]");
        let raw = &b.get_ref().url.0;
        let url = match raw.parse::<BackendUrl>() {
            Ok(url) => url,
            Err(e) => {
                c.error(b.span(), bkey, format!("{raw:?} {e}"));
                continue;
            }
        };
        if !seen.insert(url.clone()) {
            c.error(b.span(), bkey, format!("backend {url} is listed twice"));
            continue;
        }
        let weight = b.get_ref().weight.unwrap_or(1);
        if weight == 0 {
            c.error(b.span(), format!("{bkey}.weight"), "must be at least 1");
        }
        out.push(BackendConfig {
            url,
            weight: weight.max(1),
        });
    }
    out
}

/// `policy` and `hash_key` (only with `consistent_hash`, which needs one).
fn policy(p: &PoolFile, key: &str, c: &mut Checker<'_>) -> Policy {
    let name = p
        .policy
        .as_ref()
        .map_or("round_robin", |n| n.get_ref().0.as_str());
    let policy_span = p.policy.as_ref().map_or(0..0, Spanned::span);
    if !POLICIES.contains(&name) {
        c.error_suggest(
            policy_span,
            format!("{key}.policy"),
            format!("unknown policy {name:?} (known: {})", POLICIES.join(", ")),
            name,
            POLICIES,
        );
        return Policy::RoundRobin;
    }
    let hash_key = match &p.hash_key {
        Some(raw) if name != "consistent_hash" => {
            c.error(
                raw.span(),
                format!("{key}.hash_key"),
                "only used with policy = \"consistent_hash\"",
            );
            None
        }
        Some(raw) => match raw.get_ref().0.parse::<HashKey>() {
            Ok(k) => Some(k),
            Err(e) => {
                c.error(raw.span(), format!("{key}.hash_key"), e);
                return Policy::RoundRobin;
            }
        },
        None => None,
    };
    Policy::from_name(name, hash_key).unwrap_or_else(|e| {
        c.error(policy_span, format!("{key}.hash_key"), e);
        Policy::RoundRobin
    })
}

/// The upstream connections: connect, per-try and whole-request timeouts, keep-alive.
fn connections(p: &PoolFile, pool: &mut PoolConfig) {
    if let Some(d) = p.connect_timeout {
        pool.connect_timeout = d.0;
    }
    if let Some(d) = p.timeout {
        pool.timeout = d.0;
    }
    pool.request_timeout = p.request_timeout.map(|d| d.0);
    if let Some(n) = p.max_idle_connections {
        pool.keepalive.max_idle = n;
    }
    if let Some(d) = p.idle_timeout {
        pool.keepalive.idle_timeout = d.0;
    }
}

/// `protocol` (which HTTP; an `h2c://` backend cannot be spoken to in HTTP/1.1) and
/// `max_streams_per_connection` (from 1).
fn protocol(p: &PoolFile, key: &str, pool: &mut PoolConfig, c: &mut Checker<'_>) {
    if let Some(raw) = &p.protocol {
        let name = raw.get_ref().0.as_str();
        match UpstreamProtocol::from_name(name) {
            Some(protocol) => pool.protocol = protocol,
            None => c.error_suggest(
                raw.span(),
                format!("{key}.protocol"),
                format!(
                    "unknown protocol {name:?} (known: {})",
                    PROTOCOLS.join(", ")
                ),
                name,
                PROTOCOLS,
            ),
        }
        let h2c = pool.backends.iter().find(|b| b.url.scheme == Scheme::H2c);
        if let (UpstreamProtocol::Http1, Some(b)) = (pool.protocol, h2c) {
            c.error(
                raw.span(),
                format!("{key}.protocol"),
                format!("\"http1\" cannot reach {}: an h2c:// backend speaks HTTP/2 only (use \"auto\" or \"h2\")", b.url),
            );
        }
    }
    if let Some(n) = &p.max_streams_per_connection {
        if *n.get_ref() == 0 {
            c.error(
                n.span(),
                format!("{key}.max_streams_per_connection"),
                "must be at least 1",
            );
        } else {
            pool.max_streams_per_connection = *n.get_ref();
        }
    }
}

/// `[pools.NAME.circuit_breaker]`.
fn breaker(b: &BreakerFile, key: &str, out: &mut BreakerConfig, c: &mut Checker<'_>) {
    if let Some(f) = &b.failures {
        if *f.get_ref() == 0 {
            c.error(
                f.span(),
                format!("{key}.circuit_breaker.failures"),
                "must be at least 1",
            );
        }
        out.failure_threshold = (*f.get_ref()).max(1);
    }
    if let Some(d) = b.open_duration {
        out.open_duration = d.0;
    }
}

/// `[pools.NAME.health_check]`.
fn health_check(h: &HealthCheckFile, key: &str, c: &mut Checker<'_>) -> HealthCheckConfig {
    let mut out = HealthCheckConfig::default();
    if let Some(path) = &h.path {
        if valid_path(&path.get_ref().0) {
            out.path = path.get_ref().0.clone();
        } else {
            c.error(
                path.span(),
                format!("{key}.health_check.path"),
                "must start with /",
            );
        }
    }
    if let Some(d) = h.interval {
        out.interval = d.0;
    }
    if let Some(d) = h.timeout {
        out.timeout = d.0;
    }
    if let Some(raw) = &h.expected_status {
        if let Some(range) = expected_status(raw, key, c) {
            out.expected_status = range;
        }
    }
    for (value, name, slot) in [
        (
            &h.healthy_threshold,
            "healthy_threshold",
            &mut out.healthy_threshold,
        ),
        (
            &h.unhealthy_threshold,
            "unhealthy_threshold",
            &mut out.unhealthy_threshold,
        ),
    ] {
        if let Some(v) = value {
            if *v.get_ref() == 0 {
                c.error(
                    v.span(),
                    format!("{key}.health_check.{name}"),
                    "must be at least 1",
                );
            } else {
                *slot = *v.get_ref();
            }
        }
    }
    out
}

/// `expected_status`: `"200"` or `"200-399"`, within 100 to 599.
fn expected_status(raw: &Spanned<Str>, key: &str, c: &mut Checker<'_>) -> Option<(u16, u16)> {
    let text = raw.get_ref().0.as_str();
    let parsed = match text.split_once('-') {
        Some((lo, hi)) => lo.trim().parse().ok().zip(hi.trim().parse().ok()),
        None => text.trim().parse().ok().map(|s| (s, s)),
    };
    match parsed {
        Some((lo, hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => Some((lo, hi)),
        _ => {
            c.error(
                raw.span(),
                format!("{key}.health_check.expected_status"),
                "expected a status or a range like \"200-399\"",
            );
            None
        }
    }
}

/// `[pools.NAME.outlier_detection]`.
fn outlier(o: &OutlierFile, key: &str, out: &mut OutlierConfig, c: &mut Checker<'_>) {
    if let Some(n) = o.consecutive_5xx {
        out.consecutive_5xx = n;
    }
    if let Some(d) = o.ejection_time {
        out.ejection_time = d.0;
    }
    if let Some(pct) = &o.max_ejection_percent {
        if *pct.get_ref() > 100 {
            c.error(
                pct.span(),
                format!("{key}.outlier_detection.max_ejection_percent"),
                "must be from 0 to 100",
            );
        }
        out.max_ejection_percent = (*pct.get_ref()).min(100);
    }
}

/// `[pools.NAME.retry]`: the statuses retried (429 and 5xx only), budget, backoff, replay.
fn retry(r: &RetryFile, key: &str, out: &mut RetryConfig, c: &mut Checker<'_>) {
    if let Some(statuses) = &r.retry_on {
        out.retry_on.clear();
        for s in statuses {
            if (500..=599).contains(s.get_ref()) || *s.get_ref() == 429 {
                out.retry_on.push(*s.get_ref());
            } else {
                c.error(
                    s.span(),
                    format!("{key}.retry.retry_on"),
                    "only 429 and 5xx statuses can be retried",
                );
            }
        }
    }
    if let Some(n) = r.budget_percent {
        out.budget_percent = n;
    }
    if let Some(n) = r.budget_min_per_second {
        out.budget_min_per_second = n;
    }
    if let Some(d) = r.backoff {
        out.backoff = d.0;
    }
    if let Some(d) = r.backoff_max {
        out.backoff_max = d.0.max(out.backoff);
    }
    if let Some(n) = r.replay_max_bytes {
        out.replay_max_bytes = n;
    }
}

/// Per-backend limits and the pool's behaviour when backends come and go:
/// `max_connections` (from 1), `queue_timeout`, `slow_start`, `panic_mode`.
fn limits(p: &PoolFile, key: &str, pool: &mut PoolConfig, c: &mut Checker<'_>) {
    if let Some(n) = &p.max_connections {
        if *n.get_ref() == 0 {
            c.error(
                n.span(),
                format!("{key}.max_connections"),
                "must be at least 1",
            );
        } else {
            pool.max_connections = Some(*n.get_ref());
        }
    }
    if let Some(d) = p.queue_timeout {
        pool.queue_timeout = d.0;
    }
    if let Some(d) = p.slow_start {
        pool.slow_start = d.0;
    }
    if let Some(b) = p.panic_mode {
        pool.panic_mode = b;
    }
}
