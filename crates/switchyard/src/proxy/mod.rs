//! The request path, top to bottom. [`handle`] runs the phases of one request in order:
//!
//! 1. check the request (malformed → 4xx; a target over `max_uri_length` → 414 —
//!    [`limits`]; on TLS, a host the connection's certificate does not cover → 421; CONNECT
//!    → 405, but an HTTP/2 WebSocket's, which goes on as a `GET`) — [`check`]
//!    Then who the client is (the peer, or what trusted proxies forwarded for) and whether
//!    the listener's IP rules let it in (→ 403) — [`auth::client`]
//! 2. admin endpoints (`/health`, `/metrics`, which may need a token), answered without
//!    counting or limiting — [`crate::admin`]
//! 3. a plaintext listener that redirects to HTTPS answers here (308) — [`local`]; then the
//!    route (no route → 404; a route can ask for the client's certificate), and who may use
//!    it: its IP rules (→ 403), its API key (missing or unknown → 401, without the role →
//!    403), its forward auth service (not `2xx` → its answer; no answer → 503) —
//!    [`crate::routing`], [`auth::authenticate`]; then the route's limits (method
//!    405, content type 415, a declared body length 413) — [`limits`]
//! 4. the rate limits, global then the route's own, then the per-client limits (global,
//!    the route's: by address, API key or header; over → 429) — [`crate::ratelimit`],
//!    [`client_limit`]; a redirect or fixed-response route answers here — [`local`]
//! 5. rewrite the request for the backend (path, headers, the client's identity) —
//!    [`rewrite`]
//! 6. to 9. the upstream client ([`crate::upstream::client`]): pick a backend from the
//!    route's pool, admit, connect or reuse a connection, send under the per-try timeout,
//!    retry on another backend when that is safe; the attempt that answers is classified
//!    and settled when its response body ends. A WebSocket upgrade (HTTP/1.1's, or an
//!    HTTP/2 extended CONNECT made into one) goes to a tunnel instead ([`tunnel`]): its own
//!    connection to the backend, and on `101` bytes copied both ways until either side
//!    closes
//! 10. respond, streaming the backend's body ([`body`]); the access-log line is written
//!     when it is done. A route's `security_headers` are added, and the backend's
//!     `Server` and `X-Powered-By` removed ([`rewrite::security`]). Every response on an
//!     HTTPS listener with `hsts` carries `Strict-Transport-Security`.
//!
//! `handle_inner` returns `Result` and uses `?`; `handle` converts errors to responses once,
//! in [`error`], and never fails (an error reaching hyper would drop the connection without
//! a response).

pub mod audit;
pub mod auth;
pub mod body;
pub mod check;
pub mod client_limit;
pub mod context;
pub mod error;
pub mod grpc;
pub mod limits;
pub mod local;
pub mod rewrite;
pub mod tunnel;

use crate::body::ClientBody;
use http::header::STRICT_TRANSPORT_SECURITY;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use tokio::time::Instant;

use crate::admin;
use crate::config::RouteAction;
use crate::errors::Chain;
use crate::metrics;
use crate::ratelimit::Decision;
use crate::state::{Shared, State};
use crate::upstream::{self, client::Exchange};
use body::ResponseBody;
use context::{ConnInfo, Outcome, RequestCtx};
use error::{ProxyError, Render};

/// Handles one request on connection `conn`. Never fails. One `async fn` down to
/// [`handle_inner`], not one awaiting another: awaiting a nested `async fn` moves its whole
/// future (4 KiB here) into the caller's, once per request.
pub async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<ClientBody>,
) -> Response<ResponseBody> {
    let state = shared.state();
    // The one clock reading of the request's way out (its phases and its first try use it).
    let now = Instant::now();
    let (mut parts, body) = req.into_parts();
    let render = Render::for_request(&parts.headers, !body.is_end_stream());

    // Phase 1 and 2: requests that are not proxied.
    let checked = check::check_request(&mut parts)
        .and_then(|()| check::check_authority(&parts, conn))
        .and_then(|()| limits::check_uri(&parts, &state.config.limits));
    let client = checked.and_then(|()| auth::client(&state.config.access, conn, &parts.headers));
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            let ctx = RequestCtx::new(&shared.metrics, conn.addr, &parts, now);
            return with_hsts(conn, respond_error(shared, ctx, e, render));
        }
    };
    if let Some(resp) = admin::route(shared, &state, &parts, render.body_unread, conn.admin_only) {
        if shared.audit.is_some() && parts.uri.path() == state.admin.metrics_path {
            audit::admin(shared.audit.as_deref(), client.ip(), resp.status());
        }
        return with_hsts(conn, resp.map(ResponseBody::full));
    }

    let mut ctx = RequestCtx::new(&shared.metrics, client, &parts, now);
    // Held until the response head: a place under `max_requests_per_ip`.
    let _held = match conn.slot.as_deref().map(|s| s.request()).transpose() {
        Ok(held) => held.flatten(),
        Err(refused) => return with_hsts(conn, respond_error(shared, ctx, refused.into(), render)),
    };
    let resp = match handle_inner(&state, conn, &mut ctx, &mut parts, body, render.grpc).await {
        Ok((mut resp, outcome)) => {
            if let Some(quota) = ctx.quota.take() {
                quota.apply(resp.headers_mut());
            }
            let log = ctx.finish(outcome, resp.status().as_u16(), None);
            resp.body_mut().set_log(log);
            resp
        }
        Err(e) => respond_error(shared, ctx, e, render),
    };
    with_hsts(conn, resp)
}

/// Every response on an HTTPS listener with `hsts` carries `Strict-Transport-Security`.
fn with_hsts(conn: &ConnInfo, mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    if let Some(hsts) = conn
        .transport
        .tls
        .as_ref()
        .and_then(|t| t.settings.hsts.as_ref())
    {
        resp.headers_mut()
            .insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    resp
}

/// Logs `err` once, turns it into the response and closes the request's context. A failure
/// (not the client's fault, not policy) is logged on the request's access line, at `WARN`
/// with its cause; with access lines off, on a `request failed` line of its own. A refusal
/// that is a security event goes to the audit log, when there is one ([`audit`]).
fn respond_error(
    shared: &Shared,
    mut ctx: RequestCtx<'_>,
    err: ProxyError,
    render: Render,
) -> Response<ResponseBody> {
    audit::refused(shared.audit.as_deref(), ctx.client.ip(), &err);
    let status = err.status();
    let outcome = match err {
        ProxyError::RateLimited { .. } => Outcome::RateLimited,
        _ => Outcome::Error,
    };
    limits::count(&err, ctx.metrics);
    let policy = matches!(err, ProxyError::TunnelLimit | ProxyError::Limit(_));
    match &err {
        ProxyError::Unauthenticated { reason, .. } => {
            let c = ctx.metrics.local();
            metrics::inc(&c.unauthenticated);
            if let auth::AuthFailure::Jwt(failure) = reason {
                metrics::inc(&c.jwt_refused[failure.index()]);
            }
        }
        ProxyError::Forbidden(denial) => {
            let c = ctx.metrics.local();
            metrics::inc(&c.forbidden);
            if let auth::Denial::JwtClaim { .. } = denial {
                metrics::inc(&c.jwt_refused[auth::jwt::CLAIMS_REFUSAL]);
            }
        }
        _ => {}
    }
    let failed = outcome == Outcome::Error && !err.is_client_fault() && !policy;
    let attempts = ctx.attempts;
    let quota = ctx.quota.take();
    let mut log = ctx.finish(outcome, status.as_u16(), err.backend());
    match &mut log {
        Some(log) if failed => log.error = Some(Chain(&err).to_string()),
        None if failed => tracing::warn!(
            backend = err.backend().map_or("-", |b| &**b),
            attempts,
            error = %Chain(&err),
            status = status.as_u16(),
            "request failed"
        ),
        _ => tracing::debug!(error = %Chain(&err), status = status.as_u16(), "request refused"),
    }
    let mut resp = err.into_response(render);
    if let Some(quota) = quota {
        quota.apply(resp.headers_mut());
    }
    resp.body_mut().set_log(log);
    resp
}

async fn handle_inner(
    state: &State,
    conn: &ConnInfo,
    ctx: &mut RequestCtx<'_>,
    parts: &mut http::request::Parts,
    body: ClientBody,
    grpc: bool,
) -> Result<(Response<ResponseBody>, Outcome), ProxyError> {
    // Phase 3: a listener that only redirects to HTTPS; the route, and who may use it.
    if let Some(to) = conn
        .policy
        .as_ref()
        .and_then(|p| p.redirect_to_https.as_ref())
    {
        let unread = !body.is_end_stream();
        let resp = local::redirect(parts, to, StatusCode::PERMANENT_REDIRECT, unread);
        return Ok((resp, Outcome::Local));
    }
    let route = state
        .routes
        .find(parts, conn.transport.client_sans())
        .ok_or(ProxyError::NoRoute)?;
    auth::authenticate(state, conn, route, ctx, parts).await?;
    let unread = !body.is_end_stream();
    let declared = body.size_hint().exact();
    let limits = &route.config.limits;
    let max_body = limits::check_route(parts, declared, unread, limits, &state.config.limits)?;

    // Phase 4: the global rate limit and the route's own; local answers. The clock was read
    // when the request arrived, and only a forward auth call took time since.
    let forwarded = route
        .config
        .access
        .as_ref()
        .is_some_and(|a| a.forward.is_some());
    let now = if forwarded { Instant::now() } else { ctx.start };
    if let Decision::Deny { retry_after } = state.limiter.check(now) {
        return Err(ProxyError::RateLimited { retry_after });
    }
    if let Some(limiter) = &route.limiter {
        if let Decision::Deny { retry_after } = limiter.check(now) {
            return Err(ProxyError::RateLimited { retry_after });
        }
    }
    if state.client_limiter.is_some() || route.client_limiter.is_some() {
        client_limit::check(state, route, ctx, &parts.headers, now)?;
    }
    let security = route.config.limits.security_headers.as_ref();
    let tls = conn.transport.tls.is_some();
    let pool = match &route.config.action {
        RouteAction::Forward { pool } => route
            .pool
            .as_ref()
            .ok_or_else(|| upstream::Error::NoBackendAvailable { pool: pool.clone() })?,
        RouteAction::Redirect { to, status } => {
            let mut resp = local::redirect(parts, to, *status, unread);
            rewrite::security::apply(security, resp.headers_mut(), tls);
            route.config.response_headers.apply(resp.headers_mut());
            return Ok((resp, Outcome::Local));
        }
        RouteAction::Respond {
            status,
            body: fixed,
            content_type,
        } => {
            let mut resp = local::fixed_response(*status, fixed, content_type, unread);
            rewrite::security::apply(security, resp.headers_mut(), tls);
            route.config.response_headers.apply(resp.headers_mut());
            return Ok((resp, Outcome::Local));
        }
    };

    // A gRPC client's own deadline bounds the whole request.
    let deadline = if grpc {
        parts.headers.get(GRPC_TIMEOUT).and_then(grpc_timeout)
    } else {
        None
    };

    // Phase 5: rewrite for the backend.
    let hash = pool.hash_key().and_then(|key| {
        if ctx.client.ip() == conn.addr.ip() {
            rewrite::request_hash(key, parts, &conn.ip_header)
        } else {
            // A client that trusted proxies forwarded for: hashed by its own address.
            let ip = http::HeaderValue::from_str(&ctx.client.ip().to_string()).ok()?;
            rewrite::request_hash(key, parts, &ip)
        }
    });
    let has_host = parts.headers.contains_key(http::header::HOST);
    let hops = rewrite::rewrite_request(parts, conn, route, unread);

    // Phases 6 to 9: the upstream client, or for a WebSocket upgrade a tunnel.
    let exchange = Exchange {
        pool,
        try_timeout: route.config.timeout.unwrap_or(pool.timeout),
        hash,
        has_host,
        te_trailers: hops.te_trailers,
        grpc,
        read_timeout: conn.read_timeout,
        write_timeout: conn.write_timeout,
        metrics: ctx.metrics,
        now,
        deadline,
        max_body,
        // An HTTP/2 connection's streams run at once, each woken on its own: a timer each.
        try_timer: (parts.version != http::Version::HTTP_2).then_some(&conn.try_timer),
    };
    let resp = if hops.websocket {
        let settings = &state.config.websocket;
        // The tunnel takes the head: the upgrade request is built from it.
        let parts = std::mem::replace(parts, Request::new(()).into_parts().0);
        // Boxed: the tunnel's opening is rarer and larger than the upstream client's send,
        // and unboxed every request's future (which hyper keeps room for in each idle
        // connection) would be the size of it.
        let open = tunnel::open(exchange, &mut ctx.attempts, parts, settings, ctx.client);
        match Box::pin(open).await? {
            tunnel::Opened::Tunnel(mut resp) => {
                rewrite::security::apply(security, resp.headers_mut(), tls);
                route.config.response_headers.apply(resp.headers_mut());
                return Ok((resp, Outcome::Response));
            }
            tunnel::Opened::Declined(resp) => resp,
        }
    } else {
        upstream::client::send(exchange, &mut ctx.attempts, parts, body).await?
    };

    // Phase 10: respond.
    let (mut parts, body) = resp.into_parts();
    rewrite::rewrite_response(&mut parts);
    rewrite::security::apply(security, &mut parts.headers, tls);
    route.config.response_headers.apply(&mut parts.headers);
    let mut body = ResponseBody::upstream(body);
    if let Some(after) = deadline {
        // The call's deadline holds until its answer has ended, not only until its head.
        body.set_deadline(now + after, after);
    }
    let resp = Response::from_parts(parts, body);
    Ok((resp, Outcome::Response))
}

/// gRPC's request deadline header.
const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// A `grpc-timeout` value (`TimeoutValue TimeoutUnit`: at most 8 digits, then one of
/// `H M S m u n`), or `None` when it is not one.
fn grpc_timeout(value: &http::HeaderValue) -> Option<std::time::Duration> {
    use std::time::Duration;
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_timeout_values() {
        let t = |s: &'static str| grpc_timeout(&http::HeaderValue::from_static(s));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("5S"), Some(Duration::from_secs(5)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("250u"), Some(Duration::from_micros(250)));
        assert_eq!(t("123456789S"), None, "more than 8 digits");
        assert_eq!(t("10x"), None);
        assert_eq!(t("m"), None);
        assert_eq!(t(""), None);
    }
}
