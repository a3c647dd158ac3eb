//! The connection limits against a running switchyard: connections per listener and per
//! client IP (closed at once, or answered `503`), requests per keep-alive connection
//! (`Connection: close` on HTTP/1.1, `GOAWAY` on HTTP/2) and requests in progress per
//! client IP; every place taken is given back when its connection or request ends.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::h2::H2Client;
use support::metrics::num;
use support::{backend, config, eventually, url_for, Client, TestProxy};
use switchyard::config::{ConnLimits, OverLimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(3);

fn proxy_with(backend: &test_server::TestServer, limits: ConnLimits) -> TestProxy {
    let mut config = config(vec![url_for(backend)]);
    config.limits.connections = limits;
    TestProxy::start(config)
}

/// Sends one `GET /` on a fresh connection and returns what came back before the
/// connection closed or `WAIT` passed (empty: closed without a byte).
async fn one_get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `/metrics` once a connection can be made again, and how many tries were refused
/// before (a place comes back when the connection task has seen the close).
async fn metrics_when_free(proxy: &TestProxy) -> (serde_json::Value, u64) {
    let refused = std::cell::Cell::new(0);
    let free = eventually(WAIT, || async {
        let ok = one_get(proxy.addr).await.starts_with("HTTP/1.1 200");
        refused.set(refused.get() + u64::from(!ok));
        ok
    });
    assert!(free.await, "the places were never given back");
    (proxy.metrics().await, refused.get())
}

#[tokio::test]
async fn connections_over_the_listener_limit_are_closed_and_places_come_back() {
    let backend = backend("b").await;
    let limits = ConnLimits {
        max_connections: 2,
        ..ConnLimits::default()
    };
    let proxy = proxy_with(&backend, limits);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(proxy.addr).await;
        assert_eq!(c.get("/").await.status, 200);
        held.push(c);
    }
    let refused = one_get(proxy.addr).await;
    assert_eq!(refused, "", "closed without an answer");
    drop(held);
    let (m, retried) = metrics_when_free(&proxy).await;
    assert_eq!(num(&m["refused_connections"]), 1 + retried, "{m:#}");
    println!("max_connections = 2: third connection closed at once; places back after close");
    proxy.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_get_503_when_configured() {
    let backend = backend("b").await;
    let limits = ConnLimits {
        max_connections_per_ip: 1,
        over_limit: OverLimit::Unavailable,
        ..ConnLimits::default()
    };
    let proxy = proxy_with(&backend, limits);
    let mut first = Client::connect(proxy.addr).await;
    assert_eq!(first.get("/").await.status, 200);
    let second = one_get(proxy.addr).await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    assert!(second.contains("too many connections"), "{second}");
    drop(first);
    let (m, retried) = metrics_when_free(&proxy).await;
    // The `/metrics` connection itself may still find the last try's place taken: admin
    // endpoints are answered on it all the same.
    let refused = num(&m["refused_connections_per_ip"]);
    assert!((1 + retried..=2 + retried).contains(&refused), "{m:#}");
    println!("max_connections_per_ip = 1: second connection answered 503 and closed");
    proxy.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_closes_after_its_last_request() {
    let backend = backend("b").await;
    let limits = ConnLimits {
        max_requests_per_connection: 3,
        ..ConnLimits::default()
    };
    let proxy = proxy_with(&backend, limits);
    let mut client = Client::connect(proxy.addr).await;
    let first = client.get("/").await;
    assert!(first.headers.get("connection").is_none());
    client.get("/").await;
    let last = client.get("/").await;
    assert_eq!(last.status, 200);
    assert_eq!(last.headers["connection"], "close");
    let closed = eventually(WAIT, || async { client.is_closed() }).await;
    assert!(
        closed,
        "HTTP/1.1 connection still open after its last request"
    );
    // HTTP/2: GOAWAY after the third stream; the client sees its connection end.
    let mut h2 = H2Client::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(h2.get("/").await.resp.status, 200);
    }
    let gone = eventually(WAIT, || async { h2.is_closed() }).await;
    assert!(gone, "HTTP/2 connection still open after its last request");
    let m = proxy.metrics().await;
    assert_eq!(num(&m["connections_at_max_requests"]), 2, "{m:#}");
    println!("max_requests_per_connection = 3: HTTP/1.1 Connection: close, HTTP/2 GOAWAY");
    proxy.stop().await;
}

#[tokio::test]
async fn requests_in_progress_per_client_ip_are_capped_and_given_back() {
    let backend = backend("b").await;
    let limits = ConnLimits {
        max_requests_per_ip: 1,
        ..ConnLimits::default()
    };
    let proxy = proxy_with(&backend, limits);
    let addr = proxy.addr;
    let slow = tokio::spawn(async move { Client::connect(addr).await.get("/delay/400").await });
    // Wait until the slow request is at the backend, then try another from the same IP.
    let started = eventually(WAIT, || async { backend.requests() == 1 }).await;
    assert!(started);
    let mut other = Client::connect(addr).await;
    let busy = other.get("/").await;
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(slow.await.expect("slow request").status, 200);
    let mut again = Client::connect(addr).await;
    assert_eq!(again.get("/").await.status, 200, "the place came back");
    let m = proxy.metrics().await;
    assert_eq!(num(&m["refused_requests_per_ip"]), 1, "{m:#}");
    println!(
        "max_requests_per_ip = 1: second concurrent request 503, then 200 once the first ended"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_listener_s_own_connection_limit_overrides_the_global_one() {
    let backend = backend("b").await;
    let text = format!(
        "workers = 1\n[rate_limit]\nrequests = 0\n\
         [limits]\nmax_connections = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nmax_connections = 3\n\
         [pools.p]\nbackends = [\"{}\"]\n[[routes]]\npool = \"p\"\n",
        backend.url()
    );
    let config = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy = TestProxy::start(config);
    let addrs = proxy.server.listener_addrs();
    let (first, second) = (addrs[0].0, addrs[1].0);
    let mut held = Vec::new();
    let mut c = Client::connect(first).await;
    assert_eq!(c.get("/").await.status, 200);
    held.push(c);
    assert_eq!(
        one_get(first).await,
        "",
        "[limits] max_connections = 1 on the first"
    );
    for _ in 0..3 {
        let mut c = Client::connect(second).await;
        assert_eq!(c.get("/").await.status, 200);
        held.push(c);
    }
    assert_eq!(
        one_get(second).await,
        "",
        "its own max_connections = 3 on the second"
    );
    println!("per-listener max_connections: 1 (global) and 3 (own) held, the next refused on each");
    drop(held);
    proxy.stop().await;
}
