//! The intermediary's rules (RFC 9110 §7.6, RFC 9112): what a request must look like to be
//! accepted, how it is rewritten for the backend, how the backend's response is rewritten
//! for the client, and sending it with the upstream timeout.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use super::body::{RequestBody, ResponseBody};
use super::error::local_response;
use super::error::ProxyError;
use crate::routing::Route;
use crate::upstream::connect::{ConnectError, Connector, Sender};
use crate::upstream::Backend;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those the
/// `Connection` header itself names. `Transfer-Encoding` and `Content-Length` go too: hyper
/// frames the body anew on each side.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Rejects what a reverse proxy must not pass on, and brings an absolute-form target
/// (`GET http://host/path`) into origin form: its authority becomes the `Host` (RFC 9112
/// §3.2.2), and the request goes to our backends like any other, never to that host.
pub fn check_request(parts: &mut request::Parts) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed(parts.method.clone()));
    }
    if parts.uri.scheme().is_some() {
        let scheme = parts.uri.scheme_str().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ProxyError::BadRequest(
                "unsupported scheme in request target",
            ));
        }
        let Some(authority) = parts.uri.authority() else {
            return Err(ProxyError::BadRequest(
                "absolute request target without a host",
            ));
        };
        if authority.as_str().contains('@') {
            return Err(ProxyError::BadRequest("user info in request target"));
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::BadRequest("invalid host in request target"))?;
        parts.headers.insert(header::HOST, host);
    } else if parts.uri.path() == "*" {
        // Asterisk form (RFC 9112 §3.2.4) is for OPTIONS only.
        if parts.method != Method::OPTIONS {
            return Err(ProxyError::BadRequest(
                "'*' is a request target for OPTIONS only",
            ));
        }
    } else if !parts.uri.path().starts_with('/') {
        // Authority form without CONNECT.
        return Err(ProxyError::BadRequest("request target must be a path"));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if parts.version >= Version::HTTP_11 => {
            Err(ProxyError::BadRequest("missing Host header"))
        }
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("more than one Host header")),
        (Some(host), None) => {
            let valid = std::str::from_utf8(host.as_bytes())
                .ok()
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .is_some_and(|a| !a.as_str().contains('@'));
            if valid {
                Ok(())
            } else {
                Err(ProxyError::BadRequest("invalid Host header"))
            }
        }
    }
}

/// Rewrites the request head for the backend: hop-by-hop headers out, `X-Forwarded-*` in,
/// the route's path rewrite and header edits, HTTP/1.1. The `Host` header stays the client's
/// unless the route sets it.
pub fn rewrite_request(parts: &mut request::Parts, client_ip: &HeaderValue, route: &Route) {
    if let Some(path) = route.config.rewrite.apply(parts.uri.path()) {
        let target = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        // The rewritten path is built from valid path pieces; keep the original if not.
        if let Ok(uri) = target.parse() {
            parts.uri = uri;
        }
    }
    strip_hop_by_hop(&mut parts.headers);
    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    // hyper already answered `100 Continue` when it started reading the body for us.
    headers.remove(header::EXPECT);
    append_forwarded_for(headers, client_ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
    route.config.request_headers.apply(headers);
    parts.version = Version::HTTP_11;
}

/// A route's redirect: `to` with `{host}` (without port), `{hostport}`, `{uri}`, `{path}`
/// and `{query}` filled in.
pub fn redirect(
    parts: &request::Parts,
    to: &str,
    status: StatusCode,
    body_unread: bool,
) -> Response<ResponseBody> {
    let hostport = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = crate::routing::request_host(parts);
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let uri = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
    let location = to
        .replace("{hostport}", hostport)
        .replace("{host}", &host)
        .replace("{uri}", uri)
        .replace("{path}", path)
        .replace("{query}", query);
    let mut resp = local_response(status, Bytes::new(), "text/plain; charset=utf-8");
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    close_if_unread(&mut resp, body_unread);
    resp
}

/// A route's fixed response.
pub fn fixed_response(
    status: StatusCode,
    body: &Bytes,
    content_type: &HeaderValue,
    body_unread: bool,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body.clone()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.clone());
    close_if_unread(&mut resp, body_unread);
    resp
}

/// A response made without reading the request body closes the connection, so the unread
/// body cannot be taken for the next request.
fn close_if_unread(resp: &mut Response<ResponseBody>, body_unread: bool) {
    if body_unread {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Rewrites the backend's response head for the client.
pub fn rewrite_response(parts: &mut http::response::Parts) {
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these: one pass over the names finds out, instead of a
    // hash lookup per listed header.
    if !headers.keys().any(is_connection_specific) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            // `Host` is end-to-end and required on every HTTP/1.1 request: a client naming it
            // in `Connection` must not leave the upstream request without one.
            .filter(|name| *name != header::HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A header that describes the connection rather than the message.
fn is_connection_specific(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let mut prior = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if prior.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        return;
    }
    let mut joined = Vec::with_capacity(64);
    for v in prior {
        joined.extend_from_slice(v.as_bytes().trim_ascii());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client_ip.as_bytes());
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// Why a send produced no response.
// The unsent request is handed back by value: it is moved, not copied, and boxing it would
// cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened; the request comes back unsent.
    Connect(ConnectError, Request<RequestBody>),
    /// The request was (at least partly) sent and the exchange failed.
    Request(hyper::Error),
}

/// Sends `req` on `sender`. A pooled connection (`reused`) that turns out closed is replaced
/// by a new connection once, transparently: always when hyper hands the request back unsent,
/// and, when `replay` can build the request again (idempotent, body kept), also when the
/// connection closed before any response byte arrived (the backend closed it just as the
/// request was written, e.g. its keep-alive timeout fired), as Go's transport does.
pub async fn send(
    connector: &Connector,
    backend: &Backend,
    mut sender: Sender,
    mut reused: bool,
    mut req: Request<RequestBody>,
    replay: Option<&(dyn Fn() -> Request<RequestBody> + Sync)>,
) -> Result<(Response<Incoming>, Sender), SendError> {
    loop {
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, sender)),
            Err(mut err) => {
                let unsent = match (err.take_message(), replay) {
                    (Some(unsent), _) => unsent,
                    (None, Some(rebuild)) if reused && closed_before_response(err.error()) => {
                        rebuild()
                    }
                    (None, _) => return Err(SendError::Request(err.into_error())),
                };
                if !reused {
                    let io = std::io::Error::other(err.into_error());
                    return Err(SendError::Connect(ConnectError::Io(io), unsent));
                }
                tracing::debug!(backend = %backend.label, "pooled connection was closed; reconnecting");
                req = unsent;
                reused = false;
                sender = match connector.connect(backend).await {
                    Ok(sender) => sender,
                    Err(e) => return Err(SendError::Connect(e, req)),
                };
            }
        }
    }
}

/// Methods whose requests may be repeated (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a request head (method, target, version, headers; no extensions).
pub fn copy_parts(parts: &request::Parts) -> request::Parts {
    let mut copy = Request::new(()).into_parts().0;
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

/// Gets the client's body ready for sending. When `may_retry` (an idempotent request) and
/// the body is empty or small enough to keep (`retry.replay_max_bytes`, by its
/// Content-Length), it is read whole now, so that the request can be sent again to another
/// backend; the copy to replay is returned with it. Otherwise the body is streamed and the
/// request is never sent twice.
pub async fn prepare_body(
    body: Incoming,
    may_retry: bool,
    retry: &crate::config::RetryConfig,
    read_timeout: std::time::Duration,
) -> Result<(RequestBody, Option<Bytes>), ProxyError> {
    if body.is_end_stream() {
        return Ok((RequestBody::empty(), may_retry.then(Bytes::new)));
    }
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= retry.replay_max_bytes as u64);
    if !(may_retry && small) {
        return Ok((RequestBody::new(body, read_timeout), None));
    }
    let collect = http_body_util::BodyExt::collect(RequestBody::new(body, read_timeout));
    match collect.await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            Ok((RequestBody::buffered(bytes.clone()), Some(bytes)))
        }
        Err(super::body::BodyError::ClientTimeout(_)) => Err(ProxyError::ClientBodyTimeout),
        Err(_) => Err(ProxyError::ClientBody),
    }
}

/// The hash of the request's consistent-hashing key, if the request has that key.
pub fn request_hash(
    key: &crate::config::HashKey,
    parts: &request::Parts,
    client_ip: &HeaderValue,
) -> Option<u64> {
    use crate::config::HashKey;
    use crate::upstream::pick::hash_bytes;
    match key {
        HashKey::ClientIp => Some(hash_bytes(client_ip.as_bytes())),
        HashKey::Path => Some(hash_bytes(parts.uri.path().as_bytes())),
        HashKey::Header(name) => parts.headers.get(name).map(|v| hash_bytes(v.as_bytes())),
        HashKey::Cookie(name) => parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| hash_bytes(v.as_bytes())),
    }
}

/// The connection ended before a response began: closed, or reset by the peer.
fn closed_before_response(err: &hyper::Error) -> bool {
    if err.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: Request<()>) -> request::Parts {
        req.into_parts().0
    }

    fn catch_all() -> Route {
        Route {
            config: crate::config::RouteConfig::catch_all("default"),
            pool: None,
            limiter: None,
        }
    }

    #[test]
    fn hop_by_hop_and_named_headers_are_removed() {
        let mut p = parts(
            Request::get("/")
                .header("host", "a")
                .header("connection", "keep-alive, x-secret")
                .header("x-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("te", "trailers")
                .header("transfer-encoding", "chunked")
                .header("upgrade", "websocket")
                .header("proxy-connection", "keep-alive")
                .header("content-length", "3")
                .header("x-kept", "yes")
                .body(())
                .unwrap(),
        );
        rewrite_request(&mut p, &HeaderValue::from_static("10.0.0.1"), &catch_all());
        let names: Vec<&str> = p.headers.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "transfer-encoding",
            "upgrade",
            "proxy-connection",
            "content-length",
        ] {
            assert!(!names.contains(&gone), "{gone} forwarded: {names:?}");
        }
        assert_eq!(p.headers["x-kept"], "yes");
        assert_eq!(p.headers["host"], "a");
        assert_eq!(p.headers["x-forwarded-for"], "10.0.0.1");
        assert_eq!(p.headers["x-forwarded-proto"], "http");
        assert_eq!(p.headers["x-forwarded-host"], "a");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut p = parts(
            Request::get("/")
                .header("host", "a")
                .header("x-forwarded-for", "1.1.1.1")
                .header("x-forwarded-for", "2.2.2.2")
                .body(())
                .unwrap(),
        );
        rewrite_request(&mut p, &HeaderValue::from_static("::1"), &catch_all());
        assert_eq!(p.headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, ::1");
    }

    #[test]
    fn host_rules() {
        let ok = |r: Request<()>| check_request(&mut parts(r));
        assert!(ok(Request::get("/").header("host", "a:80").body(()).unwrap()).is_ok());
        assert!(ok(Request::get("/").body(()).unwrap()).is_err());
        let http10 = Request::get("/")
            .version(Version::HTTP_10)
            .body(())
            .unwrap();
        assert!(ok(http10).is_ok());
        let two = Request::get("/")
            .header("host", "a")
            .header("host", "b")
            .body(())
            .unwrap();
        assert!(ok(two).is_err());
        let bad = Request::get("/").header("host", "a b").body(()).unwrap();
        assert!(ok(bad).is_err());
        let connect = Request::connect("a:443")
            .header("host", "a")
            .body(())
            .unwrap();
        assert!(matches!(ok(connect), Err(ProxyError::MethodNotAllowed(_))));
    }

    #[test]
    fn absolute_form_becomes_host() {
        let mut p = parts(
            Request::get("http://other.example/x")
                .header("host", "mine")
                .body(())
                .unwrap(),
        );
        check_request(&mut p).unwrap();
        assert_eq!(p.headers["host"], "other.example");
    }
}
