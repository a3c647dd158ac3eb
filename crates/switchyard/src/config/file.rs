//! The configuration file as written: serde types mirroring the TOML, with unknown keys
//! rejected, durations in Go syntax and `${VAR}` interpolated from the environment.
//!
//! Reading is done section by section (each listener, pool and route on its own) so that one
//! mistake does not hide the others; within a section, a key that fails is set aside and the
//! section read again, so every bad key is reported, each with its span in the file.
//! `validate.rs` then turns these types into a [`super::Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::duration;
use super::error::{suggest, Problem};

/// A string with `${VAR}` replaced by the environment variable's value. A missing variable is
/// an error naming it; `$${` writes a literal `${`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        interpolate(&raw, |name| std::env::var(name).ok())
            .map(Str)
            .map_err(de::Error::custom)
    }
}

/// Replaces `${NAME}` using `lookup`.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {raw:?}"))?;
            let name = &body[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in {raw:?}"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration in Go syntax (`"500ms"`, `"1m30s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Str::deserialize(d)?;
        duration::parse(&raw.0).map(Dur).map_err(de::Error::custom)
    }
}

/// A duration in Go syntax that must be greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveDur(pub Duration);

impl<'de> Deserialize<'de> for PositiveDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Dur::deserialize(d)? {
            Dur(Duration::ZERO) => Err(de::Error::custom("must be greater than 0")),
            Dur(d) => Ok(PositiveDur(d)),
        }
    }
}

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
    /// Consecutive 5xx that eject (default 5; 0 disables).
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

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Name for logs, metrics and errors (default `routes[N]`).
    pub name: Option<Str>,
    /// What requests the route takes; without it, every request.
    #[serde(rename = "match")]
    pub matcher: Option<MatchFile>,
    /// The pool requests go to.
    pub pool: Option<Spanned<Str>>,
    /// Answer with a redirect instead.
    pub redirect: Option<Spanned<RedirectFile>>,
    /// Answer with a fixed response instead.
    pub respond: Option<Spanned<RespondFile>>,
    /// Removed from the front of the path before forwarding.
    pub strip_prefix: Option<Spanned<Str>>,
    /// Replaces the matched `path_prefix` before forwarding.
    pub rewrite_prefix: Option<Spanned<Str>>,
    /// Upstream timeout for this route.
    pub timeout: Option<PositiveDur>,
    /// Rate limit for this route, on top of the global one.
    pub rate_limit: Option<RateLimitFile>,
    /// Changes to the request headers.
    pub request_headers: Option<HeadersFile>,
    /// Changes to the response headers.
    pub response_headers: Option<HeadersFile>,
}

/// `[routes.match]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    /// `api.example.com` or `*.example.com`.
    pub host: Option<Spanned<Str>>,
    /// Exact path.
    pub path: Option<Spanned<Str>>,
    /// Path prefix, matched on segment boundaries.
    pub path_prefix: Option<Spanned<Str>>,
    /// Methods; any when absent.
    pub methods: Option<Vec<Spanned<Str>>>,
    /// Headers that must be present with these values.
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<Str>>>,
}

/// `request_headers` / `response_headers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersFile {
    /// Set (replace) these headers.
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<Str>>,
    /// Add these headers (keeping existing values).
    #[serde(default)]
    pub add: BTreeMap<Spanned<String>, Spanned<Str>>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `redirect = { to = "...", status = 301 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    /// Target; `{host}`, `{uri}`, `{path}` and `{query}` are replaced from the request.
    pub to: Str,
    /// 301, 302, 303, 307 or 308 (default 301).
    pub status: Option<u16>,
}

/// `respond = { status = 503, body = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondFile {
    /// Status code.
    pub status: u16,
    /// Body (default empty).
    pub body: Option<Str>,
    /// Content type (default `text/plain; charset=utf-8`).
    pub content_type: Option<Str>,
}

/// The whole file, read section by section.
#[derive(Debug, Default)]
pub struct Document {
    /// Top-level scalars.
    pub global: GlobalFile,
    /// `[admin]`.
    pub admin: Option<AdminFile>,
    /// `[[listeners]]`, with the span of each entry.
    pub listeners: Vec<Spanned<ListenerFile>>,
    /// `[rate_limit]`.
    pub rate_limit: Option<RateLimitFile>,
    /// `[pools.NAME]`, with the name's span.
    pub pools: Vec<(Spanned<String>, PoolFile)>,
    /// Names of pools that are in the file but could not be read (already reported).
    pub broken_pools: Vec<String>,
    /// `[[routes]]`, with the span of each entry.
    pub routes: Vec<Spanned<RouteFile>>,
    /// For each route, the keys set aside because they were wrong (already reported).
    pub routes_set_aside: Vec<Vec<String>>,
    /// The text is not valid TOML: nothing was read.
    pub unparsed: bool,
}

const TOP_LEVEL_TABLES: &[&str] = &["admin", "listeners", "rate_limit", "pools", "routes"];
const TOP_LEVEL_SCALARS: &[&str] = &["workers", "shutdown_timeout", "log_format"];

/// Reads `text`. Every problem found is pushed to `problems`; what could be read is returned.
pub fn read(text: &str, problems: &mut Vec<Problem>) -> Document {
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // What the parser recovered around a syntax error is guesswork, and later syntax
        // errors are often echoes of the first: report the first one alone.
        if let Some(err) = syntax.into_iter().next() {
            problems.push(Problem::new(
                err.span().unwrap_or(0..0),
                None,
                err.message().to_owned(),
            ));
        }
        return Document {
            unparsed: true,
            ..Document::default()
        };
    }
    let root_span = root.span();
    let root = root.into_inner();
    let mut doc = Document::default();
    let mut scalars = DeTable::new();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "admin" => doc.admin = section(&name, value, problems),
            "rate_limit" => doc.rate_limit = section(&name, value, problems),
            "listeners" => {
                for (i, item) in array_items(&name, value, problems) {
                    let span = item.span();
                    let path = format!("listeners[{i}]");
                    if let Some(l) = section::<ListenerFile>(&path, item, problems) {
                        doc.listeners.push(Spanned::new(span, l));
                    }
                }
            }
            "routes" => {
                for (i, item) in array_items(&name, value, problems) {
                    let span = item.span();
                    let path = format!("routes[{i}]");
                    let mut set_aside = Vec::new();
                    if let Some(r) =
                        section_keeping::<RouteFile>(&path, item, problems, &mut set_aside)
                    {
                        doc.routes.push(Spanned::new(span, r));
                        doc.routes_set_aside.push(set_aside);
                    }
                }
            }
            "pools" => {
                let span = value.span();
                let DeValue::Table(pools) = value.into_inner() else {
                    problems.push(Problem::new(
                        span,
                        Some("pools".into()),
                        "expected a table of pools: [pools.NAME]".into(),
                    ));
                    continue;
                };
                for (pool_name, pool) in pools {
                    let pool_span = pool_name.span();
                    let pool_name = pool_name.get_ref().to_string();
                    let path = format!("pools.{pool_name}");
                    match section::<PoolFile>(&path, pool, problems) {
                        Some(p) => doc.pools.push((Spanned::new(pool_span, pool_name), p)),
                        None => doc.broken_pools.push(pool_name),
                    }
                }
            }
            _ if TOP_LEVEL_SCALARS.contains(&name.as_str()) => {
                scalars.insert(key, value);
            }
            _ => {
                let known: Vec<&str> = TOP_LEVEL_TABLES
                    .iter()
                    .chain(TOP_LEVEL_SCALARS)
                    .copied()
                    .collect();
                problems.push(
                    Problem::new(
                        key.span(),
                        Some(name.clone()),
                        format!("unknown key `{name}`"),
                    )
                    .with_suggestion(suggest(&name, &known)),
                );
            }
        }
    }
    let scalars = Spanned::new(root_span, DeValue::Table(scalars));
    doc.global = section("", scalars, problems).unwrap_or_default();
    doc
}

/// The items of an array-of-tables value, with their index.
fn array_items<'i>(
    path: &str,
    value: Spanned<DeValue<'i>>,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, Spanned<DeValue<'i>>)> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.into_iter().enumerate().collect(),
        _ => {
            problems.push(Problem::new(
                span,
                Some(path.to_owned()),
                format!("expected an array of tables: [[{path}]]"),
            ));
            Vec::new()
        }
    }
}

/// Deserializes one section. When a key in it is wrong, the problem is recorded, the key set
/// aside and the section read again, so that every wrong key is reported.
fn section<T: for<'de> Deserialize<'de>>(
    path: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    section_keeping(path, value, problems, &mut Vec::new())
}

/// [`section`], also telling which top keys of the section were set aside.
fn section_keeping<T: for<'de> Deserialize<'de>>(
    path: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
    set_aside: &mut Vec<String>,
) -> Option<T> {
    let mut value = value;
    for _ in 0..32 {
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => return Some(v),
            Err(err) => {
                let message = err.message();
                // A key set aside for an earlier problem is now missing: already reported.
                if let Some(missing) = missing_field(message) {
                    if set_aside.iter().any(|k| k == missing) {
                        return None;
                    }
                }
                let span = err.span().unwrap_or_else(|| value.span());
                let key = key_at(&value, &span);
                let shown = match key.as_deref() {
                    Some(k) => Some(join(path, k)),
                    None if !path.is_empty() => Some(path.to_owned()),
                    None => None,
                };
                let mut problem = Problem::new(span.clone(), shown, clean_message(message));
                if let Some((unknown, expected)) = unknown_field(message) {
                    problem.message = format!("unknown key `{unknown}`");
                    let suggestion = suggest(&unknown, &expected);
                    if suggestion.is_none() {
                        problem
                            .message
                            .push_str(&format!(" (expected one of: {})", expected.join(", ")));
                    }
                    problem = problem.with_suggestion(suggestion);
                }
                problems.push(problem);
                if let Some(key) = key {
                    set_aside.push(key.split(['.', '[']).next().unwrap_or_default().to_owned());
                }
                if !remove_key_at(&mut value, &span) {
                    return None;
                }
            }
        }
    }
    None
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn join(path: &str, key: &str) -> String {
    match (path.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => path.to_owned(),
        _ if key.starts_with('[') => format!("{path}{key}"),
        _ => format!("{path}.{key}"),
    }
}

/// The dotted key path, below `value`, of the deepest key whose key or value contains `span`.
fn key_at(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (k, v) in table.iter() {
                let hit = contains(&k.span(), span) || contains(&v.span(), span);
                if hit {
                    let here = k.get_ref().to_string();
                    return Some(match key_at(v, span) {
                        Some(below) if !below.is_empty() => join(&here, &below),
                        _ => here,
                    });
                }
            }
            None
        }
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            contains(&item.span(), span).then(|| match key_at(item, span) {
                Some(below) if !below.is_empty() => join(&format!("[{i}]"), &below),
                _ => format!("[{i}]"),
            })
        }),
        _ => None,
    }
}

/// Removes the key (at any depth) whose key or value contains `span`; false if none does.
fn remove_key_at(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match value.get_mut() {
        DeValue::Table(table) => {
            let mut target = None;
            for (k, v) in table.iter() {
                if contains(&k.span(), span) || contains(&v.span(), span) {
                    target = Some(k.get_ref().to_string());
                    break;
                }
            }
            let Some(target) = target else {
                return false;
            };
            let deeper = table
                .get_mut(target.as_str())
                .is_some_and(|v| remove_key_at(v, span));
            if !deeper {
                table.remove(target.as_str());
            }
            true
        }
        DeValue::Array(_) => false,
        _ => false,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer != &(0..0)
}

/// `unknown field `x`, expected one of `a`, `b`` → (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), expected))
}

fn clean_message(message: &str) -> String {
    message.trim_end().trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_environment_variables() {
        let env = |name: &str| (name == "PORT").then(|| "8080".to_owned());
        assert_eq!(
            interpolate("http://h:${PORT}/x", env).unwrap(),
            "http://h:8080/x"
        );
        assert_eq!(interpolate("a$b $${PORT}", env).unwrap(), "a$b ${PORT}");
        assert_eq!(
            interpolate("${MISSING}", env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(interpolate("${", env).is_err());
        assert!(interpolate("${A-B}", env).is_err());
    }

    #[test]
    fn unknown_field_message_is_parsed() {
        let (name, expected) =
            unknown_field("unknown field `retires`, expected one of `retries`, `policy`").unwrap();
        assert_eq!(name, "retires");
        assert_eq!(expected, ["retries", "policy"]);
    }
}
