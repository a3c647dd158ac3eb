//! gRPC calls and WebSocket upgrades meet the same token rules: UNAUTHENTICATED (16) and
//! PERMISSION_DENIED (7) for gRPC; an upgrade without a valid token is refused before any
//! backend handshake, one with a token opens with the claim headers set.

use std::time::Duration;

use bytes::Bytes;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::h2::{full, H2Client};
use crate::support::pki::CertDir;
use crate::support::ws::WsBackend;
use crate::support::{backend, raw, TestProxy};
use crate::tokens::{claims, config_text, jwks_provider, load, now, sign};

#[tokio::test]
async fn grpc_calls_get_unauthenticated_and_permission_denied() {
    let dir = CertDir::new("jwt-grpc");
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&jwks_provider(), &server.url())));
    let mut h2 = H2Client::connect(proxy.addr).await;
    let call = |token: Option<&str>, path: &str| {
        let mut req = http::Request::post(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.body(full(Bytes::from_static(b"\0\0\0\0\0")))
            .expect("call")
    };
    let statuses = [
        (None, "/pkg.Svc/Call", "16"),
        (
            Some(sign(
                Algorithm::ES256,
                None,
                &claims("x", json!({ "exp": now() - 600 })),
            )),
            "/pkg.Svc/Call",
            "16",
        ),
        (
            Some(sign(
                Algorithm::ES256,
                None,
                &claims("x", json!({ "role": "user" })),
            )),
            "/admin/Svc.Call",
            "7",
        ),
    ];
    for (token, path, status) in &statuses {
        let resp = h2
            .fetch(call(token.as_deref(), path))
            .await
            .expect("answer");
        assert_eq!(resp.resp.status, 200);
        assert_eq!(resp.resp.headers["grpc-status"], *status, "{path}");
    }
    assert_eq!(server.requests(), 0);
    println!("grpc: missing and expired token -> grpc-status 16, a claim mismatch -> 7, 0 reached the backend");
}

#[tokio::test]
async fn a_websocket_upgrade_needs_a_valid_token() {
    let dir = CertDir::new("jwt-ws");
    let ws = WsBackend::start("ws").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&jwks_provider(), &ws.url())));
    let upgrade = |extra: &str| {
        format!(
            "GET /scoped/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             X-User: root\r\n{extra}\r\n"
        )
    };
    let wait = Duration::from_secs(2);
    let answer = raw(proxy.addr, upgrade("").as_bytes(), wait).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let bad = sign(
        Algorithm::RS256,
        Some("ec-1"),
        &claims("x", json!({ "scope": "read" })),
    );
    let answer = raw(
        proxy.addr,
        upgrade(&format!("Authorization: Bearer {bad}\r\n")).as_bytes(),
        wait,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(ws.handshakes(), 0, "the backend saw no handshake");

    let good = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims("frank", json!({ "scope": "read" })),
    );
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let req = upgrade(&format!("Authorization: Bearer {good}\r\n"));
    tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(wait, tokio::io::AsyncReadExt::read(&mut stream, &mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_, headers) = ws.last_seen();
    assert_eq!(
        headers["x-user"], "frank",
        "the claim, not the client's copy"
    );
    assert!(
        !headers.contains_key("authorization"),
        "jwt_forward = false"
    );
    println!("websocket: no token and a wrong-kid token 401 with 0 handshakes; a valid one 101 with X-User from the token");
}
