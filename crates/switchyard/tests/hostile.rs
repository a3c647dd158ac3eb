//! Hostile and malformed clients, on raw sockets: bad Host headers, absolute-form and
//! CONNECT targets, oversized heads, slow clients, request smuggling shapes and garbage.
//! The proxy must answer 4xx (never 5xx) or close, never pass a smuggled request on, and
//! keep serving well-formed clients.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use support::{backend, config, url_for, TestProxy};
use test_server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest wait for the proxy to answer and close.
const WAIT: Duration = Duration::from_secs(2);

/// Writes `bytes` on a fresh connection, ignoring write errors (the proxy may close before
/// reading everything), and reads until the proxy closes the connection or `WAIT` passes.
/// Returns what was read and whether the connection was closed.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    read_to_close(&mut stream).await
}

/// Reads until EOF / error (closed: true) or until `WAIT` passes (closed: false).
async fn read_to_close(stream: &mut TcpStream) -> (String, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Number of responses (status lines) in `out`.
fn responses(out: &str) -> usize {
    out.matches("HTTP/1.1 ").count() + out.matches("HTTP/1.0 ").count()
}

/// The status code of the first response in `out`.
fn status_of(out: &str) -> Option<u16> {
    out.strip_prefix("HTTP/1.1 ")
        .or_else(|| out.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// The body of the first response in `out` (everything after the head).
fn body_of(out: &str) -> &str {
    out.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// `GET /echo` on a fresh connection: the proxy still serves well-formed requests.
async fn still_serving(proxy: &TestProxy) {
    let resp = support::get(&proxy.url("/echo")).await;
    assert_eq!(
        resp.status,
        200,
        "the proxy stopped serving: {}",
        resp.text()
    );
}

async fn start() -> (TestServer, TestProxy) {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    (server, proxy)
}

#[tokio::test]
async fn missing_host_on_http11_is_400() {
    let (server, proxy) = start().await;
    let (out, closed) = exchange(proxy.addr, b"GET /echo HTTP/1.1\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert!(closed, "the connection must close after a bad request");
    assert_eq!(server.requests(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn two_host_headers_are_400() {
    let (server, proxy) = start().await;
    let (out, _) = exchange(
        proxy.addr,
        b"GET /echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert_eq!(server.requests(), 0);

    // Same name in another case is the same header.
    let (out, _) = exchange(
        proxy.addr,
        b"GET /echo HTTP/1.1\r\nHost: a.test\r\nhOST: a.test\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert_eq!(server.requests(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn invalid_host_and_userinfo_are_400() {
    let (server, proxy) = start().await;
    for (name, request) in [
        ("space in Host", "GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n"),
        ("path in Host", "GET /echo HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        (
            "userinfo in Host",
            "GET /echo HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ),
        (
            "userinfo in absolute target",
            "GET http://user:pw@evil.example/echo HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "other scheme in absolute target",
            "GET ftp://evil.example/echo HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ] {
        let (out, closed) = exchange(proxy.addr, request.as_bytes()).await;
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{name}: {out:?}"
        );
        assert!(closed, "{name}: connection left open");
    }
    assert_eq!(server.requests(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn http10_without_host_is_served() {
    let (server, proxy) = start().await;
    let (out, closed) = exchange(proxy.addr, b"GET /echo HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&out), Some(200), "{out:?}");
    assert!(
        closed,
        "HTTP/1.0 without keep-alive closes after the response"
    );
    let echoed: serde_json::Value = serde_json::from_str(body_of(&out)).expect("echo JSON");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["version"], "HTTP/1.1", "HTTP/1.1 upstream");
    let hosts = echoed["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == "host")
        .count();
    assert_eq!(hosts, 1, "the proxy supplies a Host upstream: {echoed}");
    assert_eq!(server.requests(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn absolute_form_target_goes_to_the_backend_never_to_its_host() {
    let (server, proxy) = start().await;
    // A socket of ours stands in for the named host: a forward proxy would connect to it.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    elsewhere.set_nonblocking(true).expect("nonblocking");
    let elsewhere_addr = elsewhere.local_addr().expect("addr");

    let (out, _) = exchange(
        proxy.addr,
        b"GET http://evil.example/echo?q=1 HTTP/1.1\r\nHost: whatever.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    let served_by = format!("x-served-by: {}\r\n", server.addr().port());
    assert!(out.to_ascii_lowercase().contains(&served_by), "{out:?}");
    let echoed: serde_json::Value = serde_json::from_str(body_of(&out)).expect("echo JSON");
    assert_eq!(echoed["path"], "/echo", "origin form upstream");
    assert_eq!(echoed["query"], "q=1");
    let hosts: Vec<&serde_json::Value> = echoed["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|pair| pair[0] == "host")
        .map(|pair| &pair[1])
        .collect();
    assert_eq!(
        hosts,
        ["evil.example"],
        "RFC 9112 §3.2.2: the target's authority wins"
    );
    assert_eq!(server.requests(), 1);

    // With an address we own as the target's authority: still our backend, no connection there.
    let request = format!(
        "GET http://{elsewhere_addr}/echo HTTP/1.1\r\nHost: whatever.test\r\nConnection: close\r\n\r\n"
    );
    let (out, _) = exchange(proxy.addr, request.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.to_ascii_lowercase().contains(&served_by), "{out:?}");
    assert_eq!(server.requests(), 2);
    match elsewhere.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the proxy connected to the target's host: {other:?}"),
    }
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["retries"], 0, "{metrics}");
    assert_eq!(metrics["errors"], 0, "{metrics}");
    proxy.stop().await;
}

#[tokio::test]
async fn connect_is_405_with_allow() {
    let (server, proxy) = start().await;
    let (out, _) = exchange(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{out:?}"
    );
    let lower = out.to_ascii_lowercase();
    let allow = lower
        .lines()
        .find_map(|l| l.strip_prefix("allow: "))
        .unwrap_or_else(|| panic!("no Allow header: {out:?}"));
    assert!(allow.contains("get"), "{allow}");
    assert!(!allow.contains("connect"), "{allow}");
    assert_eq!(server.requests(), 0);
    still_serving(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn server_wide_options_is_not_a_bad_request() {
    let (_server, proxy) = start().await;
    let (out, _) = exchange(
        proxy.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Well-formed: answer it (as Go's net/http does, 200) or forward it; not 400.
    let status = status_of(&out);
    assert!(
        status.is_some_and(|s| (200..300).contains(&s)),
        "OPTIONS * got {out:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_64_kib_header_is_431() {
    let (server, proxy) = start().await;
    let mut request = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 64 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let (out, _) = exchange(proxy.addr, &request).await;
    assert!(
        out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{out:?}"
    );
    assert_eq!(server.requests(), 0);
    still_serving(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn two_hundred_headers_are_431() {
    let (server, proxy) = start().await;
    let mut request = b"GET /echo HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (out, _) = exchange(proxy.addr, &request).await;
    // hyper allows 100 headers by default and reports more as "too large".
    assert!(
        out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{out:?}"
    );
    assert_eq!(server.requests(), 0);
    still_serving(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn fragment_in_the_target_never_reaches_the_backend() {
    let (server, proxy) = start().await;
    let (out, _) = exchange(
        proxy.addr,
        b"GET /echo#frag HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let status = status_of(&out).unwrap_or_else(|| panic!("no response: {out:?}"));
    eprintln!("GET /echo#frag: status {status}");
    assert!(status == 200 || status == 400, "{out:?}");
    if status == 200 {
        // hyper's URI parser drops the fragment: the backend sees the path without it.
        let echoed: serde_json::Value = serde_json::from_str(body_of(&out)).expect("echo JSON");
        assert_eq!(echoed["path"], "/echo");
        assert!(!echoed.to_string().contains("frag"), "{echoed}");
        assert_eq!(server.requests(), 1);
    } else {
        assert_eq!(server.requests(), 0);
    }
    still_serving(&proxy).await;
    proxy.stop().await;
}

/// A proxy whose listener's read timeout is 300 ms, and its backend.
async fn with_read_timeout_300ms() -> (TestServer, TestProxy) {
    let server = backend("b").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.listeners[0].read_timeout = Duration::from_millis(300);
    (server, TestProxy::start(cfg))
}

/// A connection closed `elapsed` after its last bytes, by a 300 ms read timeout.
fn assert_about_300ms(elapsed: Duration) {
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500),
        "closed after {elapsed:?}, expected about 300 ms"
    );
}

#[tokio::test]
async fn slowloris_head_is_cut_off_after_the_read_timeout() {
    let (server, proxy) = with_read_timeout_300ms().await;

    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let (out, closed) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    eprintln!("closed: {closed} after {elapsed:?}, answer: {out:?}");
    assert!(closed, "still open after {elapsed:?}");
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 408 "),
        "unexpected answer: {out:?}"
    );
    assert_about_300ms(elapsed);
    assert_eq!(server.requests(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn a_second_head_trickled_on_a_kept_alive_connection_is_cut_off() {
    // The first request is answered; the next head arrives a few bytes at a time, never
    // ending, on the same connection: the read timeout bounds it as it bounds a first head.
    let (server, proxy) = with_read_timeout_300ms().await;

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).await.expect("first answer");
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        &first[..n]
    );
    let started = Instant::now();
    let mut closed = false;
    // A well-formed head that never ends: the request line, then one more field at a time.
    let start = [&b"GET / HT"[..], b"TP/1.1\r\n", b"Host: a\r\n"];
    for piece in start
        .iter()
        .chain([&b"X-A: 1\r\n"[..]].iter().cycle())
        .take(40)
    {
        if stream.write_all(piece).await.is_err() {
            closed = true;
            break;
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => panic!("an answer to a head that never ended"),
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    eprintln!("closed: {closed} after {elapsed:?}");
    assert!(
        closed,
        "a trickled head kept the connection for {elapsed:?}"
    );
    assert_about_300ms(elapsed);
    assert_eq!(server.requests(), 1);
    still_serving(&proxy).await;
    proxy.stop().await;
}

#[tokio::test]
async fn connection_that_sends_nothing_is_closed_after_the_read_timeout() {
    let (_server, proxy) = with_read_timeout_300ms().await;

    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (out, closed) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    eprintln!("closed: {closed} after {elapsed:?}, answer: {out:?}");
    assert!(closed, "an idle connection was kept for {elapsed:?}");
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 408 "),
        "{out:?}"
    );
    assert_about_300ms(elapsed);
    proxy.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_read_timeout() {
    let (_server, proxy) = with_read_timeout_300ms().await;

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let (out, closed) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    eprintln!("closed: {closed} after {elapsed:?}, answer: {out:?}");
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out:?}");
    assert_eq!(responses(&out), 1, "{out:?}");
    assert!(closed, "kept idle for {elapsed:?}");
    assert_about_300ms(elapsed);
    proxy.stop().await;
}

#[tokio::test]
async fn stalled_request_body_gets_408_after_the_read_timeout() {
    let (_server, proxy) = with_read_timeout_300ms().await;

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf.")
        .await
        .expect("write");
    let started = Instant::now();
    let (out, closed) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    eprintln!("closed: {closed} after {elapsed:?}, answer: {out:?}");
    assert!(
        out.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{out:?}"
    );
    assert!(closed, "connection left open");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}, expected about 300 ms"
    );
    assert_eq!(responses(&out), 1, "{out:?}");
    proxy.stop().await;
}

/// Sends `request` (whose body hides `GET /smuggled`), then checks: at most one response,
/// and it is not 5xx; the connection is closed; the backend saw at most one request and
/// never the smuggled one. Returns the first status, if any.
async fn assert_not_smuggled(name: &str, request: &[u8]) -> Option<u16> {
    let (server, proxy) = start().await;
    let (out, closed) = exchange(proxy.addr, request).await;
    let status = status_of(&out);
    assert!(
        responses(&out) <= 1,
        "{name}: more than one response: {out:?}"
    );
    assert!(
        status.is_none_or(|s| (400..500).contains(&s) || s == 200),
        "{name}: {out:?}"
    );
    assert!(closed, "{name}: the connection stayed open: {out:?}");
    assert!(!out.contains("smuggled"), "{name}: {out:?}");
    assert!(
        server.requests() <= 1,
        "{name}: backend saw {} requests",
        server.requests()
    );
    // Whatever reached the backend was not the smuggled request: ask it directly.
    still_serving(&proxy).await;
    proxy.stop().await;
    status
}

/// `head` + `\r\n` + `body`, with `{len}` in the head replaced by the body's length.
fn with_body(head: &str, body: &str) -> Vec<u8> {
    format!(
        "{}\r\n{body}",
        head.replace("{len}", &body.len().to_string())
    )
    .into_bytes()
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

#[tokio::test]
async fn smuggling_content_length_and_transfer_encoding() {
    let body = format!("0\r\n\r\n{SMUGGLED}");
    for (name, head) in [
        (
            "CL then TE",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "TE then CL",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: {len}\r\n",
        ),
    ] {
        let status = assert_not_smuggled(name, &with_body(head, &body)).await;
        eprintln!("{name}: status {status:?}");
    }
}

#[tokio::test]
async fn smuggling_two_content_lengths() {
    let body = format!("hello{SMUGGLED}");
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let status = assert_not_smuggled("two Content-Length", request.as_bytes()).await;
    assert_eq!(status, Some(400));
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, {}\r\n\r\n{body}",
        body.len()
    );
    let status = assert_not_smuggled("Content-Length list", request.as_bytes()).await;
    assert_eq!(status, Some(400));
    let request = format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n{body}");
    let status = assert_not_smuggled("signed Content-Length", request.as_bytes()).await;
    assert_eq!(status, Some(400));
}

#[tokio::test]
async fn smuggling_chunked_not_last_and_odd_transfer_encodings() {
    let body = format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}");
    for (name, head) in [
        (
            "chunked, identity",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n",
        ),
        (
            "space before colon",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: {len}\r\n",
        ),
        (
            "HTTP/1.0 with chunked",
            "POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "chunked then identity on two lines",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        ),
        (
            "identity alone",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: {len}\r\n",
        ),
        (
            "obs-fold",
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: {len}\r\n",
        ),
    ] {
        let status = assert_not_smuggled(name, &with_body(head, &body)).await;
        assert_eq!(status, Some(400), "{name}");
    }
}

#[tokio::test]
async fn smuggling_invalid_chunk_size() {
    for (name, body) in [
        (
            "non-hex size",
            format!("zz\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "overflowing size",
            format!("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "size shorter than data",
            format!("2\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
    ] {
        let request = with_body(
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n",
            &body,
        );
        let status = assert_not_smuggled(name, &request).await;
        assert!(
            status.is_none_or(|s| s == 400),
            "{name}: expected 400 or close, got {status:?}"
        );
        eprintln!("{name}: status {status:?}");
    }
}

#[tokio::test]
async fn proxy_made_response_with_unread_body_closes_the_connection() {
    let (server, proxy) = start().await;
    let request = with_body(
        "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n",
        SMUGGLED,
    );
    let (out, closed) = exchange(proxy.addr, &request).await;
    assert!(
        out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{out:?}"
    );
    assert_eq!(responses(&out), 1, "{out:?}");
    assert!(closed, "connection left open: {out:?}");
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{out:?}"
    );
    assert_eq!(server.requests(), 0);
    still_serving(&proxy).await;
    assert_eq!(server.requests(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn rate_limited_request_with_unread_body_closes_the_connection() {
    let server = backend("b").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.rate_limit.requests = 1;
    cfg.rate_limit.window = Duration::from_secs(10);
    let proxy = TestProxy::start(cfg);
    assert_eq!(support::get(&proxy.url("/echo")).await.status, 200);

    let request = with_body(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n",
        SMUGGLED,
    );
    let (out, closed) = exchange(proxy.addr, &request).await;
    assert!(
        out.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{out:?}"
    );
    assert_eq!(responses(&out), 1, "{out:?}");
    assert!(closed, "connection left open: {out:?}");
    assert_eq!(server.requests(), 1, "only the first request reached it");
    proxy.stop().await;
}

/// A backend serving an endless body whose drop (the proxy closed the upstream connection)
/// is recorded.
struct Endless {
    sent: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
    chunk: Bytes,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.sent
            .fetch_add(self.chunk.len() as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(1 << 30)
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let sent = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let backend_addr = listener.local_addr().expect("addr");
    {
        let (sent, dropped) = (sent.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (sent, dropped) = (sent.clone(), dropped.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let body = Endless {
                            sent: sent.clone(),
                            dropped: dropped.clone(),
                            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
                        };
                        async move { Ok::<_, Infallible>(http::Response::new(body)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let mut cfg = config(vec![support::url_for_port(backend_addr.port())]);
    cfg.listeners[0].write_timeout = Duration::from_millis(300);
    let proxy = TestProxy::start(cfg);

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /bytes/1073741824 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    // Never read: the proxy's writes stall, and after the write timeout it must give up,
    // which closes its upstream connection and so drops the backend's body.
    assert!(
        support::eventually(Duration::from_secs(3), || {
            let dropped = dropped.clone();
            async move { dropped.load(Ordering::SeqCst) }
        })
        .await,
        "the proxy kept the stalled exchange open for {:?} ({} bytes produced by the backend)",
        started.elapsed(),
        sent.load(Ordering::Relaxed)
    );
    let elapsed = started.elapsed();
    eprintln!(
        "upstream closed after {elapsed:?}, {} MiB produced by the backend",
        sent.load(Ordering::Relaxed) >> 20
    );
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");

    // The client's socket then ends: what was buffered, then EOF or reset, far short of 1 GiB.
    let mut total = 0u64;
    let ended = tokio::time::timeout(WAIT, async {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    })
    .await
    .is_ok();
    assert!(ended, "client connection still open after {total} bytes");
    assert!(total < 1 << 30, "{total}");
    still_serving_other(&proxy).await;
    proxy.stop().await;
}

/// The write-stall test's backend has no /echo: the health endpoint shows the proxy lives.
async fn still_serving_other(proxy: &TestProxy) {
    let resp = support::get(&proxy.url("/health")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn garbage_gets_400_or_close_and_the_proxy_keeps_serving() {
    let (server, proxy) = start().await;

    // The start of a TLS ClientHello.
    let tls_hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a, 0x1b, 0x7c, 0x00,
        0x20, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0x13, 0x01, 0x13, 0x02, 0x0d, 0x0a, 0x0d, 0x0a,
    ];
    // Pseudo-random bytes.
    let mut state: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    // A good request followed by garbage on the same connection.
    let mut after_good = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    after_good.extend_from_slice(&noise[..512]);
    after_good.extend_from_slice(b"\r\n\r\n");

    for (name, bytes, good) in [
        ("TLS hello", tls_hello.to_vec(), 0),
        ("random bytes", noise.clone(), 0),
        ("NUL bytes", vec![0u8; 1024], 0),
        ("good request then garbage", after_good, 1),
    ] {
        let before = server.requests();
        let (out, closed) = exchange(proxy.addr, &bytes).await;
        assert!(closed, "{name}: connection left open: {out:?}");
        let statuses: Vec<u16> = out
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| out[i + 9..].get(..3)?.parse().ok())
            .collect();
        let bad: Vec<u16> = statuses.iter().copied().skip(good).collect();
        assert!(
            statuses.iter().take(good).all(|s| *s == 200),
            "{name}: {out:?}"
        );
        assert!(bad.len() <= 1, "{name}: {out:?}");
        assert!(
            bad.iter().all(|s| (400..500).contains(s)),
            "{name}: {statuses:?} {out:?}"
        );
        assert_eq!(server.requests() - before, good as u64, "{name}");
        eprintln!("{name}: statuses {statuses:?}");
        still_serving(&proxy).await;
    }
    proxy.stop().await;
}
