//! Counters and their two renderings (JSON and Prometheus text), from one snapshot.
//!
//! Counting happens on every request, on every worker thread, so counters are sharded: each
//! worker thread increments its own cache-line-aligned shard with a relaxed atomic add (no
//! lock, no cache line shared between cores) and a scrape sums the shards.
//!
//! How the proxy-wide counters add up (each request lands in exactly one bucket):
//!
//! `requests = responses + local + errors + rate_limited + cancelled + in_flight`
//!
//! - `requests`: requests received on the proxy path (the admin endpoints are not counted).
//! - `responses`: requests answered with a backend's response (whatever its status).
//! - `local`: requests answered by a route's redirect or fixed response.
//! - `errors`: requests answered by switchyard itself with an error: 4xx for malformed
//!   requests, 502/503/504 when no backend answered.
//! - `rate_limited`: requests answered `429`.
//! - `cancelled`: requests whose client went away before a response head was ready.
//! - `in_flight`: requests still waiting for a response head.
//!
//! Per backend: `requests = responses + errors + cancelled + in_flight`, where `requests`
//! counts attempts sent to that backend (a retried request counts once per backend tried),
//! and `failures` counts what its circuit breaker counted as failures (errors, plus 502/503/504
//! responses).

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::duration;

/// Metric names, in one place.
pub mod names {
    /// Requests received on the proxy path.
    pub const REQUESTS: &str = "switchyard_requests";
    /// Requests answered by a backend.
    pub const RESPONSES: &str = "switchyard_responses";
    /// Requests answered by a route's redirect or fixed response.
    pub const LOCAL: &str = "switchyard_local_responses";
    /// Requests answered with an error by switchyard.
    pub const ERRORS: &str = "switchyard_errors";
    /// Requests answered 429.
    pub const RATE_LIMITED: &str = "switchyard_rate_limited";
    /// Requests abandoned by their client.
    pub const CANCELLED: &str = "switchyard_cancelled";
    /// Requests waiting for a response head.
    pub const IN_FLIGHT: &str = "switchyard_in_flight_requests";
    /// Attempts on another backend after a connection could not be established.
    pub const RETRIES: &str = "switchyard_retries";
    /// Seconds since start.
    pub const UPTIME: &str = "switchyard_uptime_seconds";
    /// Attempts sent to a backend.
    pub const BACKEND_REQUESTS: &str = "switchyard_backend_requests";
    /// Responses received from a backend.
    pub const BACKEND_RESPONSES: &str = "switchyard_backend_responses";
    /// Attempts that got no response (connect error, timeout, reset).
    pub const BACKEND_ERRORS: &str = "switchyard_backend_errors";
    /// Connections that could not be opened within the connect timeout.
    pub const BACKEND_CONNECT_TIMEOUTS: &str = "switchyard_backend_connect_timeouts";
    /// Failures counted by the backend's circuit breaker.
    pub const BACKEND_FAILURES: &str = "switchyard_backend_failures";
    /// Retries refused by the retry budget.
    pub const RETRIES_OVER_BUDGET: &str = "switchyard_retries_over_budget";
    /// 503s: no backend available.
    pub const UNAVAILABLE: &str = "switchyard_unavailable";
    /// Per-try timeouts.
    pub const TRY_TIMEOUTS: &str = "switchyard_try_timeouts";
    /// Whole-request timeouts.
    pub const REQUEST_TIMEOUTS: &str = "switchyard_request_timeouts";
    /// Ejections for consecutive 5xx.
    pub const BACKEND_EJECTIONS: &str = "switchyard_backend_ejections";
    /// New upstream connections.
    pub const BACKEND_CONNECTIONS_OPENED: &str = "switchyard_backend_connections_opened";
    /// Requests on reused upstream connections.
    pub const BACKEND_CONNECTIONS_REUSED: &str = "switchyard_backend_connections_reused";
    /// 1 if health checks pass.
    pub const BACKEND_HEALTHY: &str = "switchyard_backend_healthy";
    /// 1 while ejected.
    pub const BACKEND_EJECTED: &str = "switchyard_backend_ejected";
    /// Outstanding requests.
    pub const BACKEND_OUTSTANDING: &str = "switchyard_backend_outstanding_requests";
    /// Idle keep-alive connections.
    pub const BACKEND_IDLE_CONNECTIONS: &str = "switchyard_backend_idle_connections";
    /// Circuit state: 0 closed, 1 half-open, 2 open.
    pub const BACKEND_CIRCUIT: &str = "switchyard_backend_circuit_state";
    /// Configuration reloads, by result.
    pub const RELOADS: &str = "switchyard_config_reloads";
    /// 1 if the last reload succeeded (or none was tried), 0 if it was rejected.
    pub const LAST_RELOAD_SUCCESS: &str = "switchyard_config_last_reload_success";
    /// Unix time of the last reload attempt.
    pub const LAST_RELOAD_TIME: &str = "switchyard_config_last_reload_timestamp_seconds";
    /// Always 1, labelled with the version (hash) of the configuration in force.
    pub const CONFIG_INFO: &str = "switchyard_config_info";
}

thread_local! {
    static SHARD_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Tells the counters which shard the calling thread writes to; worker thread `i` calls this
/// with `i` once at start. Threads that never call it share shard 0.
pub fn set_thread_shard(index: usize) {
    SHARD_INDEX.with(|s| s.set(index));
}

fn shard_index(len: usize) -> usize {
    SHARD_INDEX.with(Cell::get) % len
}

/// A set of counters, one copy per shard.
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Sharded<T> {
    /// `n` zeroed shards (at least one).
    pub fn new(n: usize) -> Self {
        Sharded {
            shards: (0..n.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[shard_index(self.shards.len())].0
    }

    /// Sums `f` over all shards.
    pub fn sum(&self, f: impl Fn(&T) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(&s.0).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Adds one to a counter.
#[inline]
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Proxy-wide counters of one shard.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// See the module doc.
    pub requests: AtomicU64,
    /// See the module doc.
    pub responses: AtomicU64,
    /// See the module doc.
    pub local: AtomicU64,
    /// See the module doc.
    pub errors: AtomicU64,
    /// See the module doc.
    pub rate_limited: AtomicU64,
    /// See the module doc.
    pub cancelled: AtomicU64,
    /// See the module doc.
    pub retries: AtomicU64,
    /// Retries refused because the pool's retry budget was spent.
    pub retries_over_budget: AtomicU64,
    /// Requests answered 503 because no backend of the pool was available.
    pub unavailable: AtomicU64,
    /// Attempts that timed out waiting for a response head (per-try timeout).
    pub try_timeouts: AtomicU64,
    /// Requests that ran out of their whole-request timeout.
    pub request_timeouts: AtomicU64,
}

/// Per-backend counters of one shard.
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Attempts sent.
    pub requests: AtomicU64,
    /// Responses received.
    pub responses: AtomicU64,
    /// Attempts without a response.
    pub errors: AtomicU64,
    /// Attempts abandoned because the client went away.
    pub cancelled: AtomicU64,
    /// Breaker failures.
    pub failures: AtomicU64,
    /// Times the backend was ejected for consecutive 5xx.
    pub ejections: AtomicU64,
    /// Connect attempts that timed out.
    pub connect_timeouts: AtomicU64,
    /// New upstream connections opened.
    pub connections_opened: AtomicU64,
    /// Requests sent on a pooled (reused) connection.
    pub connections_reused: AtomicU64,
    /// Connections put into the idle pool.
    pub idle_in: AtomicU64,
    /// Connections taken out of the idle pool (reused, closed or expired).
    pub idle_out: AtomicU64,
}

/// The proxy-wide metrics; lives in the server state and is passed explicitly.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    counters: Sharded<ProxyCounters>,
}

/// Everything `/metrics` reports, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// See the module doc.
    pub requests: u64,
    /// See the module doc.
    pub responses: u64,
    /// See the module doc.
    pub local: u64,
    /// See the module doc.
    pub errors: u64,
    /// See the module doc.
    pub rate_limited: u64,
    /// See the module doc.
    pub cancelled: u64,
    /// See the module doc.
    pub in_flight: u64,
    /// See the module doc.
    pub retries: u64,
    /// Retries refused by the retry budget.
    pub retries_over_budget: u64,
    /// 503s because no backend was available.
    pub unavailable: u64,
    /// Per-try timeouts.
    pub try_timeouts: u64,
    /// Whole-request timeouts.
    pub request_timeouts: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Go-style uptime, as `/health` shows it.
    pub uptime: String,
    /// One entry per backend.
    pub backends: Vec<BackendSnapshot>,
    /// The configuration in force and how reloads went.
    pub config: ConfigSnapshot,
}

/// The configuration's version and reload history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigSnapshot {
    /// Hash of the configuration file in force (`null` when running from flags alone).
    pub version: Option<String>,
    /// Successful reloads.
    pub reloads: u64,
    /// Rejected reloads.
    pub reload_failures: u64,
    /// `ok` or `error` for the last reload attempt, `null` before any.
    pub last_reload_result: Option<&'static str>,
    /// Unix time of the last reload attempt.
    pub last_reload_time: Option<u64>,
    /// The last rejected reload's error.
    pub last_reload_error: Option<String>,
}

/// One backend's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BackendSnapshot {
    /// The pool it belongs to.
    pub pool: String,
    /// The backend URL.
    pub url: String,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// Consecutive failures counted by the breaker.
    pub consecutive_failures: u32,
    /// Attempts sent.
    pub requests: u64,
    /// Responses received.
    pub responses: u64,
    /// Attempts without a response.
    pub errors: u64,
    /// Attempts abandoned by the client.
    pub cancelled: u64,
    /// Attempts still waiting for a response head.
    pub in_flight: u64,
    /// Breaker failures.
    pub failures: u64,
    /// Active health checks pass (or none are configured).
    pub healthy: bool,
    /// Ejected for consecutive 5xx now.
    pub ejected: bool,
    /// Times ejected.
    pub ejections: u64,
    /// Connect attempts that timed out.
    pub connect_timeouts: u64,
    /// Requests outstanding now.
    pub outstanding: u32,
    /// Peak-EWMA latency of response heads, ms.
    pub latency_ewma_ms: f64,
    /// New connections opened.
    pub connections_opened: u64,
    /// Requests sent on reused connections.
    pub connections_reused: u64,
    /// Idle keep-alive connections now (all workers).
    pub idle_connections: u64,
}

// === impl Metrics ===

impl Metrics {
    /// Metrics with one shard per worker thread.
    pub fn new(shards: usize) -> Self {
        Metrics {
            started: Instant::now(),
            counters: Sharded::new(shards),
        }
    }

    /// The calling thread's counters.
    #[inline]
    pub fn local(&self) -> &ProxyCounters {
        self.counters.local()
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Sums the shards. Outcome counters are read before `requests`, so that a request
    /// finishing during the read can never make `in_flight` negative.
    pub fn snapshot(&self, backends: Vec<BackendSnapshot>, config: ConfigSnapshot) -> Snapshot {
        let c = &self.counters;
        let responses = c.sum(|s| &s.responses);
        let local = c.sum(|s| &s.local);
        let errors = c.sum(|s| &s.errors);
        let rate_limited = c.sum(|s| &s.rate_limited);
        let cancelled = c.sum(|s| &s.cancelled);
        let retries = c.sum(|s| &s.retries);
        let retries_over_budget = c.sum(|s| &s.retries_over_budget);
        let unavailable = c.sum(|s| &s.unavailable);
        let try_timeouts = c.sum(|s| &s.try_timeouts);
        let request_timeouts = c.sum(|s| &s.request_timeouts);
        let requests = c.sum(|s| &s.requests);
        let done = responses + local + errors + rate_limited + cancelled;
        let uptime = self.uptime();
        Snapshot {
            requests,
            responses,
            local,
            errors,
            rate_limited,
            cancelled,
            in_flight: requests.saturating_sub(done),
            retries,
            retries_over_budget,
            unavailable,
            try_timeouts,
            request_timeouts,
            uptime_seconds: uptime.as_secs() + u64::from(uptime.subsec_millis() >= 500),
            uptime: duration::format_go_seconds(uptime),
            backends,
            config,
        }
    }
}

impl BackendSnapshot {
    /// Reads one backend's counters (outcomes before `requests`, as above).
    pub fn read(
        pool: String,
        url: String,
        circuit: &'static str,
        consecutive_failures: u32,
        c: &Sharded<BackendCounters>,
    ) -> Self {
        let responses = c.sum(|s| &s.responses);
        let errors = c.sum(|s| &s.errors);
        let cancelled = c.sum(|s| &s.cancelled);
        let failures = c.sum(|s| &s.failures);
        let ejections = c.sum(|s| &s.ejections);
        let connect_timeouts = c.sum(|s| &s.connect_timeouts);
        let connections_opened = c.sum(|s| &s.connections_opened);
        let connections_reused = c.sum(|s| &s.connections_reused);
        let idle_connections = c.sum(|s| &s.idle_in).saturating_sub(c.sum(|s| &s.idle_out));
        let requests = c.sum(|s| &s.requests);
        BackendSnapshot {
            pool,
            url,
            circuit,
            consecutive_failures,
            requests,
            responses,
            errors,
            cancelled,
            in_flight: requests.saturating_sub(responses + errors + cancelled),
            failures,
            healthy: true,
            ejected: false,
            ejections,
            connect_timeouts,
            outstanding: 0,
            latency_ewma_ms: 0.0,
            connections_opened,
            connections_reused,
            idle_connections,
        }
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// The JSON rendering.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The Prometheus / OpenMetrics text rendering, produced by `prometheus-client`.
    pub fn to_prometheus(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// Turns OpenMetrics text into the classic Prometheus text format (0.0.4), for clients that ask
/// for `text/plain`: a counter family `x` is declared there under its sample name `x_total`,
/// and there is no `# EOF` line.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let declared = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match declared {
            Some((prefix, rest)) => {
                let name = rest.split(' ').next().unwrap_or_default();
                let tail = &rest[name.len()..];
                if counters.contains(&name) {
                    let _ = writeln!(out, "{prefix}{name}_total{tail}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = [
            (
                names::REQUESTS,
                "Requests received on the proxy path.",
                self.requests,
            ),
            (
                names::RESPONSES,
                "Requests answered by a backend.",
                self.responses,
            ),
            (
                names::ERRORS,
                "Requests answered with an error by switchyard.",
                self.errors,
            ),
            (
                names::RATE_LIMITED,
                "Requests answered 429.",
                self.rate_limited,
            ),
            (
                names::CANCELLED,
                "Requests abandoned by their client.",
                self.cancelled,
            ),
            (
                names::RETRIES,
                "Attempts on another backend after a connect failure.",
                self.retries,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                names::IN_FLIGHT,
                "Requests waiting for a response head.",
                self.in_flight,
            ),
            (names::UPTIME, "Seconds since start.", self.uptime_seconds),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        type Field = fn(&BackendSnapshot) -> u64;
        let backend_counters: [(&str, &str, Field); 8] = [
            (
                names::BACKEND_REQUESTS,
                "Attempts sent to the backend.",
                |b| b.requests,
            ),
            (
                names::BACKEND_RESPONSES,
                "Responses received from the backend.",
                |b| b.responses,
            ),
            (
                names::BACKEND_ERRORS,
                "Attempts that got no response.",
                |b| b.errors,
            ),
            (
                names::BACKEND_FAILURES,
                "Failures counted by the circuit breaker.",
                |b| b.failures,
            ),
            (
                names::BACKEND_CONNECT_TIMEOUTS,
                "Connect attempts that timed out.",
                |b| b.connect_timeouts,
            ),
            (
                names::BACKEND_EJECTIONS,
                "Ejections for consecutive 5xx.",
                |b| b.ejections,
            ),
            (
                names::BACKEND_CONNECTIONS_OPENED,
                "New upstream connections opened.",
                |b| b.connections_opened,
            ),
            (
                names::BACKEND_CONNECTIONS_REUSED,
                "Requests sent on a reused upstream connection.",
                |b| b.connections_reused,
            ),
        ];
        for (name, help, field) in backend_counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for b in &self.backends {
                let labels = [("pool", b.pool.as_str()), ("backend", b.url.as_str())];
                ConstCounter::new(field(b)).encode(family.encode_family(&labels)?)?;
            }
        }
        type Gauge = fn(&BackendSnapshot) -> i64;
        let backend_gauges: [(&str, &str, Gauge); 4] = [
            (
                names::BACKEND_HEALTHY,
                "1 if active health checks pass (or none are set).",
                |b| i64::from(b.healthy),
            ),
            (
                names::BACKEND_EJECTED,
                "1 while ejected for consecutive 5xx.",
                |b| i64::from(b.ejected),
            ),
            (names::BACKEND_OUTSTANDING, "Requests outstanding.", |b| {
                i64::from(b.outstanding)
            }),
            (
                names::BACKEND_IDLE_CONNECTIONS,
                "Idle keep-alive connections.",
                |b| i64::try_from(b.idle_connections).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, field) in backend_gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for b in &self.backends {
                let labels = [("pool", b.pool.as_str()), ("backend", b.url.as_str())];
                ConstGauge::new(field(b)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            names::BACKEND_CIRCUIT,
            "Circuit state: 0 closed, 1 half-open, 2 open.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for b in &self.backends {
            let value = match b.circuit {
                "closed" => 0,
                "half_open" => 1,
                _ => 2,
            };
            let labels = [("pool", b.pool.as_str()), ("backend", b.url.as_str())];
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        let c = &self.config;
        let mut family = encoder.encode_descriptor(
            names::RELOADS,
            "Configuration reloads, by result.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (result, n) in [("ok", c.reloads), ("error", c.reload_failures)] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        let success = ConstGauge::new(i64::from(c.last_reload_result != Some("error")));
        success.encode(encoder.encode_descriptor(
            names::LAST_RELOAD_SUCCESS,
            "1 if the last reload succeeded (or none was tried), 0 if it was rejected.",
            None,
            success.metric_type(),
        )?)?;
        if let Some(t) = c.last_reload_time {
            let time = ConstGauge::new(i64::try_from(t).unwrap_or(i64::MAX));
            time.encode(encoder.encode_descriptor(
                names::LAST_RELOAD_TIME,
                "Unix time of the last reload attempt.",
                None,
                time.metric_type(),
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            names::CONFIG_INFO,
            "The version (hash) of the configuration in force.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let version = c.version.as_deref().unwrap_or("flags");
        ConstGauge::new(1).encode(family.encode_family(&[("version", version)])?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_in_flight_is_derived() {
        let m = Metrics::new(2);
        for _ in 0..5 {
            inc(&m.local().requests);
        }
        set_thread_shard(1);
        inc(&m.local().responses);
        inc(&m.local().errors);
        set_thread_shard(0);
        inc(&m.local().rate_limited);
        let s = m.snapshot(Vec::new(), ConfigSnapshot::default());
        assert_eq!(
            (s.requests, s.responses, s.errors, s.rate_limited),
            (5, 1, 1, 1)
        );
        assert_eq!(s.in_flight, 2);
    }

    #[test]
    fn prometheus_text_has_every_family() {
        let m = Metrics::new(1);
        inc(&m.local().requests);
        let backends = vec![BackendSnapshot::read(
            "default".into(),
            "http://127.0.0.1:1".into(),
            "open",
            5,
            &Sharded::new(1),
        )];
        let text = m
            .snapshot(backends, ConfigSnapshot::default())
            .to_prometheus();
        assert!(text.contains("switchyard_requests_total 1"), "{text}");
        assert!(
            text.contains("# TYPE switchyard_in_flight_requests gauge"),
            "{text}"
        );
        assert!(
            text.contains(
                "switchyard_backend_circuit_state{pool=\"default\",backend=\"http://127.0.0.1:1\"} 2"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        let classic = openmetrics_to_prometheus_text(&text);
        assert!(
            classic.contains("# TYPE switchyard_requests_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP switchyard_requests_total Requests"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE switchyard_in_flight_requests gauge\n"),
            "{classic}"
        );
        assert!(
            classic.contains("switchyard_requests_total 1\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
