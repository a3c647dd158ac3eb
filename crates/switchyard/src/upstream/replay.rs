//! Sending a request again to another backend. A request may be sent again after it reached
//! a backend only if it is idempotent and its body can be replayed: none, or small enough to
//! have been read whole before the first try (`retry.replay_max_bytes`, by its
//! Content-Length). Otherwise the body streams and the request is never sent twice.

use bytes::Bytes;
use http::{request, Method, Request};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{BodyError, RequestBody};

/// What is kept of a request to send it again: its head and its whole body.
#[derive(Debug)]
pub struct Replay {
    head: request::Parts,
    body: Bytes,
}

// === impl Replay ===

impl Replay {
    /// The request again, as it was first sent.
    pub fn request(&self) -> Request<RequestBody> {
        let body = if self.body.is_empty() {
            RequestBody::empty()
        } else {
            RequestBody::buffered(self.body.clone())
        };
        Request::from_parts(copy_parts(&self.head), body)
    }
}

/// Gets the client's request ready for sending. When `may_retry` (an idempotent request
/// that may be retried) and its body is empty or at most `max_bytes` long, the body is read
/// whole now and a [`Replay`] is returned with the request. A body longer than `max_body`
/// bytes (`0`: no limit) fails as soon as it grows past it.
pub async fn prepare(
    parts: request::Parts,
    body: Incoming,
    may_retry: bool,
    max_bytes: usize,
    read_timeout: std::time::Duration,
    max_body: u64,
) -> Result<(Request<RequestBody>, Option<Replay>), BodyError> {
    let may_retry = may_retry && is_idempotent(&parts.method);
    if body.is_end_stream() {
        let replay = may_retry.then(|| Replay {
            head: copy_parts(&parts),
            body: Bytes::new(),
        });
        return Ok((Request::from_parts(parts, RequestBody::empty()), replay));
    }
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= max_bytes as u64);
    if !(may_retry && small) {
        let body = RequestBody::new(body, read_timeout).limit(max_body);
        return Ok((Request::from_parts(parts, body), None));
    }
    let collected =
        http_body_util::BodyExt::collect(RequestBody::new(body, read_timeout).limit(max_body))
            .await?;
    let bytes = collected.to_bytes();
    let replay = Replay {
        head: copy_parts(&parts),
        body: bytes.clone(),
    };
    Ok((
        Request::from_parts(parts, RequestBody::buffered(bytes)),
        Some(replay),
    ))
}

/// Methods whose requests may be repeated (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a request head (method, target, version, headers; no extensions).
fn copy_parts(parts: &request::Parts) -> request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}
