//! The seed's circuit breaker scenario and what surrounds it: dead backends are skipped
//! (retries), circuits open after five failures, go half-open after the open duration, close
//! again when the backend is back, and 502/503/504 are answered as the seed would.

mod support;

use std::time::Duration;

use support::backends::restart_on;
use support::metrics::backend_entry;
use support::{backend, config, url_for, TestProxy};
use switchyard::config::BackendUrl;
use tokio::time::Instant;

const BAD_GATEWAY_BODY: &str = "Error forwarding request";

async fn circuit(proxy: &TestProxy, url: &BackendUrl) -> String {
    let health = proxy.health().await;
    backend_entry(&health, url)["circuit"]
        .as_str()
        .expect("circuit string")
        .to_owned()
}

#[tokio::test]
async fn dead_backend_is_retried_around_and_its_circuit_opens_after_five_failures() {
    let live = backend("Response from server 1").await;
    let (_dead_port, dead) = support::dead_port();
    let proxy = TestProxy::start(config(vec![url_for(&live), dead.clone()]));

    for i in 0..20 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert!(!resp.text().contains(BAD_GATEWAY_BODY), "request {i}");
        assert_eq!(resp.text(), "Response from server 1\n", "request {i}");
    }
    assert_eq!(live.requests(), 20, "the live backend served every request");

    let metrics = proxy.metrics().await;
    let dead_stats = backend_entry(&metrics, &dead);
    assert_eq!(dead_stats["failures"], 5, "{metrics:#}");
    assert_eq!(dead_stats["errors"], 5, "{metrics:#}");
    assert_eq!(dead_stats["circuit"], "open", "{metrics:#}");
    let live_stats = backend_entry(&metrics, &url_for(&live));
    assert_eq!(live_stats["responses"], 20, "{metrics:#}");
    assert_eq!(live_stats["circuit"], "closed", "{metrics:#}");
    assert!(metrics["retries"].as_u64().expect("retries") > 0);
    // One retry per request that started on the dead backend before its circuit opened.
    assert_eq!(metrics["retries"], 5, "{metrics:#}");
    assert_eq!(metrics["requests"], 20);
    assert_eq!(metrics["responses"], 20);
    assert_eq!(metrics["errors"], 0);
    proxy.stop().await;
}

#[tokio::test]
async fn without_retries_every_other_request_fails_until_the_circuit_opens() {
    let live = backend("Response from server 1").await;
    let (_dead_port, dead) = support::dead_port();
    let mut cfg = config(vec![url_for(&live), dead.clone()]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);

    let mut statuses = Vec::new();
    for _ in 0..20 {
        let resp = support::get(&proxy.url("/")).await;
        match resp.status {
            200 => assert_eq!(resp.text(), "Response from server 1\n"),
            502 => assert!(resp.text().contains(BAD_GATEWAY_BODY), "{}", resp.text()),
            other => panic!("unexpected status {other}: {}", resp.text()),
        }
        statuses.push(resp.status);
    }
    // Round robin: the first ten alternate live / dead; the dead backend's fifth failure
    // opens its circuit and from then on everything goes to the live one.
    let mut expected = [200, 502].repeat(5);
    expected.extend([200; 10]);
    assert_eq!(statuses, expected);
    assert_eq!(statuses.iter().filter(|s| **s == 502).count(), 5);
    assert_eq!(live.requests(), 15);

    let metrics = proxy.metrics().await;
    assert_eq!(backend_entry(&metrics, &dead)["failures"], 5);
    assert_eq!(backend_entry(&metrics, &dead)["circuit"], "open");
    assert_eq!(metrics["errors"], 5);
    assert_eq!(metrics["responses"], 15);
    assert_eq!(metrics["retries"], 0);
    proxy.stop().await;
}

#[tokio::test]
async fn circuit_goes_half_open_and_closes_when_the_backend_is_back() {
    let one = backend("Response from server 1").await;
    let two = backend("Response from server 2").await;
    let two_url = url_for(&two);
    let two_port = two.addr().port();
    let open_duration = Duration::from_millis(400);
    let mut cfg = config(vec![url_for(&one), two_url.clone()]);
    cfg.pools[0].breaker.open_duration = open_duration;
    let proxy = TestProxy::start(cfg);

    // Both answer, so the proxy holds a keep-alive connection to each.
    for _ in 0..2 {
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    }
    assert_eq!((one.requests(), two.requests()), (1, 1));

    two.stop().await;
    // Five requests start on server 2 and fail over to server 1; the last of them (the
    // tenth) opens the circuit, so it opened after `before_last`.
    let mut before_last = Instant::now();
    for _ in 0..10 {
        before_last = Instant::now();
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "Response from server 1\n");
    }
    assert_eq!(circuit(&proxy, &two_url).await, "open");

    let two = restart_on(two_port, "Response from server 2 again").await;
    for _ in 0..2 {
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    }
    if before_last.elapsed() < open_duration {
        assert_eq!(
            two.requests(),
            0,
            "an open circuit keeps traffic away even from a backend that is back"
        );
    }

    assert_eventually!(
        Duration::from_secs(2),
        || async {
            let resp = support::get(&proxy.url("/")).await;
            resp.status == 200 && resp.text() == "Response from server 2 again\n"
        },
        "requests never reached the restarted backend"
    );
    assert!(
        before_last.elapsed() >= open_duration,
        "the trial request came before the open duration had passed"
    );
    assert_eq!(circuit(&proxy, &two_url).await, "closed");
    let health = proxy.health().await;
    assert_eq!(backend_entry(&health, &two_url)["consecutive_failures"], 0);

    // Closed again: round robin includes it as before.
    let before = two.requests();
    for _ in 0..4 {
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    }
    assert_eq!(two.requests() - before, 2);
    proxy.stop().await;
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn failed_half_open_probe_reopens_the_circuit() {
    let live = backend("Response from server 1").await;
    let (_dead_port, dead) = support::dead_port();
    let open_duration = Duration::from_millis(300);
    let mut cfg = config(vec![url_for(&live), dead.clone()]);
    cfg.pools[0].breaker.open_duration = open_duration;
    let proxy = TestProxy::start(cfg);

    for _ in 0..10 {
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    }
    let metrics = proxy.metrics().await;
    assert_eq!(backend_entry(&metrics, &dead)["circuit"], "open");
    assert_eq!(backend_entry(&metrics, &dead)["failures"], 5);

    // Once the open duration has passed, a request is let through as a trial; it fails, is
    // retried on the live backend (the client sees 200), and the circuit opens again.
    // The circuit re-opened after the last request polled here was sent.
    let probe_sent = std::cell::Cell::new(Instant::now());
    assert_eventually!(
        Duration::from_secs(2),
        || async {
            probe_sent.set(Instant::now());
            let resp = support::get(&proxy.url("/")).await;
            assert_eq!(resp.status, 200, "{}", resp.text());
            backend_entry(&proxy.metrics().await, &dead)["failures"] == 6
        },
        "no trial request reached the dead backend"
    );
    let reopened_after = probe_sent.get();
    assert_eq!(circuit(&proxy, &dead).await, "open");

    // Re-opened for a full period: the next requests do not try it.
    for _ in 0..4 {
        assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    }
    if reopened_after.elapsed() < open_duration {
        let metrics = proxy.metrics().await;
        assert_eq!(backend_entry(&metrics, &dead)["failures"], 6, "{metrics:#}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn all_backends_dead_gives_502_then_503_once_every_circuit_is_open() {
    let (_dead_port_one, dead_one) = support::dead_port();
    let (_dead_port_two, dead_two) = support::dead_port();
    let proxy = TestProxy::start(config(vec![dead_one.clone(), dead_two.clone()]));

    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = support::get(&proxy.url("/")).await;
        match resp.status {
            502 => assert!(resp.text().contains(BAD_GATEWAY_BODY), "{}", resp.text()),
            503 => assert!(
                !resp.text().contains(BAD_GATEWAY_BODY),
                "503 is not a forwarding error: {}",
                resp.text()
            ),
            other => panic!("unexpected status {other}: {}", resp.text()),
        }
        statuses.push(resp.status);
    }
    // Each request tries both backends (one retry), so each counts one failure on each:
    // after five requests both circuits are open.
    assert_eq!(statuses, [502, 502, 502, 502, 502, 503, 503, 503]);

    let metrics = proxy.metrics().await;
    for dead in [&dead_one, &dead_two] {
        assert_eq!(backend_entry(&metrics, dead)["circuit"], "open");
        assert_eq!(backend_entry(&metrics, dead)["failures"], 5);
    }
    assert_eq!(metrics["errors"], 8);
    proxy.stop().await;
}

#[tokio::test]
async fn backend_503_responses_are_relayed_and_open_its_circuit() {
    let unwell = backend("unwell").await;
    let url = url_for(&unwell);
    let proxy = TestProxy::start(config(vec![url.clone()]));
    let port = unwell.addr().port().to_string();

    for i in 0..5 {
        let resp = support::get(&proxy.url("/status/503")).await;
        assert_eq!(resp.status, 503, "request {i}");
        assert_eq!(resp.text(), "status 503\n", "the backend's own body");
        assert_eq!(
            resp.headers.get("x-served-by").map(|v| v.as_bytes()),
            Some(port.as_bytes()),
            "relayed from the backend"
        );
    }
    assert_eq!(unwell.requests(), 5);
    let metrics = proxy.metrics().await;
    let stats = backend_entry(&metrics, &url);
    assert_eq!(stats["failures"], 5, "{metrics:#}");
    assert_eq!(stats["responses"], 5, "{metrics:#}");
    assert_eq!(stats["circuit"], "open", "{metrics:#}");
    assert_eq!(metrics["responses"], 5);

    // Open: switchyard answers itself and the backend sees nothing more.
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, 503);
    assert!(resp.headers.get("x-served-by").is_none());
    assert_eq!(unwell.requests(), 5);
    proxy.stop().await;
}

#[tokio::test]
async fn slow_backend_gets_504_after_the_upstream_timeout_and_counts_as_a_failure() {
    let slow = backend("slow").await;
    let url = url_for(&slow);
    let mut cfg = config(vec![url.clone()]);
    cfg.pools[0].timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(cfg);

    let started = Instant::now();
    let resp = support::get(&proxy.url("/delay/2000")).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(took >= Duration::from_millis(200), "took {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(slow.requests(), 1);

    let metrics = proxy.metrics().await;
    let stats = backend_entry(&metrics, &url);
    assert_eq!(stats["failures"], 1, "{metrics:#}");
    assert_eq!(stats["errors"], 1, "{metrics:#}");
    assert_eq!(stats["consecutive_failures"], 1, "{metrics:#}");
    assert_eq!(metrics["errors"], 1);
    assert_eq!(metrics["responses"], 0);
    proxy.stop().await;
}

/// A backend that answers the first request on its first connection, then reads the second
/// request on that connection and closes it unanswered (as a backend whose keep-alive
/// timeout fires just as a request arrives does); every later connection is answered.
async fn backend_closing_a_kept_alive_connection(
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_head(stream: &mut tokio::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.expect("accept");
        if read_head(&mut first).await {
            let _ = first
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n")
                .await;
        }
        let _ = read_head(&mut first).await;
        drop(first);
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                while read_head(&mut stream).await {
                    let ok = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfresh\n")
                        .await;
                    if ok.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn get_on_a_pooled_connection_the_backend_closes_unanswered_is_retried() {
    let (addr, task) = backend_closing_a_kept_alive_connection().await;
    let url = support::url_for_port(addr.port());
    let proxy = TestProxy::start(config(vec![url.clone()]));
    let mut client = support::Client::connect(proxy.addr).await;

    let first = client.get("/").await;
    assert_eq!((first.status, first.text().as_str()), (200, "first\n"));
    // The proxy reuses its pooled connection; the backend reads the request and closes it
    // without a byte of response. Nothing was answered, and GET is idempotent: the seed (Go's
    // transport) retries such a request on a new connection.
    let second = client.get("/").await;
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "fresh\n"),
        "a request lost to a keep-alive close race was not retried"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(backend_entry(&metrics, &url)["failures"], 0, "{metrics:#}");
    proxy.stop().await;
    task.abort();
}
