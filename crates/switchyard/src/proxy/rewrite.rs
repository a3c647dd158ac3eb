//! Phase 5 and the way back: how the request head is rewritten for the backend (the route's
//! path rewrite and header edits, hop-by-hop headers out, `X-Forwarded-*` in, the identity
//! headers of a client certificate: any the client sent removed, then ours set) and how the
//! backend's response head is rewritten for the client (RFC 9110 §7.6.1); and the request's
//! consistent-hashing key.
//!
//! One exception to the hop-by-hop rule: a WebSocket upgrade (RFC 6455 §4.1: an HTTP/1.1
//! `GET` without a body, with `Upgrade: websocket` and `Connection: upgrade`) keeps those two
//! headers, as `Upgrade: websocket` and `Connection: upgrade`, so the backend can agree to
//! switch; the request then goes to a tunnel (`proxy::tunnel`). Any other `Upgrade` (h2c,
//! TLS, or `websocket` without `Connection: upgrade`) is stripped as before. A WebSocket on
//! an HTTP/2 stream (RFC 8441, let through by `proxy::check` as a `GET`) has neither header:
//! it is given the HTTP/1.1 handshake's (`rewrite/websocket.rs`) and goes to a tunnel too.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Version};

use super::check::is_h2_websocket;
use super::context::ConnInfo;
use crate::config::HashKey;
use crate::routing::Route;
use crate::upstream::pick::hash_bytes;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those the
/// `Connection` header itself names. `Transfer-Encoding` and `Content-Length` go too: hyper
/// frames the body anew on each side. `TE` goes, but for `TE: trailers`, which gRPC needs end
/// to end on HTTP/2 (an HTTP/1.1 connection drops it, see `upstream::connect`).
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

/// What the request kept of its hop-by-hop headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hops {
    /// It keeps a `TE: trailers` (for HTTP/2 backends; an HTTP/1.1 one gets no `TE`).
    pub te_trailers: bool,
    /// It is a WebSocket upgrade and keeps `Upgrade: websocket` and `Connection: upgrade`.
    pub websocket: bool,
}

/// Rewrites the request head for the backend: hop-by-hop headers out, `X-Forwarded-*` in
/// (the scheme from the client connection's transport), the identity headers (those of every
/// HTTPS listener removed, then this connection's client certificate's set), the route's
/// path rewrite and header edits. The `Host` header stays the client's unless the route sets
/// it. `body_unread`: the request has a body (so it cannot be a WebSocket upgrade). An HTTP/2
/// WebSocket gets the HTTP/1.1 upgrade headers. Returns what was kept of the hop-by-hop
/// headers.
pub fn rewrite_request(
    parts: &mut request::Parts,
    conn: &ConnInfo,
    route: &Route,
    body_unread: bool,
) -> Hops {
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
    let may_upgrade =
        parts.method == Method::GET && parts.version == Version::HTTP_11 && !body_unread;
    // `Content-Length` goes too (hyper frames the body anew), and `Expect`: hyper already
    // answered `100 Continue` when it started reading the body for us.
    let request_only = [header::CONTENT_LENGTH, header::EXPECT];
    let mut hops = strip_hop_by_hop(&mut parts.headers, &request_only, true, may_upgrade);
    if parts.version == Version::HTTP_2 && !body_unread && is_h2_websocket(parts) {
        websocket::to_http1_upgrade(&mut parts.headers);
        hops.websocket = true;
    }
    let headers = &mut parts.headers;
    append_forwarded_for(headers, &conn.ip_header);
    headers.insert(X_FORWARDED_PROTO, conn.transport.scheme());
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(policy) = &conn.policy {
        for name in &policy.strip {
            headers.remove(name);
        }
    }
    if let Some(tls) = &conn.transport.tls {
        for (name, value) in &tls.identity_headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    route.config.request_headers.apply(headers);
    hops
}

/// Rewrites the backend's response head for the client.
pub fn rewrite_response(parts: &mut http::response::Parts) {
    strip_hop_by_hop(&mut parts.headers, &[], false, false);
    parts.version = Version::HTTP_11;
}

/// Rewrites a backend's `101 Switching Protocols` for the client: hop-by-hop headers out
/// but the protocol switched to (the backend's `Upgrade`) and `Connection: upgrade`.
pub fn rewrite_switching_response(parts: &mut http::response::Parts) {
    let protocol = parts
        .headers
        .get(header::UPGRADE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("websocket"));
    rewrite_response(parts);
    parts.headers.insert(header::UPGRADE, protocol);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Rewrites a backend's `101 Switching Protocols` for a client whose WebSocket is an HTTP/2
/// stream: hop-by-hop headers out, and the `200` that opens the stream's tunnel.
pub fn rewrite_h2_opened_response(parts: &mut http::response::Parts) {
    rewrite_response(parts);
    websocket::to_h2_opened(parts);
}

/// Removes the hop-by-hop headers, and those in `also`. `keep_te_trailers`: a `TE` that
/// lists `trailers` becomes `TE: trailers`. `may_upgrade` (an HTTP/1.1 `GET` without a body):
/// a WebSocket upgrade keeps `Upgrade: websocket` and `Connection: upgrade`. The result says
/// what was kept.
fn strip_hop_by_hop(
    headers: &mut HeaderMap,
    also: &[HeaderName],
    keep_te_trailers: bool,
    may_upgrade: bool,
) -> Hops {
    // One pass over the names says which of the listed headers are there (most requests
    // carry none, a response from nginx only `Connection`): only those are looked up and
    // removed, not a hash lookup per listed header (measured with an nginx backend, whose
    // responses carry `Connection: keep-alive`: both heads' stripping took 2.5 K instructions
    // per request when all eight were removed, 0.9 K now).
    let (mut hop, mut extra) = (Present(0), Present(0));
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            hop.set(i);
        } else if let Some(i) = also.iter().position(|h| h == name) {
            extra.set(i);
        }
    }
    for (i, name) in also.iter().enumerate() {
        if extra.has(i) {
            headers.remove(name);
        }
    }
    if hop.is_empty() {
        return Hops::default();
    }
    let websocket = may_upgrade
        && hop.has(UPGRADE)
        && hop.has(CONNECTION)
        && has_token(headers, header::UPGRADE, "websocket")
        && has_token(headers, header::CONNECTION, "upgrade");
    if hop.has(CONNECTION) {
        remove_connection_options(headers, &mut hop);
    }
    let te_trailers = keep_te_trailers
        && hop.has(TE)
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.split(';').next().unwrap_or_default().trim() == "trailers");
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if hop.has(i) {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if websocket {
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    Hops {
        te_trailers,
        websocket,
    }
}

/// Indices in [`HOP_BY_HOP`].
const CONNECTION: usize = 0;
const TE: usize = 3;
const UPGRADE: usize = 5;

/// Which entries of a list of header names a message has, one bit each.
#[derive(Clone, Copy)]
struct Present(u16);

impl Present {
    fn set(&mut self, i: usize) {
        self.0 |= 1 << i;
    }
    fn clear(&mut self, i: usize) {
        self.0 &= !(1 << i);
    }
    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Removes `Connection` and the headers it names (`hop`: the hop-by-hop headers present,
/// which are removed after this). `Host` stays: it is end-to-end and required on every
/// HTTP/1.1 request, and a client naming it must not leave the upstream request without one.
fn remove_connection_options(headers: &mut HeaderMap, hop: &mut Present) {
    let mut values = headers.get_all(header::CONNECTION).iter();
    let single = values.next().is_some() && values.next().is_none();
    if !single {
        // Several `Connection` headers (rare): their options copied out first.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            remove_option(headers, hop, &name);
        }
        return;
    }
    // One header (`keep-alive`, `close`, `upgrade`): taken out whole, no copy of its options.
    hop.clear(CONNECTION);
    let Some(value) = headers.remove(header::CONNECTION) else {
        return;
    };
    for token in value.as_bytes().split(|&b| b == b',') {
        let token = token.trim_ascii();
        // A listed hop-by-hop header goes below anyway (`keep-alive` is most of them), but
        // `TE`, which must go before its `trailers` is looked at.
        if let Some(i) = HOP_BY_HOP
            .iter()
            .position(|h| h.as_str().as_bytes().eq_ignore_ascii_case(token))
        {
            if i == TE {
                remove_option(headers, hop, &header::TE);
            }
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token) {
            remove_option(headers, hop, &name);
        }
    }
}

/// Removes the header a `Connection` option names, unless it is `Host`.
fn remove_option(headers: &mut HeaderMap, hop: &mut Present, name: &HeaderName) {
    if *name == header::HOST {
        return;
    }
    if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
        hop.clear(i);
    }
    headers.remove(name);
}

/// True when a `name` header lists `token` (comma-separated, any case).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    // One lookup for both cases (most requests come without the header).
    let mut prior = match headers.entry(X_FORWARDED_FOR) {
        header::Entry::Vacant(slot) => {
            slot.insert(client_ip.clone());
            return;
        }
        header::Entry::Occupied(prior) => prior,
    };
    let mut joined = Vec::with_capacity(64);
    for v in prior.iter() {
        joined.extend_from_slice(v.as_bytes().trim_ascii());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client_ip.as_bytes());
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        prior.insert(value);
    }
}

/// The hash of the request's consistent-hashing key, if the request has that key.
pub fn request_hash(key: &HashKey, parts: &request::Parts, client_ip: &HeaderValue) -> Option<u64> {
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

pub mod security;
mod websocket;

#[cfg(test)]
mod tests;
