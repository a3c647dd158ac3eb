//! Retries: which requests are sent again after a failure (status retry, resets, per-try
//! timeouts), that replayed bodies arrive intact and unreplayable ones are never sent twice,
//! the retry budget that bounds amplification, backoff, connect failures retried outside the
//! budget, whole-request timeouts, upstream keep-alive reuse and `max_connections` queueing.
//!
//! Every test prints its measured figures; run with `--nocapture` to see them.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::backends::{restart_on, served_by};
use support::metrics::{backend_entry, num};
use support::{backend, config, url_for, url_for_port, Client, Resp, TestProxy};
use switchyard::config::BackendUrl;
use switchyard::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const BAD_GATEWAY_BODY: &str = "Error forwarding request";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A test configuration over `backends` in which nothing gets ejected or has its circuit
/// opened (so that every request meets every backend), and retries do not back off.
fn retry_config(backends: Vec<BackendUrl>) -> Config {
    let mut cfg = config(backends);
    let pool = &mut cfg.pools[0];
    pool.outlier.consecutive_5xx = 0;
    pool.breaker.failure_threshold = 1_000_000;
    pool.retry.backoff = Duration::ZERO;
    pool.retry.backoff_max = Duration::ZERO;
    cfg
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` bytes of printable ASCII in a fixed pattern (so `/echo` gives them back verbatim).
fn ascii_body(n: usize) -> Bytes {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

async fn send(addr: SocketAddr, method: &str, path: &str, body: Bytes) -> Resp {
    let mut client = Client::connect(addr).await;
    client
        .send(
            http::Request::builder()
                .method(method)
                .uri(path)
                .body(body)
                .expect("request"),
        )
        .await
        .expect("response")
}

/// What a custom backend received.
#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    /// Method and body of every request read whole.
    requests: Mutex<Vec<(String, Bytes)>>,
}

impl Seen {
    fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }

    fn bodies(&self) -> Vec<(String, Bytes)> {
        self.requests.lock().expect("lock").clone()
    }
}

/// A hyper backend that reads every request body whole, records it, and answers `status`.
async fn recording_backend(status: u16) -> (BackendUrl, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let seen = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let method = req.method().to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        seen.requests.lock().expect("lock").push((method, body));
                        let mut resp = http::Response::new(Full::new(Bytes::from(format!(
                            "status {status} from {port}\n"
                        ))));
                        *resp.status_mut() =
                            http::StatusCode::from_u16(status).expect("status code");
                        resp.headers_mut()
                            .insert("x-served-by", http::HeaderValue::from(port));
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url_for_port(port), seen)
}

/// Reads one request (head, and a `Content-Length` body) from `stream`; `None` at EOF.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Bytes)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match stream.read(&mut tmp).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let method = head.split(' ').next().unwrap_or_default().to_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut tmp).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
        }
    }
    Some((method, Bytes::from(body)))
}

/// A raw backend that reads each request whole and then closes the connection without a
/// word: with a TCP reset (`rst`), or with an ordinary FIN.
async fn hanging_up_backend(rst: bool) -> (BackendUrl, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let seen = shared.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut stream).await {
                    seen.requests.lock().expect("lock").push(req);
                }
                if rst {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                drop(stream);
            });
        }
    });
    (url_for_port(port), seen)
}

/// A raw keep-alive backend answering `200 ok` that closes a connection once it has been
/// idle for `idle` (a backend whose keep-alive timeout is shorter than the proxy's).
/// Returns its address, the requests answered and the connections it closed.
async fn short_keepalive_backend(idle: Duration) -> (BackendUrl, Arc<Seen>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Seen::default());
    let closed = Arc::new(AtomicU64::new(0));
    let (shared, shared_closed) = (seen.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let (seen, closed) = (shared.clone(), shared_closed.clone());
            tokio::spawn(async move {
                while let Ok(Some(req)) =
                    tokio::time::timeout(idle, read_request(&mut stream)).await
                {
                    seen.requests.lock().expect("lock").push(req);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nx-served-by: {port}\r\nContent-Length: 3\r\n\r\nok\n"
                    );
                    if stream.write_all(resp.as_bytes()).await.is_err() {
                        break;
                    }
                }
                drop(stream);
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url_for_port(port), seen, closed)
}

/// A raw keep-alive backend that answers the first request on each connection with
/// `200 ok` and hangs up on the second one after reading it, without answering: what the
/// proxy sees when a backend's keep-alive timeout fires just as a pooled connection is
/// reused. Returns its address, the requests answered and the requests dropped.
async fn drops_second_request_backend() -> (BackendUrl, Arc<Seen>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Seen::default());
    let dropped = Arc::new(AtomicU64::new(0));
    let (shared, shared_dropped) = (seen.clone(), dropped.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let (seen, dropped) = (shared.clone(), shared_dropped.clone());
            tokio::spawn(async move {
                let mut on_this_connection = 0;
                while let Some(req) = read_request(&mut stream).await {
                    on_this_connection += 1;
                    if on_this_connection == 2 {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    seen.requests.lock().expect("lock").push(req);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nx-served-by: {port}\r\nContent-Length: 3\r\n\r\nok\n"
                    );
                    if stream.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url_for_port(port), seen, dropped)
}

/// The status code of a raw HTTP/1.1 response.
fn raw_status(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"))
}

/// `PUT path` with a chunked body (no Content-Length), on a raw connection.
async fn put_chunked(addr: SocketAddr, path: &str, body: &[u8]) -> String {
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    support::raw(addr, &req, Duration::from_secs(5)).await
}

// ---------------------------------------------------------------------------------------
// Status retries and the idempotency rule
// ---------------------------------------------------------------------------------------

/// Round robin starts at the first backend and alternates, so odd requests start at A.
#[tokio::test]
async fn get_is_retried_on_503_but_post_with_a_body_is_not() {
    let a = backend("A").await;
    a.set_status(503);
    let b = backend("B").await;
    let (a_port, b_port) = (a.addr().port(), b.addr().port());
    let proxy = TestProxy::start(retry_config(vec![url_for(&a), url_for(&b)]));

    for i in 0..4 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200, "GET {i}: {}", resp.text());
        assert_eq!(resp.text(), "B\n", "GET {i}");
        assert_eq!(served_by(&resp), b_port, "GET {i}");
    }
    let (a_gets, b_gets) = (a.requests(), b.requests());
    assert_eq!(
        (a_gets, b_gets),
        (2, 4),
        "A tried first twice, B answered all"
    );

    let metrics = proxy.metrics().await;
    let a_stats = backend_entry(&metrics, a_port);
    assert_eq!(
        a_stats["responses"], 2,
        "A's 503s are responses: {metrics:#}"
    );
    assert_eq!(
        a_stats["failures"], 2,
        "A's 503s are breaker failures: {metrics:#}"
    );
    assert_eq!(metrics["retries"], 2, "{metrics:#}");
    assert_eq!(metrics["responses"], 4, "{metrics:#}");

    // POST with a body: never sent twice. Requests 5 and 7 start at A and get its 503.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let (a_before, b_before) = (a.requests(), b.requests());
        let resp = send(proxy.addr, "POST", "/", Bytes::from_static(b"order=1")).await;
        let (da, db) = (a.requests() - a_before, b.requests() - b_before);
        match resp.status {
            503 => {
                assert_eq!(served_by(&resp), a_port, "POST {i}: A's own 503");
                assert_eq!((da, db), (1, 0), "POST {i} went to B too");
            }
            200 => assert_eq!((da, db), (0, 1), "POST {i}"),
            other => panic!("POST {i}: unexpected {other}: {}", resp.text()),
        }
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [503, 200, 503, 200]);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["retries"], 2, "no POST was retried: {metrics:#}");
    println!(
        "status retry: 4 GETs -> 4x200 from B, A tried {a_gets}x (503), retries={}; \
         4 POSTs with body -> {statuses:?}, A={} B={} attempts",
        metrics["retries"],
        a.requests() - a_gets,
        b.requests() - b_gets
    );
    proxy.stop().await;
}

/// The rule in `proxy/mod.rs`: "A request may be sent again after it reached a backend only
/// if it is idempotent and its body can be replayed". A POST without a body is not
/// idempotent, so it must not be sent to a second backend either.
#[tokio::test]
async fn post_without_a_body_is_not_retried() {
    // 503 case.
    let (a, a_seen) = recording_backend(503).await;
    let b = backend("B").await;
    let proxy = TestProxy::start(retry_config(vec![a, url_for(&b)]));
    let resp = send(proxy.addr, "POST", "/", Bytes::new()).await;
    let metrics = proxy.metrics().await;
    println!(
        "body-less POST on 503: client got {} from port {}, A saw {}, B saw {}, retries={}",
        resp.status,
        served_by(&resp),
        a_seen.count(),
        b.requests(),
        metrics["retries"]
    );
    proxy.stop().await;

    // Reset case.
    let (r, r_seen) = hanging_up_backend(true).await;
    let c = backend("C").await;
    let proxy = TestProxy::start(retry_config(vec![r, url_for(&c)]));
    let reset = send(proxy.addr, "POST", "/", Bytes::new()).await;
    println!(
        "body-less POST on reset: client got {} ({:?}), reset backend saw {}, C saw {}",
        reset.status,
        reset.text().trim(),
        r_seen.count(),
        c.requests()
    );
    proxy.stop().await;

    // Stale pooled connection: the backend reads the POST on a reused connection and hangs
    // up; with a single backend the only way to send it twice is on a new connection.
    let (s, s_seen, s_dropped) = drops_second_request_backend().await;
    let proxy = TestProxy::start(retry_config(vec![s]));
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/").await.status, 200);
    let stale = client
        .send(
            http::Request::post("/")
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("response");
    let (answered, dropped) = (s_seen.bodies(), s_dropped.load(Ordering::SeqCst));
    println!(
        "body-less POST on a stale pooled connection: client got {}, backend read it {} \
         time(s) ({} dropped unanswered, answered: {:?})",
        stale.status,
        dropped + answered.iter().filter(|(m, _)| m == "POST").count() as u64,
        dropped,
        answered.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>()
    );
    proxy.stop().await;

    assert_eq!(a_seen.count(), 1);
    assert_eq!(resp.status, 503, "A's 503 should reach the client");
    assert_eq!(
        b.requests(),
        0,
        "a body-less POST was sent to a second backend"
    );
    assert_eq!(r_seen.count(), 1);
    assert_eq!(reset.status, 502, "{}", reset.text());
    assert_eq!(
        c.requests(),
        0,
        "a body-less POST was sent twice after a reset"
    );
    assert_eq!(dropped, 1);
    assert_eq!(stale.status, 502, "{}", stale.text());
    assert!(
        answered.iter().all(|(m, _)| m != "POST"),
        "a body-less POST was sent again on a new connection: {answered:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Replaying bodies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn small_put_body_is_replayed_intact_on_the_next_backend() {
    let (a, a_seen) = recording_backend(503).await;
    let b = backend("B").await;
    let b_port = b.addr().port();
    let proxy = TestProxy::start(retry_config(vec![a, url_for(&b)]));

    let body = ascii_body(10 * 1024);
    let started = Instant::now();
    let resp = send(proxy.addr, "PUT", "/echo?q=1", body.clone()).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(served_by(&resp), b_port);
    let echo = resp.json();
    assert_eq!(echo["method"], "PUT");
    // The head B got is the one A got (the retry loop keeps it, every try borrows it): same
    // target, one of each forwarding header.
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str()),
        (Some("/echo"), Some("q=1"))
    );
    let count = |name: &str| {
        echo["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .filter(|h| h[0] == name)
            .count()
    };
    assert_eq!(
        (count("host"), count("x-forwarded-for")),
        (1, 1),
        "{echo:#}"
    );
    let echoed = echo["body"].as_str().expect("body string");
    assert_eq!(echoed.len(), body.len(), "B got a truncated body");
    assert!(echoed.as_bytes() == &body[..], "B's body differs");
    let length = echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == "content-length")
        .map(|h| h[1].clone());
    assert_eq!(length, Some(Value::from("10240")), "{echo:#}");
    let first = a_seen.bodies();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "PUT");
    assert!(first[0].1 == body, "A got a different body");
    println!(
        "replay: 10 KiB PUT, A (503) got {} bytes, B got {} bytes intact \
         (content-length {}), {:.1} ms",
        first[0].1.len(),
        echoed.len(),
        length.unwrap_or_default(),
        ms(took)
    );
    proxy.stop().await;
}

#[tokio::test]
async fn chunked_or_oversized_bodies_are_not_replayed() {
    // Chunked: its size is not known up front, so it is streamed and cannot be sent again.
    let (a, a_seen) = recording_backend(503).await;
    let b = backend("B").await;
    let a_port = a.port;
    let proxy = TestProxy::start(retry_config(vec![a, url_for(&b)]));
    let body = ascii_body(10 * 1024);
    let raw = put_chunked(proxy.addr, "/echo", &body).await;
    assert_eq!(raw_status(&raw), 503, "{raw}");
    assert!(
        raw.contains(&format!("status 503 from {a_port}")),
        "client should get A's own answer: {raw}"
    );
    let seen = a_seen.bodies();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].1 == body, "A got the chunked body intact");
    assert_eq!(b.requests(), 0, "a chunked body was sent to B");
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["retries"], 0, "{metrics:#}");
    println!(
        "chunked 10 KiB PUT: client got 503 from A, A saw {} bytes, B saw {} requests",
        seen[0].1.len(),
        b.requests()
    );
    proxy.stop().await;

    // Over replay_max_bytes, with a Content-Length.
    let (a, a_seen) = recording_backend(503).await;
    let a_port = a.port;
    let b = backend("B").await;
    let mut cfg = retry_config(vec![a, url_for(&b)]);
    cfg.pools[0].retry.replay_max_bytes = 4096;
    let proxy = TestProxy::start(cfg);
    let resp = send(proxy.addr, "PUT", "/echo", body.clone()).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(served_by(&resp), a_port, "client should get A's own answer");
    let seen = a_seen.bodies();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].1 == body);
    assert_eq!(
        b.requests(),
        0,
        "a body over replay_max_bytes was sent to B"
    );
    // At the limit it is still replayed.
    let (a2, a2_seen) = recording_backend(503).await;
    let b2 = backend("B2").await;
    let mut cfg = retry_config(vec![a2, url_for(&b2)]);
    cfg.pools[0].retry.replay_max_bytes = body.len();
    let proxy2 = TestProxy::start(cfg);
    let at_limit = send(proxy2.addr, "PUT", "/echo", body.clone()).await;
    assert_eq!(at_limit.status, 200, "{}", at_limit.text());
    assert_eq!(
        at_limit.json()["body"].as_str().map(str::len),
        Some(body.len())
    );
    assert_eq!((a2_seen.count(), b2.requests()), (1, 1));
    println!(
        "10 KiB PUT, replay_max_bytes 4096: client got {} from A, B saw {}; \
         replay_max_bytes 10240: {} via B",
        resp.status,
        b.requests(),
        at_limit.status
    );
    proxy.stop().await;
    proxy2.stop().await;
}

// ---------------------------------------------------------------------------------------
// Connection reset after the request was sent
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reset_after_sending_retries_get_but_not_post() {
    for rst in [true, false] {
        let how = if rst { "RST" } else { "FIN" };
        let (r, r_seen) = hanging_up_backend(rst).await;
        let r_port = r.port;
        let b = backend("B").await;
        let b_port = b.addr().port();
        let proxy = TestProxy::start(retry_config(vec![r, url_for(&b)]));

        // Request 1 starts at the hanging-up backend.
        let get = support::get(&proxy.url("/")).await;
        assert_eq!(get.status, 200, "{how}: {}", get.text());
        assert_eq!(served_by(&get), b_port);
        assert_eq!(r_seen.count(), 1, "{how}");
        assert_eq!(b.requests(), 1, "{how}");

        // Request 2 starts at B; request 3 is the POST, starting at the hanging-up backend.
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
        let b_before = b.requests();
        let post = send(proxy.addr, "POST", "/", Bytes::from_static(b"charge=42")).await;
        assert_eq!(post.status, 502, "{how}: {}", post.text());
        assert!(post.text().contains(BAD_GATEWAY_BODY), "{}", post.text());
        let seen = r_seen.bodies();
        assert_eq!(seen.len(), 2, "{how}");
        assert_eq!(
            seen[1],
            ("POST".to_owned(), Bytes::from_static(b"charge=42"))
        );
        assert_eq!(b.requests(), b_before, "{how}: the POST was sent twice");

        let metrics = proxy.metrics().await;
        assert_eq!(metrics["retries"], 1, "{how}: {metrics:#}");
        let r_stats = backend_entry(&metrics, r_port);
        assert_eq!(r_stats["errors"], 2, "{how}: {metrics:#}");
        println!(
            "reset ({how}): GET -> {} from B after 1 try on the resetting backend; \
             POST -> {} {:?}, resetting backend saw {} requests, B saw the POST 0 times, \
             retries={}",
            get.status,
            post.status,
            post.text().trim(),
            seen.len(),
            metrics["retries"]
        );
        proxy.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn per_try_timeout_moves_on_to_the_next_backend() {
    let a = backend("A").await;
    a.set_delay(1000);
    let b = backend("B").await;
    let (a_port, b_port) = (a.addr().port(), b.addr().port());
    let mut cfg = retry_config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].timeout = Duration::from_millis(100);
    let proxy = TestProxy::start(cfg);

    let started = Instant::now();
    let resp = support::get(&proxy.url("/")).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(served_by(&resp), b_port);
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(
        took < Duration::from_millis(500),
        "retry after the per-try timeout took {took:?}"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["try_timeouts"], 1, "{metrics:#}");
    assert_eq!(metrics["retries"], 1, "{metrics:#}");
    assert_eq!(backend_entry(&metrics, a_port)["errors"], 1, "{metrics:#}");
    println!(
        "per-try timeout 100ms, A delayed 1000ms: GET -> 200 from B in {:.1} ms, \
         try_timeouts={}",
        ms(took),
        metrics["try_timeouts"]
    );
    proxy.stop().await;

    // Every backend slow: the tries run out and the client gets 504.
    b.set_delay(1000);
    let mut cfg = retry_config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].timeout = Duration::from_millis(100);
    let proxy = TestProxy::start(cfg);
    let started = Instant::now();
    let resp = support::get(&proxy.url("/")).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(700), "{took:?}");
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["try_timeouts"], 2, "{metrics:#}");
    println!(
        "per-try timeout 100ms, both delayed: 504 after {:.1} ms, try_timeouts={}",
        ms(took),
        metrics["try_timeouts"]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn request_timeout_bounds_the_whole_request() {
    let a = backend("A").await;
    let b = backend("B").await;
    a.set_delay(1000);
    b.set_delay(1000);
    let mut cfg = retry_config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].request_timeout = Some(Duration::from_millis(150));
    let proxy = TestProxy::start(cfg);

    let started = Instant::now();
    let resp = support::get(&proxy.url("/")).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_millis(600), "{took:?}");
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["request_timeouts"], 1, "{metrics:#}");
    assert_eq!(metrics["try_timeouts"], 0, "{metrics:#}");
    println!(
        "request_timeout 150ms, both backends delayed 1000ms: 504 after {:.1} ms, \
         request_timeouts={}",
        ms(took),
        metrics["request_timeouts"]
    );
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// The retry budget
// ---------------------------------------------------------------------------------------

struct Amplification {
    requests: u64,
    attempts: u64,
    elapsed: Duration,
    metrics: Value,
}

/// Three backends that all answer 503, `retries = 2`: each request would like 3 attempts.
/// `n` GETs from 5 concurrent keep-alive clients, paced evenly over `over`.
async fn amplification(percent: u32, min_per_second: u32, n: u64, over: Duration) -> Amplification {
    let backends = [backend("x").await, backend("y").await, backend("z").await];
    for b in &backends {
        b.set_status(503);
    }
    let mut cfg = retry_config(backends.iter().map(url_for).collect());
    let pool = &mut cfg.pools[0];
    pool.retries = 2;
    pool.retry.budget_percent = percent;
    pool.retry.budget_min_per_second = min_per_second;
    let proxy = TestProxy::start(cfg);

    const CLIENTS: u64 = 5;
    let per_client = n / CLIENTS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut tick = tokio::time::interval(over / per_client as u32);
            let mut statuses = Vec::new();
            for _ in 0..per_client {
                tick.tick().await;
                statuses.push(client.get("/").await.status);
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let attempts = backends.iter().map(|b| b.requests()).sum();
    let metrics = proxy.metrics().await;
    proxy.stop().await;
    Amplification {
        requests: statuses.len() as u64,
        attempts,
        elapsed,
        metrics,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_bounds_amplification_when_every_backend_fails() {
    let run = amplification(20, 10, 500, Duration::from_secs(2)).await;
    let secs = run.elapsed.as_secs_f64();
    let n = run.requests as f64;
    let bound = 1.2 * n + 10.0 * secs + 20.0;
    let ratio = run.attempts as f64 / n;
    let m = &run.metrics;
    println!(
        "budget 20% + 10/s: {} requests in {:.2} s -> {} upstream attempts \
         (amplification {ratio:.3}, bound {bound:.0}); retries={} retries_over_budget={}",
        run.requests, secs, run.attempts, m["retries"], m["retries_over_budget"]
    );
    assert_eq!(run.requests, 500);
    assert!(
        (run.attempts as f64) <= bound,
        "{} attempts for {} requests over {secs:.2} s (bound {bound:.0})",
        run.attempts,
        run.requests
    );
    assert!(num(&m["retries_over_budget"]) > 0, "{m:#}");
    assert_eq!(num(&m["retries"]), run.attempts - run.requests, "{m:#}");
    assert_eq!(m["requests"], 500, "{m:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limiting_budget_every_request_is_tried_three_times() {
    let run = amplification(100, 1_000_000, 500, Duration::from_secs(1)).await;
    let n = run.requests as f64;
    let ratio = run.attempts as f64 / n;
    let m = &run.metrics;
    println!(
        "budget 100% + 1e6/s: {} requests in {:.2} s -> {} upstream attempts \
         (amplification {ratio:.3}); retries={} retries_over_budget={}",
        run.requests,
        run.elapsed.as_secs_f64(),
        run.attempts,
        m["retries"],
        m["retries_over_budget"]
    );
    assert_eq!(run.attempts, 3 * run.requests);
    assert_eq!(m["retries_over_budget"], 0, "{m:#}");
}

// ---------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------

/// Latencies of `rounds` pairs of GETs through [A (503), B]: the first of each pair is
/// retried (it starts at A), the second is not. Returns (retried, not retried), sorted.
async fn retry_latencies(backoff: Duration, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let a = backend("A").await;
    a.set_status(503);
    let b = backend("B").await;
    let mut cfg = retry_config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].retry.backoff = backoff;
    cfg.pools[0].retry.backoff_max = backoff;
    cfg.pools[0].retry.budget_min_per_second = 1000;
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    // Warm up the upstream connections.
    for _ in 0..2 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let (mut retried, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for expect_retry in [true, false] {
            let a_before = a.requests();
            let started = Instant::now();
            let resp = client.get("/").await;
            let took = started.elapsed();
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(a.requests() > a_before, expect_retry, "round robin order");
            if expect_retry {
                retried.push(took);
            } else {
                direct.push(took);
            }
        }
    }
    proxy.stop().await;
    retried.sort();
    direct.sort();
    (retried, direct)
}

fn median(v: &[Duration]) -> Duration {
    v[v.len() / 2]
}

#[tokio::test]
async fn backoff_delays_a_retry_by_up_to_backoff() {
    let (retried, direct) = retry_latencies(Duration::from_millis(50), 20).await;
    let (retried0, direct0) = retry_latencies(Duration::ZERO, 20).await;
    let extra = median(&retried).saturating_sub(median(&direct));
    let extra0 = median(&retried0).saturating_sub(median(&direct0));
    let max_extra = retried
        .last()
        .copied()
        .unwrap_or_default()
        .saturating_sub(median(&direct));
    println!(
        "backoff 50ms: retried GET median {:.1} ms (min {:.1}, max {:.1}), not retried \
         median {:.1} ms -> median extra {:.1} ms, max extra {:.1} ms; backoff 0: retried \
         median {:.1} ms, not retried {:.1} ms -> extra {:.1} ms",
        ms(median(&retried)),
        ms(retried[0]),
        ms(*retried.last().expect("samples")),
        ms(median(&direct)),
        ms(extra),
        ms(max_extra),
        ms(median(&retried0)),
        ms(median(&direct0)),
        ms(extra0)
    );
    // Full jitter: a uniform wait in [0, 50 ms], median 25 ms.
    assert!(
        extra >= extra0 + Duration::from_millis(3),
        "backoff does not seem to delay retries: {extra:?} vs {extra0:?}"
    );
    assert!(
        extra <= Duration::from_millis(50 + 30),
        "median extra {extra:?} over the 50 ms backoff"
    );
    assert!(
        max_extra <= Duration::from_millis(50 + 200),
        "a retry waited {max_extra:?} with a 50 ms backoff"
    );
}

// ---------------------------------------------------------------------------------------
// Connect failures and the budget
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connect_failures_are_retried_even_with_an_empty_budget() {
    let live = backend("live").await;
    let (_dead_socket, dead) = support::dead_port();
    let dead_port = dead.port;
    let mut cfg = retry_config(vec![dead, url_for(&live)]);
    cfg.pools[0].retry.budget_percent = 0;
    cfg.pools[0].retry.budget_min_per_second = 0;
    let proxy = TestProxy::start(cfg);
    for i in 0..10 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.text(), "live\n");
    }
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["retries"], 5, "{metrics:#}");
    assert_eq!(metrics["retries_over_budget"], 0, "{metrics:#}");
    assert_eq!(
        backend_entry(&metrics, dead_port)["errors"],
        5,
        "{metrics:#}"
    );
    println!(
        "budget 0%/0 per s, dead + live: 10/10 GETs 200, retries={} retries_over_budget={}",
        metrics["retries"], metrics["retries_over_budget"]
    );
    proxy.stop().await;

    // The same empty budget does refuse a retry after a 503: the budget is in force.
    let a = backend("A").await;
    a.set_status(503);
    let b = backend("B").await;
    let mut cfg = retry_config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].retry.budget_percent = 0;
    cfg.pools[0].retry.budget_min_per_second = 0;
    let proxy = TestProxy::start(cfg);
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(b.requests(), 0);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["retries_over_budget"], 1, "{metrics:#}");
    assert_eq!(metrics["retries"], 0, "{metrics:#}");
    println!(
        "budget 0%/0 per s, 503 + live: GET -> {} (A's), retries_over_budget={}",
        resp.status, metrics["retries_over_budget"]
    );
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// Upstream keep-alive pool
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_connections_are_reused_across_client_connections() {
    let b = backend("b").await;
    let port = b.addr().port();
    let cfg = retry_config(vec![url_for(&b)]);
    let workers = cfg.workers as u64;
    let proxy = TestProxy::start(cfg);

    let mut client = Client::connect(proxy.addr).await;
    for i in 0..200 {
        assert_eq!(client.get("/").await.status, 200, "keep-alive request {i}");
    }
    let after_keepalive = b.connections();
    for i in 0..200 {
        assert_eq!(
            support::get(&proxy.url("/")).await.status,
            200,
            "fresh request {i}"
        );
    }
    assert_eq!(b.requests(), 400);
    let connections = b.connections();
    let idle_seen = support::eventually(Duration::from_secs(2), || async {
        num(&backend_entry(&proxy.metrics().await, port)["idle_connections"]) > 0
    })
    .await;
    let metrics = proxy.metrics().await;
    let entry = backend_entry(&metrics, port);
    let (opened, reused) = (
        num(&entry["connections_opened"]),
        num(&entry["connections_reused"]),
    );
    let ratio = reused as f64 / (reused + opened) as f64;
    println!(
        "pool reuse: 200 keep-alive + 200 fresh-connection requests -> backend saw {connections} \
         connections ({after_keepalive} after the keep-alive half); opened={opened} \
         reused={reused} reuse ratio {ratio:.4}; idle_connections={}",
        entry["idle_connections"]
    );
    assert!(
        idle_seen,
        "no idle connection after the traffic: {metrics:#}"
    );
    assert!(
        (1..=2 * workers).contains(&connections),
        "{connections} upstream connections"
    );
    assert_eq!(opened, connections, "{metrics:#}");
    assert_eq!(opened + reused, 400, "{metrics:#}");
    assert!(ratio > 0.95, "reuse ratio {ratio}");
    assert!(num(&entry["idle_connections"]) <= opened, "{metrics:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn idle_timeout_retires_pooled_connections() {
    let b = backend("b").await;
    let port = b.addr().port();
    let mut cfg = retry_config(vec![url_for(&b)]);
    cfg.pools[0].keepalive.idle_timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(cfg);

    // One client connection: every request is handled by the same worker, and so meets the
    // same per-worker idle pool.
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let before = proxy.metrics().await;
    let before = backend_entry(&before, port).clone();
    assert_eq!(before["connections_opened"], 1, "{before:#}");
    assert_eq!(before["connections_reused"], 2, "{before:#}");
    assert_eq!(before["idle_connections"], 1, "{before:#}");

    // The subject is elapsed idle time itself: let the pooled connection age past 200 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.get("/").await.status, 200);
    let settled = support::eventually(Duration::from_secs(2), || async {
        backend_entry(&proxy.metrics().await, port)["idle_connections"] == 1
    })
    .await;
    let metrics = proxy.metrics().await;
    let after = backend_entry(&metrics, port);
    println!(
        "idle_timeout 200ms, 400ms idle: connections_opened {} -> {}, reused {} -> {}, \
         idle_connections {} -> {}, backend connections {}",
        before["connections_opened"],
        after["connections_opened"],
        before["connections_reused"],
        after["connections_reused"],
        before["idle_connections"],
        after["idle_connections"],
        b.connections()
    );
    assert_eq!(after["connections_opened"], 2, "{metrics:#}");
    assert_eq!(after["connections_reused"], 2, "{metrics:#}");
    assert_eq!(b.connections(), 2);
    // Exactly one idle connection (the new one): the expired one left the count once, and
    // the count did not underflow (it saturates at 0 in /metrics, so it would read 0).
    assert!(settled, "idle_connections should be 1: {metrics:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn stale_pooled_connection_after_a_backend_restart_is_not_a_failure() {
    let b = backend("first life").await;
    let port = b.addr().port();
    let proxy = TestProxy::start(retry_config(vec![url_for(&b)]));
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/").await.status, 200);
    let metrics = proxy.metrics().await;
    assert_eq!(backend_entry(&metrics, port)["idle_connections"], 1);

    // Stop (closing its connections as a killed process would) and start again on the port.
    b.stop().await;
    let b = restart_on(port, "second life").await;

    let resp = client.get("/").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "second life\n");
    let metrics = proxy.metrics().await;
    let entry = backend_entry(&metrics, port);
    println!(
        "backend restart: next GET -> {} {:?}; backend errors={} failures={} \
         consecutive_failures={} opened={} reused={}",
        resp.status,
        resp.text().trim(),
        entry["errors"],
        entry["failures"],
        entry["consecutive_failures"],
        entry["connections_opened"],
        entry["connections_reused"]
    );
    assert_eq!(entry["failures"], 0, "{metrics:#}");
    assert_eq!(entry["errors"], 0, "{metrics:#}");
    assert_eq!(entry["consecutive_failures"], 0, "{metrics:#}");
    assert_eq!(metrics["errors"], 0, "{metrics:#}");
    assert_eq!(b.requests(), 1);
    proxy.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn stale_pooled_connection_closed_by_a_short_keepalive_is_not_a_failure() {
    let (url, seen, closed) = short_keepalive_backend(Duration::from_millis(50)).await;
    let port = url.port;
    let proxy = TestProxy::start(retry_config(vec![url]));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for round in 1..=3u64 {
        statuses.push(client.get("/").await.status);
        // Wait until the backend has closed the connection the proxy now holds idle.
        let ok = support::eventually(Duration::from_secs(2), || {
            let closed = closed.clone();
            async move { closed.load(Ordering::SeqCst) >= round }
        })
        .await;
        assert!(ok, "the backend did not close its idle connection");
    }
    statuses.push(client.get("/").await.status);
    let metrics = proxy.metrics().await;
    let entry = backend_entry(&metrics, port);
    println!(
        "short backend keep-alive (50ms): statuses {statuses:?}, backend saw {} requests on \
         {} connections; errors={} failures={} opened={} reused={}",
        seen.count(),
        seen.connections.load(Ordering::SeqCst),
        entry["errors"],
        entry["failures"],
        entry["connections_opened"],
        entry["connections_reused"]
    );
    assert_eq!(statuses, [200; 4]);
    assert_eq!(seen.count(), 4);
    assert_eq!(entry["failures"], 0, "{metrics:#}");
    assert_eq!(entry["errors"], 0, "{metrics:#}");
    assert_eq!(metrics["errors"], 0, "{metrics:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn pooled_connection_dropped_as_it_is_reused_is_replaced_for_get() {
    let (url, seen, dropped) = drops_second_request_backend().await;
    let port = url.port;
    // A single backend: no other backend to retry on, so success can only come from
    // replacing the stale connection.
    let proxy = TestProxy::start(retry_config(vec![url]));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(client.get("/").await.status);
    }
    let metrics = proxy.metrics().await;
    let entry = backend_entry(&metrics, port);
    println!(
        "backend hanging up on the 2nd request of each connection: 6 GETs -> {statuses:?}, \
         answered {}, dropped {}, connections {}; errors={} failures={} opened={} reused={}",
        seen.count(),
        dropped.load(Ordering::SeqCst),
        seen.connections.load(Ordering::SeqCst),
        entry["errors"],
        entry["failures"],
        entry["connections_opened"],
        entry["connections_reused"]
    );
    assert_eq!(statuses, [200; 6]);
    assert_eq!(seen.count(), 6);
    assert!(
        dropped.load(Ordering::SeqCst) >= 5,
        "the stale path was not exercised"
    );
    assert_eq!(entry["failures"], 0, "{metrics:#}");
    assert_eq!(entry["errors"], 0, "{metrics:#}");
    assert_eq!(entry["consecutive_failures"], 0, "{metrics:#}");
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// max_connections and queueing
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_then_refuses_after_queue_timeout() {
    let b = backend("b").await;
    b.set_delay(100);
    let mut cfg = retry_config(vec![url_for(&b)]);
    cfg.pools[0].max_connections = Some(1);
    cfg.pools[0].queue_timeout = Duration::from_millis(300);
    let proxy = TestProxy::start(cfg);

    let url = proxy.url("/");
    let started = Instant::now();
    let timed = |url: String| async move {
        let resp = support::get(&url).await;
        (resp.status, started.elapsed())
    };
    let (r1, r2, r3) = tokio::join!(timed(url.clone()), timed(url.clone()), timed(url.clone()));
    let mut done = [r1, r2, r3];
    done.sort_by_key(|(_, t)| *t);
    println!(
        "max_connections 1, delay 100ms, 3 concurrent: {:?}",
        done.iter()
            .map(|(s, t)| format!("{s} at {:.0} ms", ms(*t)))
            .collect::<Vec<_>>()
    );
    assert!(done.iter().all(|(s, _)| *s == 200), "{done:?}");
    // One at a time: the last finishes after three backend delays.
    assert!(done[2].1 >= Duration::from_millis(290), "{done:?}");

    // Now the holder outlasts the queue timeout.
    b.set_delay(1000);
    let before = b.requests();
    let first = tokio::spawn(timed_get(url.clone()));
    let entered = support::eventually(Duration::from_secs(2), || {
        let b = &b;
        async move { b.requests() > before }
    })
    .await;
    assert!(entered, "the first request never reached the backend");
    let second_started = Instant::now();
    let second = support::get(&url).await;
    let waited = second_started.elapsed();
    let (first_status, first_took) = first.await.expect("first request");
    println!(
        "max_connections 1, delay 1000ms: first -> {first_status} after {:.0} ms, second -> {} \
         {:?} after {:.0} ms",
        ms(first_took),
        second.status,
        second.text().trim(),
        ms(waited)
    );
    assert_eq!(first_status, 200);
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(800),
        "503 after {waited:?}, queue timeout 300 ms"
    );
    assert_eq!(
        b.requests(),
        before + 1,
        "the refused request reached the backend"
    );
    proxy.stop().await;
}

async fn timed_get(url: String) -> (u16, Duration) {
    let started = Instant::now();
    let resp = support::get(&url).await;
    (resp.status, started.elapsed())
}
