//! File → [`Config`]: defaults filled in, values checked, references resolved, routes put in
//! precedence order. Every problem is collected (never only the first) with its place in the
//! file; nothing here panics on any input.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use toml::Spanned;

use super::error::{suggest, Problem};
use super::file::{self, Document, HeadersFile, MatchFile, RouteFile, Str};
use super::route::{
    HeaderEdits, HostMatch, PathMatch, PathRewrite, RouteAction, RouteConfig, RouteMatch,
};
use super::upstream::{HashKey, HealthCheckConfig, Policy};
use super::{
    defaults, AdminConfig, BackendConfig, BackendUrl, Config, ConfigError, ListenAddr,
    ListenerConfig, LogFormat, PoolConfig, RateLimitConfig, Source,
};

pub use super::upstream::POLICIES;

/// Parses and validates the text of the file at `path`.
pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let doc = file::read(text, &mut problems);
    if doc.unparsed {
        return Err(ConfigError::new(path, text, problems));
    }
    let mut config = build(doc, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::new(path, text, problems));
    }
    config.source = Some(Source {
        path: path.to_owned(),
        version: super::version_of(text),
        watch_interval: Some(defaults::WATCH_INTERVAL),
    });
    Ok(config)
}

struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
}

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

fn build(doc: Document, problems: &mut Vec<Problem>) -> Config {
    let mut c = Checker { problems };
    let mut config = Config {
        workers: default_workers(),
        ..Config::default()
    };

    // Top level.
    if let Some(w) = doc.global.workers {
        config.workers = usize::from(w.max(1));
    }
    if let Some(d) = doc.global.shutdown_timeout {
        config.shutdown_timeout = d.0;
    }
    if let Some(format) = doc.global.log_format {
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

    config.listeners = listeners(&doc.listeners, &mut c);
    config.admin = admin(doc.admin.as_ref(), &config.listeners, &mut c);
    if let Some(rl) = &doc.rate_limit {
        config.rate_limit = rate_limit(rl, "rate_limit", &mut c);
    }
    config.pools = doc
        .pools
        .iter()
        .map(|(name, p)| pool(name, p, &mut c))
        .collect();
    config.routes = routes(
        &doc.routes,
        &doc.routes_set_aside,
        &config.pools,
        &doc.broken_pools,
        &mut c,
    );
    config
}

/// Worker threads when nothing says: `$TOKIO_WORKER_THREADS`, else one per CPU.
pub fn default_workers() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn listeners(files: &[Spanned<file::ListenerFile>], c: &mut Checker<'_>) -> Vec<ListenerConfig> {
    if files.is_empty() {
        return vec![ListenerConfig::default()];
    }
    let mut out: Vec<ListenerConfig> = Vec::new();
    let mut seen: Vec<(ListenAddr, usize)> = Vec::new();
    for (i, l) in files.iter().enumerate() {
        let key = format!("listeners[{i}].address");
        let l = l.get_ref();
        let addr = match l.address.get_ref().0.parse::<ListenAddr>() {
            Ok(addr) => addr,
            Err(e) => {
                c.error(
                    l.address.span(),
                    key,
                    format!("{:?} {e}", l.address.get_ref().0),
                );
                continue;
            }
        };
        if let Some((_, first)) = seen.iter().find(|(a, _)| overlaps(a, &addr)) {
            c.error(
                l.address.span(),
                key,
                format!("duplicate listener address {addr} (also listeners[{first}])"),
            );
            continue;
        }
        seen.push((addr, i));
        let mut listener = ListenerConfig {
            addr,
            ..ListenerConfig::default()
        };
        if let Some(d) = l.read_timeout {
            listener.read_timeout = d.0;
        }
        if let Some(d) = l.write_timeout {
            listener.write_timeout = d.0;
        }
        if let Some(n) = &l.max_header_bytes {
            if (8192..=1 << 20).contains(n.get_ref()) {
                listener.max_header_bytes = *n.get_ref();
            } else {
                c.error(
                    n.span(),
                    format!("listeners[{i}].max_header_bytes"),
                    "must be between 8192 and 1048576",
                );
            }
        }
        out.push(listener);
    }
    out
}

/// Two listen addresses that cannot both be bound (same port, and one of them is every
/// interface or both are the same address).
fn overlaps(a: &ListenAddr, b: &ListenAddr) -> bool {
    a.port == b.port && a.port != 0 && (a.ip.is_none() || b.ip.is_none() || a.ip == b.ip)
}

fn admin(
    file: Option<&file::AdminFile>,
    listeners: &[ListenerConfig],
    c: &mut Checker<'_>,
) -> AdminConfig {
    let mut admin = AdminConfig::default();
    let Some(file) = file else {
        return admin;
    };
    if let Some(listen) = &file.listen {
        match listen.get_ref().0.parse::<ListenAddr>() {
            Ok(addr) if listeners.iter().any(|l| overlaps(&l.addr, &addr)) => c.error(
                listen.span(),
                "admin.listen",
                format!("{addr} is also a proxy listener's address"),
            ),
            Ok(addr) => admin.listen = Some(addr),
            Err(e) => c.error(
                listen.span(),
                "admin.listen",
                format!("{:?} {e}", listen.get_ref().0),
            ),
        }
    }
    for (value, key, slot) in [
        (
            &file.health_path,
            "admin.health_path",
            &mut admin.health_path,
        ),
        (
            &file.metrics_path,
            "admin.metrics_path",
            &mut admin.metrics_path,
        ),
    ] {
        if let Some(v) = value {
            if v.get_ref().0.starts_with('/') {
                *slot = v.get_ref().0.clone();
            } else {
                c.error(v.span(), key, "must be a path starting with /");
            }
        }
    }
    if admin.health_path == admin.metrics_path {
        match (&file.metrics_path, &file.health_path) {
            (Some(m), _) => c.error(
                m.span(),
                "admin.metrics_path",
                "is the same as admin.health_path",
            ),
            (None, Some(h)) => c.error(
                h.span(),
                "admin.health_path",
                "is the same as admin.metrics_path (default /metrics)",
            ),
            (None, None) => {}
        }
    }
    admin
}

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

fn pool(name: &Spanned<String>, p: &file::PoolFile, c: &mut Checker<'_>) -> PoolConfig {
    let key = format!("pools.{}", name.get_ref());
    let mut pool = PoolConfig::named(name.get_ref());
    if p.backends.get_ref().is_empty() {
        c.error(
            p.backends.span(),
            format!("{key}.backends"),
            "a pool needs at least one backend",
        );
    }
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
        pool.backends.push(BackendConfig {
            url,
            weight: weight.max(1),
        });
    }
    pool.policy = policy(p, &key, c);
    if let Some(r) = p.retries {
        pool.retries = r;
    }
    if let Some(d) = p.connect_timeout {
        pool.connect_timeout = d.0;
    }
    if let Some(d) = p.timeout {
        pool.timeout = d.0;
    }
    if let Some(b) = &p.circuit_breaker {
        if let Some(f) = &b.failures {
            if *f.get_ref() == 0 {
                c.error(
                    f.span(),
                    format!("{key}.circuit_breaker.failures"),
                    "must be at least 1",
                );
            }
            pool.breaker.failure_threshold = (*f.get_ref()).max(1);
        }
        if let Some(d) = b.open_duration {
            pool.breaker.open_duration = d.0;
        }
    }
    if let Some(n) = p.max_idle_connections {
        pool.keepalive.max_idle = n;
    }
    if let Some(d) = p.idle_timeout {
        pool.keepalive.idle_timeout = d.0;
    }
    if let Some(h) = &p.health_check {
        pool.health_check = Some(health_check(h, &key, c));
    }
    if let Some(o) = &p.outlier_detection {
        if let Some(n) = o.consecutive_5xx {
            pool.outlier.consecutive_5xx = n;
        }
        if let Some(d) = o.ejection_time {
            pool.outlier.ejection_time = d.0;
        }
        if let Some(pct) = &o.max_ejection_percent {
            if *pct.get_ref() > 100 {
                c.error(
                    pct.span(),
                    format!("{key}.outlier_detection.max_ejection_percent"),
                    "must be from 0 to 100",
                );
            }
            pool.outlier.max_ejection_percent = (*pct.get_ref()).min(100);
        }
    }
    if let Some(r) = &p.retry {
        if let Some(statuses) = &r.retry_on {
            pool.retry.retry_on.clear();
            for s in statuses {
                if (500..=599).contains(s.get_ref()) || *s.get_ref() == 429 {
                    pool.retry.retry_on.push(*s.get_ref());
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
            pool.retry.budget_percent = n;
        }
        if let Some(n) = r.budget_min_per_second {
            pool.retry.budget_min_per_second = n;
        }
        if let Some(d) = r.backoff {
            pool.retry.backoff = d.0;
        }
        if let Some(d) = r.backoff_max {
            pool.retry.backoff_max = d.0.max(pool.retry.backoff);
        }
        if let Some(n) = r.replay_max_bytes {
            pool.retry.replay_max_bytes = n;
        }
    }
    pool.request_timeout = p.request_timeout.map(|d| d.0);
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
    pool
}

fn policy(p: &file::PoolFile, key: &str, c: &mut Checker<'_>) -> Policy {
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

fn health_check(h: &file::HealthCheckFile, key: &str, c: &mut Checker<'_>) -> HealthCheckConfig {
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
        let text = raw.get_ref().0.as_str();
        let parsed = match text.split_once('-') {
            Some((lo, hi)) => lo.trim().parse().ok().zip(hi.trim().parse().ok()),
            None => text.trim().parse().ok().map(|s| (s, s)),
        };
        match parsed {
            Some((lo, hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => {
                out.expected_status = (lo, hi);
            }
            _ => c.error(
                raw.span(),
                format!("{key}.health_check.expected_status"),
                "expected a status or a range like \"200-399\"",
            ),
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

fn routes(
    files: &[Spanned<RouteFile>],
    routes_set_aside: &[Vec<String>],
    pools: &[PoolConfig],
    broken_pools: &[String],
    c: &mut Checker<'_>,
) -> Vec<RouteConfig> {
    if files.is_empty() && !broken_pools.is_empty() {
        return Vec::new();
    }
    if files.is_empty() {
        return match pools {
            [] => {
                c.error(
                    0..0,
                    "pools",
                    "no pools: add a [pools.NAME] table with backends",
                );
                Vec::new()
            }
            [only] => vec![RouteConfig::catch_all(&only.name)],
            _ => {
                c.error(
                    0..0,
                    "routes",
                    "several pools but no routes: add [[routes]] saying which requests go where",
                );
                Vec::new()
            }
        };
    }
    let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    let mut names = HashSet::new();
    let mut built: Vec<(RouteConfig, Range<usize>, usize)> = Vec::new();
    for (i, spanned) in files.iter().enumerate() {
        let span = spanned.span();
        let r = spanned.get_ref();
        let key = format!("routes[{i}]");
        let name = r.name.as_ref().map_or_else(|| key.clone(), |n| n.0.clone());
        if !names.insert(name.clone()) {
            c.error(
                span.clone(),
                format!("{key}.name"),
                format!("route name {name:?} is used twice"),
            );
        }
        let matcher = route_match(r.matcher.as_ref(), &key, c);
        let set_aside = routes_set_aside.get(i).map_or(&[][..], Vec::as_slice);
        let Some(action) = route_action(
            r,
            &key,
            &pool_names,
            broken_pools,
            set_aside,
            span.clone(),
            c,
        ) else {
            continue;
        };
        let rewrite = rewrite(r, &matcher, &key, c);
        let route = RouteConfig {
            name,
            matcher,
            action,
            rewrite,
            timeout: r.timeout.map(|t| t.0),
            rate_limit: r
                .rate_limit
                .as_ref()
                .map(|rl| rate_limit(rl, &format!("{key}.rate_limit"), c)),
            request_headers: header_edits(
                r.request_headers.as_ref(),
                &format!("{key}.request_headers"),
                c,
            ),
            response_headers: header_edits(
                r.response_headers.as_ref(),
                &format!("{key}.response_headers"),
                c,
            ),
        };
        built.push((route, span, i));
    }
    // Most specific first; file order between equals (the sort is stable).
    built.sort_by_key(|b| std::cmp::Reverse(b.0.matcher.rank()));
    for j in 0..built.len() {
        if let Some(earlier) = (0..j).find(|&i| built[i].0.matcher.covers(&built[j].0.matcher)) {
            let (route, span, index) = &built[j];
            c.error(
                span.clone(),
                format!("routes[{index}]"),
                format!(
                    "route {:?} can never match: route {:?} (routes[{}]) takes every request it would take",
                    route.name, built[earlier].0.name, built[earlier].2
                ),
            );
        }
    }
    built.into_iter().map(|(route, _, _)| route).collect()
}

fn route_match(m: Option<&MatchFile>, key: &str, c: &mut Checker<'_>) -> RouteMatch {
    let mut out = RouteMatch::default();
    let Some(m) = m else {
        return out;
    };
    if let Some(host) = &m.host {
        let h = host.get_ref().0.to_ascii_lowercase();
        let valid_label = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                })
        };
        if let Some(suffix) = h.strip_prefix("*.") {
            if valid_label(suffix) {
                out.host = HostMatch::Wildcard(format!(".{suffix}"));
            } else {
                c.error(
                    host.span(),
                    format!("{key}.match.host"),
                    format!("{h:?} is not a valid wildcard host"),
                );
            }
        } else if valid_label(&h) || h.parse::<std::net::IpAddr>().is_ok() {
            out.host = HostMatch::Exact(h);
        } else {
            c.error(
                host.span(),
                format!("{key}.match.host"),
                format!("{h:?} is not a host name (use e.g. api.example.com or *.example.com, without port)"),
            );
        }
    }
    match (&m.path, &m.path_prefix) {
        (Some(p), Some(_)) => c.error(
            p.span(),
            format!("{key}.match.path"),
            "use either path or path_prefix, not both",
        ),
        (Some(p), None) => match valid_path(&p.get_ref().0) {
            true => out.path = PathMatch::Exact(p.get_ref().0.clone()),
            false => c.error(p.span(), format!("{key}.match.path"), "must start with /"),
        },
        (None, Some(p)) => match valid_path(&p.get_ref().0) {
            true if p.get_ref().0 == "/" => {}
            true => out.path = PathMatch::Prefix(p.get_ref().0.clone()),
            false => c.error(
                p.span(),
                format!("{key}.match.path_prefix"),
                "must start with /",
            ),
        },
        (None, None) => {}
    }
    for m in m.methods.iter().flatten() {
        let raw = &m.get_ref().0;
        match Method::from_bytes(raw.to_ascii_uppercase().as_bytes()) {
            Ok(method) if method != Method::CONNECT => out.methods.push(method),
            _ => c.error(
                m.span(),
                format!("{key}.match.methods"),
                format!("{raw:?} is not a method"),
            ),
        }
    }
    for (name, value) in m.headers.iter().flatten() {
        let hkey = format!("{key}.match.headers.{}", name.get_ref());
        match (
            HeaderName::from_bytes(name.get_ref().as_bytes()),
            HeaderValue::from_str(&value.get_ref().0),
        ) {
            (Ok(n), Ok(v)) => out.headers.push((n, v)),
            (Err(_), _) => c.error(name.span(), hkey, "is not a valid header name"),
            (_, Err(_)) => c.error(value.span(), hkey, "is not a valid header value"),
        }
    }
    out
}

fn valid_path(p: &str) -> bool {
    p.starts_with('/') && !p.contains(['?', '#', ' '])
}

fn route_action(
    r: &RouteFile,
    key: &str,
    pools: &[&str],
    broken_pools: &[String],
    set_aside: &[String],
    span: Range<usize>,
    c: &mut Checker<'_>,
) -> Option<RouteAction> {
    let given = usize::from(r.pool.is_some())
        + usize::from(r.redirect.is_some())
        + usize::from(r.respond.is_some());
    if given != 1 {
        let already_reported = ["pool", "redirect", "respond"]
            .iter()
            .any(|k| set_aside.iter().any(|s| s == k));
        if !already_reported {
            c.error(
                span,
                key.to_owned(),
                "a route needs exactly one of pool, redirect or respond",
            );
        }
        return None;
    }
    if let Some(pool) = &r.pool {
        let name = pool.get_ref().0.as_str();
        if broken_pools.iter().any(|b| b == name) {
            // The pool itself has errors, reported where it is defined.
            return None;
        }
        if !pools.contains(&name) {
            c.error_suggest(
                pool.span(),
                format!("{key}.pool"),
                format!("no pool named {name:?}"),
                name,
                pools,
            );
            return None;
        }
        return Some(RouteAction::Forward {
            pool: name.to_owned(),
        });
    }
    if let Some(redirect) = &r.redirect {
        let status = redirect.get_ref().status.unwrap_or(301);
        if ![301, 302, 303, 307, 308].contains(&status) {
            c.error(
                redirect.span(),
                format!("{key}.redirect.status"),
                "must be 301, 302, 303, 307 or 308",
            );
            return None;
        }
        return Some(RouteAction::Redirect {
            to: redirect.get_ref().to.0.clone(),
            status: StatusCode::from_u16(status).ok()?,
        });
    }
    let respond = r.respond.as_ref()?;
    let Some(status) = StatusCode::from_u16(respond.get_ref().status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
    else {
        c.error(
            respond.span(),
            format!("{key}.respond.status"),
            "must be a status code from 200 to 999",
        );
        return None;
    };
    let content_type = respond
        .get_ref()
        .content_type
        .as_ref()
        .map_or("text/plain; charset=utf-8", |Str(s)| s.as_str());
    let Ok(content_type) = HeaderValue::from_str(content_type) else {
        c.error(
            respond.span(),
            format!("{key}.respond.content_type"),
            "is not a valid header value",
        );
        return None;
    };
    Some(RouteAction::Respond {
        status,
        body: Bytes::from(respond.get_ref().body.clone().unwrap_or_default().0),
        content_type,
    })
}

fn rewrite(r: &RouteFile, m: &RouteMatch, key: &str, c: &mut Checker<'_>) -> PathRewrite {
    match (&r.strip_prefix, &r.rewrite_prefix) {
        (Some(s), Some(_)) => {
            c.error(
                s.span(),
                format!("{key}.strip_prefix"),
                "use either strip_prefix or rewrite_prefix, not both",
            );
            PathRewrite::None
        }
        (Some(s), None) => {
            if valid_path(&s.get_ref().0) {
                PathRewrite::Strip(s.get_ref().0.clone())
            } else {
                c.error(s.span(), format!("{key}.strip_prefix"), "must start with /");
                PathRewrite::None
            }
        }
        (None, Some(w)) => match &m.path {
            PathMatch::Prefix(prefix) if valid_path(&w.get_ref().0) => PathRewrite::Replace {
                prefix: prefix.clone(),
                with: w.get_ref().0.clone(),
            },
            PathMatch::Prefix(_) => {
                c.error(
                    w.span(),
                    format!("{key}.rewrite_prefix"),
                    "must start with /",
                );
                PathRewrite::None
            }
            _ => {
                c.error(
                    w.span(),
                    format!("{key}.rewrite_prefix"),
                    "needs match.path_prefix (the prefix it replaces)",
                );
                PathRewrite::None
            }
        },
        (None, None) => PathRewrite::None,
    }
}

fn header_edits(file: Option<&HeadersFile>, key: &str, c: &mut Checker<'_>) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    let Some(file) = file else {
        return edits;
    };
    let pair = |name: &Spanned<String>, value: &Spanned<Str>, kind: &str, c: &mut Checker<'_>| {
        let hkey = format!("{key}.{kind}.{}", name.get_ref());
        match (
            HeaderName::from_bytes(name.get_ref().as_bytes()),
            HeaderValue::from_str(&value.get_ref().0),
        ) {
            (Ok(n), Ok(v)) => Some((n, v)),
            (Err(_), _) => {
                c.error(name.span(), hkey, "is not a valid header name");
                None
            }
            (_, Err(_)) => {
                c.error(value.span(), hkey, "is not a valid header value");
                None
            }
        }
    };
    edits.set = file
        .set
        .iter()
        .filter_map(|(n, v)| pair(n, v, "set", c))
        .collect();
    edits.add = file
        .add
        .iter()
        .filter_map(|(n, v)| pair(n, v, "add", c))
        .collect();
    for name in &file.remove {
        match HeaderName::from_bytes(name.get_ref().as_bytes()) {
            Ok(n) => edits.remove.push(n),
            Err(_) => c.error(
                name.span(),
                format!("{key}.remove"),
                format!("{:?} is not a valid header name", name.get_ref()),
            ),
        }
    }
    edits
}

/// Checks a duration is not zero where zero has no meaning (used by the flags too).
pub fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than 0".to_owned())
    } else {
        Ok(d)
    }
}
