//! The four call kinds through switchyard, messages and trailers checked; streams proven
//! unbuffered by making each next message wait on the previous one having crossed.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Request};

use crate::client::{meta, outgoing, EchoClient};
use crate::service::GrpcBackend;
use crate::support::metrics::backend_entry;
use crate::support::pki::{client_config, config_in, connect, CertDir, TestCa};
use crate::support::TestProxy;
use crate::{proxied, step};

#[tokio::test]
async fn a_unary_call_and_its_trailers_only_error_cross_with_their_metadata() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;

    let started = Instant::now();
    let resp = client
        .unary(Request::new("hello".to_owned()))
        .await
        .expect("unary call");
    let took = started.elapsed();
    assert_eq!(resp.get_ref(), "echo: hello");
    assert_eq!(meta(resp.metadata(), "x-served-by"), "tonic");

    // An error without a message: tonic answers trailers-only, the status in the head.
    let err = client
        .unary(Request::new("fail".to_owned()))
        .await
        .expect_err("INVALID_ARGUMENT");
    println!(
        "unary through h2c -> h2c: answered in {took:?}; error {:?} {:?} x-detail {:?}; \
         backend saw te {:?}",
        err.code(),
        err.message(),
        meta(err.metadata(), "x-detail"),
        backend.seen()[0].te
    );
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "bad argument: 100% ünïcode");
    assert_eq!(meta(err.metadata(), "x-detail"), "trailers-only");
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/test.Echo/Unary");
    assert_eq!(
        seen[0].te, "trailers",
        "te: trailers kept for an HTTP/2 backend"
    );
    assert_eq!(seen[0].forwarded_proto, "http");
    // A client-side code is no failure of the backend.
    let m = proxy.metrics().await;
    assert_eq!(backend_entry(&m, &backend.url())["consecutive_failures"], 0);
    proxy.stop().await;
}

#[tokio::test]
async fn a_server_stream_is_forwarded_message_by_message_and_keeps_its_trailers() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let resp = client
        .count(Request::new("5 gated".to_owned()))
        .await
        .expect("server-streaming call");
    let mut stream = resp.into_inner();
    // The backend makes message i+1 only once the client has message i: a proxy holding
    // messages back would wait forever here.
    let mut got = Vec::new();
    let mut latencies = Vec::new();
    let mut released = Instant::now();
    for _ in 0..5 {
        let msg = step("next message", stream.message())
            .await
            .expect("message");
        latencies.push(released.elapsed());
        got.push(msg.expect("a message, not the end"));
        released = Instant::now();
        backend.release_next();
    }
    assert_eq!(got, ["1", "2", "3", "4", "5"]);
    let end = step("end of stream", stream.message()).await.expect("OK");
    assert_eq!(end, None);
    let trailers = stream.trailers().await.expect("trailers").expect("some");
    println!(
        "server stream of 5 gated messages: {latencies:?}; each in {:?} (slowest) after the backend was \
         let go; trailers x-total {:?}",
        latencies.iter().max().expect("latencies"),
        meta(&trailers, "x-total")
    );
    assert_eq!(meta(&trailers, "x-total"), "5");

    // A stream that fails after its messages: code, message and metadata in the trailers.
    let resp = client
        .count(Request::new("2 status=10".to_owned()))
        .await
        .expect("server-streaming call");
    let mut stream = resp.into_inner();
    assert_eq!(stream.message().await.expect("1"), Some("1".to_owned()));
    assert_eq!(stream.message().await.expect("2"), Some("2".to_owned()));
    let err = stream.message().await.expect_err("ABORTED in the trailers");
    println!(
        "stream failing after 2 messages: {:?} {:?}, x-total {:?}",
        err.code(),
        err.message(),
        meta(err.metadata(), "x-total")
    );
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(err.message(), "sent 2: ✓");
    assert_eq!(meta(err.metadata(), "x-total"), "2");
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_stream_reaches_the_backend_message_by_message() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let (tx, messages) = outgoing();
    let call = tokio::spawn(async move { client.collect(Request::new(messages)).await });
    // Each message has reached the backend before the next one is sent.
    let mut latencies = Vec::new();
    for word in ["a", "b", "c", "d", "e"] {
        let sent = Instant::now();
        tx.send(word.to_owned()).await.expect("send");
        let received = step("backend receiving", backend.received()).await;
        latencies.push(sent.elapsed());
        assert_eq!(received, word);
    }
    drop(tx);
    let resp = step("answer", call).await.expect("task").expect("call");
    println!(
        "client stream of 5: each at the backend {:?} (slowest) after it was sent; answer {:?}",
        latencies.iter().max().expect("latencies"),
        resp.get_ref()
    );
    assert_eq!(resp.get_ref(), "got 5: a,b,c,d,e");
    proxy.stop().await;
}

#[tokio::test]
async fn a_bidirectional_stream_is_a_conversation_through_the_proxy() {
    let (_backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let (tx, messages) = outgoing();
    let resp = client
        .chat(Request::new(messages))
        .await
        .expect("bidirectional call");
    let mut answers = resp.into_inner();
    let mut rounds = Vec::new();
    for i in 0..10 {
        let sent = Instant::now();
        tx.send(format!("ping {i}")).await.expect("send");
        let answer = step("echo", answers.message()).await.expect("message");
        rounds.push(sent.elapsed());
        assert_eq!(answer, Some(format!("echo: ping {i}")));
    }
    // A message far larger than HTTP/2's initial flow-control window (64 KiB), both ways.
    let big = "x".repeat(1 << 20);
    let sent = Instant::now();
    tx.send(big.clone()).await.expect("send");
    let answer = step("big echo", answers.message()).await.expect("message");
    let big_round = sent.elapsed();
    assert_eq!(answer.map(|a| a.len()), Some(big.len() + "echo: ".len()));
    drop(tx);
    assert_eq!(answers.message().await.expect("OK"), None);
    let trailers = answers.trailers().await.expect("trailers").expect("some");
    let mean = rounds.iter().sum::<Duration>() / 10;
    println!(
        "bidirectional: 10 round trips through h2c -> h2c, mean {mean:?}, slowest {:?}; \
         1 MiB each way in {big_round:?}; trailers x-chat-count {:?}",
        rounds.iter().max().expect("rounds"),
        meta(&trailers, "x-chat-count")
    );
    assert_eq!(meta(&trailers, "x-chat-count"), "11");
    proxy.stop().await;
}

#[tokio::test]
async fn a_stream_the_client_gives_up_on_is_cancelled_at_the_backend_and_not_held_against_it() {
    let (backend, proxy) = proxied().await;
    let mut client = EchoClient::h2c(proxy.addr).await;
    let mut stream = client
        .count(Request::new("5 gated".to_owned()))
        .await
        .expect("server-streaming call")
        .into_inner();
    assert_eq!(stream.message().await.expect("1"), Some("1".to_owned()));
    let dropped = Instant::now();
    drop(stream);
    step("backend stream cancelled", backend.cancelled()).await;
    let took = dropped.elapsed();
    // The connection goes on serving: only the stream was reset.
    let resp = client
        .unary(Request::new("after".to_owned()))
        .await
        .expect("next call");
    assert_eq!(resp.get_ref(), "echo: after");
    let m = proxy.metrics().await;
    let entry = backend_entry(&m, &backend.url());
    println!(
        "client dropped a server stream after 1 of 5: backend's stream dropped {took:?} later; \
         consecutive failures {}",
        entry["consecutive_failures"]
    );
    assert_eq!(entry["consecutive_failures"], 0, "{entry:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_tonic_client_over_tls_with_alpn_h2_reaches_an_h2c_backend() {
    let backend = GrpcBackend::start().await;
    let ca = TestCa::new("gRPC test CA");
    let dir = CertDir::new("grpc");
    dir.pair("grpc", &ca.server(&["grpc.example"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "grpc.pem", key = "grpc.key" }] }"#,
        &format!("[pools.p]\nbackends = [\"{}\"]\nretries = 0", backend.url()),
    ));

    let tls = connect(
        proxy.addr,
        "grpc.example",
        client_config(&ca, None, &[b"h2"]),
    )
    .await
    .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let origin = format!("https://grpc.example:{}", proxy.addr.port());
    let mut client = EchoClient::over(tls, origin.parse().expect("origin")).await;
    let resp = client
        .unary(Request::new("over TLS".to_owned()))
        .await
        .expect("unary call over TLS");
    assert_eq!(resp.get_ref(), "echo: over TLS");
    let mut stream = client
        .count(Request::new("3".to_owned()))
        .await
        .expect("server stream over TLS")
        .into_inner();
    let mut got = Vec::new();
    while let Some(msg) = step("message", stream.message()).await.expect("message") {
        got.push(msg);
    }
    let trailers = stream.trailers().await.expect("trailers").expect("some");
    let seen = backend.seen();
    println!(
        "tonic over TLS (ALPN h2) -> h2c backend: {:?}, stream {got:?}, x-total {:?}, \
         backend saw x-forwarded-proto {:?} te {:?}",
        resp.get_ref(),
        meta(&trailers, "x-total"),
        seen[0].forwarded_proto,
        seen[0].te
    );
    assert_eq!(got, ["1", "2", "3"]);
    assert_eq!(meta(&trailers, "x-total"), "3");
    assert_eq!(seen[0].forwarded_proto, "https");
    assert_eq!(seen[0].te, "trailers");
    proxy.stop().await;
}
