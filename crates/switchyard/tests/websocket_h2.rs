//! WebSockets over HTTP/2 (RFC 8441) through switchyard, end to end: a real HTTP/2 client
//! (hyper's) checks that the server enables the extended CONNECT protocol, opens WebSockets
//! on streams with `:protocol = websocket`, over h2c and over TLS (ALPN `h2`), and speaks
//! WebSocket frames on them (tungstenite) to a real WebSocket backend over HTTP/1.1. Echo,
//! close from either side, the headers each side sees, a refusal relayed, a backend that does
//! not switch, the tunnel limit, the idle timers, graceful shutdown, plain CONNECT refused,
//! and upgrades to HTTP/2-only pools refused.

mod support;

use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use support::h2::{full, H2Backend};
use support::pki::{client_config, config_in, connect, CertDir, TestCa};
use support::ws::{echo, ended, websocket_connect, H2WsClient, WsBackend};
use support::TestProxy;
use switchyard::config::validate::from_text;
use switchyard::Config;

const WAIT: Duration = Duration::from_secs(2);

/// A test configuration from TOML: the first listener on a free loopback port, two workers,
/// no global rate limit.
fn load(text: &str) -> Config {
    let mut config = from_text(Path::new("websocket_h2.toml"), text)
        .unwrap_or_else(|e| panic!("invalid test configuration:\n{e}\n---\n{text}"));
    config.listeners[0].addr = "127.0.0.1:0".parse().expect("listen address");
    config.workers = 2;
    config.rate_limit.requests = 0;
    config
}

/// One pool over `backend`, with these extra top-level lines before it.
fn single(backend: &WsBackend, extra: &str) -> Config {
    load(&format!(
        "shutdown_timeout = \"5s\"\n{extra}\n[pools.chat]\nbackends = [\"{}\"]\n",
        backend.url()
    ))
}

/// Stops the proxy, which must drain at once: no tunnel or connection is left open.
async fn stop(proxy: TestProxy) {
    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    assert!(took < Duration::from_secs(1), "the shutdown took {took:?}");
}

fn tunnels_open(proxy: &TestProxy) -> u64 {
    proxy.server.shared().metrics.tunnels().open()
}

fn json_u64(metrics: &serde_json::Value, key: &str) -> u64 {
    metrics[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {metrics:#}"))
}

/// An h2c connection to the proxy whose server settings enable extended CONNECT.
async fn h2c(proxy: &TestProxy) -> H2WsClient {
    let client = H2WsClient::h2c(proxy.addr).await;
    assert!(
        client.connect_protocol_enabled().await,
        "the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1"
    );
    client
}

#[tokio::test]
async fn a_websocket_on_an_h2c_stream_reaches_an_http1_backend() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let mut client = h2c(&proxy).await;
    let started = Instant::now();
    let mut req = websocket_connect("/room/7?x=1");
    let headers = req.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        "chat, superchat".parse().expect("value"),
    );
    headers.insert("sec-websocket-extensions", "x-test".parse().expect("value"));
    let opened = client.send(req).await.expect("extended CONNECT");
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    // The backend's choice of subprotocol and extension and its own headers; no HTTP/1.1
    // handshake headers.
    assert_eq!(opened.headers["sec-websocket-protocol"], "chat");
    assert_eq!(opened.headers["sec-websocket-extensions"], "x-test");
    assert_eq!(opened.headers["x-backend"], "echo");
    for gone in ["sec-websocket-accept", "upgrade", "connection"] {
        assert!(
            !opened.headers.contains_key(gone),
            "{gone} reached the client"
        );
    }
    let mut ws = opened.ws();

    // What the backend saw: the HTTP/1.1 handshake of the same request.
    let (path, seen) = ws_backend.last_seen();
    assert_eq!(path, "/room/7");
    assert_eq!(seen["host"], proxy.addr.to_string(), ":authority as Host");
    assert_eq!(seen["upgrade"], "websocket");
    assert_eq!(seen["connection"], "upgrade");
    assert_eq!(seen["sec-websocket-version"], "13");
    assert_eq!(seen["sec-websocket-protocol"], "chat, superchat");
    assert_eq!(seen["sec-websocket-extensions"], "x-test");
    assert_eq!(seen["x-forwarded-proto"], "http");
    let key = seen["sec-websocket-key"].to_str().expect("key");
    assert_eq!(key.len(), 24, "16 random bytes in base64: {key}");

    for i in 0..20 {
        echo(&mut ws, Message::text(format!("text message {i}"))).await;
        echo(&mut ws, Message::binary(vec![i as u8; 100 + i])).await;
    }
    let big: Vec<u8> = (0..256 * 1024).map(|i: u32| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(big)).await;

    // A second WebSocket and a plain request share the connection with the first.
    let mut second = client.open("/other", None).await.ws();
    echo(&mut second, Message::text("second stream")).await;
    echo(&mut ws, Message::text("first stream still")).await;
    let plain = client
        .send(
            http::Request::get("/metrics")
                .body(Default::default())
                .expect("GET"),
        )
        .await
        .expect("GET on the same connection");
    assert_eq!(plain.status, 200);
    assert_eq!(tunnels_open(&proxy), 2);
    let echoed = started.elapsed();
    let key_two = ws_backend.last_seen().1["sec-websocket-key"].clone();
    assert_ne!(key_two, key, "each upgrade gets a fresh key");

    // The client closes both; the backend's replies come back, then the streams end.
    for ws in [&mut ws, &mut second] {
        ws.close(None).await.expect("send close");
        ended(ws, WAIT).await;
    }
    drop((ws, second));
    assert_eventually!(
        WAIT,
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the tunnels stayed open after the close handshakes"
    );
    assert_eq!(ws_backend.closes(), 2);
    assert!(!client.is_closed(), "the connection outlives its tunnels");
    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 2, "{metrics:#}");
    println!(
        "websocket over h2c: SETTINGS_ENABLE_CONNECT_PROTOCOL seen, 41 messages (256 KiB the largest) and a 2nd stream echoed in {} ms beside a GET, closed by the client",
        echoed.as_millis()
    );
    stop(proxy).await;
}

#[tokio::test]
async fn a_websocket_on_an_h2_stream_over_tls_is_closed_by_the_backend() {
    let ws_backend = WsBackend::start("echo").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("ws-h2");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }] }"#,
        &format!("[pools.chat]\nbackends = [\"{}\"]", ws_backend.url()),
    ));
    let stream = connect(
        proxy.addr,
        "a.example.com",
        client_config(&ca, None, &[b"h2", b"http/1.1"]),
    )
    .await
    .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let base = format!("https://a.example.com:{}", proxy.addr.port());
    let client = H2WsClient::over(stream, &base).await;
    assert!(client.connect_protocol_enabled().await);
    let mut client = client;
    let opened = client.open("/chat", None).await;
    assert_eq!(opened.status, 200);
    assert!(!opened.headers.contains_key("sec-websocket-protocol"));
    let mut ws = opened.ws();
    assert_eq!(ws_backend.last_seen().1["x-forwarded-proto"], "https");
    for i in 0..10 {
        echo(&mut ws, Message::text(format!("over TLS {i}"))).await;
        echo(&mut ws, Message::binary(vec![i; 4096])).await;
    }
    // The backend starts the close; its frame reaches the client, whose reply goes back.
    ws.send(Message::text("close-me")).await.expect("send");
    let close = ended(&mut ws, WAIT)
        .await
        .expect("the backend's close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Normal, "bye")
    );
    drop(ws);
    assert_eventually!(
        WAIT,
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the tunnel stayed open after the backend closed it"
    );
    assert_eq!(ws_backend.closes(), 1, "the client's reply crossed back");
    println!("websocket over h2 (TLS, ALPN h2): 20 messages echoed, backend's close (1000 bye) delivered and answered");
    stop(proxy).await;
}

#[tokio::test]
async fn a_refusal_is_relayed_and_a_backend_that_does_not_switch_is_a_502() {
    let ws_backend = WsBackend::start("strict").await;
    let plain = support::backend("plain").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.chat]
backends = ["{}"]
[pools.web]
backends = ["{}"]
[[routes]]
name = "web"
pool = "web"
match = {{ path_prefix = "/echo" }}
[[routes]]
name = "chat"
pool = "chat"
"#,
        ws_backend.url(),
        plain.url()
    )));
    let mut client = h2c(&proxy).await;
    let refused = client.open("/refuse", None).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.headers["x-backend"], "strict");
    assert_eq!(refused.body, "no websockets here\n");
    assert_eq!(ws_backend.handshakes(), 1);

    // A backend that ignores the upgrade answers 200: taken for an open tunnel by an
    // HTTP/2 client, so it becomes a 502.
    let ignored = client.open("/echo", None).await;
    assert_eq!(ignored.status, 502);
    let text = String::from_utf8_lossy(&ignored.body).into_owned();
    assert!(text.contains("did not switch"), "{text}");
    assert_eq!(plain.requests(), 1);

    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 0, "{metrics:#}");
    assert_eq!(tunnels_open(&proxy), 0, "both gave their place back");
    assert!(!client.is_closed());
    println!("websocket over h2c refused: backend's 403 relayed with its body; a backend answering 200 without switching: 502");
    stop(proxy).await;
}

#[tokio::test]
async fn the_tunnel_limit_counts_h2_streams_and_http1_tunnels_alike() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, "[websocket]\nmax_tunnels = 2"));
    let mut client = h2c(&proxy).await;
    let mut first = client.open("/", None).await.ws();
    // An HTTP/1.1 tunnel takes the second place.
    let stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let req = format!("ws://{}/", proxy.addr)
        .into_client_request()
        .expect("client request");
    let (mut http1, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("HTTP/1.1 upgrade");

    let refused = client.open("/", None).await;
    assert_eq!(refused.status, 503);
    let text = String::from_utf8_lossy(&refused.body).into_owned();
    assert!(text.contains("too many open WebSocket tunnels"), "{text}");
    assert_eq!(ws_backend.accepted(), 2, "no backend saw the third");

    first.close(None).await.expect("close");
    ended(&mut first, WAIT).await;
    drop(first);
    assert_eventually!(
        WAIT,
        || async { tunnels_open(&proxy) == 1 },
        "the closed stream's tunnel kept its place"
    );
    let mut third = client.open("/", None).await.ws();
    echo(&mut third, Message::text("third")).await;
    echo(&mut http1, Message::text("http/1.1 still")).await;
    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_refused"), 1, "{metrics:#}");
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 3, "{metrics:#}");
    drop((third, http1));
    println!("websocket limit 2: an h2 stream and an HTTP/1.1 tunnel open, a 2nd stream 503, accepted once one closed");
    stop(proxy).await;
}

#[tokio::test]
async fn an_h2_tunnel_keeps_its_connection_past_the_read_timeout_and_has_its_idle_timeout() {
    let ws_backend = WsBackend::start("echo").await;
    let mut config = single(&ws_backend, "[websocket]\nidle_timeout = \"600ms\"");
    // The connection's own idle timer (no open stream for read_timeout: GOAWAY).
    config.listeners[0].read_timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(config);
    let mut client = h2c(&proxy).await;
    let mut ws = client.open("/", None).await.ws();

    // Messages every 100 ms for 5 read timeouts: the stream's tunnel keeps the connection.
    let busy = Instant::now();
    let mut sent = 0;
    while busy.elapsed() < Duration::from_millis(1000) {
        echo(&mut ws, Message::text(format!("still here {sent}"))).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!client.is_closed(), "the connection was taken for idle");
    // Then silence: the tunnel's idle timeout ends it.
    echo(&mut ws, Message::text("last words")).await;
    let quiet = Instant::now();
    ended(&mut ws, Duration::from_secs(3)).await;
    let closed_after = quiet.elapsed();
    assert!(
        closed_after >= Duration::from_millis(600),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
    assert_eventually!(
        WAIT,
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the idle tunnel's backend side stayed open"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        json_u64(&metrics, "tunnels_idle_timeouts"),
        1,
        "{metrics:#}"
    );
    // With its last stream gone, the connection is idle and closed.
    assert_eventually!(
        WAIT,
        || async { client.is_closed() },
        "the idle connection stayed open"
    );
    println!(
        "websocket over h2c: {sent} messages over 1 s on a connection with a 200 ms read timeout; the tunnel closed {} ms after the last (idle timeout 600 ms)",
        closed_after.as_millis()
    );
    stop(proxy).await;
}

#[tokio::test]
async fn graceful_shutdown_waits_for_an_h2_tunnel_and_ends_when_it_closes() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let mut client = h2c(&proxy).await;
    let mut ws = client.open("/", None).await.ws();

    let started = Instant::now();
    let (report, echoed) = tokio::join!(proxy.stop(), async {
        let mut echoed = 0;
        while started.elapsed() < Duration::from_millis(300) {
            echo(&mut ws, Message::text(format!("draining {echoed}"))).await;
            echoed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ws.close(None).await.expect("close");
        ended(&mut ws, WAIT).await;
        drop(ws);
        echoed
    });
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    assert!(echoed >= 3, "only {echoed} messages echoed while draining");
    assert!(took >= Duration::from_millis(300), "shutdown took {took:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    println!(
        "websocket over h2c drain: {echoed} messages echoed while draining, shutdown done {} ms after start, when the tunnel closed",
        took.as_millis()
    );
}

#[tokio::test]
async fn a_plain_connect_is_405_over_both_http_versions() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let mut client = h2c(&proxy).await;
    let plain = http::Request::connect(format!("{}", proxy.addr))
        .body(Default::default())
        .expect("CONNECT");
    let resp = client.send(plain).await.expect("plain CONNECT");
    assert_eq!(resp.status, 405);
    // An extended CONNECT for another protocol is a CONNECT all the same.
    let mut other = websocket_connect("/");
    other
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("webtransport"));
    assert_eq!(client.send(other).await.expect("CONNECT").status, 405);
    let http1 = support::raw(
        proxy.addr,
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", proxy.addr).as_bytes(),
        Duration::from_millis(500),
    )
    .await;
    assert!(http1.starts_with("HTTP/1.1 405"), "{http1}");
    assert_eq!(ws_backend.handshakes(), 0);
    println!("CONNECT: 405 over HTTP/2 (plain and :protocol = webtransport) and HTTP/1.1");
    stop(proxy).await;
}

#[tokio::test]
async fn upgrades_to_http2_only_pools_are_refused_with_502() {
    let h2_backend = H2Backend::start(None, |_req| async { http::Response::new(full("h2")) }).await;
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.h2c]
backends = ["{h2c}"]
[pools.forced]
protocol = "h2"
backends = ["{ws}"]
[pools.mixed]
backends = ["{h2c}", "{ws}"]
[[routes]]
name = "h2c"
pool = "h2c"
match = {{ path_prefix = "/h2c" }}
[[routes]]
name = "forced"
pool = "forced"
match = {{ path_prefix = "/forced" }}
[[routes]]
name = "mixed"
pool = "mixed"
"#,
        h2c = h2_backend.url(),
        ws = ws_backend.url()
    )));
    let upgrade = |path: &'static str| {
        let addr = proxy.addr;
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("ws://{addr}{path}")
                .into_client_request()
                .expect("client request");
            tokio_tungstenite::client_async(req, stream).await
        }
    };
    for path in ["/h2c", "/forced"] {
        match upgrade(path).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 502, "{path}");
                let body = resp.body().clone().unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                assert!(text.contains("HTTP/2 backends"), "{path}: {text}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    let mut client = h2c(&proxy).await;
    assert_eq!(client.open("/h2c", None).await.status, 502);
    assert_eq!(
        h2_backend.requests(),
        0,
        "nothing was sent to the h2c backend"
    );
    assert_eq!(ws_backend.handshakes(), 0, "nor to the forced-h2 one");

    // A pool with both: the HTTP/1.1 backend takes every upgrade.
    for _ in 0..4 {
        let (mut ws, _) = upgrade("/").await.expect("upgrade in the mixed pool");
        echo(&mut ws, Message::text("mixed")).await;
    }
    assert_eq!(ws_backend.accepted(), 4);
    assert_eq!(h2_backend.requests(), 0);
    let metrics = proxy.metrics().await;
    for backend in metrics["backends"].as_array().expect("backends") {
        assert_eq!(backend["failures"], 0, "{metrics:#}");
    }
    println!("websocket to HTTP/2-only pools (h2c://, protocol = \"h2\"): 502 over HTTP/1.1 and HTTP/2, nothing sent; a mixed pool sends 4 of 4 upgrades to its HTTP/1.1 backend");
    stop(proxy).await;
}

#[tokio::test]
async fn the_server_settings_enable_extended_connect() {
    use support::h2raw::{RawH2, SETTINGS};
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let mut raw = RawH2::connect(proxy.addr, &[]).await;
    let seen = raw.read(WAIT, |f| f.kind == SETTINGS && f.flags == 0).await;
    let settings = seen
        .frames
        .iter()
        .find(|f| f.kind == SETTINGS && f.flags == 0)
        .expect("the server's SETTINGS");
    let pairs: Vec<(u16, u32)> = settings
        .payload
        .chunks_exact(6)
        .map(|p| {
            let id = u16::from_be_bytes([p[0], p[1]]);
            (id, u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
        })
        .collect();
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
    assert!(pairs.contains(&(0x8, 1)), "{pairs:?}");
    println!("server SETTINGS: {pairs:?}, ENABLE_CONNECT_PROTOCOL (0x8) = 1");
    drop(raw);
    stop(proxy).await;
}
