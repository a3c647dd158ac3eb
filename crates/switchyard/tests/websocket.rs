//! WebSockets through switchyard, end to end: a real WebSocket client (tokio-tungstenite)
//! upgrading through the proxy to a real WebSocket backend. Echo (text, binary, several
//! messages, 1 MiB), the close handshake started by either side, a backend refusing the
//! upgrade, routes and their phases, the idle timeout, the tunnel limit, reload and graceful
//! shutdown, the metrics, and which upgrade headers reach a backend.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use support::ws::WsBackend;
use support::{backend, Client, TestProxy};
use switchyard::config::validate::from_text;
use switchyard::Config;

type Ws = WebSocketStream<TcpStream>;

/// Connects to the proxy and upgrades `path`.
async fn connect(proxy: SocketAddr, path: &str) -> Result<(Ws, client::Response), WsError> {
    let stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let req = format!("ws://{proxy}{path}")
        .into_client_request()
        .expect("client request");
    tokio_tungstenite::client_async(req, stream).await
}

/// [`connect`], which must succeed.
async fn open(proxy: SocketAddr, path: &str) -> (Ws, client::Response) {
    connect(proxy, path)
        .await
        .unwrap_or_else(|e| panic!("upgrade of {path} failed: {e:?}"))
}

/// The status of an upgrade the proxy or the backend refused.
async fn refused(proxy: SocketAddr, path: &str) -> client::Response {
    match connect(proxy, path).await {
        Err(WsError::Http(resp)) => resp,
        Err(e) => panic!("upgrade of {path} failed without an answer: {e:?}"),
        Ok(_) => panic!("upgrade of {path} was accepted"),
    }
}

/// The next data message, within 2 s.
async fn next_message(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(msg))) if msg.is_text() || msg.is_binary() => return msg,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}

/// Sends `msg` and checks that the same comes back.
async fn echo(ws: &mut Ws, msg: Message) {
    ws.send(msg.clone()).await.expect("send");
    assert_eq!(next_message(ws).await, msg);
}

/// Reads until the stream ends (within `within`), returning the close frame it got, if any.
async fn ended(ws: &mut Ws, within: Duration) -> Option<CloseFrame> {
    let mut close = None;
    let read = tokio::time::timeout(within, async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                close = frame;
            }
        }
    });
    read.await.expect("the tunnel did not end in time");
    close
}

/// A test configuration from TOML: the first listener on a free loopback port, two workers,
/// no global rate limit.
fn load(text: &str) -> Config {
    let mut config = from_text(Path::new("websocket.toml"), text)
        .unwrap_or_else(|e| panic!("invalid test configuration:\n{e}\n---\n{text}"));
    config.listeners[0].addr = "127.0.0.1:0".parse().expect("listen address");
    config.workers = 2;
    config.rate_limit.requests = 0;
    config
}

/// One pool over `backend`, with these extra top-level lines (a `[websocket]` table).
fn single(backend: &WsBackend, extra: &str) -> Config {
    load(&format!(
        "shutdown_timeout = \"5s\"\n{extra}\n[pools.chat]\nbackends = [\"{}\"]\n",
        backend.url()
    ))
}

fn json_u64(metrics: &serde_json::Value, key: &str) -> u64 {
    metrics[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {metrics:#}"))
}

/// Stops the proxy, which must drain at once: no tunnel is left open.
async fn stop(proxy: TestProxy) {
    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    assert!(
        took < Duration::from_secs(1),
        "a tunnel held the shutdown for {took:?}"
    );
}

/// The proxy's open tunnels, read from its metrics.
fn tunnels_open(proxy: &TestProxy) -> u64 {
    proxy.server.shared().metrics.tunnels().open()
}

#[tokio::test]
async fn messages_echo_through_a_tunnel_and_the_client_closes_it() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let started = Instant::now();
    let (mut ws, resp) = open(proxy.addr, "/chat").await;
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()["x-backend"],
        "echo",
        "the backend's 101 headers are relayed"
    );
    assert_eq!(resp.headers()["upgrade"], "websocket");

    for i in 0..20 {
        echo(&mut ws, Message::text(format!("text message {i}"))).await;
        echo(&mut ws, Message::binary(vec![i as u8; 100 + i])).await;
    }
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(big)).await;
    let echoed = started.elapsed();

    // The client starts the close handshake; the backend's reply comes back, then the end.
    ws.close(None).await.expect("send close");
    ended(&mut ws, Duration::from_secs(2)).await;
    drop(ws);
    assert_eventually!(
        Duration::from_secs(2),
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the tunnel stayed open after the close handshake"
    );
    assert_eq!(ws_backend.closes(), 1);
    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 1, "{metrics:#}");
    assert_eq!(
        json_u64(&metrics, "responses"),
        1,
        "the 101 counts as a backend's answer"
    );
    println!(
        "websocket echo: 40 small messages and 1 MiB echoed in {} ms, closed by the client",
        echoed.as_millis()
    );
    stop(proxy).await;
}

#[tokio::test]
async fn a_close_started_by_the_backend_reaches_the_client() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let (mut ws, _) = open(proxy.addr, "/").await;
    echo(&mut ws, Message::text("hello")).await;

    ws.send(Message::text("close-me")).await.expect("send");
    let close = ended(&mut ws, Duration::from_secs(2)).await;
    let close = close.expect("the backend's close frame arrived");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Normal, "bye")
    );
    drop(ws);
    assert_eventually!(
        Duration::from_secs(2),
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the tunnel stayed open after the close handshake"
    );
    // The client's reply crossed the tunnel back to the backend.
    assert_eq!(ws_backend.closes(), 1);
    println!(
        "websocket close from the backend: code {}, reply delivered",
        u16::from(close.code)
    );
    stop(proxy).await;
}

#[tokio::test]
async fn a_backend_refusing_the_upgrade_is_relayed() {
    let ws_backend = WsBackend::start("strict").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let resp = refused(proxy.addr, "/refuse").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-backend"],
        "strict",
        "the backend's own answer"
    );
    assert_eq!(ws_backend.last_seen().0, "/refuse");

    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 0, "{metrics:#}");
    assert_eq!(json_u64(&metrics, "responses"), 1, "{metrics:#}");
    assert_eq!(
        tunnels_open(&proxy),
        0,
        "the refused upgrade gave its place back"
    );
    // The backend is not held responsible for a refusal.
    assert_eq!(metrics["backends"][0]["failures"], 0, "{metrics:#}");
    println!("websocket refused by the backend: 403 relayed, 0 tunnels open");
    stop(proxy).await;
}

#[tokio::test]
async fn routes_and_their_phases_apply_to_the_upgrade() {
    let chat = WsBackend::start("chat").await;
    let lobby = WsBackend::start("lobby").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.chat]
backends = ["{chat}"]
[pools.lobby]
backends = ["{lobby}"]

[[routes]]
name = "chat"
pool = "chat"
match = {{ path_prefix = "/chat" }}
strip_prefix = "/chat"
request_headers = {{ set = {{ "x-route" = "chat" }} }}
response_headers = {{ set = {{ "x-via" = "switchyard" }} }}

[[routes]]
name = "lobby"
pool = "lobby"
match = {{ path_prefix = "/lobby" }}
rate_limit = {{ requests = 1, window = "1m" }}
"#,
        chat = chat.url(),
        lobby = lobby.url()
    )));

    let (mut ws, resp) = open(proxy.addr, "/chat/room-7").await;
    assert_eq!(resp.headers()["x-backend"], "chat");
    assert_eq!(
        resp.headers()["x-via"],
        "switchyard",
        "the route's response headers"
    );
    echo(&mut ws, Message::text("in the chat")).await;
    let (path, headers) = chat.last_seen();
    assert_eq!(path, "/room-7", "the route's prefix was stripped");
    assert_eq!(headers["x-route"], "chat");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["upgrade"], "websocket");
    assert_eq!(headers["connection"], "upgrade");

    let (mut lobby_ws, resp) = open(proxy.addr, "/lobby").await;
    assert_eq!(resp.headers()["x-backend"], "lobby");
    echo(&mut lobby_ws, Message::text("in the lobby")).await;
    // The lobby route's own rate limit, and the route table's 404, come before any backend.
    assert_eq!(refused(proxy.addr, "/lobby").await.status(), 429);
    assert_eq!(refused(proxy.addr, "/nowhere").await.status(), 404);
    assert_eq!(lobby.accepted(), 1);
    assert_eq!(chat.accepted(), 1);
    drop((ws, lobby_ws));
    println!("websocket routes: /chat -> chat (prefix stripped), /lobby -> lobby, 429 and 404 before any backend");
    stop(proxy).await;
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_traffic_keeps_one_open() {
    let ws_backend = WsBackend::start("echo").await;
    let idle = Duration::from_millis(300);
    let proxy = TestProxy::start(single(&ws_backend, "[websocket]\nidle_timeout = \"300ms\""));
    let (mut ws, _) = open(proxy.addr, "/").await;

    // A message every 100 ms for twice the idle timeout: the tunnel stays.
    let busy = Instant::now();
    while busy.elapsed() < 2 * idle {
        echo(&mut ws, Message::text("still here")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    echo(&mut ws, Message::text("last words")).await;
    let quiet = Instant::now();
    ended(&mut ws, Duration::from_secs(3)).await;
    let closed_after = quiet.elapsed();
    assert!(closed_after >= idle, "closed after {closed_after:?}");
    assert!(
        closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
    assert_eventually!(
        Duration::from_secs(2),
        || async { ws_backend.open() == 0 && tunnels_open(&proxy) == 0 },
        "the idle tunnel's backend side stayed open"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        json_u64(&metrics, "tunnels_idle_timeouts"),
        1,
        "{metrics:#}"
    );
    println!(
        "websocket idle timeout {} ms: busy for {} ms, closed {} ms after the last message",
        idle.as_millis(),
        (2 * idle).as_millis(),
        closed_after.as_millis()
    );
    stop(proxy).await;
}

#[tokio::test]
async fn a_quiet_tunnel_outlives_the_listeners_read_timeout() {
    // The read timeout bounds request heads; once the connection is a tunnel, only the
    // tunnel's own idle timeout applies.
    let ws_backend = WsBackend::start("echo").await;
    let mut config = single(&ws_backend, "");
    config.listeners[0].read_timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(config);
    let (mut ws, _) = open(proxy.addr, "/").await;
    echo(&mut ws, Message::text("before")).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    echo(&mut ws, Message::text("after 700 ms of quiet")).await;
    assert_eq!(tunnels_open(&proxy), 1);
    drop(ws);
    assert_eventually!(
        Duration::from_secs(2),
        || async { tunnels_open(&proxy) == 0 },
        "the tunnel stayed open after its client left"
    );
    stop(proxy).await;
}

#[tokio::test]
async fn the_tunnel_limit_refuses_one_more_and_a_closed_tunnel_frees_its_place() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, "[websocket]\nmax_tunnels = 2"));
    let (mut first, _) = open(proxy.addr, "/").await;
    let (mut second, _) = open(proxy.addr, "/").await;

    let resp = refused(proxy.addr, "/").await;
    assert_eq!(resp.status(), 503);
    let body = resp.body().clone().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&body).contains("too many open WebSocket tunnels"),
        "{resp:?}"
    );
    assert_eq!(ws_backend.accepted(), 2, "no backend saw it");
    assert_eq!(tunnels_open(&proxy), 2);

    first.close(None).await.expect("close");
    ended(&mut first, Duration::from_secs(2)).await;
    drop(first);
    assert_eventually!(
        Duration::from_secs(2),
        || async { tunnels_open(&proxy) == 1 },
        "the closed tunnel kept its place"
    );
    let (mut third, _) = open(proxy.addr, "/").await;
    echo(&mut second, Message::text("second")).await;
    echo(&mut third, Message::text("third")).await;
    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_refused"), 1, "{metrics:#}");
    assert_eq!(json_u64(&metrics, "tunnels_open"), 2, "{metrics:#}");
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 3, "{metrics:#}");
    assert_eq!(
        json_u64(&metrics, "errors"),
        1,
        "the 503 is switchyard's own answer"
    );
    drop((second, third));
    println!("websocket limit 2: third refused with 503, accepted again after one closed");
    stop(proxy).await;
}

#[tokio::test]
async fn a_tunnel_holds_its_backend_slot_under_max_connections() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(load(&format!(
        "[pools.chat]\nbackends = [\"{}\"]\nmax_connections = 1\nqueue_timeout = \"100ms\"\n",
        ws_backend.url()
    )));
    let (mut first, _) = open(proxy.addr, "/").await;
    echo(&mut first, Message::text("holding the slot")).await;
    let outstanding = |proxy: &TestProxy| -> u32 {
        proxy.server.shared().state().pools[0].backends()[0]
            .load
            .outstanding()
    };
    assert_eq!(outstanding(&proxy), 1, "the open tunnel is outstanding");

    // The backend is at max_connections while the tunnel lives: a second upgrade waits out
    // the queue timeout and gets 503, and so does a plain request.
    let waited = Instant::now();
    let resp = refused(proxy.addr, "/").await;
    let waited = waited.elapsed();
    assert_eq!(resp.status(), 503);
    let body = resp.body().clone().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&body).contains("backend busy"),
        "{resp:?}"
    );
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert_eq!(ws_backend.accepted(), 1);

    first.close(None).await.expect("close");
    ended(&mut first, Duration::from_secs(2)).await;
    drop(first);
    assert_eventually!(
        Duration::from_secs(2),
        || async { outstanding(&proxy) == 0 },
        "the closed tunnel kept its backend slot"
    );
    let (mut second, _) = open(proxy.addr, "/").await;
    echo(&mut second, Message::text("the slot came back")).await;
    let metrics = proxy.metrics().await;
    assert_eq!(metrics["backends"][0]["failures"], 0, "{metrics:#}");
    drop(second);
    println!(
        "websocket max_connections 1: second upgrade 503 (backend busy) after {} ms while the first tunnel lived; accepted once it closed",
        waited.as_millis()
    );
    stop(proxy).await;
}

#[tokio::test]
async fn metrics_count_tunnels_in_json_and_prometheus() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, "[websocket]\nmax_tunnels = 1"));
    let (mut ws, _) = open(proxy.addr, "/").await;
    assert_eq!(refused(proxy.addr, "/").await.status(), 503);
    echo(&mut ws, Message::text("counted")).await;

    let metrics = proxy.metrics().await;
    let figures: Vec<u64> = ["tunnels_opened", "tunnels_open", "tunnels_refused"]
        .iter()
        .map(|k| json_u64(&metrics, k))
        .collect();
    assert_eq!(figures, [1, 1, 1], "{metrics:#}");
    let text = support::get(&proxy.url("/metrics?format=prometheus"))
        .await
        .text();
    for line in [
        "switchyard_tunnels_opened_total 1\n",
        "switchyard_tunnels_open 1\n",
        "switchyard_tunnels_refused_total 1\n",
        "switchyard_tunnels_idle_timeouts_total 0\n",
        "# TYPE switchyard_tunnels_open gauge\n",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    ws.close(None).await.expect("close");
    ended(&mut ws, Duration::from_secs(2)).await;
    drop(ws);
    assert_eventually!(
        Duration::from_secs(2),
        || async { json_u64(&proxy.metrics().await, "tunnels_open") == 0 },
        "tunnels_open did not go back to 0"
    );
    println!("websocket metrics: opened 1, refused 1, open 1 then 0 (JSON and Prometheus)");
    stop(proxy).await;
}

#[tokio::test]
async fn a_reload_leaves_open_tunnels_alone() {
    let old = WsBackend::start("old").await;
    let new = WsBackend::start("new").await;
    let proxy = TestProxy::start(single(&old, ""));
    let (mut ws, _) = open(proxy.addr, "/").await;
    echo(&mut ws, Message::text("before")).await;

    // The new configuration drops the old backend and allows a single tunnel.
    proxy
        .server
        .reload(single(&new, "[websocket]\nmax_tunnels = 1"))
        .expect("reload");

    echo(&mut ws, Message::text("after the reload")).await;
    assert_eq!(old.open(), 1);
    // The open tunnel counts against the new limit.
    assert_eq!(refused(proxy.addr, "/").await.status(), 503);
    ws.close(None).await.expect("close");
    ended(&mut ws, Duration::from_secs(2)).await;
    drop(ws);
    assert_eventually!(
        Duration::from_secs(2),
        || async { tunnels_open(&proxy) == 0 },
        "the tunnel kept its place"
    );
    let (ws, resp) = open(proxy.addr, "/").await;
    assert_eq!(resp.headers()["x-backend"], "new");
    drop(ws);
    println!("websocket reload: the open tunnel kept working; new upgrades go to the new backend");
    stop(proxy).await;
}

#[tokio::test]
async fn graceful_shutdown_keeps_a_tunnel_until_the_drain_deadline() {
    let ws_backend = WsBackend::start("echo").await;
    let mut config = single(&ws_backend, "");
    config.shutdown_timeout = Duration::from_millis(800);
    let proxy = TestProxy::start(config);
    let addr = proxy.addr;
    let (mut ws, _) = open(addr, "/").await;
    echo(&mut ws, Message::text("before")).await;

    let started = Instant::now();
    let (report, (echoed, cut_after)) = tokio::join!(proxy.stop(), async {
        assert_eventually!(
            Duration::from_secs(1),
            || async { TcpStream::connect(addr).await.is_err() },
            "new connections were still accepted while draining"
        );
        // The open tunnel keeps working while the proxy drains...
        let mut echoed = 0;
        while started.elapsed() < Duration::from_millis(500) {
            echo(&mut ws, Message::text(format!("draining {echoed}"))).await;
            echoed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ...and is cut at the drain deadline.
        ended(&mut ws, Duration::from_secs(3)).await;
        (echoed, started.elapsed())
    });
    assert!(!report.drained, "{report:?}");
    assert!(echoed >= 3, "only {echoed} messages echoed while draining");
    assert!(
        cut_after >= Duration::from_millis(800),
        "cut after {cut_after:?}"
    );
    assert!(
        cut_after < Duration::from_secs(2),
        "cut after {cut_after:?}"
    );
    // Cut on the backend's side too.
    assert_eventually!(
        Duration::from_secs(2),
        || async { ws_backend.open() == 0 },
        "the backend's side of the cut tunnel stayed open"
    );
    println!(
        "websocket drain: {echoed} messages echoed while draining, cut after {} ms (drain timeout 800 ms)",
        cut_after.as_millis()
    );
}

#[tokio::test]
async fn graceful_shutdown_ends_when_the_last_tunnel_closes() {
    let ws_backend = WsBackend::start("echo").await;
    let proxy = TestProxy::start(single(&ws_backend, ""));
    let (mut ws, _) = open(proxy.addr, "/").await;

    let started = Instant::now();
    let (report, ()) = tokio::join!(proxy.stop(), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        echo(&mut ws, Message::text("still open")).await;
        ws.close(None).await.expect("close");
        ended(&mut ws, Duration::from_secs(2)).await;
        drop(ws);
    });
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    // It waited for the tunnel, and not for the 5 s drain timeout.
    assert!(took >= Duration::from_millis(200), "shutdown took {took:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    println!(
        "websocket drain: shutdown finished {} ms after start, when the tunnel closed",
        took.as_millis()
    );
}

#[tokio::test]
async fn upgrade_headers_reach_a_backend_only_for_a_websocket_upgrade() {
    let server = backend("plain").await;
    let proxy = TestProxy::start(load(&format!(
        "[pools.web]\nbackends = [\"{}\"]\n",
        server.url()
    )));
    let mut client = Client::connect(proxy.addr).await;
    let cases: [(&str, &str, bool); 3] = [
        ("websocket", "keep-alive, Upgrade", true),
        // Without `Connection: upgrade`, and another protocol: stripped as hop-by-hop.
        ("websocket", "keep-alive", false),
        ("h2c", "Upgrade", false),
    ];
    for (upgrade, connection, kept) in cases {
        let req = http::Request::get("/echo")
            .header("upgrade", upgrade)
            .header("connection", connection)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .body(Bytes::new())
            .expect("request");
        let resp = client.send(req).await.expect("send");
        // A backend that does not switch protocols: its answer is relayed as any other.
        assert_eq!(resp.status, 200, "{}", resp.text());
        let echoed: serde_json::Value = resp.json();
        let header = |name: &str| -> Option<String> {
            echoed["headers"].as_array()?.iter().find_map(|pair| {
                let pair = pair.as_array()?;
                let found = pair[0].as_str()?.eq_ignore_ascii_case(name);
                found.then(|| pair[1].as_str().unwrap_or_default().to_owned())
            })
        };
        let case = format!("Upgrade: {upgrade}, Connection: {connection}");
        if kept {
            assert_eq!(header("upgrade").as_deref(), Some("websocket"), "{case}");
            assert_eq!(header("connection").as_deref(), Some("upgrade"), "{case}");
        } else {
            assert_eq!(header("upgrade"), None, "{case}");
            assert_eq!(header("connection"), None, "{case}");
        }
        assert!(header("sec-websocket-key").is_some(), "{case}");
    }
    let metrics = proxy.metrics().await;
    assert_eq!(json_u64(&metrics, "tunnels_opened"), 0, "{metrics:#}");
    println!("websocket headers: kept for a WebSocket upgrade, stripped for 2 other upgrades");
    stop(proxy).await;
}

#[test]
fn websocket_settings_are_read_and_checked() {
    let pool = "[pools.web]\nbackends = [\"http://127.0.0.1:8080\"]\n";
    let parse = |text: &str| from_text(Path::new("ws.toml"), &format!("{text}{pool}"));
    let config = parse("[websocket]\nmax_tunnels = 5\nidle_timeout = \"90s\"\n").expect("valid");
    assert_eq!(config.websocket.max_tunnels, 5);
    assert_eq!(config.websocket.idle_timeout, Duration::from_secs(90));
    let defaults = parse("").expect("valid");
    assert_eq!(defaults.websocket.max_tunnels, 10_000);
    assert_eq!(defaults.websocket.idle_timeout, Duration::from_secs(300));

    let err = parse("[websocket]\nmax_tunnels = -1\nidle_timeout = \"0s\"\nidle = \"1m\"\n")
        .expect_err("invalid");
    let shown = err.to_string();
    for line in [
        "ws.toml:2:15: websocket.max_tunnels:",
        "ws.toml:3:16: websocket.idle_timeout:",
        "ws.toml:4:1: websocket.idle: unknown key `idle`",
    ] {
        assert!(shown.contains(line), "{line:?} missing in:\n{shown}");
    }
    println!(
        "websocket settings: defaults 10000 tunnels and 5m, 3 mistakes reported with line and key"
    );
}
