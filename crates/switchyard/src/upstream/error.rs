//! Why the upstream client got no usable response for a request. Each variant says whose
//! fault it is; `proxy::error` turns them into responses (the only place that does).

use std::sync::Arc;
use std::time::Duration;

use super::connect::ConnectError;
use crate::body::BodyError;

/// A request the upstream client could not get answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No backend of the pool can take the request: every one is unhealthy, ejected or has
    /// its circuit open (upstream fault).
    #[error("no backend available in pool {pool:?}: every backend is unhealthy, ejected or has its circuit open")]
    NoBackendAvailable {
        /// The pool.
        pool: String,
    },
    /// The backend stayed at its `max_connections` for the whole queue timeout.
    #[error("backend {backend} is at its connection limit")]
    BackendBusy {
        /// The backend's URL.
        backend: Arc<str>,
    },
    /// No connection could be made to the last backend tried (upstream fault; nothing was
    /// sent, so a retry elsewhere was safe and has been done as far as `retries` allows).
    #[error("cannot connect to backend {backend}")]
    Connect {
        /// The backend's URL.
        backend: Arc<str>,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// The request was sent but no response head came back (upstream fault; retried only
    /// when the request is idempotent and replayable, within the retry budget).
    #[error("backend {backend} failed to respond")]
    NoResponse {
        /// The backend's URL.
        backend: Arc<str>,
        /// Why.
        #[source]
        source: super::connect::SendError,
    },
    /// The backend did not start its response within the per-try timeout, not counting
    /// the time spent waiting for the client's body (upstream fault).
    #[error("backend {backend} did not respond within {after:?}")]
    TryTimeout {
        /// The backend's URL.
        backend: Arc<str>,
        /// The timeout that passed.
        after: Duration,
    },
    /// The whole request (all tries) ran out of time (upstream fault).
    #[error("request did not complete within {after:?}")]
    RequestTimeout {
        /// The limit.
        after: Duration,
    },
    /// A WebSocket upgrade for a pool none of whose backends can take one: switchyard sends
    /// upgrades in HTTP/1.1, and every backend is spoken to in HTTP/2 (`h2c://`, or the pool's
    /// `protocol = "h2"`) (upstream configuration; nothing was sent).
    #[error("pool {pool:?} has no HTTP/1.1 backend: WebSocket upgrades are sent in HTTP/1.1 only")]
    UpgradeUnsupported {
        /// The pool.
        pool: String,
    },
    /// A backend answered a WebSocket upgrade with a success other than `101`: it did not
    /// switch, but an HTTP/2 client would take a `2xx` for an open tunnel (upstream fault).
    #[error(
        "backend {backend} answered a WebSocket upgrade with {status} without switching protocols"
    )]
    NotSwitched {
        /// The backend's URL.
        backend: Arc<str>,
        /// Its answer.
        status: http::StatusCode,
    },
    /// The client paused too long in the middle of its request body (client fault).
    #[error("request body timed out")]
    ClientBodyTimeout,
    /// The client's request body broke off (client fault).
    #[error("request body could not be read")]
    ClientBody,
    /// The client's request body grew past the route's `max_body_size` (client fault).
    #[error("request body larger than {limit} bytes")]
    ClientBodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

// === impl Error ===

impl Error {
    /// The error for a client body that failed with `err`.
    pub fn client_body(err: &BodyError) -> Self {
        match err {
            BodyError::ClientTimeout(_) => Error::ClientBodyTimeout,
            BodyError::ClientTooLarge(limit) => Error::ClientBodyTooLarge { limit: *limit },
            _ => Error::ClientBody,
        }
    }

    /// The error for a client body that broke off `how` (seen by the body itself).
    pub fn client_failure(how: crate::body::ClientFailure) -> Self {
        use crate::body::ClientFailure as F;
        match how {
            F::Timeout(_) => Error::ClientBodyTimeout,
            F::TooLarge(limit) => Error::ClientBodyTooLarge { limit },
            F::Broken => Error::ClientBody,
        }
    }

    /// The backend the error is about, if it is about one.
    pub fn backend(&self) -> Option<&Arc<str>> {
        match self {
            Error::BackendBusy { backend }
            | Error::Connect { backend, .. }
            | Error::NoResponse { backend, .. }
            | Error::TryTimeout { backend, .. }
            | Error::NotSwitched { backend, .. } => Some(backend),
            Error::NoBackendAvailable { .. }
            | Error::UpgradeUnsupported { .. }
            | Error::RequestTimeout { .. }
            | Error::ClientBodyTimeout
            | Error::ClientBody
            | Error::ClientBodyTooLarge { .. } => None,
        }
    }
}
