//! A request that asks to switch protocols (a WebSocket upgrade), sent on a connection of its
//! own. The switched connection will be consumed by a tunnel, so it is opened fresh for the
//! request (never taken from the idle pool) and driven with upgrades enabled; everything else
//! is a request's usual path: the pool's candidates (health, ejection, breaker), the load
//! slot, the attempt guard, the per-try and whole-request timeouts. A try that sent nothing
//! (a connect failure, a busy backend) is tried again on another backend, up to `retries`;
//! once sent, an upgrade is never sent twice.
//!
//! Upgrades are HTTP/1.1's: a backend spoken to in HTTP/2 (`h2c://`, or any backend of a pool
//! with `protocol = "h2"`) is passed over (WebSockets to HTTP/2 backends, RFC 8441 upstream,
//! are not done), and a pool that has only such backends refuses the upgrade with
//! [`Error::UpgradeUnsupported`] (`502`) before anything is sent. An `https://` backend is
//! fine: its upgrade connection offers only `http/1.1` in ALPN.
//!
//! The attempt is settled when the response head arrives: a `101` is a success (what the
//! tunnel does later is not the backend's HTTP outcome). The attempt then stays with the
//! tunnel ([`Switched`]) and keeps the backend's load slot until the tunnel closes: a tunnel
//! is a response that lasts, so it counts against `max_connections` and in the outstanding
//! count `least_request` and `peak_ewma` pick by (as HAProxy's `maxconn` and `leastconn`
//! count a tunnel), and long-lived WebSockets spread over the backends. Any other answer is
//! relayed as a normal response and settled when its body ends, as usual; its connection
//! (hyper's, opened for the upgrade) closes after that body rather than joining the idle
//! pool, which holds switchyard's own HTTP/1.1 connections.

use std::sync::Arc;

use http::{header, request, response, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use super::attempt::Attempt;
use super::body::{ResponseBody, UpstreamBody};
use super::classify::Outcome;
use super::client::Exchange;
use super::connect::{ConnectError, Connection, Connector};
use super::deadline::RequestTime;
use super::error::Error;
use super::exchange::{Target, TryError};
use super::replay::copy_parts;
use crate::body::RequestBody;
use crate::config::{Scheme, UpstreamProtocol};
use crate::errors::Chain;
use crate::metrics;

/// How the backend answered an upgrade request.
#[derive(Debug)]
pub enum Upgrade {
    /// `101 Switching Protocols`: the response head, and the backend's side of the tunnel.
    Switched(response::Parts, Switched),
    /// Any other answer, relayed to the client as a normal response.
    Declined(Response<UpstreamBody>),
}

/// The backend's side of a tunnel: a guard, kept for the tunnel's life, that gives the
/// backend's load slot back when dropped.
#[derive(Debug)]
pub struct Switched {
    /// The attempt, settled as a success; it keeps the load slot.
    attempt: Attempt,
    upgrade: OnUpgrade,
}

// === impl Switched ===

impl Switched {
    /// The backend that switched.
    pub fn backend(&self) -> &Arc<str> {
        &self.attempt.backend().label
    }

    /// The switched connection, once hyper hands it over (at once: the `101` is read).
    pub async fn connection(&mut self) -> Result<Upgraded, hyper::Error> {
        (&mut self.upgrade).await
    }
}

/// Sends the upgrade request `parts` (no body) to the pool on a fresh connection, within the
/// pool's whole-request timeout when it has one. `attempts` counts the backends tried.
pub async fn send(
    ex: Exchange<'_>,
    attempts: &mut u32,
    parts: request::Parts,
) -> Result<Upgrade, Error> {
    RequestTime::new(
        ex.pool.request_timeout,
        ex.metrics,
        send_to_pool(ex, attempts, parts),
    )
    .await
}

async fn send_to_pool(
    ex: Exchange<'_>,
    attempts: &mut u32,
    parts: request::Parts,
) -> Result<Upgrade, Error> {
    let pool = ex.pool;
    if !pool
        .backends()
        .iter()
        .any(|b| takes_upgrades(&pool.connector, b))
    {
        return Err(Error::UpgradeUnsupported {
            pool: pool.name.clone(),
        });
    }
    pool.budget.deposit(ex.now);
    let path_and_query = parts.uri.path_and_query().cloned();
    let mut head = parts;
    let mut candidates = pool.candidates(ex.now, ex.hash);
    let mut last_error = Error::NoBackendAvailable {
        pool: pool.name.clone(),
    };
    while *attempts <= pool.retries {
        let Some(mut attempt) = candidates.next() else {
            break;
        };
        if !takes_upgrades(&pool.connector, attempt.backend()) {
            // Not tried: the attempt goes back unsettled, nothing held against the backend.
            continue;
        }
        if *attempts > 0 {
            metrics::inc(&ex.metrics.local().retries);
        }
        *attempts += 1;
        let label = attempt.backend().label.clone();
        if !attempt.admit().await {
            last_error = Error::BackendBusy { backend: label };
            continue;
        }
        let target = Target {
            backend: attempt.backend(),
            path_and_query: path_and_query.as_ref(),
            has_host: ex.has_host,
            te_trailers: ex.te_trailers,
        };
        let tried = tokio::time::timeout(
            ex.try_timeout,
            try_once(&target, &pool.connector, &mut head),
        );
        match tried.await.unwrap_or(Err(TryError::Timeout)) {
            Ok((resp, sender)) => return Ok(answered(ex, attempt, resp, sender)),
            Err(TryError::Connect(source, _unsent)) => {
                tracing::debug!(backend = %label, error = %Chain(&source), "cannot connect to backend");
                attempt.settle(Outcome::NoAnswer);
                last_error = Error::Connect {
                    backend: label,
                    source,
                };
            }
            Err(TryError::Request(source)) => {
                tracing::debug!(backend = %label, error = %Chain(&source), "backend failed to answer an upgrade");
                attempt.settle(Outcome::NoAnswer);
                return Err(Error::NoResponse {
                    backend: label,
                    source,
                });
            }
            Err(TryError::Timeout) => {
                metrics::inc(&ex.metrics.local().try_timeouts);
                tracing::debug!(backend = %label, after = ?ex.try_timeout, "backend did not answer an upgrade in time");
                attempt.settle(Outcome::NoAnswer);
                return Err(Error::TryTimeout {
                    backend: label,
                    after: ex.try_timeout,
                });
            }
        }
    }
    if *attempts == 0 {
        metrics::inc(&ex.metrics.local().unavailable);
    }
    Err(last_error)
}

/// True when `backend` can be sent an HTTP/1.1 upgrade: it is not spoken to in HTTP/2 only
/// (`h2c://`, or a pool with `protocol = "h2"`; `https://` negotiates `http/1.1` for it).
fn takes_upgrades(connector: &Connector, backend: &super::Backend) -> bool {
    !matches!(
        (connector.protocol, backend.url.scheme),
        (UpstreamProtocol::Http2, _) | (_, Scheme::H2c)
    )
}

/// One try: a new connection to the target's backend, driven with upgrades enabled, and the
/// request (`head`, without a body; hyper's client takes a copy) sent on it.
async fn try_once(
    target: &Target<'_>,
    connector: &Connector,
    head: &mut request::Parts,
) -> Result<(Response<Incoming>, http1::SendRequest<RequestBody>), TryError> {
    target.address(head);
    let mut req = Request::from_parts(copy_parts(head), RequestBody::empty());
    *req.version_mut() = Version::HTTP_11;
    // `TE` is hop-by-hop on HTTP/1.1 (kept only as `TE: trailers`, for HTTP/2).
    req.headers_mut().remove(header::TE);
    let io = match connector.open(target.backend).await {
        Ok(io) => io,
        Err(e) => return Err(TryError::Connect(e, Box::new(req.into_body()))),
    };
    // An `https://` backend gets its TLS first (`wss` to the backend); the tunnel runs inside.
    let started = if target.backend.url.scheme.is_tls() {
        match connector.tls_stream(target.backend, io, true).await {
            Ok((tls, _)) => start(connector, tls).await,
            Err(e) => Err(e),
        }
    } else {
        start(connector, io).await
    };
    let mut sender = match started {
        Ok(sender) => sender,
        Err(e) => return Err(TryError::Connect(e, Box::new(req.into_body()))),
    };
    match sender.try_send_request(req).await {
        Ok(resp) => Ok((resp, sender)),
        Err(mut err) => match err.take_message() {
            Some(unsent) => {
                let closed = ConnectError::Closed(err.into_error().into());
                Err(TryError::Connect(closed, Box::new(unsent.into_body())))
            }
            None => Err(TryError::Request(err.into_error().into())),
        },
    }
}

/// HTTP/1.1 with upgrades enabled on a new stream to a backend.
async fn start<S>(
    connector: &Connector,
    io: S,
) -> Result<http1::SendRequest<RequestBody>, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(connector.max_header_bytes.max(64 * 1024))
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream upgrade connection closed with an error");
        }
    });
    Ok(sender)
}

/// A response head arrived: a `101` settles the attempt as a success and keeps it for the
/// tunnel; any other answer travels in its body, settled when the body ends.
fn answered(
    ex: Exchange<'_>,
    mut attempt: Attempt,
    mut resp: Response<Incoming>,
    sender: http1::SendRequest<RequestBody>,
) -> Upgrade {
    attempt.answered(Some(Connection::Upgrade(sender)));
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upgrade = hyper::upgrade::on(&mut resp);
        attempt.settle(Outcome::Success);
        let (head, _empty) = resp.into_parts();
        return Upgrade::Switched(head, Switched { attempt, upgrade });
    }
    let (parts, body) = resp.into_parts();
    let body = ResponseBody::Hyper(body);
    let body = UpstreamBody::new(body, attempt, parts.status, None, ex.write_timeout);
    Upgrade::Declined(Response::from_parts(parts, body))
}
