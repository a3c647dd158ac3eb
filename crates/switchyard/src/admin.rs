//! The admin endpoints, served on the proxy's own port as in the seed (or, when the
//! configuration gives `[admin] listen`, only on that listener; paths configurable):
//!
//! - `GET /health`: `200 {"status":"UP","uptime":"2m5s","version":...,"backends":[...]}`,
//!   with each backend's circuit state and the configuration version in force.
//! - `GET /metrics`: the counters as JSON (see [`crate::metrics`] for how they add up), or
//!   in the Prometheus text format when the client asks for it with
//!   `Accept: text/plain` / `Accept: application/openmetrics-text` or `?format=prometheus`.
//!
//! Admin requests are not rate limited and not counted in the request counters, so
//! monitoring keeps working while the proxy sheds load. Other methods get `405`.

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, ALLOW, CONNECTION, CONTENT_TYPE};
use http::{request, Method, Response, StatusCode};
use serde::Serialize;

use crate::metrics::ConfigSnapshot;
use crate::state::{Shared, State};

const JSON: &str = "application/json";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

#[derive(Serialize)]
struct Health {
    status: &'static str,
    uptime: String,
    version: Option<String>,
    backends: Vec<BackendHealth>,
}

#[derive(Serialize)]
struct BackendHealth {
    pool: String,
    url: String,
    /// Active health checks pass (always true without checks).
    healthy: bool,
    /// Ejected for consecutive 5xx now.
    ejected: bool,
    circuit: &'static str,
    consecutive_failures: u32,
}

/// Answers the request if it is for an admin endpoint, with a complete response (the proxy
/// wraps the body). On the admin listener (`admin_only`), every other path is `404`.
pub fn route(
    shared: &Shared,
    state: &State,
    req: &request::Parts,
    body_unread: bool,
    admin_only: bool,
) -> Option<Response<Bytes>> {
    let path = req.uri.path();
    let (health_path, metrics_path) = (
        state.admin.health_path.as_str(),
        state.admin.metrics_path.as_str(),
    );
    let is_admin = path == health_path || path == metrics_path;
    if !admin_only && (!is_admin || state.admin.listen.is_some()) {
        return None;
    }
    if !is_admin {
        return Some(response(StatusCode::NOT_FOUND, "Not Found\n", PLAIN_TEXT));
    }
    let mut resp = if req.method != Method::GET && req.method != Method::HEAD {
        let mut resp = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n",
            PLAIN_TEXT,
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        resp
    } else if path == health_path {
        health(shared, state)
    } else {
        metrics(shared, state, req)
    };
    if body_unread {
        // Never read: close rather than risk the body being taken for a request.
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Some(resp)
}

fn health(shared: &Shared, state: &State) -> Response<Bytes> {
    let backends = backend_snapshots(state)
        .into_iter()
        .map(|b| BackendHealth {
            pool: b.pool,
            url: b.url,
            healthy: b.healthy,
            ejected: b.ejected,
            circuit: b.circuit,
            consecutive_failures: b.consecutive_failures,
        })
        .collect();
    let health = Health {
        status: "UP",
        uptime: crate::config::duration::format_go_seconds(shared.metrics.uptime()),
        version: state.version().map(str::to_owned),
        backends,
    };
    let body = serde_json::to_vec_pretty(&health).unwrap_or_default();
    response(StatusCode::OK, body, JSON)
}

fn metrics(shared: &Shared, state: &State, req: &request::Parts) -> Response<Bytes> {
    let snapshot = shared
        .metrics
        .snapshot(backend_snapshots(state), config_snapshot(shared, state));
    match wanted_format(req) {
        Format::Json => response(StatusCode::OK, snapshot.to_json(), JSON),
        Format::OpenMetrics => response(StatusCode::OK, snapshot.to_prometheus(), OPENMETRICS),
        Format::PrometheusText => {
            let text = crate::metrics::openmetrics_to_prometheus_text(&snapshot.to_prometheus());
            response(StatusCode::OK, text, PROMETHEUS_TEXT)
        }
    }
}

/// A complete response: `status`, `Content-Type: content_type` and `body`.
fn response(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Bytes> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn backend_snapshots(state: &State) -> Vec<crate::metrics::BackendSnapshot> {
    state.pools.iter().flat_map(|p| p.snapshot()).collect()
}

fn config_snapshot(shared: &Shared, state: &State) -> ConfigSnapshot {
    let status = shared.reload_status();
    let (time, error) = match status.last {
        Some((at, error)) => (
            at.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
            Some(error),
        ),
        None => (None, None),
    };
    ConfigSnapshot {
        version: state.version().map(str::to_owned),
        reloads: status.succeeded,
        reload_failures: status.failed,
        last_reload_result: error
            .as_ref()
            .map(|e| if e.is_some() { "error" } else { "ok" }),
        last_reload_time: time,
        last_reload_error: error.flatten(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Format {
    Json,
    OpenMetrics,
    PrometheusText,
}

fn wanted_format(req: &request::Parts) -> Format {
    let query_asks = req.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "format=prometheus" || kv == "format=openmetrics")
    });
    let accept = req
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.contains("application/openmetrics-text") {
        Format::OpenMetrics
    } else if query_asks || accept.contains("text/plain") {
        Format::PrometheusText
    } else {
        Format::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
