//! One try of a request on one backend: take an idle connection or open one, send, and wait
//! for the response head under the per-try timeout. A pooled connection that turns out
//! closed is replaced once, transparently.

use std::future::Future;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::connect::{ConnectError, Connection, Connector};
use super::replay::Replay;
use super::Backend;
use crate::body::{ClientWait, RequestBody};
use crate::errors;

/// Where one try goes: the backend, and how the request is addressed to it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The backend.
    pub backend: &'a Backend,
    /// The client's path and query (the backend's base path goes in front).
    pub path_and_query: Option<&'a PathAndQuery>,
    /// The client sent a `Host` (an HTTP/1.0 client may not: the backend's goes instead).
    pub has_host: bool,
}

/// How a try ended without a response head.
// The unsent request is handed back by value: it is moved, not copied, and boxing it would
// cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TryError {
    /// No connection could be had; the request comes back unsent.
    Connect(ConnectError, Request<RequestBody>),
    /// The request was (at least partly) sent and the exchange failed.
    Request(hyper::Error),
    /// No response head within the per-try timeout.
    Timeout,
}

// === impl Target ===

impl Target<'_> {
    /// Points `req` at the backend: its base path in front of the path, and its address as
    /// `Host` when the client sent none.
    pub fn address(&self, req: &mut Request<RequestBody>) {
        *req.uri_mut() = self.backend.target(self.path_and_query);
        if !self.has_host {
            req.headers_mut()
                .insert(http::header::HOST, self.backend.host_header.clone());
        }
    }

    /// Sends `req` and waits for the response head, for at most `timeout` of the backend's
    /// own time: while the request body waits on the client, the clock stops, so a slow
    /// upload is never taken for a slow backend.
    pub async fn send(
        &self,
        connector: &Connector,
        mut req: Request<RequestBody>,
        replay: Option<&Replay>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Connection), TryError> {
        self.address(&mut req);
        let wait = req.body().client_wait();
        let sent = async {
            let (conn, reused) = match connector.checkout(self.backend).await {
                Ok(conn) => conn,
                Err(e) => return Err(TryError::Connect(e, req)),
            };
            self.send_on(connector, conn, reused, req, replay).await
        };
        match within_backend_time(timeout, wait.as_deref(), sent).await {
            Some(result) => result,
            None => Err(TryError::Timeout),
        }
    }

    /// Sends `req` on `conn`. A pooled connection (`reused`) that turns out closed is
    /// replaced by a new connection once: always when hyper hands the request back unsent,
    /// and, when it can be replayed, also when the connection closed before any response byte
    /// arrived (the backend closed it just as the request was written, e.g. its keep-alive
    /// timeout fired), as Go's transport does.
    async fn send_on(
        &self,
        connector: &Connector,
        mut conn: Connection,
        mut reused: bool,
        mut req: Request<RequestBody>,
        replay: Option<&Replay>,
    ) -> Result<(Response<Incoming>, Connection), TryError> {
        loop {
            match conn.try_send(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(mut err) => {
                    let unsent = match (err.take_message(), replay) {
                        (Some(unsent), _) => unsent,
                        (None, Some(replay)) if reused && closed_before_response(err.error()) => {
                            let mut again = replay.request();
                            self.address(&mut again);
                            again
                        }
                        (None, _) => return Err(TryError::Request(err.into_error())),
                    };
                    if !reused {
                        let closed = ConnectError::Closed(err.into_error());
                        return Err(TryError::Connect(closed, unsent));
                    }
                    tracing::debug!(backend = %self.backend.label, "pooled connection was closed; reconnecting");
                    req = unsent;
                    reused = false;
                    conn = match connector.connect(self.backend).await {
                        Ok(conn) => conn,
                        Err(e) => return Err(TryError::Connect(e, req)),
                    };
                }
            }
        }
    }
}

/// Runs `fut` for at most `limit` of the backend's time: time the request body spends
/// waiting on the client (`wait`) does not count. `None`: the limit passed.
async fn within_backend_time<F: Future>(
    limit: Duration,
    wait: Option<&ClientWait>,
    fut: F,
) -> Option<F::Output> {
    let Some(wait) = wait else {
        return tokio::time::timeout(limit, fut).await.ok();
    };
    let start = Instant::now();
    let waited_before = wait.waited(start);
    let sleep = tokio::time::sleep_until(start + limit);
    tokio::pin!(fut, sleep);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Some(out),
            () = &mut sleep => {
                let now = Instant::now();
                let deadline = start + limit + wait.waited(now).saturating_sub(waited_before);
                if deadline <= now {
                    return None;
                }
                sleep.as_mut().reset(deadline);
            }
        }
    }
}

/// The connection ended before a response began: closed, or reset by the peer.
fn closed_before_response(err: &hyper::Error) -> bool {
    if err.is_incomplete_message() {
        return true;
    }
    errors::find::<std::io::Error>(err).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        )
    })
}
