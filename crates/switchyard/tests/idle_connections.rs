//! An idle HTTP/1.1 keep-alive connection lets hyper's buffers go (`server/idle.rs`): once
//! its answers are out and it has been quiet for `RELEASE_AFTER`, its hyper connection ends
//! without closing the socket, and the next bytes start a fresh one. Each test here crosses
//! that release with real sockets and checks that nothing is lost: the next request, a
//! pipelined request cut in two, a request after an upload, the idle limit, shutdown.

mod support;

use std::time::Duration;

use support::wire;
use support::{backend, config, url_for, TestProxy};
use switchyard::server::idle::RELEASE_AFTER;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Long enough for the release to have happened (it comes one to two `RELEASE_AFTER`s after
/// the last answer).
fn past_release() -> Duration {
    RELEASE_AFTER * 2 + Duration::from_millis(200)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: switchyard\r\n\r\n";

/// Reads until `n` complete answers (each with a `Content-Length` body) have arrived, or two
/// seconds pass; returns their status codes.
async fn read_answers(stream: &mut TcpStream, n: usize) -> Vec<u16> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let statuses = complete_answers(&buf);
        if statuses.len() >= n {
            return statuses;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut tmp)).await {
            Ok(Ok(k)) if k > 0 => buf.extend_from_slice(&tmp[..k]),
            _ => return statuses,
        }
    }
}

/// The status codes of the complete answers at the start of `buf`.
fn complete_answers(mut buf: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 4 + length {
            break;
        }
        statuses.push(head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0));
        buf = &buf[end + 4 + length..];
    }
    statuses
}

#[tokio::test]
async fn a_connection_idle_past_the_release_serves_its_next_requests() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    for round in 0..3 {
        stream.write_all(GET).await.expect("request");
        assert_eq!(read_answers(&mut stream, 1).await, [200], "round {round}");
        tokio::time::sleep(past_release()).await;
    }
    assert_eq!(server.requests(), 3);
    println!(
        "3 requests on one connection, each after {past:?} idle",
        past = past_release()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_pipelined_request_cut_short_at_the_release_is_served_whole() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    // A whole request and the first half of the next, then a pause past the release.
    let second = b"GET /second HTTP/1.1\r\nHost: switchyard\r\n\r\n";
    let (first_half, rest) = second.split_at(20);
    let mut start = GET.to_vec();
    start.extend_from_slice(first_half);
    stream.write_all(&start).await.expect("first bytes");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    tokio::time::sleep(past_release()).await;
    stream.write_all(rest).await.expect("the rest");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    // And two whole requests at once after another pause.
    tokio::time::sleep(past_release()).await;
    stream.write_all(&[GET, GET].concat()).await.expect("two");
    assert_eq!(read_answers(&mut stream, 2).await, [200, 200]);
    assert_eq!(server.requests(), 4);
    proxy.stop().await;
}

#[tokio::test]
async fn an_upload_then_a_pause_then_a_request_on_the_same_connection() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let body = vec![b'x'; 100_000];
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: switchyard\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body).await.expect("body");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    tokio::time::sleep(past_release()).await;
    stream.write_all(GET).await.expect("request");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    tokio::time::sleep(past_release()).await;
    stream.write_all(GET).await.expect("request");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    assert_eq!(server.requests(), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn a_released_connection_is_still_closed_at_the_read_timeout() {
    let server = backend("b").await;
    let mut cfg = config(vec![url_for(&server)]);
    let read_timeout = Duration::from_millis(1200);
    cfg.listeners[0].read_timeout = read_timeout;
    let proxy = TestProxy::start(cfg);
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream.write_all(GET).await.expect("request");
    assert_eq!(read_answers(&mut stream, 1).await, [200]);
    let idle_from = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
    let waited = idle_from.elapsed();
    assert!(
        matches!(read, Ok(Ok(0))),
        "expected the proxy to close: {read:?}"
    );
    assert!(
        waited >= read_timeout - Duration::from_millis(100) && waited < read_timeout * 2,
        "closed after {waited:?} for a read timeout of {read_timeout:?}"
    );
    println!("idle connection closed after {waited:?} (read timeout {read_timeout:?})");
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_closes_a_released_connection_at_once() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream.write_all(GET).await.expect("request");
    let answer = wire::read_answer(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(answer.status, Some(200), "{}", answer.summary());
    tokio::time::sleep(past_release()).await;
    let stopping = Instant::now();
    proxy.stop().await;
    let took = stopping.elapsed();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    println!("shutdown with an idle released connection took {took:?}");
}

#[tokio::test]
async fn an_https_connection_idle_past_the_release_serves_its_next_requests() {
    use support::pki::{client_config, config_in, connect, CertDir, HttpsClient, TestCa};
    let server = backend("b").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("idle-tls");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }] }"#,
        &format!("[pools.p]\nbackends = [\"{}\"]", server.url()),
    ));
    let host = format!("a.example.com:{}", proxy.addr.port());
    let http1 = client_config(&ca, None, &[b"http/1.1"]);
    let stream = connect(proxy.addr, "a.example.com", http1)
        .await
        .expect("TLS handshake");
    let mut client = HttpsClient::over(stream, &host).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(client.get("/").await.status);
        tokio::time::sleep(past_release()).await;
    }
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(server.requests(), 3, "all three on one TLS connection");
    proxy.stop().await;
}
