//! The request path, top to bottom. [`handle`] runs the phases of one request in order:
//!
//! 1. check the request (malformed → 4xx)
//! 2. admin endpoints (`/health`, `/metrics`), answered without counting or limiting
//! 3. rate limit, global (over → 429)
//! 4. route (no route → 404), then the route's own rate limit; a redirect or fixed-response
//!    route answers here
//! 5. rewrite the request for the backend (path, headers)
//! 6. pick a backend from the route's pool (all circuits open → 503)
//! 7. connect, or take a pooled connection; on failure try the next backend (`retries`)
//! 8. forward with the upstream timeout (→ 502 / 504)
//! 9. record the outcome (circuit breaker, counters)
//! 10. respond, streaming the backend's body; the access-log line is written when it is done
//!
//! `handle_inner` returns `Result` and uses `?`; `handle` converts errors to responses once,
//! in [`error`], and never fails (an error reaching hyper would drop the connection without
//! a response).

pub mod body;
pub mod context;
pub mod error;
pub mod forward;

use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::admin;
use crate::config::RouteAction;
use crate::metrics;
use crate::ratelimit::Decision;
use crate::routing::Route;
use crate::state::{Shared, State};
use crate::upstream::{Outcome as AttemptOutcome, Pool};
use body::{RequestBody, ResponseBody};
use context::{ConnInfo, Outcome, RequestCtx};
use error::ProxyError;
use forward::SendError;

/// Handles one request on connection `conn`. Never fails.
pub async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let state = shared.state();
    let (mut parts, body) = req.into_parts();
    let body_unread = !body.is_end_stream();

    // Phase 1 and 2: requests that are not proxied.
    if let Err(e) = forward::check_request(&mut parts) {
        let ctx = RequestCtx::new(&shared.metrics, conn.addr, &parts);
        return respond_error(ctx, e, body_unread);
    }
    if let Some(resp) = admin::route(shared, &state, &parts, body_unread, conn.admin_only) {
        return resp;
    }

    let mut ctx = RequestCtx::new(&shared.metrics, conn.addr, &parts);
    match handle_inner(&state, conn, &mut ctx, parts, body).await {
        Ok((mut resp, outcome)) => {
            let log = ctx.finish(outcome, resp.status().as_u16());
            resp.body_mut().set_log(log);
            resp
        }
        Err(e) => respond_error(ctx, e, body_unread),
    }
}

/// Logs `err` once, turns it into the response and closes the request's context.
fn respond_error(
    ctx: RequestCtx<'_>,
    err: ProxyError,
    body_unread: bool,
) -> Response<ResponseBody> {
    let status = err.status();
    let outcome = if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited
    } else {
        Outcome::Error
    };
    if outcome == Outcome::Error && !err.is_client_fault() {
        tracing::warn!(error = %error::Chain(&err), status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(error = %error::Chain(&err), status = status.as_u16(), "request refused");
    }
    let mut resp = err.into_response(body_unread);
    let log = ctx.finish(outcome, status.as_u16());
    resp.body_mut().set_log(log);
    resp
}

async fn handle_inner(
    state: &State,
    conn: &ConnInfo,
    ctx: &mut RequestCtx<'_>,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Result<(Response<ResponseBody>, Outcome), ProxyError> {
    // Phase 3: the global rate limit.
    let now = Instant::now();
    if let Decision::Deny { retry_after } = state.limiter.check(now) {
        return Err(ProxyError::RateLimited { retry_after });
    }

    // Phase 4: route, and the route's own limit.
    let route = state.routes.find(&parts).ok_or(ProxyError::NoRoute)?;
    if let Some(limiter) = &route.limiter {
        if let Decision::Deny { retry_after } = limiter.check(now) {
            return Err(ProxyError::RateLimited { retry_after });
        }
    }
    let pool = match &route.config.action {
        RouteAction::Forward { .. } => route
            .pool
            .as_deref()
            .ok_or(ProxyError::NoBackendAvailable)?,
        RouteAction::Redirect { to, status } => {
            let mut resp = forward::redirect(&parts, to, *status, !body.is_end_stream());
            route.config.response_headers.apply(resp.headers_mut());
            return Ok((resp, Outcome::Local));
        }
        RouteAction::Respond {
            status,
            body: fixed,
            content_type,
        } => {
            let mut resp =
                forward::fixed_response(*status, fixed, content_type, !body.is_end_stream());
            route.config.response_headers.apply(resp.headers_mut());
            return Ok((resp, Outcome::Local));
        }
    };

    // Phase 5: rewrite for the backend.
    let has_host = parts.headers.contains_key(http::header::HOST);
    forward::rewrite_request(&mut parts, &conn.ip_header, route);
    let path_and_query = parts.uri.path_and_query().cloned();
    let req = Request::from_parts(parts, RequestBody::new(body, conn.read_timeout));

    // Phase 6 to 10.
    let mut resp =
        forward_to_pool(pool, route, conn, ctx, req, path_and_query, has_host, now).await?;
    route.config.response_headers.apply(resp.headers_mut());
    Ok((resp, Outcome::Response))
}

/// Phases 6 to 10: pick a backend, connect (retrying elsewhere while nothing was sent),
/// forward, record the outcome, respond.
#[allow(clippy::too_many_arguments)]
async fn forward_to_pool(
    pool: &Pool,
    route: &Route,
    conn: &ConnInfo,
    ctx: &mut RequestCtx<'_>,
    mut req: Request<RequestBody>,
    path_and_query: Option<http::uri::PathAndQuery>,
    has_host: bool,
    now: Instant,
) -> Result<Response<ResponseBody>, ProxyError> {
    let timeout = route.config.timeout.unwrap_or(pool.timeout);
    let mut candidates = pool.candidates(now);
    let mut last_error = ProxyError::NoBackendAvailable;
    while ctx.attempts <= pool.retries {
        let Some(attempt) = candidates.next() else {
            break;
        };
        let backend = attempt.backend;
        ctx.attempts += 1;
        if ctx.attempts > 1 {
            metrics::inc(&ctx.metrics.local().retries);
        }
        *req.uri_mut() = backend.target(path_and_query.as_ref());
        if !has_host {
            req.headers_mut()
                .insert(http::header::HOST, backend.host_header.clone());
        }

        let sent = async {
            let (sender, reused) = match pool.connector.checkout(backend).await {
                Ok(conn) => conn,
                Err(e) => return Err(SendError::Connect(e, req)),
            };
            forward::send(&pool.connector, backend, sender, reused, req).await
        };
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok((resp, sender))) => {
                let failed = matches!(
                    resp.status(),
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                attempt.settle(if failed {
                    AttemptOutcome::FailedResponse
                } else {
                    AttemptOutcome::Success
                });
                if let Some(log) = ctx.log.as_mut() {
                    log.backend = Some(backend.clone());
                }
                let (mut parts, body) = resp.into_parts();
                forward::rewrite_response(&mut parts);
                let body = ResponseBody::upstream(body, sender, backend.id, conn.write_timeout);
                return Ok(Response::from_parts(parts, body));
            }
            Ok(Err(SendError::Connect(source, unsent))) => {
                tracing::warn!(backend = %backend.label, error = %error::Chain(&source), "cannot connect to backend");
                attempt.settle(AttemptOutcome::NoResponse);
                req = unsent;
                last_error = ProxyError::Connect {
                    backend: backend.label.clone(),
                    source,
                };
            }
            Ok(Err(SendError::Request(source))) => {
                if let Some(body_err) = body::find_body_error(&source) {
                    // The client's body failed, not the backend: nothing to hold against it.
                    drop(attempt);
                    return Err(match body_err {
                        body::BodyError::ClientTimeout(_) => ProxyError::ClientBodyTimeout,
                        _ => ProxyError::ClientBody,
                    });
                }
                attempt.settle(AttemptOutcome::NoResponse);
                return Err(ProxyError::Upstream {
                    backend: backend.label.clone(),
                    source,
                });
            }
            Err(_elapsed) => {
                attempt.settle(AttemptOutcome::NoResponse);
                return Err(ProxyError::UpstreamTimeout {
                    backend: backend.label.clone(),
                    after: timeout,
                });
            }
        }
    }
    Err(last_error)
}
