//! The seed's rate limiting scenario: over the limit, `429 Too Many Requests` with
//! `Retry-After`, and the backend never sees the refused requests.

mod support;

use std::time::Duration;

use support::{backend, config, url_for, Client, TestProxy};
use tokio::time::Instant;

#[tokio::test]
async fn forty_requests_against_a_limit_of_twenty_give_twenty_429s() {
    let one = backend("Response from server 1").await;
    let two = backend("Response from server 2").await;
    let mut cfg = config(vec![url_for(&one), url_for(&two)]);
    cfg.rate_limit.requests = 20;
    cfg.rate_limit.window = Duration::from_secs(1);
    // The limiter's windows count from the proxy's start.
    let started = Instant::now();
    let proxy = TestProxy::start(cfg);

    // As the seed's `for i in {1..40}; do curl -i http://localhost:3000/; done`.
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..40 {
        let resp = support::get(&proxy.url("/")).await;
        match resp.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry_after = resp
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .unwrap_or_else(|| panic!("request {i}: 429 without Retry-After"));
                let secs: u64 = retry_after
                    .to_str()
                    .expect("ASCII Retry-After")
                    .parse()
                    .expect("Retry-After in whole seconds");
                assert!(secs > 0, "Retry-After: {secs}");
            }
            other => panic!("request {i}: unexpected status {other}"),
        }
    }
    if started.elapsed() < Duration::from_secs(1) {
        // All forty within the first window.
        assert_eq!(ok, 20, "allowed");
        assert_eq!(limited, 20, "refused");
    } else {
        // A slow machine: the burst spilled into the next window, whose sliding count
        // rightly lets a few more through. Never fewer than the limit, though.
        assert!(ok >= 20, "only {ok} allowed");
    }
    assert_eq!(
        one.requests() + two.requests(),
        ok,
        "refused requests never reach a backend"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["rate_limited"], limited);
    assert_eq!(metrics["responses"], ok);
    proxy.stop().await;
}

#[tokio::test]
async fn requests_are_allowed_again_once_the_window_has_passed() {
    let server = backend("ok").await;
    let window = Duration::from_millis(200);
    let mut cfg = config(vec![url_for(&server)]);
    cfg.rate_limit.requests = 5;
    cfg.rate_limit.window = window;
    let started = Instant::now();
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;

    let mut allowed = 0;
    let refused = loop {
        let resp = client.get("/").await;
        match resp.status {
            200 if allowed < 20 => allowed += 1,
            429 => break resp,
            other => panic!("status {other} after {allowed} allowed"),
        }
    };
    if started.elapsed() < window {
        assert_eq!(allowed, 5);
    }
    assert_eq!(
        refused.headers.get(http::header::RETRY_AFTER).unwrap(),
        "1",
        "a 200 ms wait rounds up to one second"
    );

    assert_eventually!(
        Duration::from_secs(1),
        || async { support::get(&proxy.url("/")).await.status == 200 },
        "still limited long after the window passed"
    );
    assert_eq!(server.requests(), allowed + 1);
    proxy.stop().await;
}

#[tokio::test]
async fn zero_disables_rate_limiting() {
    let server = backend("ok").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.rate_limit.requests = 0;
    cfg.rate_limit.window = Duration::from_secs(1);
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;

    for i in 0..100 {
        assert_eq!(client.get("/").await.status, 200, "request {i}");
    }
    assert_eq!(server.requests(), 100);
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["rate_limited"], 0);
    assert_eq!(metrics["responses"], 100);
    proxy.stop().await;
}

#[tokio::test]
async fn health_and_metrics_are_not_rate_limited() {
    let server = backend("ok").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.rate_limit.requests = 2;
    // Long enough that the window never rolls over during the test.
    cfg.rate_limit.window = Duration::from_secs(60);
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;

    let mut refused = 0;
    for _ in 0..5 {
        match client.get("/").await.status {
            200 => {}
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(refused, 3);

    for _ in 0..10 {
        let health = client.get("/health").await;
        assert_eq!(health.status, 200, "{}", health.text());
        assert_eq!(health.json()["status"], "UP");
        let metrics = client.get("/metrics").await;
        assert_eq!(metrics.status, 200, "{}", metrics.text());
    }
    // Still limited for proxied requests.
    assert_eq!(client.get("/").await.status, 429);

    let metrics = proxy.metrics().await;
    assert_eq!(metrics["rate_limited"], refused + 1);
    assert_eq!(metrics["requests"], 6, "admin requests are not counted");
    assert_eq!(metrics["responses"], 2);
    assert_eq!(server.requests(), 2);
    proxy.stop().await;
}
