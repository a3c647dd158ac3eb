//! Every way the request path can fail, and the only place its failures become responses
//! (admin answers its own paths; a route's redirect and fixed response are in `local`).
//!
//! Each variant says whose fault it is: the client's (4xx), the proxy's own policy (429, and
//! 503 at the tunnel limit), or the upstream's (502/503/504, from [`upstream::Error`]).
//! Responses come from [`ProxyError::into_response`], rendered for the client's protocol:
//! text for HTTP, a trailers-only `grpc-status` answer for a gRPC call. It also decides
//! whether the connection must close: a response switchyard makes while the request body is
//! unread closes the connection, so the unread body can never be taken for the next request.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

use super::auth::{AuthFailure, Denial};
use super::body::ResponseBody;
use super::limits::Refused;
use super::local::local_response;
use crate::body::close_if_unread;
use crate::upstream;

/// A request that could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed or not something a reverse proxy accepts (client fault).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// CONNECT: switchyard is not a forward proxy (client fault).
    #[error("method {0} is not allowed")]
    MethodNotAllowed(http::Method),
    /// Over the rate limit (policy).
    #[error("rate limit exceeded")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// No route takes the request (client fault: nothing is configured for it).
    #[error("no route for this request")]
    NoRoute,
    /// A WebSocket upgrade while `max_tunnels` tunnels are open (policy).
    #[error("too many open WebSocket tunnels")]
    TunnelLimit,
    /// The request's host is not covered by the certificate its TLS connection was made
    /// with (client fault: it must open a connection for that host).
    #[error("misdirected request: the connection's certificate does not cover this host")]
    Misdirected,
    /// The route needs an API key or a JWT and the request has none that is valid (client
    /// fault): `401` with the challenge.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// Missing, unknown, or (for a JWT) why it does not verify.
        reason: AuthFailure,
        /// `WWW-Authenticate: Bearer realm="..."` (with `error="invalid_token"` for a JWT
        /// that does not verify).
        challenge: HeaderValue,
    },
    /// The client may not pass: its address, its key's roles, its token's claims (client
    /// fault): `403`.
    #[error("forbidden: {0}")]
    Forbidden(Denial),
    /// The route's forward auth service refused the request (client fault: no session, or
    /// not enough rights): its answer goes to the client as is (`proxy::auth::forward`).
    #[error("forward auth refused the request ({})", .0.status())]
    ForwardAuthDenied(Box<Response<bytes::Bytes>>),
    /// The route's forward auth service gave no usable answer (its fault): `503`, as
    /// forward auth fails closed.
    #[error(transparent)]
    ForwardAuthFailed(Box<super::auth::forward::Failed>),
    /// Over one of the request limits (client fault; the per-client and connection caps
    /// are policy): see `proxy::limits`.
    #[error(transparent)]
    Limit(#[from] super::limits::Refused),
    /// The upstream client got no usable response (mostly upstream faults; a client whose
    /// request body fails is its own).
    #[error(transparent)]
    Upstream(#[from] upstream::Error),
}

/// The body of every `502`, as the seed words it.
pub const BAD_GATEWAY_BODY: &str = "Error forwarding request\n";

/// How a local error response is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Render {
    /// The request body may still have bytes on the connection: close after the response.
    pub body_unread: bool,
    /// The request is a gRPC call (`content-type: application/grpc...`): answer in gRPC's
    /// terms, `200` with `grpc-status` and `grpc-message`.
    pub grpc: bool,
}

const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

// === impl Render ===

impl Render {
    /// How to render errors for a request with these headers.
    pub fn for_request(headers: &HeaderMap, body_unread: bool) -> Self {
        let grpc = headers
            .get(CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        Render { body_unread, grpc }
    }
}

// === impl ProxyError ===

impl ProxyError {
    /// The status code the client gets (over HTTP; a gRPC call gets `200` and
    /// [`ProxyError::grpc_status`]).
    pub fn status(&self) -> StatusCode {
        use upstream::Error as U;
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::ForwardAuthDenied(answer) => answer.status(),
            ProxyError::ForwardAuthFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::TunnelLimit => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Limit(r) => match r {
                Refused::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                Refused::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
                Refused::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
                Refused::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Refused::ClientBusy | Refused::Connections => StatusCode::SERVICE_UNAVAILABLE,
            },
            ProxyError::Upstream(e) => match e {
                U::ClientBody => StatusCode::BAD_REQUEST,
                U::ClientBodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                U::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
                U::NoBackendAvailable { .. } | U::BackendBusy { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                U::Connect { .. }
                | U::NoResponse { .. }
                | U::UpgradeUnsupported { .. }
                | U::NotSwitched { .. } => StatusCode::BAD_GATEWAY,
                U::TryTimeout { .. } | U::RequestTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    /// The `grpc-status` a gRPC client gets: gRPC's mapping of the HTTP status, but
    /// DEADLINE_EXCEEDED for timeouts and RESOURCE_EXHAUSTED for the rate limit.
    pub fn grpc_status(&self) -> u32 {
        use upstream::Error as U;
        match self {
            ProxyError::Upstream(U::TryTimeout { .. } | U::RequestTimeout { .. }) => 4,
            ProxyError::Upstream(U::ClientBodyTimeout) => 4,
            // RESOURCE_EXHAUSTED: the client should slow down, or send less.
            ProxyError::RateLimited { .. }
            | ProxyError::Upstream(U::ClientBodyTooLarge { .. })
            | ProxyError::Limit(
                Refused::BodyTooLarge { .. }
                | Refused::UriTooLong { .. }
                | Refused::ClientBusy
                | Refused::Connections,
            ) => 8,
            ProxyError::Unauthenticated { .. } => 16,
            ProxyError::Forbidden(_) => 7,
            // A login page (3xx) or 401: UNAUTHENTICATED; 403: PERMISSION_DENIED.
            ProxyError::ForwardAuthDenied(answer) => match answer.status().as_u16() {
                300..=399 | 401 => 16,
                403 => 7,
                429 => 8,
                500..=599 => 14,
                _ => 2,
            },
            ProxyError::ForwardAuthFailed(_) => 14,
            // UNIMPLEMENTED: the route does not take this; INTERNAL: gRPC's mapping of 415.
            ProxyError::Limit(Refused::Method { .. }) => 12,
            ProxyError::Limit(Refused::ContentType) => 13,
            _ => match self.status() {
                StatusCode::BAD_REQUEST => 13,
                StatusCode::NOT_FOUND => 12,
                StatusCode::METHOD_NOT_ALLOWED => 12,
                StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => 14,
                _ => 2,
            },
        }
    }

    /// The text of the error response.
    fn text(&self) -> std::borrow::Cow<'static, str> {
        use upstream::Error as U;
        let text = match self {
            ProxyError::BadRequest(reason) => return format!("Bad Request: {reason}\n").into(),
            ProxyError::MethodNotAllowed(_) => {
                "CONNECT is not supported: switchyard is a reverse proxy, not a forward proxy\n"
            }
            ProxyError::NoRoute => "Not Found: no route for this request\n",
            ProxyError::Misdirected => {
                "Misdirected Request: this connection's certificate does not cover the requested host\n"
            }
            ProxyError::RateLimited { .. } => "Too Many Requests\n",
            ProxyError::Unauthenticated {
                reason: AuthFailure::Jwt(_),
                ..
            } => "Unauthorized: a valid bearer token is required\n",
            ProxyError::Unauthenticated { .. } => "Unauthorized: a valid API key is required\n",
            // Which rule refused is for the log, not for the client.
            ProxyError::Forbidden(_) => "Forbidden\n",
            ProxyError::ForwardAuthDenied(answer) => {
                let status = answer.status().as_u16();
                return format!("Refused by the authentication service ({status})\n").into();
            }
            ProxyError::ForwardAuthFailed(_) => {
                "Service Unavailable: the authentication service did not answer\n"
            }
            ProxyError::TunnelLimit => "Service Unavailable: too many open WebSocket tunnels\n",
            ProxyError::Limit(r) => match r {
                Refused::BodyTooLarge { limit } => {
                    return format!("Payload Too Large: the limit is {limit} bytes\n").into()
                }
                Refused::UriTooLong { limit } => {
                    return format!("URI Too Long: the limit is {limit} bytes\n").into()
                }
                Refused::Method { .. } => "Method Not Allowed on this route\n",
                Refused::ContentType => "Unsupported Media Type on this route\n",
                Refused::ClientBusy => {
                    "Service Unavailable: too many requests in progress from this client\n"
                }
                Refused::Connections => "Service Unavailable: too many connections\n",
            },
            ProxyError::Upstream(e) => match e {
                U::ClientBodyTooLarge { limit } => {
                    return format!("Payload Too Large: the limit is {limit} bytes\n").into()
                }
                U::ClientBodyTimeout => "Request body timed out\n",
                U::ClientBody => "Request body could not be read\n",
                U::NoBackendAvailable { .. } => {
                    "Service Unavailable: no backend available (all unhealthy, ejected or circuit open)\n"
                }
                U::BackendBusy { .. } => "Service Unavailable: backend busy\n",
                U::RequestTimeout { .. } => "Gateway Timeout: request did not complete in time\n",
                U::Connect { .. } | U::NoResponse { .. } => BAD_GATEWAY_BODY,
                U::UpgradeUnsupported { .. } => {
                    "Bad Gateway: WebSocket upgrades cannot be sent to this route's HTTP/2 backends\n"
                }
                U::NotSwitched { .. } => {
                    "Bad Gateway: the backend did not switch to the WebSocket protocol\n"
                }
                U::TryTimeout { .. } => "Gateway Timeout: backend did not respond in time\n",
            },
        };
        text.into()
    }

    /// The error response, rendered as `how` says.
    pub fn into_response(self, how: Render) -> Response<ResponseBody> {
        // A bad request line or head, or a body that broke off, leaves the connection in an
        // unknown state: close it too.
        let broken = matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::Limit(Refused::Connections)
                | ProxyError::Upstream(
                    upstream::Error::ClientBody
                        | upstream::Error::ClientBodyTimeout
                        | upstream::Error::ClientBodyTooLarge { .. }
                )
        );
        let mut resp = match self {
            // The auth service's answer, as it is (a gRPC call gets its status instead).
            ProxyError::ForwardAuthDenied(answer) if !how.grpc => (*answer).map(ResponseBody::full),
            other if how.grpc => other.grpc_response(),
            other => other.http_response(),
        };
        close_if_unread(resp.headers_mut(), how.body_unread || broken);
        resp
    }

    fn http_response(&self) -> Response<ResponseBody> {
        let body = match self.text() {
            std::borrow::Cow::Borrowed(text) => bytes::Bytes::from_static(text.as_bytes()),
            std::borrow::Cow::Owned(text) => bytes::Bytes::from(text),
        };
        let mut resp = local_response(self.status(), body, "text/plain; charset=utf-8");
        let headers = resp.headers_mut();
        match self {
            ProxyError::MethodNotAllowed(_) => {
                let allow = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE";
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            ProxyError::Limit(Refused::Method { allow }) => {
                headers.insert(ALLOW, allow.clone());
            }
            ProxyError::RateLimited { retry_after } => {
                // Retry-After takes whole seconds; round up so the client does not come back
                // too early, and never say 0.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ProxyError::Unauthenticated { challenge, .. } => {
                headers.insert(WWW_AUTHENTICATE, challenge.clone());
            }
            _ => {}
        }
        resp
    }

    /// A trailers-only gRPC answer: `200`, `grpc-status`, and the text as `grpc-message`.
    fn grpc_response(&self) -> Response<ResponseBody> {
        let mut resp = local_response(StatusCode::OK, bytes::Bytes::new(), "application/grpc");
        self.insert_grpc_status(resp.headers_mut());
        resp
    }

    /// Puts the error in gRPC's terms into `headers` (a trailers-only head, or trailers):
    /// `grpc-status`, and the text as `grpc-message`.
    pub fn insert_grpc_status(&self, headers: &mut HeaderMap) {
        headers.insert(
            upstream::classify::GRPC_STATUS,
            HeaderValue::from(self.grpc_status()),
        );
        let message = percent_encode(self.text().trim_end());
        if let Ok(value) = HeaderValue::from_str(&message) {
            headers.insert(GRPC_MESSAGE, value);
        }
    }

    /// True when the client, not the upstream, caused the failure.
    pub fn is_client_fault(&self) -> bool {
        use upstream::Error as U;
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::NoRoute
            | ProxyError::Misdirected
            | ProxyError::Unauthenticated { .. }
            | ProxyError::Forbidden(_)
            | ProxyError::ForwardAuthDenied(_) => true,
            ProxyError::ForwardAuthFailed(_) => false,
            ProxyError::RateLimited { .. } | ProxyError::TunnelLimit => false,
            ProxyError::Limit(r) => !matches!(r, Refused::ClientBusy | Refused::Connections),
            ProxyError::Upstream(e) => match e {
                U::ClientBodyTimeout | U::ClientBody | U::ClientBodyTooLarge { .. } => true,
                U::NoBackendAvailable { .. }
                | U::BackendBusy { .. }
                | U::Connect { .. }
                | U::NoResponse { .. }
                | U::TryTimeout { .. }
                | U::RequestTimeout { .. }
                | U::UpgradeUnsupported { .. }
                | U::NotSwitched { .. } => false,
            },
        }
    }

    /// The backend the error is about, if it is about one.
    pub fn backend(&self) -> Option<&std::sync::Arc<str>> {
        match self {
            ProxyError::Upstream(e) => e.backend(),
            ProxyError::ForwardAuthFailed(failed) => failed.backend.as_ref(),
            _ => None,
        }
    }
}

/// gRPC's `grpc-message` encoding: printable ASCII but `%` as is, the rest percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
