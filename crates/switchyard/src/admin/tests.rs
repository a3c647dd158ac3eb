//! Unit tests of the admin module: format negotiation and the Prometheus rendering.

use std::time::Duration;

use http::header::ACCEPT;
use http::request;
use tokio::time::Instant;

use super::prometheus;
use super::snapshot::{BackendSnapshot, ConfigSnapshot, Snapshot};
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

#[test]
fn prometheus_text_has_every_family() {
    let m = Metrics::new(1);
    inc(&m.local().requests);
    let breaker = BreakerConfig {
        failure_threshold: 5,
        open_duration: Duration::from_secs(10),
    };
    let backend = Backend::new("http://127.0.0.1:1".parse().unwrap(), breaker, 1).unwrap();
    let now = Instant::now();
    for _ in 0..5 {
        let (permit, _) = backend.breaker.try_acquire(now);
        backend.breaker.on_failure(permit.unwrap(), now);
    }
    let backends = vec![BackendSnapshot::read("default", &backend, now)];
    let text = prometheus::to_openmetrics(&Snapshot::new(&m, backends, ConfigSnapshot::default()));
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
