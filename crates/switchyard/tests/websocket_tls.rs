//! WebSockets over TLS (wss) through an HTTPS listener, end to end: a real TLS client
//! (tokio-rustls, ALPN `http/1.1` only, as browsers do for a classic WebSocket) with
//! tokio-tungstenite's client on it, certificates made here with rcgen, to a real WebSocket
//! backend over plain HTTP/1.1.

mod support;

use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use support::pki::{client_config, config_in, connect, metrics, CertDir, TestCa};
use support::ws::{echo, ended, WsBackend};
use support::TestProxy;

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_websocket_through_an_https_listener_echoes_and_closes() {
    let ws_backend = WsBackend::start("echo").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("wss");
    dir.pair("chat", &ca.server(&["chat.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "chat.pem", key = "chat.key" }] }"#,
        &format!("[pools.chat]\nbackends = [\"{}\"]", ws_backend.url()),
    ));
    let stream = connect(
        proxy.addr,
        "chat.example.com",
        client_config(&ca, None, &[b"http/1.1"]),
    )
    .await
    .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let version = stream.get_ref().1.protocol_version();
    let url = format!("wss://chat.example.com:{}/chat", proxy.addr.port());
    let req = url.into_client_request().expect("client request");
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-backend"], "echo");
    let (path, seen) = ws_backend.last_seen();
    assert_eq!(path, "/chat");
    assert_eq!(seen["x-forwarded-proto"], "https");

    for i in 0..10 {
        echo(&mut ws, Message::text(format!("wss text {i}"))).await;
        echo(&mut ws, Message::binary(vec![i; 1000 + usize::from(i)])).await;
    }
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(big)).await;

    ws.close(None).await.expect("send close");
    ended(&mut ws, WAIT).await;
    drop(ws);
    let shared = proxy.server.shared();
    assert_eventually!(
        WAIT,
        || async { ws_backend.open() == 0 && shared.metrics.tunnels().open() == 0 },
        "the tunnel stayed open after the close handshake"
    );
    assert_eq!(ws_backend.closes(), 1);
    let metrics = metrics(&proxy);
    assert_eq!(metrics["tunnels_opened"], 1, "{metrics:#}");
    assert_eq!(metrics["tls_handshakes"], 1, "{metrics:#}");
    println!(
        "wss: {version:?} with ALPN http/1.1, 20 messages and 1 MiB echoed, closed by the client"
    );
    let report = proxy.stop().await;
    assert!(report.drained, "{report:?}");
}
