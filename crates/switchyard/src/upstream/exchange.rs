//! One try of a request on one backend: take an idle connection (or a stream of a shared
//! HTTP/2 one) or open one, send, and wait for the response head under the per-try timeout
//! ([`TryClock`]). A pooled connection that turns out closed is replaced once,
//! transparently, and so is an HTTP/2 stream the backend provably did not process.

use std::pin::pin;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response};

use super::body::ResponseBody;
use super::connect::{ConnectError, Connection, Connector};
use super::connection::{SendError, Unanswered};
use super::deadline::{race, TryClock};
use super::replay::Replay;
use super::Backend;
use crate::body::RequestBody;

/// Where one try goes: the backend, and how the request is addressed to it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The backend.
    pub backend: &'a Backend,
    /// The client's path and query (the backend's base path goes in front).
    pub path_and_query: Option<&'a PathAndQuery>,
    /// The client sent a `Host` (an HTTP/1.0 client may not: the backend's goes instead).
    pub has_host: bool,
    /// The request carries `TE: trailers`.
    pub te_trailers: bool,
}

/// How a try ended without a response head.
#[derive(Debug)]
pub enum TryError {
    /// No connection could be had; the request comes back unsent (boxed: a rare path, kept
    /// out of the size of every try's result).
    Connect(ConnectError, Box<Request<RequestBody>>),
    /// The request was (at least partly) sent and the exchange failed.
    Request(SendError),
    /// No response head within the per-try timeout.
    Timeout,
}

/// How a try went: a response head and the connection it came on (unless its body carries
/// it, see [`super::connection::Answered`]), or why not.
pub type TryResult = Result<(Response<ResponseBody>, Option<Connection>), TryError>;

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
    /// own time (see [`TryClock`]): `None` when the timeout passed.
    pub async fn send(
        &self,
        connector: &Connector,
        mut req: Box<Request<RequestBody>>,
        replay: Option<&Replay>,
        timeout: Duration,
    ) -> Option<TryResult> {
        self.address(&mut req);
        let clock = pin!(TryClock::new(timeout, req.body().client_wait()));
        // Pinned where it is built, polled beside the clock: not moved once more.
        let exchange = pin!(self.exchange(connector, req, replay));
        race(clock, exchange).await
    }

    /// Takes a connection and sends `req` on it.
    async fn exchange(
        &self,
        connector: &Connector,
        req: Box<Request<RequestBody>>,
        replay: Option<&Replay>,
    ) -> TryResult {
        let (conn, reused) = match connector.checkout(self.backend).await {
            Ok(conn) => conn,
            Err(e) => return Err(TryError::Connect(e, req)),
        };
        self.send_on(connector, conn, reused, req, replay).await
    }

    /// Sends `req` on `conn`. A pooled connection (`reused`) that turns out closed is
    /// replaced by a new connection once: always when the request comes back unsent, and,
    /// when it can be replayed, also when the connection closed before any response byte
    /// arrived (the backend closed it just as the request was written, e.g. its keep-alive
    /// timeout fired), as Go's transport does.
    async fn send_on(
        &self,
        connector: &Connector,
        mut conn: Connection,
        mut reused: bool,
        mut req: Box<Request<RequestBody>>,
        replay: Option<&Replay>,
    ) -> TryResult {
        loop {
            let Unanswered { error, unsent } = match conn.send(req, self.te_trailers).await {
                Ok(answered) => return Ok(answered),
                Err(unanswered) => unanswered,
            };
            let unsent = match (unsent, replay) {
                (Some(unsent), _) => unsent,
                (None, Some(replay))
                    if (reused && error.closed_before_response()) || error.unprocessed() =>
                {
                    let mut again = Box::new(replay.request());
                    self.address(&mut again);
                    again
                }
                (None, _) => return Err(TryError::Request(error)),
            };
            if !reused {
                let closed = ConnectError::Closed(error);
                return Err(TryError::Connect(closed, unsent));
            }
            tracing::debug!(backend = %self.backend.label, "pooled connection was closed; reconnecting");
            req = unsent;
            reused = false;
            // Boxed: a rare path, kept out of the size of every request's future.
            conn = match Box::pin(connector.replace(self.backend)).await {
                Ok(conn) => conn,
                Err(e) => return Err(TryError::Connect(e, req)),
            };
        }
    }
}
