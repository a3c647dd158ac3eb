//! The request path, top to bottom. [`handle`] runs the phases of one request in order:
//!
//! 1. check the request (malformed → 4xx)
//! 2. admin endpoints (`/health`, `/metrics`), answered without counting or limiting
//! 3. rate limit (over → 429)
//! 4. pick a backend from the pool (all circuits open → 503)
//! 5. connect, or take a pooled connection; on failure try the next backend (`--retries`)
//! 6. forward with the upstream timeout (→ 502 / 504)
//! 7. record the outcome (circuit breaker, counters)
//! 8. respond, streaming the backend's body; the access-log line is written when it is done
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
use crate::metrics;
use crate::ratelimit::Decision;
use crate::state::{Shared, State};
use crate::upstream::Outcome as AttemptOutcome;
use body::{RequestBody, ResponseBody};
use context::{ClientInfo, Outcome, RequestCtx};
use error::ProxyError;
use forward::SendError;

/// Handles one request from `client`. Never fails.
pub async fn handle(
    shared: &Shared,
    client: &ClientInfo,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let state = shared.state();
    let (mut parts, body) = req.into_parts();
    let body_unread = !body.is_end_stream();

    // Phase 1 and 2: requests that are not proxied.
    if let Err(e) = forward::check_request(&mut parts) {
        let ctx = RequestCtx::new(&shared.metrics, client.addr, &parts);
        return respond_error(ctx, e, body_unread);
    }
    if let Some(resp) = admin::route(shared, &state, &parts, body_unread) {
        return resp;
    }

    let mut ctx = RequestCtx::new(&shared.metrics, client.addr, &parts);
    match handle_inner(&state, client, &mut ctx, parts, body).await {
        Ok(mut resp) => {
            let log = ctx.finish(Outcome::Response, resp.status().as_u16());
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
    client: &ClientInfo,
    ctx: &mut RequestCtx<'_>,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<ResponseBody>, ProxyError> {
    // Phase 3: rate limit.
    let now = Instant::now();
    if let Decision::Deny { retry_after } = state.limiter.check(now) {
        return Err(ProxyError::RateLimited { retry_after });
    }

    // Phase 4 to 7: pick, connect (retrying elsewhere while nothing was sent), forward.
    let path_and_query = parts.uri.path_and_query().cloned();
    let has_host = parts.headers.contains_key(http::header::HOST);
    forward::rewrite_request(&mut parts, client);
    let mut req = Request::from_parts(parts, RequestBody::new(body, state.read_timeout));
    let mut candidates = state.pool.candidates(now);
    let mut last_error = ProxyError::NoBackendAvailable;
    while ctx.attempts <= state.retries {
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
            let (sender, reused) = match state.connector.checkout(backend).await {
                Ok(conn) => conn,
                Err(e) => return Err(SendError::Connect(e, req)),
            };
            forward::send(&state.connector, backend, sender, reused, req).await
        };
        let result = tokio::time::timeout(state.upstream_timeout, sent).await;
        match result {
            Ok(Ok((resp, sender))) => {
                let status = resp.status();
                let failed = matches!(
                    status,
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
                // Phase 8: respond.
                let (mut parts, body) = resp.into_parts();
                forward::rewrite_response(&mut parts);
                let body = ResponseBody::upstream(body, sender, backend.id, state.write_timeout);
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
                    after: state.upstream_timeout,
                });
            }
        }
    }
    Err(last_error)
}
