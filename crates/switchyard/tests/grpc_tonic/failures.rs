//! What switchyard answers a tonic client itself (HTTP 200, a `grpc-status`), and a
//! backend's UNAVAILABLE in the trailers counting for the breaker.

use std::time::Duration;

use hyper::body::Incoming;
use switchyard::config::{BackendUrl, Scheme};
use tokio::time::Instant;
use tonic::{Code, Request};

use crate::client::{meta, EchoClient};
use crate::service::GrpcBackend;
use crate::support::h2::{channel_body, H2Backend};
use crate::support::metrics::backend_entry;
use crate::support::{config, dead_port, eventually, TestProxy};
use crate::{proxied, step};

#[tokio::test]
async fn grpc_timeout_against_a_slow_backend_is_deadline_exceeded_at_the_deadline() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let deadline = Duration::from_millis(300);
    let mut req = Request::new("slow".to_owned());
    // tonic sends it as `grpc-timeout`; this client has no timer of its own, so the
    // answer is switchyard's.
    req.set_timeout(deadline);
    let started = Instant::now();
    let err = step("deadline", client.unary(req))
        .await
        .expect_err("DEADLINE_EXCEEDED");
    let took = started.elapsed();
    // The backend's call is cancelled (its stream reset), not left running.
    step("backend call cancelled", backend.cancelled()).await;
    let seen = backend.seen();
    println!(
        "grpc-timeout {:?} ({deadline:?}), backend taking 10 s: {:?} {:?} after {took:?}, \
         backend's call cancelled",
        seen[0].grpc_timeout,
        err.code(),
        err.message()
    );
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_millis(500), "{took:?}");
    assert_eq!(
        seen[0].grpc_timeout, "300000u",
        "the deadline goes on to the backend"
    );
    // The call still fits once the backend is fast.
    let resp = client
        .unary(Request::new("quick".to_owned()))
        .await
        .expect("a call within its deadline");
    assert_eq!(resp.get_ref(), "echo: quick");
    proxy.stop().await;
}

#[tokio::test]
async fn grpc_timeout_bounds_a_stream_that_outlives_it() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let deadline = Duration::from_millis(300);
    let mut req = Request::new("3 gated".to_owned());
    req.set_timeout(deadline);
    let started = Instant::now();
    let mut stream = client.count(req).await.expect("stream head").into_inner();
    assert_eq!(stream.message().await.expect("1"), Some("1".to_owned()));
    // The backend now waits for a release that never comes, past the deadline.
    let err = step("deadline", stream.message())
        .await
        .expect_err("DEADLINE_EXCEEDED");
    let took = started.elapsed();
    step("backend stream cancelled", backend.cancelled()).await;
    let m = proxy.metrics().await;
    let failures = backend_entry(&m, &backend.url())["consecutive_failures"].clone();
    println!(
        "server stream past its grpc-timeout of {deadline:?} after 1 message: {:?} {:?} \
         after {took:?}, backend's stream cancelled, consecutive failures {failures}",
        err.code(),
        err.message()
    );
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_millis(500), "{took:?}");
    // The client's deadline is no fault of the backend's.
    assert_eq!(failures, 0);
    proxy.stop().await;
}

#[tokio::test]
async fn a_deadline_in_the_middle_of_a_message_resets_the_stream() {
    // A backend that sends the head, then the first 10 bytes of a 100-byte message, and
    // stalls: trailers now would corrupt the message.
    let backend = H2Backend::start(None, |_req: http::Request<Incoming>| async move {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            let mut partial = vec![0, 0, 0, 0, 100];
            partial.extend_from_slice(&[b'x'; 10]);
            let _ = tx.send(http_body::Frame::data(partial.into())).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let mut resp = http::Response::new(body);
        let grpc = http::HeaderValue::from_static("application/grpc");
        resp.headers_mut().insert(http::header::CONTENT_TYPE, grpc);
        resp
    })
    .await;
    let mut cfg = config(vec![backend.url()]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    let mut client = EchoClient::h2c(proxy.addr).await;
    let deadline = Duration::from_millis(300);
    let mut req = Request::new("3".to_owned());
    req.set_timeout(deadline);
    let started = Instant::now();
    let mut stream = client.count(req).await.expect("stream head").into_inner();
    let err = step("deadline", stream.message()).await.expect_err("reset");
    let took = started.elapsed();
    // The stream was reset with CANCEL (gRPC's CANCELLED; tonic built without its own
    // transport does not map HTTP/2 reasons, so it says UNKNOWN and keeps the cause).
    let mut reason = None;
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        reason = reason.or(e.downcast_ref::<h2::Error>().and_then(h2::Error::reason));
        source = e.source();
    }
    println!(
        "deadline {deadline:?} passing in the middle of a message: stream reset with \
         {reason:?} after {took:?} ({:?} {:?})",
        err.code(),
        err.message()
    );
    assert_eq!(reason, Some(h2::Reason::CANCEL), "{err:?}");
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_millis(500), "{took:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_from_switchyard() {
    let (_socket, url) = dead_port();
    let url = BackendUrl {
        scheme: Scheme::H2c,
        ..url
    };
    let mut cfg = config(vec![url]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    let mut client = EchoClient::h2c(proxy.addr).await;
    let started = Instant::now();
    let err = step("answer", client.unary(Request::new("hi".to_owned())))
        .await
        .expect_err("UNAVAILABLE");
    let took = started.elapsed();
    // A server-streaming call fails the same way, at its head.
    let stream_err = step("answer", client.count(Request::new("3".to_owned())))
        .await
        .expect_err("UNAVAILABLE");
    println!(
        "backend down: unary {:?} {:?} in {took:?}; server stream {:?}",
        err.code(),
        err.message(),
        stream_err.code()
    );
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "Error forwarding request");
    assert_eq!(stream_err.code(), Code::Unavailable);
    proxy.stop().await;
}

#[tokio::test]
async fn over_the_rate_limit_a_call_is_resource_exhausted() {
    let backend = GrpcBackend::start().await;
    let mut cfg = config(vec![backend.url()]);
    cfg.rate_limit.requests = 2;
    cfg.rate_limit.window = Duration::from_secs(60);
    let proxy = TestProxy::start(cfg);
    let mut client = EchoClient::h2c(proxy.addr).await;
    let mut codes = Vec::new();
    for i in 0..4 {
        let got = client.unary(Request::new(format!("call {i}"))).await;
        codes.push(got.map_or_else(|e| e.code(), |_| Code::Ok));
    }
    let err = client
        .unary(Request::new("again".to_owned()))
        .await
        .expect_err("RESOURCE_EXHAUSTED");
    println!(
        "limit 2 per minute, 4 calls: {codes:?}; then {:?} {:?}; backend saw {}",
        err.code(),
        err.message(),
        backend.seen().len()
    );
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.message(), "Too Many Requests");
    assert_eq!(
        backend.seen().len(),
        2,
        "refused calls never reach the backend"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn unavailable_in_the_backend_s_trailers_opens_the_circuit() {
    let backend = GrpcBackend::start().await;
    let url = backend.url();
    let mut cfg = config(vec![url.clone()]);
    cfg.pools[0].retries = 0;
    cfg.pools[0].breaker.failure_threshold = 3;
    cfg.pools[0].breaker.open_duration = Duration::from_secs(60);
    cfg.pools[0].outlier.consecutive_5xx = 0;
    let proxy = TestProxy::start(cfg);
    let mut client = EchoClient::h2c(proxy.addr).await;

    // Twice UNAVAILABLE in the trailers after a message, once trailers-only.
    let mut failures = Vec::new();
    for _ in 0..2 {
        let mut stream = client
            .count(Request::new("1 status=14".to_owned()))
            .await
            .expect("stream head")
            .into_inner();
        assert_eq!(stream.message().await.expect("1"), Some("1".to_owned()));
        let err = stream.message().await.expect_err("UNAVAILABLE");
        assert_eq!(err.code(), Code::Unavailable);
        failures.push(consecutive_failures(&proxy, &url, failures.len() + 1).await);
    }
    let err = client
        .unary(Request::new("unavailable".to_owned()))
        .await
        .expect_err("UNAVAILABLE");
    assert_eq!(err.message(), "backend going away");
    failures.push(consecutive_failures(&proxy, &url, 3).await);
    let open = eventually(Duration::from_secs(1), || async {
        backend_entry(&proxy.metrics().await, &url)["circuit"] == "open"
    })
    .await;
    assert!(open, "{:#}", proxy.metrics().await);

    // The circuit is open: switchyard answers UNAVAILABLE itself.
    let before = backend.seen().len();
    let err = client
        .unary(Request::new("hello".to_owned()))
        .await
        .expect_err("UNAVAILABLE from switchyard");
    println!(
        "UNAVAILABLE from the backend twice in trailers, once trailers-only: consecutive \
         failures {failures:?}, circuit open; next call {:?} {:?}",
        err.code(),
        err.message()
    );
    assert_eq!(failures, [1, 2, 3]);
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("no backend available"), "{err:?}");
    assert_eq!(meta(err.metadata(), "x-served-by"), "");
    assert_eq!(
        backend.seen().len(),
        before,
        "an open circuit keeps the call away"
    );
    proxy.stop().await;
}

/// The backend's consecutive failures once they reach `expected` (or what they are after a
/// second, for the assertion to show).
async fn consecutive_failures(proxy: &TestProxy, url: &BackendUrl, expected: usize) -> u64 {
    eventually(Duration::from_secs(1), || async {
        backend_entry(&proxy.metrics().await, url)["consecutive_failures"] == expected
    })
    .await;
    backend_entry(&proxy.metrics().await, url)["consecutive_failures"]
        .as_u64()
        .unwrap_or_default()
}
