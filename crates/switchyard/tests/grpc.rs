//! gRPC's terms on the paths that exist today (HTTP/1.1; HTTP/2 comes later): an outcome
//! reported in the trailers (`grpc-status`) is classified when the response ends, and feeds
//! the circuit breaker like any other failure; a gRPC client that switchyard cannot serve
//! gets a gRPC answer (`200`, `grpc-status`, `grpc-message`), an HTTP client a text one.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::metrics::backend_entry;
use support::{config, dead_port, url_for_port, Client, TestProxy};
use switchyard::config::BackendUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A backend answering every request `200 application/grpc` with a chunked body and a
/// `grpc-status` trailer: the value in `status` at the time of the request.
async fn grpc_backend(status: Arc<AtomicU32>) -> BackendUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let status = status.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                // One request per connection is enough here: read its head, answer, close.
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let code = status.load(Ordering::SeqCst);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n\
                     transfer-encoding: chunked\r\ntrailer: grpc-status\r\n\
                     connection: close\r\n\r\n\
                     5\r\n\0\0\0\0\0\r\n0\r\ngrpc-status: {code}\r\n\r\n"
                );
                let _ = stream.write_all(resp.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url_for_port(port)
}

/// A unary gRPC-looking call: `POST` with `content-type: application/grpc`.
fn grpc_call() -> http::Request<Bytes> {
    http::Request::post("/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Bytes::from_static(b"\0\0\0\0\0"))
        .expect("request")
}

#[tokio::test]
async fn grpc_status_in_trailers_is_a_failure_for_the_breaker() {
    let status = Arc::new(AtomicU32::new(14));
    let url = grpc_backend(status.clone()).await;
    let mut cfg = config(vec![url.clone()]);
    cfg.pools[0].retries = 0;
    cfg.pools[0].breaker.failure_threshold = 3;
    cfg.pools[0].breaker.open_duration = Duration::from_secs(60);
    cfg.pools[0].outlier.consecutive_5xx = 0;
    let proxy = TestProxy::start(cfg);

    // UNAVAILABLE twice, then OK: the OK resets the count.
    let mut counts = Vec::new();
    for code in [14, 14, 0, 13, 4] {
        status.store(code, Ordering::SeqCst);
        let mut client = Client::connect(proxy.addr).await;
        let resp = client.send(grpc_call()).await.expect("response");
        assert_eq!(resp.status, 200, "{}", resp.text());
        let expected = match code {
            0 => 0,
            _ => counts.last().copied().unwrap_or(0) + 1,
        };
        let entry = support::eventually(Duration::from_secs(1), || async {
            let m = proxy.metrics().await;
            backend_entry(&m, &url)["consecutive_failures"] == expected
        })
        .await;
        assert!(
            entry,
            "after grpc-status {code}: {:#}",
            proxy.metrics().await
        );
        counts.push(expected);
    }
    let m = proxy.metrics().await;
    let entry = backend_entry(&m, &url);
    println!(
        "grpc-status 14, 14, 0, 13, 4 in trailers: consecutive failures {counts:?}, circuit {}",
        entry["circuit"]
    );
    assert_eq!(counts, [1, 2, 0, 1, 2]);
    assert_eq!(entry["circuit"], "closed");
    // A third failure in a row opens the circuit.
    status.store(15, Ordering::SeqCst);
    let mut client = Client::connect(proxy.addr).await;
    client.send(grpc_call()).await.expect("response");
    let opened = support::eventually(Duration::from_secs(1), || async {
        backend_entry(&proxy.metrics().await, &url)["circuit"] == "open"
    })
    .await;
    assert!(opened, "{:#}", proxy.metrics().await);
    proxy.stop().await;
}

#[tokio::test]
async fn a_grpc_client_gets_a_grpc_error_and_an_http_client_a_text_one() {
    let (_socket, url) = dead_port();
    let mut cfg = config(vec![url]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);

    let mut client = Client::connect(proxy.addr).await;
    let grpc = client.send(grpc_call()).await.expect("response");
    let mut client = Client::connect(proxy.addr).await;
    let plain = client
        .send(
            http::Request::post("/pkg.Service/Method")
                .body(Bytes::from_static(b"x"))
                .expect("request"),
        )
        .await
        .expect("response");
    println!(
        "dead backend: gRPC client {} grpc-status {:?} grpc-message {:?}; HTTP client {} {:?}",
        grpc.status,
        grpc.headers.get("grpc-status"),
        grpc.headers.get("grpc-message"),
        plain.status,
        plain.text()
    );
    assert_eq!(grpc.status, 200);
    assert_eq!(grpc.headers["content-type"], "application/grpc");
    assert_eq!(grpc.headers["grpc-status"], "14", "UNAVAILABLE");
    assert!(grpc.headers.contains_key("grpc-message"));
    assert!(grpc.body.is_empty());
    assert_eq!(plain.status, 502);
    assert_eq!(plain.text(), "Error forwarding request\n");
    proxy.stop().await;
}

#[tokio::test]
async fn grpc_timeout_is_the_request_deadline() {
    let slow = support::backend("slow").await;
    let mut cfg = config(vec![support::url_for(&slow)]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    let call = |timeout: &'static str| {
        http::Request::post("/delay/600")
            .header("content-type", "application/grpc")
            .header("grpc-timeout", timeout)
            .body(Bytes::new())
            .expect("request")
    };
    let mut client = Client::connect(proxy.addr).await;
    let started = tokio::time::Instant::now();
    let late = client.send(call("100m")).await.expect("response");
    let took = started.elapsed();
    let mut client = Client::connect(proxy.addr).await;
    let in_time = client.send(call("5S")).await.expect("response");
    println!(
        "backend taking 600 ms: grpc-timeout 100m -> {} grpc-status {:?} after {took:?}; \
         grpc-timeout 5S -> {}",
        late.status,
        late.headers.get("grpc-status"),
        in_time.status
    );
    assert_eq!(late.status, 200);
    assert_eq!(late.headers["grpc-status"], "4", "DEADLINE_EXCEEDED");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(in_time.status, 200);
    assert!(!in_time.headers.contains_key("grpc-status"));
    proxy.stop().await;
}
