use super::*;
use crate::proxy::context::Transport;
use http::Request;

fn parts(req: Request<()>) -> request::Parts {
    req.into_parts().0
}

fn conn(ip: &str) -> ConnInfo {
    let addr = std::net::SocketAddr::new(ip.parse().expect("ip"), 4000);
    ConnInfo::new(
        addr,
        &crate::config::ListenerConfig::default(),
        false,
        Transport::PLAIN_HTTP1,
    )
}

fn catch_all() -> Route {
    Route {
        config: crate::config::RouteConfig::catch_all("default"),
        pool: None,
        limiter: None,
        client_limiter: None,
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
            .header("te", "gzip")
            .header("transfer-encoding", "chunked")
            .header("upgrade", "websocket")
            .header("proxy-connection", "keep-alive")
            .header("content-length", "3")
            .header("x-kept", "yes")
            .body(())
            .unwrap(),
    );
    rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), false);
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
    rewrite_request(&mut p, &conn("::1"), &catch_all(), false);
    assert_eq!(p.headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, ::1");
}

#[test]
fn te_trailers_is_kept_other_te_values_are_not() {
    let mut p = parts(
        Request::get("/")
            .header("host", "a")
            .header("te", "gzip, trailers;q=1")
            .body(())
            .unwrap(),
    );
    assert!(rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), false).te_trailers);
    assert_eq!(p.headers["te"], "trailers");
}

#[test]
fn connection_options_go_whether_listed_in_one_header_or_several() {
    for values in [&["x-a, host , te"][..], &["x-a", "host", "te"]] {
        let mut builder = Request::get("/")
            .header("host", "a")
            .header("x-a", "1")
            .header("te", "trailers")
            .header("x-kept", "yes");
        for v in values {
            builder = builder.header("connection", *v);
        }
        let mut p = parts(builder.body(()).unwrap());
        let hops = rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), false);
        // `TE` named by `Connection` is hop-by-hop even when it says `trailers`.
        assert!(!hops.te_trailers, "{values:?}");
        for gone in ["connection", "x-a", "te"] {
            assert!(
                !p.headers.contains_key(gone),
                "{gone} forwarded for {values:?}"
            );
        }
        // `Host` is end-to-end whatever `Connection` says.
        assert_eq!(p.headers["host"], "a", "{values:?}");
        assert_eq!(p.headers["x-kept"], "yes", "{values:?}");
    }
}

#[test]
fn a_keep_alive_response_keeps_its_end_to_end_headers() {
    let (mut parts, ()) = http::Response::builder()
        .header("server", "nginx")
        .header("content-length", "35")
        .header("connection", "Keep-Alive")
        .header("keep-alive", "timeout=5")
        .header("transfer-encoding", "chunked")
        .body(())
        .unwrap()
        .into_parts();
    rewrite_response(&mut parts);
    let names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["server", "content-length"]);
}

fn upgrade_request(method: http::Method, upgrade: &str, connection: &str) -> request::Parts {
    parts(
        Request::builder()
            .method(method)
            .uri("/chat")
            .header("host", "a")
            .header("upgrade", upgrade)
            .header("connection", connection)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap(),
    )
}

#[test]
fn a_websocket_upgrade_keeps_upgrade_and_connection() {
    let mut p = upgrade_request(http::Method::GET, "WebSocket", "keep-alive, Upgrade");
    let hops = rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), false);
    assert!(hops.websocket);
    assert_eq!(p.headers["upgrade"], "websocket");
    assert_eq!(p.headers["connection"], "upgrade");
    assert_eq!(p.headers["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(p.headers["sec-websocket-version"], "13");
}

#[test]
fn other_upgrades_are_stripped() {
    let cases = [
        // Not WebSocket.
        (http::Method::GET, "h2c", "upgrade", false),
        // No `Connection: upgrade`.
        (http::Method::GET, "websocket", "keep-alive", false),
        // Not a GET.
        (http::Method::POST, "websocket", "upgrade", false),
        // With a body.
        (http::Method::GET, "websocket", "upgrade", true),
    ];
    for (method, upgrade, connection, body_unread) in cases {
        let mut p = upgrade_request(method.clone(), upgrade, connection);
        let hops = rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), body_unread);
        let case = format!("{method} {upgrade} {connection} body={body_unread}");
        assert!(!hops.websocket, "{case}");
        assert!(!p.headers.contains_key("upgrade"), "{case}");
        assert!(!p.headers.contains_key("connection"), "{case}");
    }
    let mut http10 = upgrade_request(http::Method::GET, "websocket", "upgrade");
    http10.version = Version::HTTP_10;
    assert!(!rewrite_request(&mut http10, &conn("10.0.0.1"), &catch_all(), false).websocket);
}

#[test]
fn a_switching_response_keeps_its_protocol() {
    let (mut p, ()) = http::Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("keep-alive", "timeout=5")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .body(())
        .unwrap()
        .into_parts();
    rewrite_switching_response(&mut p);
    assert_eq!(p.headers["upgrade"], "websocket");
    assert_eq!(p.headers["connection"], "upgrade");
    assert_eq!(
        p.headers["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert!(!p.headers.contains_key("keep-alive"));
}

/// An HTTP/2 WebSocket as `check_request` lets it through: an extended CONNECT made a `GET`.
fn h2_websocket(protocol: Option<&'static str>) -> request::Parts {
    let mut req = Request::connect("https://chat.example/room")
        .version(Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat, superchat")
        .header("sec-websocket-extensions", "permessage-deflate");
    if let Some(protocol) = protocol {
        req = req.extension(hyper::ext::Protocol::from_static(protocol));
    }
    let mut p = parts(req.body(()).unwrap());
    p.method = Method::GET;
    p
}

#[test]
fn an_http2_websocket_becomes_an_http1_upgrade() {
    let mut p = h2_websocket(Some("websocket"));
    let hops = rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all(), false);
    assert!(hops.websocket);
    assert_eq!(p.headers["upgrade"], "websocket");
    assert_eq!(p.headers["connection"], "upgrade");
    assert_eq!(p.headers["sec-websocket-version"], "13");
    assert_eq!(p.headers["sec-websocket-key"].len(), 24, "16 bytes, base64");
    assert_eq!(p.headers["sec-websocket-protocol"], "chat, superchat");
    assert_eq!(p.headers["sec-websocket-extensions"], "permessage-deflate");

    // Not for an HTTP/2 GET without `:protocol`, nor one with a body.
    let mut get = h2_websocket(None);
    assert!(!rewrite_request(&mut get, &conn("10.0.0.1"), &catch_all(), false).websocket);
    assert!(!get.headers.contains_key("upgrade"));
    let mut with_body = h2_websocket(Some("websocket"));
    assert!(!rewrite_request(&mut with_body, &conn("10.0.0.1"), &catch_all(), true).websocket);
}

#[test]
fn a_switching_response_becomes_200_for_an_http2_websocket() {
    let (mut p, ()) = http::Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .header("sec-websocket-protocol", "chat")
        .header("x-backend", "b1")
        .body(())
        .unwrap()
        .into_parts();
    rewrite_h2_opened_response(&mut p);
    assert_eq!(p.status, http::StatusCode::OK);
    for gone in ["upgrade", "connection", "sec-websocket-accept"] {
        assert!(!p.headers.contains_key(gone), "{gone}");
    }
    assert_eq!(p.headers["sec-websocket-protocol"], "chat");
    assert_eq!(p.headers["x-backend"], "b1");
}
