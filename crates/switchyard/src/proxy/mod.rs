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

use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::admin;
use crate::config::RouteAction;
use crate::metrics;
use crate::ratelimit::Decision;
use crate::state::{Shared, State};
use crate::upstream::{retry, Outcome as AttemptOutcome, Pool};
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
        return resp.map(ResponseBody::full);
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
        RouteAction::Forward { pool } => route
            .pool
            .as_deref()
            .ok_or_else(|| ProxyError::NoBackendAvailable { pool: pool.clone() })?,
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
    let hash = pool
        .hash_key()
        .and_then(|key| forward::request_hash(key, &parts, &conn.ip_header));
    let has_host = parts.headers.contains_key(http::header::HOST);
    forward::rewrite_request(&mut parts, &conn.ip_header, route);

    // Phase 6 to 10.
    let attempt = Attempting {
        pool,
        conn,
        timeout: route.config.timeout.unwrap_or(pool.timeout),
        has_host,
        hash,
        now,
    };
    let run = attempt.run(ctx, parts, body);
    let mut resp = match pool.request_timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(result) => result?,
            Err(_) => {
                metrics::inc(&ctx.metrics.local().request_timeouts);
                return Err(ProxyError::RequestTimeout { after: limit });
            }
        },
        None => run.await?,
    };
    route.config.response_headers.apply(resp.headers_mut());
    Ok((resp, Outcome::Response))
}

/// Phases 6 to 10 for one request: pick a backend, connect, forward, record the outcome,
/// and retry on another backend when that is safe and the budget allows.
struct Attempting<'a> {
    pool: &'a Pool,
    conn: &'a ConnInfo,
    /// Per-try timeout.
    timeout: Duration,
    has_host: bool,
    hash: Option<u64>,
    now: Instant,
}

impl Attempting<'_> {
    async fn run(
        &self,
        ctx: &mut RequestCtx<'_>,
        parts: http::request::Parts,
        body: Incoming,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let pool = self.pool;
        pool.budget.deposit(self.now);
        // A request may be sent again after it reached a backend only if it is idempotent
        // and its body can be replayed: none, or small enough to have been read whole.
        let idempotent = forward::is_idempotent(&parts.method);
        let (body, replay) = forward::prepare_body(
            body,
            idempotent && pool.retries > 0,
            &pool.retry,
            self.conn.read_timeout,
        )
        .await?;
        let head = replay.as_ref().map(|_| forward::copy_parts(&parts));
        let path_and_query = parts.uri.path_and_query().cloned();
        let mut req = Request::from_parts(parts, body);
        let mut candidates = pool.candidates(self.now, self.hash);
        let mut last_error = ProxyError::NoBackendAvailable {
            pool: pool.name.clone(),
        };
        // A 5xx answer kept while another backend is tried: returned if no other does better.
        let mut fallback: Option<Response<ResponseBody>> = None;
        let mut sent_retries = 0u32;
        let mut reason_to_retry_costs = false;
        while ctx.attempts <= pool.retries {
            let Some(attempt) = candidates.next() else {
                break;
            };
            let backend = attempt.backend;
            if ctx.attempts > 0 {
                if reason_to_retry_costs {
                    if !pool.budget.try_withdraw(Instant::now()) {
                        metrics::inc(&ctx.metrics.local().retries_over_budget);
                        drop(attempt);
                        break;
                    }
                    sent_retries += 1;
                    let wait =
                        retry::backoff(sent_retries, pool.retry.backoff, pool.retry.backoff_max);
                    tokio::time::sleep(wait).await;
                }
                metrics::inc(&ctx.metrics.local().retries);
            }
            ctx.attempts += 1;
            if backend.load.acquire(pool.queue_timeout).await.is_none() {
                // At max_connections for the whole queue timeout: try elsewhere.
                drop(attempt);
                last_error = ProxyError::BackendBusy {
                    backend: backend.label.clone(),
                };
                reason_to_retry_costs = false;
                continue;
            }
            self.address(&mut req, backend, path_and_query.as_ref());
            // The same request again for this backend, when it can be replayed.
            let rebuild = || {
                let mut again = replay_request(&head, &replay);
                self.address(&mut again, backend, path_and_query.as_ref());
                again
            };
            let rebuild: Option<&(dyn Fn() -> Request<RequestBody> + Sync)> =
                head.as_ref().map(|_| &rebuild as _);
            let sent = async {
                let (sender, reused) = match pool.connector.checkout(backend).await {
                    Ok(conn) => conn,
                    Err(e) => return Err(SendError::Connect(e, req)),
                };
                forward::send(&pool.connector, backend, sender, reused, req, rebuild).await
            };
            let result = tokio::time::timeout(self.timeout, sent).await;
            // Whether another try may follow, for the failures that need a replayable request.
            let can_replay = head.is_some() && ctx.attempts <= pool.retries;
            match result {
                Ok(Ok((resp, sender))) => {
                    let status = resp.status();
                    let failed = matches!(
                        status,
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    let code = status.as_u16();
                    attempt.settle(if failed {
                        AttemptOutcome::FailedResponse(code)
                    } else {
                        AttemptOutcome::Success(code)
                    });
                    if let Some(log) = ctx.log.as_mut() {
                        log.backend = Some(backend.clone());
                    }
                    let (mut parts, body) = resp.into_parts();
                    forward::rewrite_response(&mut parts);
                    let body = ResponseBody::upstream(
                        body,
                        sender,
                        backend.clone(),
                        self.conn.write_timeout,
                    );
                    let resp = Response::from_parts(parts, body);
                    if pool.retry.retry_on.contains(&code) && can_replay {
                        tracing::debug!(backend = %backend.label, status = code, "retrying on another backend");
                        fallback = Some(resp);
                        req = replay_request(&head, &replay);
                        reason_to_retry_costs = true;
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(Err(SendError::Connect(source, unsent))) => {
                    backend.load.release();
                    tracing::warn!(backend = %backend.label, error = %error::Chain(&source), "cannot connect to backend");
                    attempt.settle(AttemptOutcome::NoResponse);
                    req = unsent;
                    last_error = ProxyError::Connect {
                        backend: backend.label.clone(),
                        source,
                    };
                    reason_to_retry_costs = false;
                }
                Ok(Err(SendError::Request(source))) => {
                    backend.load.release();
                    if let Some(body_err) = body::find_body_error(&source) {
                        // The client's body failed, not the backend: nothing to hold against it.
                        drop(attempt);
                        return Err(match body_err {
                            body::BodyError::ClientTimeout(_) => ProxyError::ClientBodyTimeout,
                            _ => ProxyError::ClientBody,
                        });
                    }
                    attempt.settle(AttemptOutcome::NoResponse);
                    tracing::warn!(backend = %backend.label, error = %error::Chain(&source), "backend failed to respond");
                    let err = ProxyError::Upstream {
                        backend: backend.label.clone(),
                        source,
                    };
                    if !can_replay {
                        return Err(err);
                    }
                    last_error = err;
                    req = replay_request(&head, &replay);
                    reason_to_retry_costs = true;
                }
                Err(_elapsed) => {
                    backend.load.release();
                    attempt.settle(AttemptOutcome::NoResponse);
                    metrics::inc(&ctx.metrics.local().try_timeouts);
                    let err = ProxyError::UpstreamTimeout {
                        backend: backend.label.clone(),
                        after: self.timeout,
                    };
                    if !can_replay {
                        return Err(err);
                    }
                    tracing::warn!(backend = %backend.label, after = ?self.timeout, "backend timed out; retrying elsewhere");
                    last_error = err;
                    req = replay_request(&head, &replay);
                    reason_to_retry_costs = true;
                }
            }
        }
        if let Some(resp) = fallback {
            return Ok(resp);
        }
        if ctx.attempts == 0 {
            metrics::inc(&ctx.metrics.local().unavailable);
        }
        Err(last_error)
    }
}

impl Attempting<'_> {
    /// Points `req` at `backend`: its base path in front of the path, and its address as
    /// `Host` when the client sent none (HTTP/1.0).
    fn address(
        &self,
        req: &mut Request<RequestBody>,
        backend: &crate::upstream::Backend,
        path_and_query: Option<&http::uri::PathAndQuery>,
    ) {
        *req.uri_mut() = backend.target(path_and_query);
        if !self.has_host {
            req.headers_mut()
                .insert(http::header::HOST, backend.host_header.clone());
        }
    }
}

/// The request again, from its saved head and body.
fn replay_request(
    head: &Option<http::request::Parts>,
    body: &Option<bytes::Bytes>,
) -> Request<RequestBody> {
    let parts = head
        .as_ref()
        .map_or_else(|| Request::new(()).into_parts().0, forward::copy_parts);
    let body = body
        .clone()
        .map_or_else(RequestBody::empty, RequestBody::buffered);
    Request::from_parts(parts, body)
}
