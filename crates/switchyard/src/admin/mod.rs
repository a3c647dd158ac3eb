//! The admin endpoints, served on the proxy's own port as in the seed (or, when the
//! configuration gives `[admin] listen`, only on that listener; paths configurable):
//!
//! - `GET /health`: `{"status":"UP","uptime":"2m5s","config_version":...,"backends":[...]}`
//!   with the status as of now (`UP`, `DEGRADED`, or `DOWN` answered with
//!   `[admin] down_status`, default `503`), each backend's availability and circuit state,
//!   the configuration version in force and the certificates of the HTTPS listeners
//!   (`certificates`: listener, names, file, expiry). See [`health`].
//! - `GET /health/live` (`200` while the process answers) and `GET /health/ready` (`200`
//!   once the first health checks have settled, `503` before), under the health path.
//! - `GET /metrics`: the counters as JSON (see [`crate::metrics`] for how they add up), or
//!   in the Prometheus text format when the client asks for it with
//!   `Accept: text/plain` / `Accept: application/openmetrics-text` or `?format=prometheus`.
//!
//! With `[admin] token_file` (`--admin-token-file`), `/metrics` needs
//! `Authorization: Bearer TOKEN` (compared in constant time; `401` otherwise) and `/health`
//! stays open for load balancers. Without it both are open, as in the seed.
//!
//! Admin requests are not rate limited and not counted in the request counters, so
//! monitoring keeps working while the proxy sheds load. Other methods get `405`.
//!
//! - [`health`]: the status and what the health endpoints show.
//! - [`access`]: the access-control figures (refusals, requests per API key);
//!   [`client_limits`]: the per-client rate limits' (refusals, keys tracked, evictions).
//! - [`snapshot`]: the figures, read at one moment from the state's backends and the counters.
//! - [`json`]: the `/health` and `/metrics` JSON documents.
//! - [`prometheus`]: the OpenMetrics and Prometheus text renderings; [`names`]: their families.
//!
//! Admin answers with complete bodies (`Response<Bytes>`) and knows nothing of the proxy's
//! body types; the proxy wraps them.

pub mod access;
pub mod client_limits;
pub mod health;
pub mod json;
pub mod names;
pub mod prometheus;
pub mod snapshot;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{request, Method, Response, StatusCode};
use tokio::time::Instant;

use crate::config::duration;
use crate::state::{Shared, State};
use json::Health;
use snapshot::{CertificateSnapshot, Snapshot};

const JSON: &str = "application/json";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// Answers the request if it is for an admin endpoint. On the admin listener
/// (`admin_only`), every other path is `404`.
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
    let endpoint = if path == metrics_path {
        Some(Endpoint::Metrics)
    } else {
        match path.strip_prefix(health_path) {
            Some("") => Some(Endpoint::Health),
            Some("/live") => Some(Endpoint::Live),
            Some("/ready") => Some(Endpoint::Ready),
            _ => None,
        }
    };
    if !admin_only && (endpoint.is_none() || state.admin.listen.is_some()) {
        return None;
    }
    let Some(endpoint) = endpoint else {
        return Some(response(StatusCode::NOT_FOUND, "Not Found\n", PLAIN_TEXT));
    };
    let mut resp = if req.method != Method::GET && req.method != Method::HEAD {
        let mut resp = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n",
            PLAIN_TEXT,
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        resp
    } else if endpoint == Endpoint::Metrics && !authorized(state, req) {
        let mut resp = response(StatusCode::UNAUTHORIZED, "Unauthorized\n", PLAIN_TEXT);
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
        );
        resp
    } else {
        match endpoint {
            Endpoint::Health => health(shared, state),
            Endpoint::Live => response(StatusCode::OK, "{\"status\":\"UP\"}\n", JSON),
            Endpoint::Ready => ready(shared, state),
            Endpoint::Metrics => metrics(shared, state, req),
        }
    };
    crate::body::close_if_unread(resp.headers_mut(), body_unread);
    Some(resp)
}

/// The admin endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Live,
    Ready,
    Metrics,
}

/// True when no token is configured, or the request carries it as a Bearer token.
fn authorized(state: &State, req: &request::Parts) -> bool {
    let Some(token) = &state.admin.token else {
        return true;
    };
    req.headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(crate::config::auth::bearer_token)
        .any(|presented| token.matches(presented))
}

fn health(shared: &Shared, state: &State) -> Response<Bytes> {
    let backends = health::backends(state, Instant::now());
    let status = health::status(&state.pools, &backends);
    let health = Health::new(
        status,
        duration::format_go_seconds(shared.metrics.uptime()),
        state.version().map(str::to_owned),
        backends,
        CertificateSnapshot::read_all(shared),
    );
    let code = match health.status() {
        health::Status::Down => state.admin.down_status,
        health::Status::Up | health::Status::Degraded => StatusCode::OK,
    };
    response(code, health.to_json(), JSON)
}

/// `/health/ready`: ready once every backend with active checks has had its first; latched.
fn ready(shared: &Shared, state: &State) -> Response<Bytes> {
    let pending = if shared.is_ready() {
        0
    } else {
        health::unchecked(state)
    };
    if pending == 0 {
        shared.set_ready();
        return response(StatusCode::OK, "{\"status\":\"READY\"}\n", JSON);
    }
    let body = format!("{{\"status\":\"NOT_READY\",\"unchecked_backends\":{pending}}}\n");
    response(StatusCode::SERVICE_UNAVAILABLE, body, JSON)
}

fn metrics(shared: &Shared, state: &State, req: &request::Parts) -> Response<Bytes> {
    let snapshot = Snapshot::read(shared, state);
    match wanted_format(req) {
        Format::Json => response(StatusCode::OK, json::metrics(&snapshot), JSON),
        Format::OpenMetrics => response(
            StatusCode::OK,
            prometheus::to_openmetrics(&snapshot),
            OPENMETRICS,
        ),
        Format::PrometheusText => {
            let text =
                prometheus::openmetrics_to_prometheus_text(&prometheus::to_openmetrics(&snapshot));
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
mod tests;
