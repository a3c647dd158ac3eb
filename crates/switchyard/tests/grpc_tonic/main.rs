//! gRPC end to end with a real tonic client and a real tonic server (its `client::Grpc` and
//! `server::Grpc` over hyper HTTP/2 connections, a text codec, no code generation), through
//! switchyard's h2c listener to an `h2c://` backend, and once through an HTTPS listener:
//!
//! - `calls`: the four call kinds, each message of a stream forwarded before the next one
//!   is made, trailers (`grpc-status`, `grpc-message`, custom metadata) and `te: trailers`
//!   reaching their ends, and a call over TLS (ALPN `h2`);
//! - `failures`: what switchyard answers itself, in gRPC's terms: DEADLINE_EXCEEDED at the
//!   client's `grpc-timeout`, UNAVAILABLE for a backend that is down, RESOURCE_EXHAUSTED over
//!   the rate limit; and UNAVAILABLE in a backend's trailers opening the circuit.

#[path = "../support/mod.rs"]
mod support;

mod calls;
mod client;
mod failures;
mod service;

use std::time::Duration;

use service::GrpcBackend;
use support::{config, TestProxy};

/// How long any one step may take before the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(2);

/// A tonic backend and switchyard in front of it (no retries, so every failure is seen).
async fn proxied() -> (GrpcBackend, TestProxy) {
    let backend = GrpcBackend::start().await;
    let mut cfg = config(vec![backend.url()]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    (backend, proxy)
}

/// `fut`, or a panic naming `what` when it takes longer than [`STEP`].
async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {STEP:?}"))
}
