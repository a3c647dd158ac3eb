//! A WebSocket upgrade to an `https://` backend: the tunnel's own connection gets TLS first,
//! verified like any other, and the bytes flow inside it.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

use super::pki::Issued;
use super::{config, file_text, support, Setup};

/// A WebSocket echo server behind TLS (ALPN `h2` and `http/1.1`, speaking only the latter)
/// on a fresh loopback port.
async fn wss_echo(cert: &Issued) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert_der.clone()], cert.key_der())
        .expect("server cert");
    // It offers HTTP/2 too, as a real server would: the upgrade must still ask for 1.1.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() || ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_websocket_to_an_https_backend_is_tunnelled_inside_tls() {
    let s = Setup::new("wss-backend");
    let port = wss_echo(&s.ca.server(&["localhost"])).await;
    let url = format!("https://localhost:{port}");
    let proxy = support::TestProxy::start(config(&file_text(&[url], "", &s.ca_key())));

    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.addr), tcp)
        .await
        .expect("upgrade through the proxy");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let echoed = ws.next().await.expect("message").expect("frame");
        assert_eq!(echoed.into_text().expect("text"), format!("hello {i}"));
    }
    ws.close(None).await.expect("close");
    println!("ws client -> switchyard -> wss backend (private CA): 5 messages echoed");
    proxy.stop().await;
}
