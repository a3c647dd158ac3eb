//! Graceful shutdown: in-flight requests finish, idle connections close at once, the drain
//! timeout bounds the wait, and the binary exits 0 on SIGTERM.

mod support;

use support::process::start_proxy;

use std::time::Duration;

use support::{backend, config, url_for, Client, TestProxy};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test]
async fn graceful_shutdown_lets_the_request_in_flight_finish() {
    let server = backend("slow answer").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let addr = proxy.addr;
    let url = proxy.url("/delay/500");
    let sent = Instant::now();
    let in_flight = tokio::spawn(async move { support::get(&url).await });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );

    let (report, refused_while_draining) = tokio::join!(proxy.stop(), async {
        support::eventually(Duration::from_millis(400), || async {
            TcpStream::connect(addr).await.is_err()
        })
        .await
    });
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "shutdown returned before the in-flight request was answered"
    );
    assert!(report.drained, "{report:?}");
    assert!(
        refused_while_draining,
        "new connections were still accepted while draining"
    );
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow answer\n");
    assert_eq!(
        resp.headers
            .get(http::header::CONNECTION)
            .map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the last response on a connection being shut down says so"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "connections are refused after shutdown"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_at_once() {
    let server = backend("ok").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(proxy.addr).await;
        assert_eq!(client.get("/").await.status, 200);
        assert!(!client.is_closed());
        clients.push(client);
    }

    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    // The drain timeout is 5 s and the keep-alive timeout 5 s: neither was waited for.
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    let clients = &clients;
    assert_eventually!(
        Duration::from_secs(1),
        || async move { clients.iter().all(Client::is_closed) },
        "idle connections were left open"
    );
}

#[tokio::test]
async fn drain_timeout_bounds_shutdown() {
    let server = backend("too slow").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.shutdown_timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    let in_flight = tokio::spawn(async move {
        let result = client
            .send(http::Request::get("/delay/5000").body(bytes::Bytes::new())?)
            .await;
        Ok::<_, http::Error>((result, client))
    });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );

    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(!report.drained, "{report:?}");
    assert!(took >= Duration::from_millis(200), "shutdown took {took:?}");
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");

    let (result, client) = tokio::time::timeout(Duration::from_secs(1), in_flight)
        .await
        .expect("the cut connection was noticed")
        .unwrap()
        .unwrap();
    assert!(
        result.is_err(),
        "a request cut by the drain timeout got a response: {result:?}"
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn binary_exits_zero_on_sigterm_after_finishing_the_request_in_flight() {
    let server = backend("slow answer").await;
    let (proc, addr) = start_proxy(
        |addr| {
            ["--listen", &addr.to_string(), "--backends", &server.url()]
                .into_iter()
                .map(String::from)
                .collect()
        },
        &[server.url()],
    )
    .await;

    let sent = Instant::now();
    let in_flight =
        tokio::spawn(async move { support::get(&format!("http://{addr}/delay/500")).await });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );
    proc.terminate().await;

    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow answer\n");
    let output = proc.wait(Duration::from_secs(5)).await;
    assert!(
        output.status.success(),
        "exit status {}; stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(sent.elapsed() >= Duration::from_millis(500));
}
