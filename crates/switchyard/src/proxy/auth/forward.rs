//! Forward auth: before a route's request goes on, its auth service (a pool,
//! `config::forward_auth`) is asked whether it may. The question is a `GET` of the
//! configured path without a body, carrying the original method, target, host, scheme and
//! client address as `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto` and `-For`, and the
//! client's `request_headers` (`Cookie`, `Authorization`).
//!
//! - A `2xx` answer lets the request through, with the answer's `copy_headers` (the user,
//!   the groups) put on it. The client's own headers of those names are removed first,
//!   whatever the answer, so no client can send its own `Remote-User`.
//! - Any other answer goes back to the client as it is: its status, its headers (but those
//!   of the connection and the framing) and its body, up to [`MAX_RESPONSE_BODY`] bytes
//!   (`ProxyError::ForwardAuthDenied`): a `302` to a login page with its `Set-Cookie`, a
//!   `401`.
//! - No answer within the timeout, no backend to ask, a refused connection, a broken or
//!   oversized answer: the request is refused, `503` (`ProxyError::ForwardAuthFailed`, one
//!   `WARN` line naming the service and the reason). Forward auth fails closed.
//!
//! One try per backend: a backend that cannot be connected to (nothing was sent) gives way
//! to the pool's next, as for any request; once asked, a backend's answer, or its silence,
//! is final. Everything the question takes (the breaker permit, the load slot, the
//! connection) is held by its [`crate::upstream::Attempt`] and the answer's body, so a client
//! that leaves mid-question leaks nothing; a finished answer's connection is kept alive for
//! the next question.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;

use super::super::context::{ConnInfo, RequestCtx, Security};
use super::super::error::ProxyError;
use crate::body::RequestBody;
use crate::config::forward_auth::{self, ForwardAuthConfig, MAX_RESPONSE_BODY};
use crate::metrics;
use crate::state::State;
use crate::upstream::classify::Outcome;
use crate::upstream::connect::ConnectError;
use crate::upstream::exchange::{Target, TryError};
use crate::upstream::UpstreamBody;

/// Why the auth service gave no usable answer (the request is refused with `503`).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Every backend of the pool is unhealthy, ejected or has its circuit open.
    #[error("no backend available")]
    NoBackend,
    /// Its backends stayed at `max_connections` for the queue timeout.
    #[error("backend busy")]
    Busy,
    /// No connection could be made.
    #[error("cannot connect")]
    Connect(#[source] ConnectError),
    /// The connection broke before an answer's head.
    #[error("no answer")]
    NoAnswer(#[source] crate::upstream::connect::SendError),
    /// The answer's body broke off.
    #[error("its answer broke off")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A refusal with a body too long to pass on.
    #[error("its answer's body is longer than {MAX_RESPONSE_BODY} bytes")]
    TooLarge,
}

/// The auth service of a route failed: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("forward auth service {pool}{} failed", .backend.as_ref().map_or(String::new(), |b| format!(" ({b})")))]
pub struct Failed {
    /// The pool of the auth service.
    pub pool: String,
    /// The backend that failed, once one was tried.
    pub backend: Option<Arc<str>>,
    /// Why.
    #[source]
    pub reason: Failure,
}

/// Asks the route's auth service about the request in `parts`: `Ok` lets it through (with
/// the copied headers in `parts`), an error refuses it.
pub async fn check(
    state: &State,
    auth: &ForwardAuthConfig,
    conn: &ConnInfo,
    ctx: &RequestCtx<'_>,
    parts: &mut Parts,
) -> Result<(), ProxyError> {
    for name in &auth.copy_headers {
        parts.headers.remove(name);
    }
    let counters = ctx.metrics.local();
    let answer = match ask(state, auth, question(auth, conn, ctx, parts)).await {
        Ok(answer) => answer,
        Err(failed) => {
            metrics::inc(&counters.forward_auth_failed);
            return Err(ProxyError::ForwardAuthFailed(Box::new(failed)));
        }
    };
    if answer.status().is_success() {
        metrics::inc(&counters.forward_auth_allowed);
        for name in &auth.copy_headers {
            for value in answer.headers().get_all(name) {
                parts.headers.append(name.clone(), value.clone());
            }
        }
        return Ok(());
    }
    metrics::inc(&counters.forward_auth_denied);
    Err(ProxyError::ForwardAuthDenied(Box::new(answer)))
}

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The auth request: `GET`, no body, the original request described in `X-Forwarded-*`,
/// the client's `request_headers`. Its target and `Host` are the backend's, set when sent.
fn question(
    auth: &ForwardAuthConfig,
    conn: &ConnInfo,
    ctx: &RequestCtx<'_>,
    parts: &Parts,
) -> Request<RequestBody> {
    let mut req = Request::new(RequestBody::empty());
    let headers = req.headers_mut();
    for name in &auth.request_headers {
        for value in parts.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let method = HeaderValue::from_str(parts.method.as_str());
    let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let proto = match conn.transport.security {
        Security::Plain => "http",
        Security::Tls => "https",
    };
    let client = HeaderValue::from_str(&ctx.client.ip().to_string());
    for (name, value) in [
        (X_FORWARDED_METHOD, method.ok()),
        (X_FORWARDED_URI, HeaderValue::from_str(uri).ok()),
        (X_FORWARDED_HOST, parts.headers.get(HOST).cloned()),
        (X_FORWARDED_PROTO, Some(HeaderValue::from_static(proto))),
        (X_FORWARDED_FOR, client.ok()),
    ] {
        if let Some(value) = value {
            headers.insert(name, value);
        }
    }
    req
}

/// Sends `req` to the auth service's pool and reads the answer whole (bounded), all within
/// the timeout. A backend that cannot be connected to gives way to the next. Each phase
/// (a load slot, the connection and the answer's head, its body) gets what is left of the
/// timeout, so that a backend that stays silent is settled as a failure (its circuit
/// breaker counts it) rather than given up unjudged.
async fn ask(
    state: &State,
    auth: &ForwardAuthConfig,
    req: Request<RequestBody>,
) -> Result<Response<Bytes>, Failed> {
    let (mut head, mut body) = req.into_parts();
    let failed = |backend: Option<Arc<str>>, reason| Failed {
        pool: auth.pool.clone(),
        backend,
        reason,
    };
    let Some(pool) = state.pool(&auth.pool) else {
        // Validation makes this impossible; refused all the same.
        return Err(failed(None, Failure::NoBackend));
    };
    let deadline = Instant::now() + auth.timeout;
    let mut last = failed(None, Failure::NoBackend);
    let tries = pool.retries as usize + 1;
    for mut attempt in pool.candidates(Instant::now(), None).take(tries) {
        let label = attempt.backend().label.clone();
        match tokio::time::timeout_at(deadline, attempt.admit()).await {
            Ok(true) => {}
            Ok(false) => {
                last = failed(Some(label), Failure::Busy);
                continue;
            }
            Err(_) => return Err(failed(Some(label), Failure::Timeout(auth.timeout))),
        }
        let now = Instant::now();
        attempt.begin(now);
        let left = deadline.saturating_duration_since(now);
        let target = Target {
            backend: attempt.backend(),
            path_and_query: Some(&auth.path),
            has_host: false,
            te_trailers: false,
        };
        let sent = target
            .send(&pool.connector, &mut head, body, None, left, now, None)
            .await;
        match sent.unwrap_or(Err(TryError::Timeout)) {
            Ok((resp, conn)) => {
                attempt.answered(conn);
                let whole = tokio::time::timeout_at(deadline, read(resp, attempt, left));
                return match whole.await {
                    Ok(read) => read.map_err(|reason| failed(Some(label), reason)),
                    Err(_) => Err(failed(Some(label), Failure::Timeout(auth.timeout))),
                };
            }
            Err(TryError::Connect(e, unsent)) => {
                attempt.settle(Outcome::NoAnswer);
                last = failed(Some(label), Failure::Connect(e));
                body = *unsent;
            }
            Err(TryError::Request(e)) => {
                attempt.settle(Outcome::NoAnswer);
                return Err(failed(Some(label), Failure::NoAnswer(e)));
            }
            Err(TryError::Timeout) => {
                attempt.settle(Outcome::NoAnswer);
                return Err(failed(Some(label), Failure::Timeout(auth.timeout)));
            }
        }
    }
    Err(last)
}

/// The answer with its body read whole (at most [`MAX_RESPONSE_BODY`] bytes), without the
/// headers of its connection and framing. Its attempt is settled when the body ends.
async fn read(
    resp: Response<crate::upstream::body::ResponseBody>,
    attempt: crate::upstream::Attempt,
    idle: Duration,
) -> Result<Response<Bytes>, Failure> {
    let (mut head, body) = resp.into_parts();
    let body = UpstreamBody::new(body, attempt, head.status, None, idle);
    let bytes = match Limited::new(body, MAX_RESPONSE_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(Failure::TooLarge),
        Err(e) => return Err(Failure::Body(e)),
    };
    let names: Vec<HeaderName> = head
        .headers
        .keys()
        .filter(|name| forward_auth::is_framing(name))
        .cloned()
        .collect();
    for name in names {
        head.headers.remove(name);
    }
    Ok(Response::from_parts(head, bytes))
}
