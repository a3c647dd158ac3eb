//! The per-backend families: one sample per backend, labelled `pool` and `backend`.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;

use super::super::names;
use super::super::snapshot::BackendSnapshot;
use super::saturating;
use crate::upstream::breaker;

pub(super) fn backend_counters(
    backends: &[BackendSnapshot],
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    type Field = fn(&BackendSnapshot) -> u64;
    let counters: [(&str, &str, Field); 9] = [
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
            names::BACKEND_CANCELLED,
            "Attempts abandoned because the client went away.",
            |b| b.cancelled,
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
            "Ejections for consecutive failed answers (5xx but 501/505, broken bodies, gRPC server errors).",
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
    for (name, help, field) in counters {
        per_backend(encoder, name, help, backends, |b| {
            ConstCounter::new(field(b))
        })?;
    }
    Ok(())
}

pub(super) fn backend_gauges(
    backends: &[BackendSnapshot],
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    type Field = fn(&BackendSnapshot) -> i64;
    let gauges: [(&str, &str, Field); 7] = [
        (
            names::BACKEND_HEALTHY,
            "1 if active health checks pass (or none are set).",
            |b| i64::from(b.healthy),
        ),
        (
            names::BACKEND_EJECTED,
            "1 while ejected for consecutive failed answers.",
            |b| i64::from(b.ejected),
        ),
        (
            names::BACKEND_IN_FLIGHT,
            "Attempts waiting for a response head.",
            |b| saturating(b.in_flight),
        ),
        (names::BACKEND_OUTSTANDING, "Requests outstanding.", |b| {
            i64::from(b.outstanding)
        }),
        (
            names::BACKEND_IDLE_CONNECTIONS,
            "Idle keep-alive connections.",
            |b| saturating(b.idle_connections),
        ),
        (
            names::BACKEND_CONSECUTIVE_FAILURES,
            "Consecutive failures counted by the circuit breaker.",
            |b| i64::from(b.consecutive_failures),
        ),
        (
            names::BACKEND_CIRCUIT,
            "Circuit state: 0 closed, 1 half-open, 2 open.",
            |b| circuit_value(b.circuit),
        ),
    ];
    for (name, help, field) in gauges {
        per_backend(encoder, name, help, backends, |b| ConstGauge::new(field(b)))?;
    }
    per_backend(
        encoder,
        names::BACKEND_LATENCY_EWMA,
        "Peak-EWMA latency of the backend's response heads.",
        backends,
        |b| ConstGauge::new(b.latency_ewma_ms / 1e3),
    )
}

/// A family with one sample per backend, labelled `pool` and `backend`.
fn per_backend<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    backends: &[BackendSnapshot],
    metric: impl Fn(&BackendSnapshot) -> M,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for b in backends {
        let labels = [("pool", b.pool.as_str()), ("backend", b.url.as_str())];
        metric(b).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The circuit state as a gauge value.
fn circuit_value(state: breaker::State) -> i64 {
    match state {
        breaker::State::Closed => 0,
        breaker::State::HalfOpen => 1,
        breaker::State::Open => 2,
    }
}
