//! Sending a request again to another backend. A request may be sent again after it reached
//! a backend only if it is idempotent and its body can be replayed: none, or small enough to
//! have been read whole before the first try (`retry.replay_max_bytes`, by its
//! Content-Length). Otherwise the body streams and the request is never sent twice.

use crate::body::ClientBody;
use bytes::Bytes;
use http::{request, Method, Request};
use http_body::Body as _;

use crate::body::{BodyError, RequestBody};

/// What is kept of a request's body to send it again: all of it. The head needs no copy: the
/// retry loop owns it and each try borrows it (`upstream::client`).
#[derive(Debug)]
pub struct Replay {
    body: Bytes,
}

// === impl Replay ===

impl Replay {
    /// The request has no body.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The request's body again, as it was first sent.
    pub fn body(&self) -> RequestBody {
        if self.body.is_empty() {
            RequestBody::empty()
        } else {
            RequestBody::buffered(self.body.clone())
        }
    }
}

/// Gets the client's request body ready for sending. When `may_retry` (a request that may be
/// retried) and the request is idempotent (`method`) and its body is empty or at most
/// `max_bytes` long, the body is read whole now and a [`Replay`] is returned with it. A body
/// longer than `max_body` bytes (`0`: no limit) fails as soon as it grows past it.
pub async fn prepare(
    method: &Method,
    body: ClientBody,
    may_retry: bool,
    max_bytes: usize,
    read_timeout: std::time::Duration,
    max_body: u64,
) -> Result<(RequestBody, Option<Replay>), BodyError> {
    let may_retry = may_retry && is_idempotent(method);
    if body.is_end_stream() {
        let replay = may_retry.then(|| Replay { body: Bytes::new() });
        return Ok((RequestBody::empty(), replay));
    }
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= max_bytes as u64);
    if !(may_retry && small) {
        return Ok((RequestBody::new(body, read_timeout).limit(max_body), None));
    }
    let collected =
        http_body_util::BodyExt::collect(RequestBody::new(body, read_timeout).limit(max_body))
            .await?;
    let bytes = collected.to_bytes();
    let replay = Replay {
        body: bytes.clone(),
    };
    Ok((RequestBody::buffered(bytes), Some(replay)))
}

/// Methods whose requests may be repeated (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a request head (method, target, version, headers; no extensions), for a client
/// that takes the request by value (hyper's, for HTTP/2 and upgrades).
pub fn copy_parts(parts: &request::Parts) -> request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}
