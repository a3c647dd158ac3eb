//! Every way the request path can fail, and the only place failures become responses.
//!
//! Each variant says whose fault it is: the client's (4xx), the proxy's own policy (429),
//! or the upstream's (502/503/504). Responses come from [`ProxyError::into_response`], which
//! also decides whether the connection must close: a response switchyard makes while the
//! request body is unread closes the connection, so the unread body can never be taken for
//! the next request.

use std::time::Duration;

use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use crate::upstream::connect::ConnectError;

/// A request that could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed or not something a reverse proxy accepts (client fault).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// CONNECT: switchyard is not a forward proxy (client fault).
    #[error("method {0} is not allowed")]
    MethodNotAllowed(http::Method),
    /// The client paused too long in the middle of its request body (client fault).
    #[error("request body timed out")]
    ClientBodyTimeout,
    /// The client's request body broke off (client fault).
    #[error("request body could not be read")]
    ClientBody,
    /// Over the rate limit (policy).
    #[error("rate limit exceeded")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// No route takes the request (client fault: nothing is configured for it).
    #[error("no route for this request")]
    NoRoute,
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
        backend: String,
    },
    /// The whole request (all tries) ran out of time (upstream fault).
    #[error("request did not complete within {after:?}")]
    RequestTimeout {
        /// The limit.
        after: Duration,
    },
    /// No connection could be made to the last backend tried (upstream fault; nothing was
    /// sent, so a retry elsewhere was safe and has been done as far as `--retries` allows).
    #[error("cannot connect to backend {backend}")]
    Connect {
        /// The backend's URL.
        backend: String,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// The request was sent but no response came back (upstream fault; not retried: the
    /// backend may have acted on it).
    #[error("backend {backend} failed to respond")]
    Upstream {
        /// The backend's URL.
        backend: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The backend did not start its response in time (upstream fault).
    #[error("backend {backend} did not respond within {after:?}")]
    UpstreamTimeout {
        /// The backend's URL.
        backend: String,
        /// The timeout that passed.
        after: Duration,
    },
}

/// The body of every `502`, as the seed words it.
pub const BAD_GATEWAY_BODY: &str = "Error forwarding request\n";

// === impl ProxyError ===

impl ProxyError {
    /// The status code the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::ClientBody => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::NoBackendAvailable { .. } | ProxyError::BackendBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::RequestTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The error response. `body_unread`: the request may still have body bytes on the
    /// connection, so it must close after this response.
    pub fn into_response(self, body_unread: bool) -> Response<ResponseBody> {
        let status = self.status();
        let bad_request;
        let (text, extra): (&str, Option<(http::HeaderName, HeaderValue)>) = match &self {
            ProxyError::BadRequest(reason) => {
                bad_request = format!("Bad Request: {reason}\n");
                (&bad_request, None)
            }
            ProxyError::MethodNotAllowed(_) => (
                "CONNECT is not supported: switchyard is a reverse proxy, not a forward proxy\n",
                Some((
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"),
                )),
            ),
            ProxyError::ClientBodyTimeout => ("Request body timed out\n", None),
            ProxyError::NoRoute => ("Not Found: no route for this request\n", None),
            ProxyError::ClientBody => ("Request body could not be read\n", None),
            ProxyError::RateLimited { retry_after } => {
                // Retry-After takes whole seconds; round up so the client does not come back
                // too early, and never say 0.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                (
                    "Too Many Requests\n",
                    Some((RETRY_AFTER, HeaderValue::from(secs.max(1)))),
                )
            }
            ProxyError::NoBackendAvailable { .. } => (
                "Service Unavailable: no backend available (all unhealthy, ejected or circuit open)\n",
                None,
            ),
            ProxyError::BackendBusy { .. } => ("Service Unavailable: backend busy\n", None),
            ProxyError::RequestTimeout { .. } => ("Gateway Timeout: request did not complete in time\n", None),
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => (BAD_GATEWAY_BODY, None),
            ProxyError::UpstreamTimeout { .. } => {
                ("Gateway Timeout: backend did not respond in time\n", None)
            }
        };
        let mut resp = local_response(
            status,
            text.as_bytes().to_vec(),
            "text/plain; charset=utf-8",
        );
        if let Some((name, value)) = extra {
            resp.headers_mut().insert(name, value);
        }
        // A bad request line or head leaves the connection in an unknown state: close it.
        let close = body_unread
            || matches!(
                self,
                ProxyError::BadRequest(_) | ProxyError::ClientBody | ProxyError::ClientBodyTimeout
            );
        if close {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// True when the client, not the upstream, caused the failure.
    pub fn is_client_fault(&self) -> bool {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::NoRoute
            | ProxyError::ClientBodyTimeout
            | ProxyError::ClientBody => true,
            ProxyError::RateLimited { .. }
            | ProxyError::NoBackendAvailable { .. }
            | ProxyError::BackendBusy { .. }
            | ProxyError::RequestTimeout { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamTimeout { .. } => false,
        }
    }
}

/// A response switchyard makes itself.
pub fn local_response(
    status: StatusCode,
    body: impl Into<bytes::Bytes>,
    content_type: &'static str,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Displays an error with its whole source chain: `cannot connect: connect failed: refused`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
