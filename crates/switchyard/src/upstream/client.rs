//! The upstream client: phases 6 to 9 of a request. [`send`] picks a backend from the pool,
//! admits the attempt (load slot), connects or reuses a connection, sends under the per-try
//! timeout, and retries on another backend when that is safe and the budget allows; the
//! attempt that answers travels on inside the response body ([`UpstreamBody`]) and is
//! classified and settled when that body ends.
//!
//! What is retried, on another backend, at most `retries` times:
//! - a connect failure or a busy backend (nothing was sent): always, without drawing on the
//!   budget;
//! - for an idempotent request with a replayable body ([`super::replay`]): a connection reset
//!   or closed before the response head, a per-try timeout, or a status in `retry.retry_on`,
//!   each taken from the pool's retry budget and after a jittered backoff. A `retry_on`
//!   answer is kept and returned if no other backend does better.

use std::sync::Arc;
use std::time::Duration;

use crate::body::ClientBody;
use http::{request, Response};
use tokio::time::Instant;

use super::attempt::Attempt;
use super::body::UpstreamBody;
use super::classify::{self, Outcome};
use super::deadline::{RequestTime, TryTimer};
use super::error::Error;
use super::exchange::{Target, TryError, TryResult};
use super::{replay, retry, Pool};
use crate::body::BodyError;
use crate::errors::{self, Chain};
use crate::metrics::{self, Metrics};

/// What the upstream client needs to know about one request besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The pool to send to.
    pub pool: &'a Arc<Pool>,
    /// Per-try timeout: the route's, else the pool's.
    pub try_timeout: Duration,
    /// The request key's hash, for consistent hashing.
    pub hash: Option<u64>,
    /// The client sent a `Host` header.
    pub has_host: bool,
    /// The request carries `TE: trailers` (sent to HTTP/2 backends only).
    pub te_trailers: bool,
    /// The request is a gRPC call: its outcome may be in `grpc-status`.
    pub grpc: bool,
    /// Longest pause allowed within the client's request body.
    pub read_timeout: Duration,
    /// Longest pause allowed within the backend's response body.
    pub write_timeout: Duration,
    /// The proxy-wide counters.
    pub metrics: &'a Metrics,
    /// When the request arrived.
    pub now: Instant,
    /// A deadline the client set for the whole request (gRPC's `grpc-timeout`), applied
    /// with the pool's `request_timeout`, the shorter winning.
    pub deadline: Option<Duration>,
    /// The route's request body limit in bytes (`0`: none).
    pub max_body: u64,
    /// The client connection's timer for the per-try timeout, when its requests come one at
    /// a time (HTTP/1.1).
    pub try_timer: Option<&'a TryTimer>,
}

/// Sends the request (`parts`, borrowed: each try addresses it anew; `body`) to the pool,
/// within the pool's whole-request timeout when it has one. `attempts` counts the backends
/// tried.
pub async fn send(
    ex: Exchange<'_>,
    attempts: &mut u32,
    parts: &mut request::Parts,
    body: ClientBody,
) -> Result<Response<UpstreamBody>, Error> {
    // Two arms rather than one optional timer: the request's future is moved once less
    // when there is no limit (the common case).
    let limit = match (ex.pool.request_timeout, ex.deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match limit {
        None => send_with_retries(ex, attempts, parts, body).await,
        Some(limit) => {
            let run = send_with_retries(ex, attempts, parts, body);
            RequestTime::new(Some(limit), ex.metrics, run).await
        }
    }
}

/// How one try ended, as the retry loop sees it.
enum Tried {
    /// A response head.
    Answer(Response<UpstreamBody>),
    /// Nothing was sent: another backend may be tried at no cost (the body comes back).
    Unsent(Error, Box<crate::body::RequestBody>),
    /// Sent, and no answer: another backend may be tried if the request can be replayed.
    Failed(Error),
    /// The client's own body failed: nothing to hold against the backend, nothing to retry.
    ClientFault(Error),
}

async fn send_with_retries(
    ex: Exchange<'_>,
    attempts: &mut u32,
    head: &mut request::Parts,
    body: ClientBody,
) -> Result<Response<UpstreamBody>, Error> {
    let pool = ex.pool;
    let now = ex.now;
    pool.budget.deposit(now);
    let max_replay = pool.retry.replay_max_bytes;
    let prepared = replay::prepare(
        &head.method,
        body,
        pool.retries > 0,
        max_replay,
        ex.read_timeout,
        ex.max_body,
    );
    let (mut body, replay) = prepared.await.map_err(|e| Error::client_body(&e))?;
    // The clock is read once per request (`ex.now`, at its arrival) and again for a try only
    // after something was waited for: the body collected for a replay, a slot at
    // `max_connections`, an earlier try (a read is about 20 ns on these VMs, and this path
    // read it seven times per request: BENCHMARKS.md, "The upstream path trimmed").
    let collected = replay.as_ref().is_some_and(|r| !r.is_empty());
    let now = if collected { Instant::now() } else { now };
    // The head stays with the caller, borrowed by every try: a retry sends it again without
    // a copy kept beforehand (measured, see BENCHMARKS.md); only the body moves into a try.
    let path_and_query = head.uri.path_and_query().cloned();
    let mut candidates = pool.candidates(now, ex.hash);
    // Made only when a try fails (the pool's name is shared: a clone is an atomic count).
    let mut last_error = None;
    // A `retry_on` answer kept while another backend is tried.
    let mut fallback = None;
    let mut turns = Turns::default();
    while *attempts <= pool.retries {
        let Some(mut attempt) = candidates.next() else {
            break;
        };
        if *attempts > 0 && !turns.wait(pool, ex.metrics).await {
            break;
        }
        *attempts += 1;
        let at_once = attempt.try_admit();
        if !at_once && !attempt.admit().await {
            // At max_connections for the whole queue timeout: try elsewhere.
            last_error = Some(Error::BackendBusy {
                backend: attempt.backend().label.clone(),
            });
            turns.costs = false;
            continue;
        }
        if *attempts > 1 || !at_once {
            attempt.begin(Instant::now());
        }
        let can_replay = replay.as_ref().filter(|_| *attempts <= pool.retries);
        let target = Target {
            backend: attempt.backend(),
            path_and_query: path_and_query.as_ref(),
            has_host: ex.has_host,
            te_trailers: ex.te_trailers,
        };
        let client = body.client_wait();
        let start = attempt.started();
        let sent = target.send(
            &pool.connector,
            head,
            body,
            replay.as_ref(),
            ex.try_timeout,
            start,
            ex.try_timer,
        );
        let tried = sent.await.unwrap_or(Err(TryError::Timeout));
        let broke = client.and_then(|c| c.failure());
        match answer(ex, attempt, tried, broke) {
            Tried::Answer(resp) => {
                let status = resp.status().as_u16();
                match can_replay {
                    Some(again) if pool.retry.retry_on.contains(&status) => {
                        tracing::debug!(status, "retrying on another backend");
                        let mut resp = resp;
                        // Its body is read only if it is returned after all: judge it now.
                        resp.body_mut().settle_by_head();
                        fallback = Some(resp);
                        body = again.body();
                        turns.costs = true;
                    }
                    _ => return Ok(resp),
                }
            }
            Tried::Unsent(err, unsent) => {
                last_error = Some(err);
                body = *unsent;
                turns.costs = false;
            }
            Tried::Failed(err) => {
                let Some(again) = can_replay else {
                    // The last try: an answer kept from an earlier one is still better.
                    return fallback.ok_or(err);
                };
                last_error = Some(err);
                body = again.body();
                turns.costs = true;
            }
            Tried::ClientFault(err) => return Err(err),
        }
    }
    if let Some(resp) = fallback {
        return Ok(resp);
    }
    if *attempts == 0 {
        metrics::inc(&ex.metrics.local().unavailable);
    }
    Err(last_error.unwrap_or_else(|| Error::NoBackendAvailable {
        pool: pool.name.clone(),
    }))
}

/// Settles what a try that got no head tells about the backend, or wraps the head with its
/// attempt, to be settled when the body ends. `broke`: how the client's body broke off, if
/// it did (then a failed exchange is the client's fault, whatever error it surfaced as).
fn answer(
    ex: Exchange<'_>,
    mut attempt: Attempt,
    tried: TryResult,
    broke: Option<crate::body::ClientFailure>,
) -> Tried {
    let label = || attempt.backend().label.clone();
    match tried {
        Ok((resp, conn)) => {
            attempt.answered(conn);
            let (parts, body) = resp.into_parts();
            let status = parts.status;
            // A trailers-only gRPC answer carries its status in the head.
            let grpc = if ex.grpc {
                classify::grpc_status(&parts.headers)
            } else {
                None
            };
            let body = UpstreamBody::new(body, attempt, status, grpc, ex.write_timeout);
            Tried::Answer(Response::from_parts(parts, body))
        }
        Err(TryError::Connect(source, unsent)) => {
            tracing::debug!(backend = %attempt.backend().label, error = %Chain(&source), "cannot connect to backend");
            let err = Error::Connect {
                backend: label(),
                source,
            };
            attempt.settle(Outcome::NoAnswer);
            Tried::Unsent(err, unsent)
        }
        Err(TryError::Request(source)) => {
            if let Some(body) = errors::find::<BodyError>(&source).filter(|b| b.is_client_fault()) {
                // Dropping the attempt unsettled holds nothing against the backend.
                return Tried::ClientFault(Error::client_body(body));
            }
            if let Some(how) = broke {
                // An HTTP/2 backend's stream was reset because the client's body broke off.
                return Tried::ClientFault(Error::client_failure(how));
            }
            tracing::debug!(backend = %attempt.backend().label, error = %Chain(&source), "backend failed to respond");
            let err = Error::NoResponse {
                backend: label(),
                source,
            };
            attempt.settle(Outcome::NoAnswer);
            Tried::Failed(err)
        }
        Err(TryError::Timeout) => {
            metrics::inc(&ex.metrics.local().try_timeouts);
            tracing::debug!(backend = %attempt.backend().label, after = ?ex.try_timeout, "backend did not respond in time");
            let err = Error::TryTimeout {
                backend: label(),
                after: ex.try_timeout,
            };
            attempt.settle(Outcome::NoAnswer);
            Tried::Failed(err)
        }
    }
}

/// The turns of a request's retries: the budget and the backoff.
#[derive(Debug, Default)]
struct Turns {
    /// Retries that drew on the budget so far (for the backoff).
    paid: u32,
    /// The last try failed in a way that makes the next one draw on the budget.
    costs: bool,
}

impl Turns {
    /// Waits for the next retry's turn; false when the budget refuses it.
    async fn wait(&mut self, pool: &Pool, metrics: &Metrics) -> bool {
        if self.costs {
            if !pool.budget.try_withdraw(Instant::now()) {
                metrics::inc(&metrics.local().retries_over_budget);
                return false;
            }
            self.paid += 1;
            let retry = &pool.retry;
            tokio::time::sleep(retry::backoff(self.paid, retry.backoff, retry.backoff_max)).await;
        }
        metrics::inc(&metrics.local().retries);
        true
    }
}
