//! The Prometheus renderings of a [`Snapshot`]: OpenMetrics text, produced by
//! `prometheus-client`, and the classic Prometheus text format (0.0.4) made from it.
//!
//! Every number of the JSON document has a family here (a unit test checks it), named
//! `switchyard_...`; counters get the `_total` suffix, per-backend families the labels `pool`
//! and `backend`.

use std::fmt::{self, Write};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;

mod backends;

use super::names;
use super::snapshot::{CertificateSnapshot, ConfigSnapshot, ReloadResult, Snapshot};

/// The OpenMetrics text rendering (ends with `# EOF`).
pub fn to_openmetrics(snapshot: &Snapshot) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(snapshot.clone()));
    let mut out = String::with_capacity(4096);
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# encoding failed");
    }
    out
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

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        proxy_counters(self, &mut encoder)?;
        proxy_gauges(self, &mut encoder)?;
        backends::backend_counters(&self.backends, &mut encoder)?;
        backends::backend_gauges(&self.backends, &mut encoder)?;
        config(&self.config, &mut encoder)?;
        self.access.encode(&mut encoder)?;
        self.client_rate_limit.encode(&mut encoder)?;
        certificates(&self.certificates, &mut encoder)
    }
}

fn proxy_counters(s: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let counters = [
        (
            names::REQUESTS,
            "Requests received on the proxy path.",
            s.requests,
        ),
        (
            names::RESPONSES,
            "Requests answered by a backend.",
            s.responses,
        ),
        (
            names::LOCAL,
            "Requests answered by a route's redirect or fixed response.",
            s.local,
        ),
        (
            names::ERRORS,
            "Requests answered with an error by switchyard.",
            s.errors,
        ),
        (
            names::RATE_LIMITED,
            "Requests answered 429.",
            s.rate_limited,
        ),
        (
            names::CANCELLED,
            "Requests abandoned by their client.",
            s.cancelled,
        ),
        (
            names::RETRIES,
            "Further attempts on another backend: after a connect failure or a busy backend, and, \
             for idempotent requests, after a reset, a per-try timeout or a retry_on status \
             (those within the retry budget).",
            s.retries,
        ),
        (
            names::RETRIES_OVER_BUDGET,
            "Retries not made because the pool's retry budget was spent.",
            s.retries_over_budget,
        ),
        (
            names::UNAVAILABLE,
            "Requests answered 503 because no backend of the pool was available.",
            s.unavailable,
        ),
        (
            names::TRY_TIMEOUTS,
            "Attempts that timed out waiting for a response head (per-try timeout).",
            s.try_timeouts,
        ),
        (
            names::REQUEST_TIMEOUTS,
            "Requests that ran out of their whole-request timeout.",
            s.request_timeouts,
        ),
        (
            names::TUNNELS_OPENED,
            "WebSocket tunnels opened (the backend answered 101).",
            s.tunnels_opened,
        ),
        (
            names::TUNNELS_REFUSED,
            "WebSocket upgrades refused with 503 because max_tunnels were open.",
            s.tunnels_refused,
        ),
        (
            names::TUNNELS_IDLE_TIMEOUTS,
            "WebSocket tunnels closed because no byte went either way for the idle timeout.",
            s.tunnels_idle_timeouts,
        ),
        (
            names::TLS_HANDSHAKES,
            "TLS handshakes completed on HTTPS listeners.",
            s.tls_handshakes,
        ),
        (
            names::TLS_HANDSHAKE_FAILURES,
            "TLS handshakes that failed or timed out.",
            s.tls_handshake_failures,
        ),
        (
            names::PROXY_PROTOCOL_ERRORS,
            "Connections from trusted proxies closed for a missing, malformed or late PROXY header.",
            s.proxy_protocol_errors,
        ),
        (
            names::REFUSED_BODY_SIZE,
            "Requests refused 413: a body over max_body_size (declared, or counted as it streamed).",
            s.refused_body_size,
        ),
        (
            names::REFUSED_URI_LENGTH,
            "Requests refused 414: a request target over max_uri_length.",
            s.refused_uri_length,
        ),
        (
            names::REFUSED_METHOD,
            "Requests refused 405: a method outside the route's allowed_methods.",
            s.refused_method,
        ),
        (
            names::REFUSED_CONTENT_TYPE,
            "Requests refused 415: a body type outside the route's allowed_content_types.",
            s.refused_content_type,
        ),
        (
            names::REFUSED_REQUESTS_PER_IP,
            "Requests refused 503 because their client IP had max_requests_per_ip in progress.",
            s.refused_requests_per_ip,
        ),
        (
            names::REFUSED_CONNECTIONS,
            "Connections refused because the listener had max_connections open.",
            s.refused_connections,
        ),
        (
            names::REFUSED_CONNECTIONS_PER_IP,
            "Connections refused because their client IP had max_connections_per_ip open.",
            s.refused_connections_per_ip,
        ),
        (
            names::CONNECTIONS_AT_MAX_REQUESTS,
            "Client connections closed (HTTP/1.1) or sent GOAWAY (HTTP/2) after max_requests_per_connection.",
            s.connections_at_max_requests,
        ),
        (
            names::AUDIT_DROPPED,
            "Audit events dropped because the audit writer's queue was full.",
            s.audit_dropped,
        ),
    ];
    for (name, help, value) in counters {
        single(encoder, name, help, ConstCounter::new(value))?;
    }
    Ok(())
}

fn proxy_gauges(s: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let gauges = [
        (
            names::IN_FLIGHT,
            "Requests waiting for a response head.",
            s.in_flight,
        ),
        (
            names::TUNNELS_OPEN,
            "WebSocket tunnels open (with upgrades waiting for the backend's answer).",
            s.tunnels_open,
        ),
        (names::UPTIME, "Seconds since start.", s.uptime_seconds),
    ];
    for (name, help, value) in gauges {
        single(encoder, name, help, ConstGauge::new(saturating(value)))?;
    }
    Ok(())
}

fn config(c: &ConfigSnapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        names::RELOADS,
        "Configuration reloads, by result.",
        None,
        ConstCounter::<u64>::TYPE,
    )?;
    for (result, n) in [("ok", c.reloads), ("error", c.reload_failures)] {
        ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
    }
    let success = c.last_reload_result != Some(ReloadResult::Error);
    single(
        encoder,
        names::LAST_RELOAD_SUCCESS,
        "1 if the last reload succeeded (or none was tried), 0 if it was rejected.",
        ConstGauge::new(i64::from(success)),
    )?;
    if let Some(t) = c.last_reload_time {
        single(
            encoder,
            names::LAST_RELOAD_TIME,
            "Unix time of the last reload attempt.",
            ConstGauge::new(saturating(t)),
        )?;
    }
    let mut family = encoder.encode_descriptor(
        names::CONFIG_INFO,
        "The version (hash) of the configuration in force.",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    let version = c.version.as_deref().unwrap_or("flags");
    ConstGauge::new(1).encode(family.encode_family(&[("version", version)])?)
}

fn certificates(certs: &[CertificateSnapshot], encoder: &mut DescriptorEncoder) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        names::TLS_CERTIFICATE_EXPIRY,
        "When a certificate an HTTPS listener serves expires (notAfter, Unix seconds).",
        None,
        ConstGauge::<i64>::TYPE,
    )?;
    for c in certs {
        let name = c.names.first().map_or("", String::as_str);
        let labels = [
            ("listener", c.listener.as_str()),
            ("name", name),
            ("file", c.file.as_str()),
        ];
        ConstGauge::new(c.expiry_timestamp_seconds).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family with one unlabelled sample.
pub(super) fn single<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, M::TYPE)?)
}

pub(super) fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
