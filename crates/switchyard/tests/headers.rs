//! Header handling as an intermediary (RFC 9110 §7.6, RFC 9112): hop-by-hop headers stay on
//! their hop, X-Forwarded-* are added, framing is redone per hop, and messages without a
//! body (HEAD, 204, 304) and `Expect: 100-continue` keep the connection in step.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use support::raw::RawConn;
use support::{backend, config, url_for, Client, TestProxy};
use tokio::time::Instant;

/// How long any single read may wait before the test gives up.
const READ_WAIT: Duration = Duration::from_secs(2);

/// The backend's view of a request, from `/echo`.
struct Echoed(serde_json::Value);

impl Echoed {
    fn from_body(body: &[u8]) -> Self {
        Echoed(serde_json::from_slice(body).expect("echo JSON"))
    }

    fn headers(&self) -> Vec<(String, String)> {
        self.0["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().expect("name").to_ascii_lowercase(),
                    pair[1].as_str().expect("value").to_owned(),
                )
            })
            .collect()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    fn body(&self) -> &str {
        self.0["body"].as_str().expect("body")
    }
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    let mut raw = RawConn::connect(proxy.addr).await;
    raw.send(
        b"GET /echo HTTP/1.1\r\n\
          Host: a.test\r\n\
          Connection: keep-alive, X-Custom-Hop\r\n\
          connection: X-OTHER-HOP\r\n\
          X-Custom-Hop: secret\r\n\
          x-other-hop: secret too\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          TE: trailers\r\n\
          Upgrade: websocket\r\n\
          X-End-To-End: kept\r\n\
          \r\n",
    )
    .await;
    let resp = raw.read_response("GET").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let echoed = Echoed::from_body(&resp.body);
    let names: Vec<String> = echoed.headers().into_iter().map(|(n, _)| n).collect();
    for gone in [
        "connection",
        "x-custom-hop",
        "x-other-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(gone)),
            "{gone} reached the backend: {names:?}"
        );
    }
    assert_eq!(echoed.all("x-end-to-end"), ["kept"]);

    // The connection stays usable (the Upgrade was not acted on).
    raw.send(b"GET /echo HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    assert_eq!(raw.read_response("GET").await.status, 200);
    assert_eq!(server.requests(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn host_named_in_connection_never_leaves_the_upstream_request_without_host() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    // Naming an end-to-end field as a connection option is the client's error (RFC 9110
    // §7.6.1), but whatever the proxy makes of it, it is the client of the next hop and
    // must send Host in an HTTP/1.1 request (RFC 9112 §3.2) or refuse with 400.
    for request in [
        "GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: Host\r\n\r\n",
        "GET http://b.test/echo HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, host\r\n\r\n",
    ] {
        let mut raw = RawConn::connect(proxy.addr).await;
        raw.send(request.as_bytes()).await;
        let resp = raw.read_response("GET").await;
        if resp.status == 400 {
            continue;
        }
        assert_eq!(resp.status, 200, "{}", resp.head);
        let echoed = Echoed::from_body(&resp.body);
        assert_eq!(
            echoed.all("host").len(),
            1,
            "{request:?}: the backend got an HTTP/1.1 request without Host: {:?}",
            echoed.headers()
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn client_connection_close_is_not_forwarded_and_the_upstream_connection_is_kept() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    for i in 0..3 {
        let out = support::raw(
            proxy.addr,
            b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            READ_WAIT,
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n"),
            "request {i}: {out:?}"
        );
        assert!(
            out.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "the proxy announces the close it was asked for: {out:?}"
        );
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let echoed = Echoed::from_body(body.as_bytes());
        assert!(
            echoed.all("connection").is_empty(),
            "{:?}",
            echoed.headers()
        );
    }
    assert_eq!(server.requests(), 3);
    assert!(
        server.connections() <= 2,
        "the client's Connection: close closed {} upstream connections",
        server.connections()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn forwarding_headers_are_added_and_host_is_kept() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut client = Client::connect(proxy.addr).await;

    let first = client
        .send(
            http::Request::get("/echo")
                .header("host", "example.test")
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("first");
    assert_eq!(first.status, 200);
    let echoed = Echoed(first.json());
    assert_eq!(echoed.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed.all("x-forwarded-proto"), ["http"]);
    assert_eq!(echoed.all("x-forwarded-host"), ["example.test"]);
    assert_eq!(
        echoed.all("host"),
        ["example.test"],
        "Host is passed unchanged"
    );

    // An incoming X-Forwarded-For is extended; spoofed Proto / Host are replaced.
    let second = client
        .send(
            http::Request::get("/echo")
                .header("host", "example.test:8443")
                .header("x-forwarded-for", "10.1.2.3")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "spoofed.test")
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("second");
    assert_eq!(second.status, 200);
    let echoed = Echoed(second.json());
    assert_eq!(echoed.all("x-forwarded-for"), ["10.1.2.3, 127.0.0.1"]);
    assert_eq!(echoed.all("x-forwarded-proto"), ["http"]);
    assert_eq!(echoed.all("x-forwarded-host"), ["example.test:8443"]);
    assert_eq!(echoed.all("host"), ["example.test:8443"]);
    proxy.stop().await;
}

/// A hyper backend whose every response carries hop-by-hop headers.
async fn hop_by_hop_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let resp = http::Response::builder()
                        .header("connection", "x-foo, X-Bar")
                        .header("x-foo", "hop")
                        .header("x-bar", "hop too")
                        .header("keep-alive", "timeout=5, max=100")
                        .header("proxy-connection", "keep-alive")
                        .header("trailer", "x-checksum")
                        .header("x-end-to-end", "kept")
                        .body(Full::new(Bytes::from_static(b"hello")))
                        .expect("response");
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_passed_to_the_client() {
    let addr = hop_by_hop_backend().await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));

    // The backend really sends them.
    let mut direct = RawConn::connect(addr).await;
    direct.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let direct = direct.read_response("GET").await;
    for sent in ["connection", "x-foo", "x-bar", "keep-alive", "trailer"] {
        assert!(direct.header(sent).is_some(), "{sent}: {}", direct.head);
    }

    let mut raw = RawConn::connect(proxy.addr).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = raw.read_response("GET").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body, b"hello");
    for gone in [
        "x-foo",
        "x-bar",
        "keep-alive",
        "proxy-connection",
        "trailer",
    ] {
        assert_eq!(resp.header(gone), None, "{gone} passed on: {}", resp.head);
    }
    for value in resp.all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-foo"),
            "the backend's Connection header passed on: {}",
            resp.head
        );
    }
    assert_eq!(resp.header("x-end-to-end"), Some("kept"));
    proxy.stop().await;
}

#[tokio::test]
async fn client_framing_headers_are_not_copied_upstream() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut raw = RawConn::connect(proxy.addr).await;

    // Chunked upload, with a chunk extension.
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n",
    )
    .await;
    let resp = raw.read_response("POST").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let echoed = Echoed::from_body(&resp.body);
    assert_eq!(echoed.body(), "hello world!");
    assert_framed_once(&echoed, 12);

    // Content-Length upload on the same connection.
    raw.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload")
        .await;
    let resp = raw.read_response("POST").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let echoed = Echoed::from_body(&resp.body);
    assert_eq!(echoed.body(), "payload");
    assert_framed_once(&echoed, 7);
    proxy.stop().await;
}

/// The backend saw exactly one framing: one Content-Length equal to the body's length, or
/// `Transfer-Encoding: chunked` alone.
fn assert_framed_once(echoed: &Echoed, len: usize) {
    let cl = echoed.all("content-length");
    let te = echoed.all("transfer-encoding");
    match (cl.as_slice(), te.as_slice()) {
        ([one], []) => assert_eq!(one, &len.to_string()),
        ([], [one]) => assert!(one.eq_ignore_ascii_case("chunked"), "{te:?}"),
        _ => panic!("backend framing: content-length {cl:?}, transfer-encoding {te:?}"),
    }
}

#[tokio::test]
async fn head_has_no_body_and_keeps_the_content_length_of_get() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut raw = RawConn::connect(proxy.addr).await;

    raw.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let head = raw.read_response("HEAD").await;
    raw.send(b"GET /bytes/1000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    // read_head insists the next bytes are a status line: a body after HEAD would fail here.
    let get = raw.read_response("GET").await;

    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(get.status, 200, "{}", get.head);
    assert_eq!(get.body.len(), 1000);
    assert_eq!(head.header("content-length"), Some("1000"), "{}", head.head);
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("transfer-encoding"), None);
    assert!(raw.buf.is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body_and_keep_the_connection() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut raw = RawConn::connect(proxy.addr).await;

    for code in [204u16, 304] {
        raw.send(format!("GET /status/{code} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await;
        let resp = raw.read_response("GET").await;
        assert_eq!(resp.status, code, "{}", resp.head);
        assert_eq!(resp.header("transfer-encoding"), None, "{}", resp.head);
        if code == 204 {
            assert_eq!(resp.header("content-length"), None, "{}", resp.head);
        }
    }
    // Same connection: the next response must start right away (no stray body bytes).
    raw.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = raw.read_response("GET").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(Echoed::from_body(&resp.body).0["path"], "/echo");
    assert!(raw.buf.is_empty());
    assert_eq!(server.requests(), 3);
    assert_eq!(
        server.connections(),
        1,
        "the upstream connection was reused"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut raw = RawConn::connect(proxy.addr).await;

    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await;
    let interim = raw.read_head().await;
    assert_eq!(interim.status, 100, "{}", interim.head);
    assert!(raw.buf.is_empty(), "nothing may follow 100 Continue yet");
    raw.send(b"hello").await;
    let resp = raw.read_response("POST").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let echoed = Echoed::from_body(&resp.body);
    assert_eq!(echoed.body(), "hello");
    assert_eq!(echoed.all("content-length"), ["5"]);
    proxy.stop().await;
}

#[tokio::test]
async fn expect_100_continue_over_the_rate_limit_gets_429_without_continue() {
    let server = backend("b").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.rate_limit.requests = 1;
    cfg.rate_limit.window = Duration::from_secs(10);
    let proxy = TestProxy::start(cfg);

    assert_eq!(support::get(&proxy.url("/echo")).await.status, 200);

    let started = Instant::now();
    let out = support::raw(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        READ_WAIT,
    )
    .await;
    let elapsed = started.elapsed();
    assert!(out.starts_with("HTTP/1.1 429 "), "{out:?}");
    assert!(!out.contains("100 Continue"), "{out:?}");
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{out:?}"
    );
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "the proxy did not close the connection ({elapsed:?})"
    );
    assert_eq!(server.requests(), 1);
    proxy.stop().await;
}
