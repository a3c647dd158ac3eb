//! [`Connection`]: what one request is sent on, one enum over the protocols rather than a
//! trait per call site.
//!
//! - HTTP/1.1 ([`h1::conn::Conn`], switchyard's own client): exclusive, one request at a
//!   time. The exchange runs in the request's own future; the connection travels inside the
//!   response body while it is read and goes back to the idle pool when that body is complete.
//! - HTTP/2 ([`H2Stream`]): one stream of a shared connection (a clone of its sender and its
//!   share of the stream count) while the connection stays in the pool for others.
//! - A WebSocket upgrade's connection (hyper's HTTP/1.1 client with upgrades, see
//!   [`super::upgrade`]): opened for that one request, never pooled.
//!
//! TLS or plain is a property of the stream under a connection, not of the connection.

use http::{header, request, Request, Response, Version};
use hyper::client::conn::http1;

use super::body::ResponseBody;
use super::h1;
use super::multiplex::H2Stream;
use super::replay::copy_parts;
use crate::body::RequestBody;
use crate::errors;

/// A connection to a backend that can take a request.
#[derive(Debug)]
pub enum Connection {
    /// HTTP/1.1: one request at a time.
    H1(h1::conn::Conn),
    /// One stream of a shared HTTP/2 connection.
    H2(H2Stream),
    /// The connection of a WebSocket upgrade request (hyper's, with upgrades enabled).
    Upgrade(http1::SendRequest<RequestBody>),
}

/// Why a request sent on a connection got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// On an HTTP/2 or upgrade connection (hyper's client).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// On an HTTP/1.1 connection.
    #[error(transparent)]
    H1(#[from] h1::conn::Error),
}

/// A request that got no response head: why, and its body when none of the request was
/// sent (it can go to another connection as it is; the head stays with the caller).
#[derive(Debug)]
pub struct Unanswered {
    /// Why.
    pub error: SendError,
    /// The request's body, untouched, when nothing of the request reached the connection.
    pub unsent: Option<RequestBody>,
}

/// A response head, and the connection it came on when the request does not carry it in the
/// body (HTTP/2 streams and upgrades; an HTTP/1.1 connection is inside [`ResponseBody`]).
pub type Answered = (Response<ResponseBody>, Option<Connection>);

// === impl Connection ===

impl Connection {
    /// True when the connection can take no more requests. For HTTP/1.1 this probes the
    /// socket (one non-blocking read): an idle connection the backend closed reads its end.
    pub fn is_closed(&mut self) -> bool {
        match self {
            Connection::H1(conn) => conn.closed_while_idle(),
            Connection::H2(stream) => stream.is_closed(),
            Connection::Upgrade(sender) => sender.is_closed(),
        }
    }

    /// Sends the request (`head` and `body`) in this connection's HTTP version and waits for
    /// the response head. The head is borrowed: the caller keeps it for another try (hyper's
    /// clients, HTTP/2 and upgrades, take a copy). `te_trailers`: it carries a `TE:
    /// trailers`, kept for HTTP/2 (gRPC needs it) while HTTP/1.1 backends get no `TE`, a
    /// hop-by-hop header. On HTTP/2 the `Host` goes into `:authority` (RFC 9113 §8.3.1) and
    /// connection-specific headers are already gone (`proxy::rewrite`).
    pub async fn send(
        self,
        head: &mut request::Parts,
        body: RequestBody,
        te_trailers: bool,
    ) -> Result<Answered, Unanswered> {
        match self {
            Connection::H1(conn) => {
                if te_trailers {
                    head.headers.remove(header::TE);
                }
                match conn.send(head, body).await {
                    Ok((head, body)) => {
                        let resp = Response::from_parts(head.parts, ResponseBody::H1(body));
                        Ok((resp, None))
                    }
                    Err(failed) => Err(Unanswered {
                        unsent: failed.body,
                        error: failed.error.into(),
                    }),
                }
            }
            Connection::H2(mut stream) => {
                let mut req = Request::from_parts(copy_parts(head), body);
                *req.version_mut() = Version::HTTP_2;
                if te_trailers {
                    // Taken out of the head if an HTTP/1.1 backend had it first.
                    req.headers_mut()
                        .insert(header::TE, header::HeaderValue::from_static("trailers"));
                }
                stream.address(&mut req);
                match stream.try_send_request(req).await {
                    Ok(resp) => Ok((resp.map(ResponseBody::Hyper), Some(Connection::H2(stream)))),
                    Err(mut e) => Err(Unanswered {
                        unsent: e.take_message().map(Request::into_body),
                        error: e.into_error().into(),
                    }),
                }
            }
            Connection::Upgrade(mut sender) => {
                let mut req = Request::from_parts(copy_parts(head), body);
                *req.version_mut() = Version::HTTP_11;
                req.headers_mut().remove(header::TE);
                match sender.try_send_request(req).await {
                    Ok(resp) => Ok((
                        resp.map(ResponseBody::Hyper),
                        Some(Connection::Upgrade(sender)),
                    )),
                    Err(mut e) => Err(Unanswered {
                        unsent: e.take_message().map(Request::into_body),
                        error: e.into_error().into(),
                    }),
                }
            }
        }
    }
}

// === impl SendError ===

impl SendError {
    /// The connection ended before a response began: closed, or reset by the peer. On a
    /// reused connection this is the backend having closed it just as the request went out
    /// (its keep-alive timeout fired), and an idempotent request may be sent again.
    pub fn closed_before_response(&self) -> bool {
        let io = match self {
            SendError::H1(h1::conn::Error::ClosedBeforeResponse | h1::conn::Error::NotSent(_)) => {
                return true
            }
            SendError::H1(h1::conn::Error::Io(io)) => Some(io),
            SendError::H1(_) => None,
            SendError::Hyper(e) if e.is_incomplete_message() => return true,
            SendError::Hyper(e) => errors::find::<std::io::Error>(e),
        };
        io.is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            )
        })
    }

    /// HTTP/2 says the backend did not process the request (RFC 9113 §8.7): it refused the
    /// stream (`REFUSED_STREAM`), or its GOAWAY left the stream out. Safe to send again.
    pub fn unprocessed(&self) -> bool {
        let SendError::Hyper(e) = self else {
            return false;
        };
        errors::find::<h2::Error>(e).is_some_and(|h2| {
            h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote())
        })
    }
}
