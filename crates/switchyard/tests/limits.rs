//! The request limits against a running switchyard: body size (a declared `Content-Length`,
//! `Expect: 100-continue`, a chunked body counted as it streams, an HTTP/2 body, a gRPC
//! call), URI length, a route's methods and content types; each with its status, its
//! metric, and a backend that is never blamed for what the client did. `switchyard check`
//! rejects limits that make no sense (`limits_check.rs`).

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use support::h2::{channel_body, full, H2Backend, H2Client};
use support::metrics::{backend_entry, num};
use support::wire::{chunked, read_answer, upload};
use support::{backend, config, url_for, Client, TestProxy};
use switchyard::config::validate::from_text;
use switchyard::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(3);

/// A proxy to `backend` with every body limited to `max_body` bytes.
fn limited(backend: &test_server::TestServer, max_body: u64) -> TestProxy {
    let mut config = config(vec![url_for(backend)]);
    config.limits.max_body_size = max_body;
    TestProxy::start(config)
}

/// The configuration `text` (with `BACKEND` replaced by `backend`'s URL).
fn from_file(text: &str, backend: &test_server::TestServer) -> Config {
    let text = text.replace("BACKEND", &url_for(backend).to_string());
    let mut config = from_text(Path::new("limits.toml"), &text).expect("valid configuration");
    config.workers = 2;
    config.rate_limit.requests = 0;
    config.listeners[0].addr = "127.0.0.1:0".parse().expect("address");
    config
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_at_once_with_413() {
    let backend = backend("b").await;
    let proxy = limited(&backend, 1024);
    // Only the head is sent: the 413 must not wait for a body that is never coming.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n";
    let answer = upload(
        proxy.addr,
        head.to_owned(),
        Vec::new(),
        Duration::ZERO,
        WAIT,
    )
    .await;
    assert_eq!(answer.status, Some(413), "{}", answer.head);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(answer.text().contains("1024 bytes"), "{}", answer.text());
    assert_eq!(backend.requests(), 0, "the backend never saw it");
    let m = proxy.metrics().await;
    assert_eq!(num(&m["refused_body_size"]), 1, "{m:#}");
    // At the limit exactly, it passes.
    let mut client = Client::connect(proxy.addr).await;
    let req = http::Request::post("/echo")
        .header("host", "x")
        .body(Bytes::from(vec![b'a'; 1024]))
        .expect("request");
    let ok = client.send(req).await.expect("response");
    assert_eq!(ok.status, 200);
    println!(
        "declared 2 MiB over a 1 KiB limit: {}; 1024 bytes: 200",
        answer.summary()
    );
    proxy.stop().await;
}

/// Reads one response head (up to its blank line) off `stream`.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn expect_100_continue_gets_the_413_instead_of_the_100() {
    let backend = backend("b").await;
    let proxy = limited(&backend, 1024);
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let head =
        "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let answer = read_answer(&mut stream, WAIT).await;
    assert_eq!(answer.status, Some(413), "first answer: {}", answer.head);
    assert!(!answer.head.contains("100 continue"), "{}", answer.head);
    // Under the limit, the client is told to go on and the body goes through.
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let cont = read_head(&mut stream).await;
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");
    stream.write_all(b"hello").await.expect("write body");
    let done = read_answer(&mut stream, WAIT).await;
    assert_eq!(done.status, Some(200), "{}", done.summary());
    println!(
        "Expect: 100-continue, 4096 bytes over 1024: {}; 5 bytes: 100 then {}",
        answer.summary(),
        done.summary()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_chunked_body_is_refused_with_413_as_soon_as_it_grows_past_the_limit() {
    let backend = backend("b").await;
    let proxy = limited(&backend, 4096);
    // 64 KiB in 1 KiB chunks, a little apart: the 413 comes once 4 KiB have passed, long
    // before the end (the whole upload would take 64 × 10 ms).
    let body = vec![b'x'; 64 * 1024];
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let start = tokio::time::Instant::now();
    let answer = upload(
        proxy.addr,
        head.to_owned(),
        chunked(&body, 1024),
        Duration::from_millis(10),
        WAIT,
    )
    .await;
    let took = start.elapsed();
    assert_eq!(answer.status, Some(413), "{}", answer.summary());
    assert!(took < Duration::from_millis(500), "413 after {took:?}");
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    // The backend saw a request that broke off: nothing is held against it.
    let m = proxy.metrics().await;
    let b = backend_entry(&m, &backend);
    assert_eq!(num(&b["failures"]), 0, "{m:#}");
    assert_eq!(num(&b["errors"]), 0, "{m:#}");
    assert_eq!(num(&m["refused_body_size"]), 1, "{m:#}");
    // A chunked body under the limit passes.
    let small = upload(
        proxy.addr,
        head.to_owned(),
        chunked(&body[..4096], 1024),
        Duration::ZERO,
        WAIT,
    )
    .await;
    assert_eq!(small.status, Some(200), "{}", small.summary());
    println!(
        "chunked 64 KiB over 4 KiB: {} after {took:?}; backend failures 0; 4 KiB: {}",
        answer.summary(),
        small.summary()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn an_http2_body_without_length_is_refused_with_413_as_it_streams() {
    let backend = backend("b").await;
    let proxy = limited(&backend, 4096);
    let mut client = H2Client::connect(proxy.addr).await;
    let (tx, body) = channel_body();
    let req = http::Request::post("/echo").body(body).expect("request");
    let send = tokio::spawn(async move {
        for _ in 0..64 {
            if tx
                .send(Frame::data(Bytes::from(vec![b'y'; 1024])))
                .await
                .is_err()
            {
                break;
            }
        }
        // Keep the stream open: the 413 must not wait for its end.
        tokio::time::sleep(WAIT).await;
    });
    let resp = tokio::time::timeout(WAIT, client.send(req))
        .await
        .expect("answered before the body ended")
        .expect("response");
    assert_eq!(resp.status(), 413);
    send.abort();
    // The connection is still usable: only the stream was refused.
    let ok = client.get("/").await;
    assert_eq!(ok.resp.status, 200);
    let m = proxy.metrics().await;
    assert_eq!(num(&m["refused_body_size"]), 1, "{m:#}");
    assert_eq!(num(&backend_entry(&m, &backend)["failures"]), 0, "{m:#}");
    println!("HTTP/2 body of 64 KiB over 4 KiB: 413; same connection then 200");
    proxy.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_on_its_way_to_an_http2_backend_is_not_held_against_it() {
    // The backend reads the whole body before answering, as an upload handler does.
    let h2 = H2Backend::start(
        None,
        |req: http::Request<hyper::body::Incoming>| async move {
            let read = req.into_body().collect().await.map(|b| b.to_bytes().len());
            let status = if read.is_ok() { 200 } else { 499 };
            let mut resp = http::Response::new(full(""));
            *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
            resp
        },
    )
    .await;
    let mut config = config(vec![h2.url()]);
    config.limits.max_body_size = 4096;
    let proxy = TestProxy::start(config);
    let head = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = vec![b'z'; 32 * 1024];
    let pieces = chunked(&body, 1024);
    let answer = upload(
        proxy.addr,
        head.to_owned(),
        pieces,
        Duration::from_millis(5),
        WAIT,
    )
    .await;
    assert_eq!(answer.status, Some(413), "{}", answer.summary());
    let m = proxy.metrics().await;
    let b = backend_entry(&m, &h2.url());
    assert_eq!(num(&b["failures"]), 0, "{m:#}");
    assert_eq!(num(&b["errors"]), 0, "{m:#}");
    assert_eq!(h2.requests(), 1, "the body had started streaming to it");
    println!(
        "32 KiB chunked over 4 KiB to an h2c backend: {}; backend failures 0",
        answer.summary()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_grpc_call_over_the_body_limit_gets_resource_exhausted() {
    let backend = backend("b").await;
    let proxy = limited(&backend, 16);
    let mut client = H2Client::connect(proxy.addr).await;
    let req = http::Request::post("/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("content-length", "64")
        .body(full(vec![0u8; 64]))
        .expect("request");
    let resp = client.fetch(req).await.expect("response");
    assert_eq!(resp.resp.status, 200);
    assert_eq!(resp.resp.headers["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    println!("gRPC 64-byte message over 16: grpc-status 8");
    proxy.stop().await;
}

#[tokio::test]
async fn a_uri_over_the_limit_gets_414() {
    let backend = backend("b").await;
    let mut config = config(vec![url_for(&backend)]);
    config.limits.max_uri_length = 100;
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let long = format!("/{}", "a".repeat(100));
    let resp = client.get(&long).await;
    assert_eq!(resp.status, 414, "{}", resp.text());
    let ok = client.get(&long[..100]).await;
    assert_eq!(ok.status, 200, "exactly 100 bytes pass");
    // HTTP/2's :path too.
    let mut h2 = H2Client::connect(proxy.addr).await;
    assert_eq!(h2.get(&long).await.resp.status, 414);
    let m = proxy.metrics().await;
    assert_eq!(num(&m["refused_uri_length"]), 2, "{m:#}");
    assert_eq!(backend.requests(), 1);
    println!("101-byte target over 100: 414 (HTTP/1.1 and HTTP/2); 100 bytes: 200");
    proxy.stop().await;
}

const ROUTES: &str = r#"
[pools.web]
backends = ["BACKEND"]

[[routes]]
name = "api"
match = { path_prefix = "/api" }
pool = "web"
allowed_methods = ["GET", "POST"]
allowed_content_types = ["application/json", "text/*"]
max_body_size = "1KiB"

[[routes]]
name = "uploads"
match = { path_prefix = "/upload" }
pool = "web"
"#;

#[tokio::test]
async fn a_route_refuses_other_methods_with_405_and_allow_and_other_bodies_with_415() {
    let backend = backend("b").await;
    let proxy = TestProxy::start(from_file(ROUTES, &backend));
    // A refusal with the body unread closes the connection: each request on its own.
    let addr = proxy.addr;
    let send = |method: &'static str, ct: Option<&'static str>, body: &'static [u8]| async move {
        let mut req = http::Request::builder()
            .method(method)
            .uri("/api/echo")
            .header("host", "x");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let req = req.body(Bytes::from_static(body)).expect("request");
        Client::connect(addr)
            .await
            .send(req)
            .await
            .expect("response")
    };
    let delete = send("DELETE", None, b"").await;
    assert_eq!(delete.status, 405);
    assert_eq!(delete.headers["allow"], "GET, POST, HEAD");
    let xml = send("POST", Some("application/xml"), b"<a/>").await;
    assert_eq!(xml.status, 415);
    let none = send("POST", None, b"{}").await;
    assert_eq!(none.status, 415, "a body without Content-Type");
    let json = send("POST", Some("application/json; charset=utf-8"), b"{}").await;
    assert_eq!(json.status, 200);
    let text = send("POST", Some("text/plain"), b"hi").await;
    assert_eq!(text.status, 200);
    let get = send("GET", None, b"").await;
    assert_eq!(get.status, 200, "a GET without body needs no type");
    // The other route takes any method.
    let mut other = Client::connect(proxy.addr).await;
    let req = http::Request::delete("/upload")
        .header("host", "x")
        .body(Bytes::new());
    let resp = other.send(req.expect("request")).await.expect("resp");
    assert_eq!(resp.status, 200);
    let m = proxy.metrics().await;
    assert_eq!(num(&m["refused_method"]), 1, "{m:#}");
    assert_eq!(num(&m["refused_content_type"]), 2, "{m:#}");
    println!("route api: DELETE 405 (Allow: GET, POST, HEAD), XML 415, untyped 415, JSON 200");
    proxy.stop().await;
}

#[tokio::test]
async fn a_route_body_limit_holds_for_that_route_only() {
    let backend = backend("b").await;
    let proxy = TestProxy::start(from_file(ROUTES, &backend));
    let mut client = Client::connect(proxy.addr).await;
    let post = |path: &str, n: usize| {
        http::Request::post(path)
            .header("host", "x")
            .header("content-type", "application/json")
            .body(Bytes::from(vec![b'1'; n]))
            .expect("request")
    };
    let over = client.send(post("/api/echo", 2048)).await.expect("resp");
    assert_eq!(over.status, 413);
    let mut client = Client::connect(proxy.addr).await;
    let big = client.send(post("/upload/echo", 2048)).await.expect("resp");
    assert_eq!(big.status, 200, "the default limit is far above 2 KiB");
    println!("2 KiB: 413 on the 1 KiB route, 200 on the route with the default");
    proxy.stop().await;
}
