//! [`UpstreamBody`]: a backend's response body on its way out, holding the [`Attempt`] it
//! belongs to until it ends. When it ends, the attempt is classified (complete or broken off,
//! and the `grpc-status` of gRPC trailers) and settled, and a connection whose exchange
//! completed goes back to the idle pool the moment the backend's body is done, while the
//! client is possibly still being written to.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::attempt::Attempt;
use super::connection::Connection;
use super::{classify, h1};
use crate::body::{BodyError, BoxError, RequestBody};
use crate::clock::IdleTimer;

/// A backend's response body as the client that read its head gives it.
#[derive(Debug)]
pub enum ResponseBody {
    /// From hyper's client (HTTP/2, upgrade connections).
    Hyper(Incoming),
    /// From an HTTP/1.1 connection, which it holds until the body is read (with the rest of
    /// the request body, if it is still being sent).
    H1(h1::body::Body<RequestBody>),
}

impl ResponseBody {
    /// Ends the exchange once the body is over: the HTTP/1.1 connection it was read from, if
    /// it can take another request; the rest of an upload the backend answered early is
    /// finished on its own (`h1::body::Body::finish_upload`).
    fn finish(&mut self) -> Option<Connection> {
        match self {
            ResponseBody::H1(body) => {
                body.finish_upload();
                body.take_conn().map(Connection::H1)
            }
            ResponseBody::Hyper(_) => None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResponseBody::H1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Hyper(body) => body.is_end_stream(),
            ResponseBody::H1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Hyper(body) => body.size_hint(),
            ResponseBody::H1(body) => body.size_hint(),
        }
    }
}

/// A backend's response body with its attempt. Boxed: the response it is in is moved through
/// every layer from the retry loop up to the connection, 296 bytes of body each time
/// (measured: BENCHMARKS.md, "Instructions per proxied request").
#[derive(Debug)]
pub struct UpstreamBody(Box<Reading>);

/// What an [`UpstreamBody`] holds.
#[derive(Debug)]
struct Reading {
    body: ResponseBody,
    attempt: Attempt,
    ended: bool,
    status: StatusCode,
    /// `grpc-status` from the head (trailers-only responses) or the trailers.
    grpc: Option<u32>,
    idle: IdleTimer,
    /// The body had to wait for the backend after its head (else it ends at the head's time).
    waited: bool,
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// The body of a response with `status` and `grpc` (a `grpc-status` in its head), read
    /// with `idle` as the longest pause allowed (the write timeout).
    pub fn new(
        body: ResponseBody,
        attempt: Attempt,
        status: StatusCode,
        grpc: Option<u32>,
        idle: Duration,
    ) -> Self {
        let mut this = Box::new(Reading {
            body,
            attempt,
            ended: false,
            status,
            grpc,
            idle: IdleTimer::new(idle),
            waited: false,
        });
        if this.body.is_end_stream() {
            this.end(true);
        }
        UpstreamBody(this)
    }

    /// The label of the backend the body comes from.
    pub fn backend_label(&self) -> &str {
        &self.0.attempt.backend().label
    }

    /// Settles the attempt by the response head alone, for an answer put aside while another
    /// backend is tried (its body is read only if it is returned after all).
    pub fn settle_by_head(&mut self) {
        let this = &mut *self.0;
        let outcome = classify::classify(this.status, this.grpc, true);
        this.attempt.settle(outcome);
    }
}

impl Reading {
    /// The body is over (`complete`: read to its end).
    fn end(&mut self, complete: bool) {
        // A body that never waited for the backend ended when its head arrived (within the
        // microseconds of relaying it): no clock read.
        let now = self.attempt.answered_at().filter(|_| !self.waited);
        if !std::mem::replace(&mut self.ended, true) {
            let outcome = classify::classify(self.status, self.grpc, complete);
            self.attempt.settle(outcome);
            if let Some(conn) = self.body.finish() {
                self.attempt.hold(conn);
            }
            self.attempt.finish(complete, now);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self.0;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.disarm();
                // Trailers come last: the body is over, whether or not it is polled again.
                if let Some(trailers) = frame.trailers_ref() {
                    this.grpc = classify::grpc_status(trailers).or(this.grpc);
                    this.end(true);
                } else if this.body.is_end_stream() {
                    this.end(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.end(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(false);
                Poll::Ready(Some(Err(BodyError::Upstream(e))))
            }
            Poll::Pending => {
                this.waited = true;
                match this.idle.poll_expired(cx) {
                    Poll::Ready(()) => {
                        this.end(false);
                        Poll::Ready(Some(Err(BodyError::UpstreamTimeout(this.idle.limit()))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.body.size_hint()
    }
}
