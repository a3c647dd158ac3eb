//! Phase 1: what a request must look like to be proxied (RFC 9110 §7.6, RFC 9112, RFC 9113
//! §8.3.1): no CONNECT, a single valid `Host`, a target in origin form (an absolute-form
//! target is brought into origin form, its authority becoming the `Host`).
//!
//! One CONNECT is let through: HTTP/2's extended CONNECT with `:protocol = websocket` (RFC
//! 8441 §4), a WebSocket opened on a stream. It is the `GET` of a WebSocket handshake in
//! HTTP/2's terms (its `:path` and `:authority` are the target's), and goes on as that `GET`
//! from here (the access log, the routes' method conditions see `GET`);
//! [`is_h2_websocket`] tells it apart later, and `proxy::rewrite` makes it the HTTP/1.1
//! upgrade its backend expects. A plain CONNECT, or one for another protocol, is `405`.
//!
//! An HTTP/2 request arrives in that absolute form: hyper builds its URI from `:scheme`,
//! `:authority` and `:path`, so its `:authority` becomes the `Host` here, the header an
//! HTTP/1.1 backend needs (an HTTP/2 backend gets it back as `:authority`, see
//! `upstream::connect`). An HTTP/2 request without `:authority` must carry a `Host`, as an
//! HTTP/1.1 one must.
//!
//! On a TLS connection, the host must be one that the certificate the connection was made
//! with covers (RFC 9110 §15.5.20: else `421`, so that a connection made for one site, or
//! with one client certificate, cannot reach another site's routes).

use http::header::{self, HeaderValue};
use http::{request, Method, Version};

use super::context::ConnInfo;
use super::error::ProxyError;
use crate::routing::request_host;

/// Rejects what a reverse proxy must not pass on, and brings an absolute-form target
/// (`GET http://host/path`) into origin form: its authority becomes the `Host` (RFC 9112
/// §3.2.2), and the request goes to our backends like any other, never to that host.
pub fn check_request(parts: &mut request::Parts) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        if !is_h2_websocket(parts) {
            return Err(ProxyError::MethodNotAllowed(parts.method.clone()));
        }
        parts.method = Method::GET;
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
        // HTTP/1.1 ignores a `Host` beside an absolute target (RFC 9112 §3.2.2); in HTTP/2 one
        // that names another host than `:authority` makes the request malformed.
        let differs = parts.headers.get(header::HOST).is_some_and(|h| *h != host);
        if differs && parts.version == Version::HTTP_2 {
            return Err(ProxyError::BadRequest("Host differs from :authority"));
        }
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
            if valid_host(host.as_bytes()) {
                Ok(())
            } else {
                Err(ProxyError::BadRequest("invalid Host header"))
            }
        }
    }
}

/// A `Host` value is `host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a bracketed IPv6
/// address, or a name (or IPv4 address) of unreserved characters, sub-delimiters and
/// percent-escapes; the port digits. Checked in place: `http::uri::Authority` parses only a
/// copy of its input, an allocation per request, and takes a user-info part this rejects.
fn valid_host(value: &[u8]) -> bool {
    let port_ok = |port: &[u8]| port.iter().all(u8::is_ascii_digit);
    if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let v6 = std::str::from_utf8(&rest[..end])
            .is_ok_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        return v6
            && match &rest[end + 1..] {
                [] => true,
                [b':', port @ ..] => port_ok(port),
                _ => false,
            };
    }
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        Some(colon) => (&value[..colon], &value[colon + 1..]),
        None => (value, &b""[..]),
    };
    reg_name(host) && port_ok(port)
}

/// RFC 3986's `reg-name` (which an IPv4 address also is), not empty.
fn reg_name(host: &[u8]) -> bool {
    let mut bytes = host.iter();
    while let Some(&b) = bytes.next() {
        let ok = match b {
            b'%' => {
                let hex = |b: Option<&u8>| b.is_some_and(u8::is_ascii_hexdigit);
                hex(bytes.next()) && hex(bytes.next())
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => true,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    !host.is_empty()
}

/// True for a WebSocket on an HTTP/2 stream: an extended CONNECT whose `:protocol` is
/// `websocket` (hyper gives `:protocol` only to a CONNECT, and `check_request` turns the
/// method into `GET`).
pub fn is_h2_websocket(parts: &request::Parts) -> bool {
    parts.version == Version::HTTP_2
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// On a TLS connection, the request's host (its `Host`, without port) must be one of the
/// names of the certificate the connection was made with; a request without a host (HTTP/1.0)
/// has nothing to misdirect.
pub fn check_authority(parts: &request::Parts, conn: &ConnInfo) -> Result<(), ProxyError> {
    let Some(tls) = &conn.transport.tls else {
        return Ok(());
    };
    let host = request_host(parts);
    if host.is_empty() || tls.names.covers(&host) {
        Ok(())
    } else {
        Err(ProxyError::Misdirected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(req: Request<()>) -> request::Parts {
        req.into_parts().0
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
        let bads = [
            &b"a b"[..],
            b"user@a",
            b"h\xc3\xa9te",
            b"a:8\xff",
            b"[::1",
            b"[::1]x",
            b"[zz]",
            b":80",
            b"a:b",
            b"a%4",
            b"a/b",
            b"a:1:2",
        ];
        for bad in bads {
            let value = http::HeaderValue::from_bytes(bad).unwrap();
            let req = Request::get("/").header("host", value).body(()).unwrap();
            assert!(ok(req).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [
            "[::1]:8080",
            "[::1]",
            "127.0.0.1",
            "a_b.example:443",
            "a%41:",
        ] {
            let req = Request::get("/").header("host", good).body(()).unwrap();
            assert!(ok(req).is_ok(), "{good}");
        }
        let connect = Request::connect("a:443")
            .header("host", "a")
            .body(())
            .unwrap();
        assert!(matches!(ok(connect), Err(ProxyError::MethodNotAllowed(_))));
    }

    #[test]
    fn only_an_http2_websocket_connect_passes_and_becomes_get() {
        let connect = |protocol: Option<&'static str>, version| {
            let mut req = Request::connect("https://chat.example/room?x=1").version(version);
            if let Some(protocol) = protocol {
                req = req.extension(hyper::ext::Protocol::from_static(protocol));
            }
            let mut p = parts(req.body(()).unwrap());
            check_request(&mut p).map(|()| p)
        };
        let p = connect(Some("websocket"), Version::HTTP_2).unwrap();
        assert_eq!(p.method, Method::GET);
        assert_eq!(p.headers["host"], "chat.example");
        assert_eq!(p.uri.path(), "/room");
        assert!(is_h2_websocket(&p));
        let refused = |r: Result<request::Parts, ProxyError>| matches!(r, Err(ProxyError::MethodNotAllowed(m)) if m == Method::CONNECT);
        assert!(refused(connect(None, Version::HTTP_2)), "plain CONNECT");
        assert!(refused(connect(Some("webtransport"), Version::HTTP_2)));
        assert!(refused(connect(Some("websocket"), Version::HTTP_11)));
        // A GET is not one, whatever its extensions.
        let get = parts(Request::get("/").body(()).unwrap());
        assert!(!is_h2_websocket(&get));
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

    #[test]
    fn http2_authority_becomes_host() {
        let h2 = |uri: &str, host: Option<&str>| {
            let mut req = Request::get(uri).version(Version::HTTP_2);
            if let Some(host) = host {
                req = req.header("host", host);
            }
            let mut p = parts(req.body(()).unwrap());
            check_request(&mut p).map(|()| p.headers.get("host").cloned())
        };
        let host = h2("http://api.example:8080/x", None).unwrap();
        assert_eq!(host.unwrap(), "api.example:8080");
        assert!(h2("http://api.example/x", Some("api.example")).is_ok());
        assert!(h2("http://api.example/x", Some("other.example")).is_err());
        // No :authority: the Host header carries it, and one is required.
        assert_eq!(
            h2("/x", Some("api.example")).unwrap().unwrap(),
            "api.example"
        );
        assert!(h2("/x", None).is_err());
    }
}
