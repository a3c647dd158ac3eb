//! One try of a request on one backend: take an idle connection (or a stream of a shared
//! HTTP/2 one) or open one, send, and wait for the response head under the per-try timeout
//! ([`TryClock`]). A pooled connection that turns out closed is replaced once,
//! transparently, and so is an HTTP/2 stream the backend provably did not process.

use std::pin::pin;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{request, Response};
use tokio::time::Instant;

use super::body::ResponseBody;
use super::connect::{ConnectError, Connection, Connector};
use super::connection::{SendError, Unanswered};
use super::deadline::{race, TryClock, TryTimer};
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
    /// No connection could be had; the request's body comes back unsent (boxed: a rare path,
    /// kept out of the size of every try's result).
    Connect(ConnectError, Box<RequestBody>),
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
    /// Points the request (`head`) at the backend: its base path in front of the path, and
    /// its address as `Host` when the client sent none.
    pub fn address(&self, head: &mut request::Parts) {
        head.uri = self.backend.target(self.path_and_query);
        if !self.has_host {
            head.headers
                .insert(http::header::HOST, self.backend.host_header.clone());
        }
    }

    /// Sends the request (`head`, which the caller keeps for another try, and `body`) and
    /// waits for the response head, for at most `timeout` of the backend's own time from
    /// `start` (see [`TryClock`]; on `timer`, the client connection's, when it has one):
    /// `None` when the timeout passed.
    #[allow(clippy::too_many_arguments)] // the try's parts, each its own concern
    pub async fn send(
        &self,
        connector: &Connector,
        head: &mut request::Parts,
        body: RequestBody,
        replay: Option<&Replay>,
        timeout: Duration,
        start: Instant,
        timer: Option<&TryTimer>,
    ) -> Option<TryResult> {
        self.address(head);
        let clock = pin!(TryClock::new(timeout, body.client_wait(), start, timer));
        // Pinned where it is built, polled beside the clock: not moved once more.
        let exchange = pin!(self.exchange(connector, head, body, replay, start));
        race(clock, exchange).await
    }

    /// Takes a connection and sends the request on it.
    async fn exchange(
        &self,
        connector: &Connector,
        head: &mut request::Parts,
        body: RequestBody,
        replay: Option<&Replay>,
        start: Instant,
    ) -> TryResult {
        let (conn, reused) = match connector.checkout(self.backend, start).await {
            Ok(conn) => conn,
            Err(e) => return Err(TryError::Connect(e, Box::new(body))),
        };
        self.send_on(connector, conn, reused, head, body, replay)
            .await
    }

    /// Sends the request on `conn`. A pooled connection (`reused`) that turns out closed is
    /// replaced by a new connection once: always when the body comes back unsent, and, when
    /// it can be replayed, also when the connection closed before any response byte arrived
    /// (the backend closed it just as the request was written, e.g. its keep-alive timeout
    /// fired), as Go's transport does.
    async fn send_on(
        &self,
        connector: &Connector,
        mut conn: Connection,
        mut reused: bool,
        head: &mut request::Parts,
        mut body: RequestBody,
        replay: Option<&Replay>,
    ) -> TryResult {
        loop {
            let Unanswered { error, unsent } = match conn.send(head, body, self.te_trailers).await {
                Ok(answered) => return Ok(answered),
                Err(unanswered) => unanswered,
            };
            let unsent = match (unsent, replay) {
                (Some(unsent), _) => unsent,
                (None, Some(replay))
                    if (reused && error.closed_before_response()) || error.unprocessed() =>
                {
                    replay.body()
                }
                (None, _) => return Err(TryError::Request(error)),
            };
            if !reused {
                let closed = ConnectError::Closed(error);
                return Err(TryError::Connect(closed, Box::new(unsent)));
            }
            tracing::debug!(backend = %self.backend.label, "pooled connection was closed; reconnecting");
            body = unsent;
            reused = false;
            // Boxed: a rare path, kept out of the size of every request's future.
            conn = match Box::pin(connector.replace(self.backend)).await {
                Ok(conn) => conn,
                Err(e) => return Err(TryError::Connect(e, Box::new(body))),
            };
        }
    }
}
