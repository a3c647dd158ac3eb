//! Unit tests of the admin module: format negotiation and the Prometheus families.

use std::time::Duration;

use http::header::ACCEPT;
use http::request;
use tokio::time::Instant;

use super::names;
use super::prometheus;
use super::snapshot::{
    BackendSnapshot, CertificateSnapshot, ConfigSnapshot, ReloadResult, Snapshot,
};
use super::{wanted_format, Format};
use crate::config::BreakerConfig;
use crate::metrics::{inc, Metrics};
use crate::upstream::Backend;

fn parts(uri: &str, accept: Option<&str>) -> request::Parts {
    let mut b = http::Request::get(uri);
    if let Some(a) = accept {
        b = b.header(ACCEPT, a);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn format_negotiation() {
    assert_eq!(wanted_format(&parts("/metrics", None)), Format::Json);
    assert_eq!(wanted_format(&parts("/metrics", Some("*/*"))), Format::Json);
    assert_eq!(
        wanted_format(&parts("/metrics", Some("application/json"))),
        Format::Json
    );
    assert_eq!(
        wanted_format(&parts("/metrics", Some("text/plain;version=0.0.4"))),
        Format::PrometheusText
    );
    assert_eq!(
        wanted_format(&parts(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        wanted_format(&parts("/metrics?format=prometheus", None)),
        Format::PrometheusText
    );
}

/// A snapshot with one backend whose circuit is open and a rejected reload, so that every
/// family has a sample.
fn snapshot() -> Snapshot {
    let m = Metrics::new(1);
    inc(&m.local().requests);
    inc(&m.local().local);
    let breaker = BreakerConfig {
        failure_threshold: 1,
        open_duration: Duration::from_secs(10),
    };
    let backend = Backend::new("http://127.0.0.1:1".parse().unwrap(), breaker, 1);
    let now = Instant::now();
    let (permit, _) = backend.breaker.try_acquire(now);
    backend.breaker.on_failure(permit.unwrap(), now);
    let config = ConfigSnapshot {
        version: Some("abc123".into()),
        reloads: 1,
        reload_failures: 1,
        last_reload_result: Some(ReloadResult::Error),
        last_reload_time: Some(1_700_000_000),
        last_reload_error: Some("bad file".into()),
    };
    let mut snapshot = Snapshot::new(
        &m,
        vec![BackendSnapshot::read("default", &backend, now)],
        config,
    );
    snapshot.certificates = vec![CertificateSnapshot {
        listener: "127.0.0.1:8443".into(),
        file: "/etc/site.pem".into(),
        names: vec!["example.com".into()],
        subject: "CN=example.com".into(),
        expires: "2027-01-01T00:00:00Z".into(),
        expiry_timestamp_seconds: 1_798_761_600,
    }];
    snapshot
}

/// The Prometheus family of a number in the JSON document; `None` for labels and text.
/// A new JSON field lands in the `panic!` arm until it has a family.
fn proxy_family(key: &str) -> Option<&'static str> {
    Some(match key {
        "requests" => names::REQUESTS,
        "responses" => names::RESPONSES,
        "local" => names::LOCAL,
        "errors" => names::ERRORS,
        "rate_limited" => names::RATE_LIMITED,
        "cancelled" => names::CANCELLED,
        "in_flight" => names::IN_FLIGHT,
        "retries" => names::RETRIES,
        "retries_over_budget" => names::RETRIES_OVER_BUDGET,
        "unavailable" => names::UNAVAILABLE,
        "try_timeouts" => names::TRY_TIMEOUTS,
        "request_timeouts" => names::REQUEST_TIMEOUTS,
        "tunnels_opened" => names::TUNNELS_OPENED,
        "tunnels_open" => names::TUNNELS_OPEN,
        "tunnels_refused" => names::TUNNELS_REFUSED,
        "tunnels_idle_timeouts" => names::TUNNELS_IDLE_TIMEOUTS,
        "tls_handshakes" => names::TLS_HANDSHAKES,
        "tls_handshake_failures" => names::TLS_HANDSHAKE_FAILURES,
        "proxy_protocol_errors" => names::PROXY_PROTOCOL_ERRORS,
        "refused_body_size" => names::REFUSED_BODY_SIZE,
        "refused_uri_length" => names::REFUSED_URI_LENGTH,
        "refused_method" => names::REFUSED_METHOD,
        "refused_content_type" => names::REFUSED_CONTENT_TYPE,
        "refused_requests_per_ip" => names::REFUSED_REQUESTS_PER_IP,
        "refused_connections" => names::REFUSED_CONNECTIONS,
        "refused_connections_per_ip" => names::REFUSED_CONNECTIONS_PER_IP,
        "connections_at_max_requests" => names::CONNECTIONS_AT_MAX_REQUESTS,
        "audit_dropped" => names::AUDIT_DROPPED,
        "uptime_seconds" | "uptime" => names::UPTIME,
        "backends" | "config" | "certificates" | "access" | "client_rate_limit" => return None,
        other => panic!("JSON field `{other}` has no Prometheus family"),
    })
}

fn backend_family(key: &str) -> Option<&'static str> {
    Some(match key {
        "pool" | "url" => return None,
        "circuit" => names::BACKEND_CIRCUIT,
        "consecutive_failures" => names::BACKEND_CONSECUTIVE_FAILURES,
        "requests" => names::BACKEND_REQUESTS,
        "responses" => names::BACKEND_RESPONSES,
        "errors" => names::BACKEND_ERRORS,
        "cancelled" => names::BACKEND_CANCELLED,
        "in_flight" => names::BACKEND_IN_FLIGHT,
        "failures" => names::BACKEND_FAILURES,
        "healthy" => names::BACKEND_HEALTHY,
        "ejected" => names::BACKEND_EJECTED,
        "ejections" => names::BACKEND_EJECTIONS,
        "connect_timeouts" => names::BACKEND_CONNECT_TIMEOUTS,
        "outstanding" => names::BACKEND_OUTSTANDING,
        "latency_ewma_ms" => names::BACKEND_LATENCY_EWMA,
        "connections_opened" => names::BACKEND_CONNECTIONS_OPENED,
        "connections_reused" => names::BACKEND_CONNECTIONS_REUSED,
        "idle_connections" => names::BACKEND_IDLE_CONNECTIONS,
        other => panic!("backend JSON field `{other}` has no Prometheus family"),
    })
}

fn config_family(key: &str) -> Option<&'static str> {
    Some(match key {
        "version" => names::CONFIG_INFO,
        "reloads" | "reload_failures" => names::RELOADS,
        "last_reload_result" => names::LAST_RELOAD_SUCCESS,
        "last_reload_time" => names::LAST_RELOAD_TIME,
        "last_reload_error" => return None,
        other => panic!("config JSON field `{other}` has no Prometheus family"),
    })
}

fn certificate_family(key: &str) -> Option<&'static str> {
    Some(match key {
        "listener" | "file" | "names" | "subject" | "expires" => return None,
        "expiry_timestamp_seconds" => names::TLS_CERTIFICATE_EXPIRY,
        other => panic!("certificate JSON field `{other}` has no Prometheus family"),
    })
}

#[test]
fn every_json_number_has_a_prometheus_family() {
    let snapshot = snapshot();
    let text = prometheus::to_openmetrics(&snapshot);
    let json = serde_json::to_value(&snapshot).unwrap();
    let object = |v: &serde_json::Value| v.as_object().unwrap().clone();
    let backend = &json["backends"][0];
    let families = object(&json)
        .keys()
        .filter_map(|k| proxy_family(k))
        .chain(object(backend).keys().filter_map(|k| backend_family(k)))
        .chain(
            object(&json["config"])
                .keys()
                .filter_map(|k| config_family(k)),
        )
        .chain(
            object(&json["certificates"][0])
                .keys()
                .filter_map(|k| certificate_family(k)),
        )
        .collect::<Vec<_>>();
    assert!(families.len() > 30, "{families:?}");
    for family in families {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
}

#[test]
fn prometheus_text_has_the_values() {
    let text = prometheus::to_openmetrics(&snapshot());
    let labels = "{pool=\"default\",backend=\"http://127.0.0.1:1\"}";
    for line in [
        "switchyard_requests_total 1".to_owned(),
        "switchyard_local_responses_total 1".to_owned(),
        "switchyard_retries_over_budget_total 0".to_owned(),
        "# TYPE switchyard_in_flight_requests gauge".to_owned(),
        format!("switchyard_backend_circuit_state{labels} 2"),
        format!("switchyard_backend_consecutive_failures{labels} 1"),
        format!("switchyard_backend_cancelled_total{labels} 0"),
        "switchyard_config_reloads_total{result=\"error\"} 1".to_owned(),
        "switchyard_config_last_reload_success 0".to_owned(),
        "switchyard_config_info{version=\"abc123\"} 1".to_owned(),
        "switchyard_tls_certificate_expiry_timestamp_seconds{listener=\"127.0.0.1:8443\",name=\"example.com\",file=\"/etc/site.pem\"} 1798761600".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");

    let classic = prometheus::openmetrics_to_prometheus_text(&text);
    for line in [
        "# TYPE switchyard_requests_total counter\n",
        "# HELP switchyard_requests_total Requests",
        "# TYPE switchyard_in_flight_requests gauge\n",
        "switchyard_requests_total 1\n",
    ] {
        assert!(classic.contains(line), "{line} missing:\n{classic}");
    }
    assert!(!classic.contains("# EOF"), "{classic}");
}
