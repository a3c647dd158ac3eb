//! Upstream keep-alive pooling: connections to backends are reused, a pooled connection the
//! backend closed is not an error for the next request, and many concurrent clients are
//! served.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::backends::restart_on;
use support::{backend, config, url_for, Client, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn sequential_requests_on_one_client_connection_reuse_upstream_connections() {
    let server = backend("b").await;
    let cfg = config(vec![url_for(&server)]);
    let workers = cfg.workers as u64;
    let proxy = TestProxy::start(cfg);

    let mut client = Client::connect(proxy.addr).await;
    for i in 0..50 {
        let resp = client.get(&format!("/echo?i={i}")).await;
        assert_eq!(resp.status, 200, "request {i}");
    }
    assert_eq!(server.requests(), 50);
    let connections = server.connections();
    eprintln!("one client connection, 50 requests: {connections} upstream connection(s)");
    assert!(
        (1..=2 * workers).contains(&connections),
        "{connections} upstream connections for 50 sequential requests"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn sequential_requests_on_fresh_client_connections_share_the_pool() {
    let server = backend("b").await;
    let cfg = config(vec![url_for(&server)]);
    let workers = cfg.workers as u64;
    let proxy = TestProxy::start(cfg);

    for i in 0..50 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200, "request {i}");
    }
    assert_eq!(server.requests(), 50);
    let connections = server.connections();
    eprintln!("50 client connections, one request each: {connections} upstream connection(s)");
    assert!(
        (1..=2 * workers).contains(&connections),
        "{connections} upstream connections for 50 sequential requests"
    );
    proxy.stop().await;
}

/// How [`raw_backend`] ends its connections.
#[derive(Clone, Copy, Debug)]
enum Closing {
    /// Answers with `Connection: close`, then closes.
    Announced,
    /// Answers as if keeping the connection alive, then closes it without a word.
    Silent,
    /// Keeps the connection alive, but closes it after this long idle (a backend whose
    /// keep-alive timeout is shorter than the proxy's pool idle timeout).
    IdleFor(Duration),
    /// Answers the first request on a connection, then reads the second and closes without
    /// answering: what the proxy sees when a backend's keep-alive timeout fires just as a
    /// pooled connection is reused (the request is written, no response byte comes back).
    DropsSecondRequest,
    /// Answers, then after this long shuts its sending side (a backend's keep-alive timeout
    /// firing) and waits for the proxy to close the connection.
    HalfClosesAfter(Duration),
    /// Answers, then keeps the connection open until the proxy closes it.
    Holds,
}

/// A backend written on a raw socket, so that the test decides exactly when it closes.
#[derive(Clone, Default)]
struct RawBackendStats {
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    /// Requests read and left unanswered ([`Closing::DropsSecondRequest`]).
    dropped: Arc<AtomicU64>,
    /// How long after its last answer (`Holds`) or its half-close (`HalfClosesAfter`) the
    /// backend saw the proxy close each connection.
    closed_by_proxy_after: Arc<std::sync::Mutex<Vec<Duration>>>,
}

/// Starts a backend answering every GET with `ok`, closing connections as `closing` says.
async fn raw_backend(closing: Closing) -> (SocketAddr, RawBackendStats) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stats = RawBackendStats::default();
    let shared = stats.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let stats = shared.clone();
            tokio::spawn(async move {
                serve_raw(stream, closing, &stats).await;
                stats.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, stats)
}

async fn serve_raw(mut stream: TcpStream, closing: Closing, stats: &RawBackendStats) {
    let mut buf = Vec::new();
    let mut on_this_connection = 0;
    loop {
        // Read one request head (the proxy sends GETs without a body here).
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut tmp = [0u8; 4096];
            let read = match closing {
                Closing::IdleFor(idle) if buf.is_empty() => {
                    match tokio::time::timeout(idle, stream.read(&mut tmp)).await {
                        Ok(read) => read,
                        Err(_) => return, // idle too long: close
                    }
                }
                _ => stream.read(&mut tmp).await,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        buf.drain(..head_end);
        on_this_connection += 1;
        if matches!(closing, Closing::DropsSecondRequest) && on_this_connection == 2 {
            stats.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let n = stats.requests.fetch_add(1, Ordering::SeqCst);
        let body = format!("ok {n}");
        let connection = match closing {
            Closing::Announced => "Connection: close\r\n",
            _ => "",
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\n{connection}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        let since = match closing {
            Closing::Announced | Closing::Silent => return,
            Closing::IdleFor(_) | Closing::DropsSecondRequest => continue,
            Closing::HalfClosesAfter(after) => {
                tokio::time::sleep(after).await;
                let _ = stream.shutdown().await;
                tokio::time::Instant::now()
            }
            Closing::Holds => tokio::time::Instant::now(),
        };
        let mut tmp = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut tmp).await {}
        let mut closed = stats.closed_by_proxy_after.lock().expect("stats");
        closed.push(since.elapsed());
        return;
    }
}

#[tokio::test]
async fn backend_announcing_connection_close_is_not_an_error() {
    let (addr, stats) = raw_backend(Closing::Announced).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));
    let mut client = Client::connect(proxy.addr).await;
    for i in 0..20 {
        let resp = client.get("/").await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert!(resp.text().starts_with("ok "), "{}", resp.text());
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 20);
    assert_eq!(stats.connections.load(Ordering::SeqCst), 20);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["errors"], 0, "{metrics}");
    proxy.stop().await;
}

#[tokio::test]
async fn backend_closing_silently_after_each_response_is_not_an_error() {
    let (addr, stats) = raw_backend(Closing::Silent).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.push(client.get("/").await.status);
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(failed, 0, "statuses: {statuses:?}");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 50);
    proxy.stop().await;
}

#[tokio::test]
async fn pooled_connection_closed_by_an_idle_backend_is_replaced() {
    let (addr, stats) = raw_backend(Closing::IdleFor(Duration::from_millis(50))).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));
    let mut client = Client::connect(proxy.addr).await;

    for round in 1..=3u64 {
        let resp = client.get("/").await;
        assert_eq!(resp.status, 200, "round {round}: {}", resp.text());
        // Wait until the backend has closed the connection the proxy now holds idle.
        assert_eventually!(
            Duration::from_secs(2),
            || {
                let closed = stats.closed.clone();
                async move { closed.load(Ordering::SeqCst) >= round }
            },
            "the backend did not close its idle connection"
        );
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 3);
    assert_eq!(stats.connections.load(Ordering::SeqCst), 3);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["errors"], 0, "{metrics}");
    assert_eq!(metrics["backends"][0]["failures"], 0, "{metrics}");
    proxy.stop().await;
}

/// The connections the backend saw the proxy close, waiting up to `within` for `n`.
async fn closed_by_proxy(stats: &RawBackendStats, n: usize, within: Duration) -> Vec<Duration> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let closed = stats.closed_by_proxy_after.lock().expect("stats").clone();
        if closed.len() >= n || tokio::time::Instant::now() >= deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_pooled_connection_its_backend_closes_is_closed_by_the_proxy_too() {
    // An idle HTTP/1.1 connection has no task of its own: the worker's sweep notices.
    let (addr, stats) = raw_backend(Closing::HalfClosesAfter(Duration::from_millis(100))).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/").await.status, 200);
    let closed = closed_by_proxy(&stats, 1, Duration::from_secs(3)).await;
    println!("backend half-closed an idle pooled connection; the proxy closed it after {closed:?}");
    assert_eq!(closed.len(), 1, "the proxy kept the closed connection");
    // At once when the sweep watches the socket, else at its next pass.
    assert!(closed[0] < switchyard::upstream::idle::SWEEP_EVERY + Duration::from_millis(500));
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["backends"][0]["idle_connections"], 0, "{metrics}");
    // The next request opens a new connection, without an error.
    assert_eq!(client.get("/").await.status, 200);
    assert_eq!(stats.connections.load(Ordering::SeqCst), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn an_idle_pooled_connection_is_closed_at_the_idle_timeout_without_new_traffic() {
    let (addr, stats) = raw_backend(Closing::Holds).await;
    let mut cfg = config(vec![support::url_for_port(addr.port())]);
    let idle_timeout = Duration::from_millis(300);
    cfg.pools[0].keepalive.idle_timeout = idle_timeout;
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/").await.status, 200);
    let closed = closed_by_proxy(&stats, 1, Duration::from_secs(4)).await;
    println!(
        "idle timeout {idle_timeout:?}: the proxy closed the idle connection after {closed:?}"
    );
    assert_eq!(closed.len(), 1, "the idle connection outlived its timeout");
    let sweep = switchyard::upstream::idle::SWEEP_EVERY;
    assert!(closed[0] >= idle_timeout && closed[0] < idle_timeout + sweep * 2);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["backends"][0]["idle_connections"], 0, "{metrics}");
    proxy.stop().await;
}

#[tokio::test]
async fn reused_connection_closed_under_a_get_is_retried_on_a_new_connection() {
    let (addr, stats) = raw_backend(Closing::DropsSecondRequest).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(addr.port())]));
    let mut client = Client::connect(proxy.addr).await;

    let first = client.get("/").await;
    assert_eq!(first.status, 200, "{}", first.text());
    // The pooled connection is reused for this one; the backend reads it and closes.
    let second = client.get("/").await;
    assert_eq!(
        stats.dropped.load(Ordering::SeqCst),
        1,
        "the race was staged"
    );
    assert_eq!(
        second.status,
        200,
        "a GET that got no response byte on a reused connection is safe to retry \
         (RFC 9110 §9.2.2, RFC 9112 §9.3.1; Go's http.Transport does): {}",
        second.text()
    );
    assert_eq!(stats.connections.load(Ordering::SeqCst), 2);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["backends"][0]["failures"], 0, "{metrics}");
    proxy.stop().await;
}

#[tokio::test]
async fn backend_restarted_on_the_same_port_is_reached_through_the_pool() {
    let first = backend("first").await;
    let port = first.addr().port();
    let proxy = TestProxy::start(config(vec![url_for(&first)]));
    let mut client = Client::connect(proxy.addr).await;

    let resp = client.get("/").await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "first\n"));
    // The proxy now holds an idle connection to `first`; stopping closes it.
    first.stop().await;

    let second = restart_on(port, "second").await;

    for i in 0..5 {
        let resp = client.get("/").await;
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "second\n"),
            "request {i} after the restart"
        );
    }
    assert_eq!(second.requests(), 5);
    assert_eq!(second.connections(), 1, "one new connection, then reused");
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["errors"], 0, "{metrics}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_all_succeed() {
    let one = backend("one").await;
    let two = backend("two").await;
    let proxy = TestProxy::start(config(vec![url_for(&one), url_for(&two)]));

    let mut tasks = Vec::new();
    for c in 0..20 {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut ok = 0;
            for r in 0..20 {
                let resp = client.get(&format!("/echo?client={c}&request={r}")).await;
                assert_eq!(resp.status, 200, "client {c} request {r}");
                assert_eq!(
                    resp.json()["query"],
                    format!("client={c}&request={r}"),
                    "a response went to the wrong client"
                );
                ok += 1;
            }
            ok
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("client task");
    }
    assert_eq!(total, 400);
    assert_eq!(one.requests() + two.requests(), 400);
    assert_eq!(one.requests(), 200, "round robin");
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["requests"], 400, "{metrics}");
    assert_eq!(metrics["responses"], 400, "{metrics}");
    assert_eq!(metrics["errors"], 0, "{metrics}");
    eprintln!(
        "upstream connections for 20 concurrent clients: {} + {}",
        one.connections(),
        two.connections()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = backend("slow first").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    // Three requests in one write; the first is the slowest.
    let out = support::raw(
        proxy.addr,
        b"GET /delay/100 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo?n=2 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo?n=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{out:?}");
    let first = out.find("slow first\n").expect("first response");
    let second = out.find("\"query\":\"n=2\"").expect("second response");
    let third = out.find("\"query\":\"n=3\"").expect("third response");
    assert!(first < second && second < third, "out of order: {out:?}");
    assert_eq!(server.requests(), 3);
    proxy.stop().await;
}
