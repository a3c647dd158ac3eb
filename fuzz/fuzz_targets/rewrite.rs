//! The header rewriting (`proxy/rewrite.rs`): a request head rewritten for the backend by a
//! route with a fuzzed path rewrite and header edits, and a response head rewritten for the
//! client, with the recommended security headers. Afterwards no hop-by-hop header is left
//! (but `TE: trailers` and a WebSocket's `Upgrade`/`Connection`), and `X-Forwarded-For`
//! ends with the client.
#![no_main]

use std::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use http::header::{self, HeaderName};
use libfuzzer_sys::fuzz_target;
use switchyard::config::{HeaderEdits, ListenerConfig, PathRewrite, RouteConfig, SecurityHeaders};
use switchyard::proxy::context::{ConnInfo, Transport};
use switchyard::proxy::rewrite::{self, security};
use switchyard::routing::Route;
use switchyard_fuzz::{header_name, header_value, request_head, response_head, string};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Some(mut req) = request_head(&mut u) else {
        return;
    };
    let mut config = RouteConfig::catch_all("fuzz");
    config.rewrite = match u8::arbitrary(&mut u).unwrap_or(0) % 3 {
        0 => PathRewrite::None,
        1 => PathRewrite::Strip(string(&mut u)),
        _ => PathRewrite::Replace {
            prefix: string(&mut u),
            with: string(&mut u),
        },
    };
    config.request_headers = edits(&mut u);
    let route = Route {
        config,
        pool: None,
        limiter: None,
        client_limiter: None,
    };
    let v6 = bool::arbitrary(&mut u).unwrap_or(false);
    let peer: SocketAddr = if v6 {
        "[2001:db8::1]:4000"
    } else {
        "192.0.2.1:4000"
    }
    .parse()
    .expect("a literal address");
    let conn = ConnInfo::new(
        peer,
        &ListenerConfig::default(),
        false,
        Transport::PLAIN_HTTP1,
    );
    let body_unread = bool::arbitrary(&mut u).unwrap_or(false);
    let hops = rewrite::rewrite_request(&mut req, &conn, &route, body_unread);
    let edited = |name: &HeaderName| {
        let e = &route.config.request_headers;
        e.set.iter().chain(&e.add).any(|(n, _)| n == name)
    };
    for name in [
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::TRAILER,
        header::PROXY_AUTHORIZATION,
    ] {
        assert!(
            edited(&name) || !req.headers.contains_key(&name),
            "{name} kept"
        );
    }
    if !hops.websocket {
        for name in [header::CONNECTION, header::UPGRADE] {
            assert!(
                edited(&name) || !req.headers.contains_key(&name),
                "{name} kept"
            );
        }
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    if !edited(&xff) && !route.config.request_headers.remove.contains(&xff) {
        let last = req
            .headers
            .get_all(&xff)
            .iter()
            .last()
            .expect("X-Forwarded-For set");
        assert!(last.as_bytes().ends_with(conn.ip_header.as_bytes()));
    }

    let Some(mut resp) = response_head(&mut u) else {
        return;
    };
    rewrite::rewrite_response(&mut resp);
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        assert!(
            !resp.headers.contains_key(&name),
            "{name} kept in the response"
        );
    }
    let tls = bool::arbitrary(&mut u).unwrap_or(false);
    security::apply(
        Some(&SecurityHeaders::recommended()),
        &mut resp.headers,
        tls,
    );
    assert!(!resp.headers.contains_key(header::SERVER));
});

fn edits(u: &mut Unstructured<'_>) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    for _ in 0..u8::arbitrary(u).unwrap_or(0) % 4 {
        let Some(name) = header_name(u) else { break };
        match u8::arbitrary(u).unwrap_or(0) % 3 {
            0 => edits.remove.push(name),
            kind => {
                let Some(value) = header_value(u) else { break };
                if kind == 1 {
                    edits.set.push((name, value));
                } else {
                    edits.add.push((name, value));
                }
            }
        }
    }
    edits
}
