//! WebSockets for the tests: a real WebSocket backend over HTTP/1.1 (tokio-tungstenite), and
//! a real HTTP/2 client (hyper's) that opens WebSockets on streams with the extended CONNECT
//! of RFC 8441, over h2c or TLS, then speaks WebSocket frames on them (tungstenite).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket backend on a fresh loopback port. It echoes text and binary messages, answers
/// the text `close-me` with a close of its own, refuses handshakes on `/refuse` with `403`,
/// picks the first subprotocol a client offers, accepts an offered `x-test` extension, and
/// tags its answers with `x-backend: NAME`.
pub struct WsBackend {
    pub addr: SocketAddr,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    closes: AtomicUsize,
    seen: Mutex<Vec<(String, http::HeaderMap)>>,
}

impl WsBackend {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stats = Arc::new(Stats::default());
        let shared = stats.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, name, shared.clone()));
            }
        });
        WsBackend { addr, stats }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Handshakes accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// WebSocket connections open now.
    pub fn open(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Close frames received so far.
    pub fn closes(&self) -> usize {
        self.stats.closes.load(Ordering::SeqCst)
    }

    /// Handshake requests seen so far (accepted or not).
    pub fn handshakes(&self) -> usize {
        self.stats.seen.lock().expect("lock").len()
    }

    /// The path and headers of the last handshake request it saw.
    pub fn last_seen(&self) -> (String, http::HeaderMap) {
        let seen = self.stats.seen.lock().expect("lock");
        seen.last().cloned().expect("a handshake was seen")
    }
}

async fn serve(stream: TcpStream, name: &'static str, stats: Arc<Stats>) {
    let tag = http::HeaderValue::from_static(name);
    // tungstenite's callback type, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |req: &server::Request, mut resp: server::Response| {
        let path = req.uri().path().to_owned();
        stats
            .seen
            .lock()
            .expect("lock")
            .push((path.clone(), req.headers().clone()));
        if path == "/refuse" {
            let mut refusal = server::ErrorResponse::new(Some("no websockets here\n".into()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            refusal.headers_mut().insert("x-backend", tag.clone());
            return Err(refusal);
        }
        let offered = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let headers = resp.headers_mut();
        if let Some(first) = offered("sec-websocket-protocol").first() {
            headers.insert("sec-websocket-protocol", first.parse().expect("protocol"));
        }
        if offered("sec-websocket-extensions")
            .iter()
            .any(|e| e == "x-test")
        {
            headers.insert("sec-websocket-extensions", "x-test".parse().expect("ext"));
        }
        headers.insert("x-backend", tag.clone());
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    stats.accepted.fetch_add(1, Ordering::SeqCst);
    stats.open.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(ref text) if text.as_str() == "close-me" => {
                let bye = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                };
                let _ = ws.close(Some(bye)).await;
            }
            Message::Text(_) | Message::Binary(_) => {
                let sent = ws.send(msg).await;
                if sent.is_err() {
                    break;
                }
            }
            // tungstenite answers pings and replies to a close itself.
            Message::Close(_) => {
                stats.closes.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    stats.open.fetch_sub(1, Ordering::SeqCst);
}

/// The next data message on `ws`, within 2 s.
pub async fn next_message<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(msg))) if msg.is_text() || msg.is_binary() => return msg,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}

/// Sends `msg` and checks that the same comes back.
pub async fn echo<S>(ws: &mut WebSocketStream<S>, msg: Message)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(msg.clone()).await.expect("send");
    assert_eq!(next_message(ws).await, msg);
}

/// Reads until the stream ends (within `within`), returning the close frame it got, if any.
pub async fn ended<S>(ws: &mut WebSocketStream<S>, within: Duration) -> Option<CloseFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut close = None;
    let read = tokio::time::timeout(within, async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Close(frame) = msg {
                close = frame;
            }
        }
    });
    read.await.expect("the WebSocket did not end in time");
    close
}

/// A WebSocket on an HTTP/2 stream, client side.
pub type H2Ws = WebSocketStream<TokioIo<Upgraded>>;

/// What the proxy answered an extended CONNECT with.
pub struct Opened {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The WebSocket, when the answer was `200`.
    pub ws: Option<H2Ws>,
    /// The body of any other answer.
    pub body: Bytes,
}

impl Opened {
    /// The WebSocket, which must be open.
    pub fn ws(self) -> H2Ws {
        let status = self.status;
        let body = String::from_utf8_lossy(&self.body).into_owned();
        self.ws
            .unwrap_or_else(|| panic!("the WebSocket was not opened: {status} {body}"))
    }
}

/// One HTTP/2 client connection that opens WebSockets on its streams.
#[derive(Clone)]
pub struct H2WsClient {
    sender: http2::SendRequest<Empty<Bytes>>,
    /// `scheme://authority` of the requests.
    base: String,
    /// The server's SETTINGS enable the extended CONNECT protocol.
    connect_protocol: Arc<AtomicBool>,
}

impl H2WsClient {
    /// HTTP/2 with prior knowledge (h2c) to `addr`.
    pub async fn h2c(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::over(stream, &format!("http://{addr}")).await
    }

    /// HTTP/2 over `io` (a TLS stream that negotiated `h2`), requests for `base`
    /// (`https://name:port`).
    pub async fn over<I>(io: I, base: &str) -> Self
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .expect("h2 handshake");
        // Only the connection knows the server's settings (hyper reads frames in a task of
        // its own): asked every 5 ms while it runs.
        let enabled = Arc::new(AtomicBool::new(false));
        let told = enabled.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let mut ask = tokio::time::interval(Duration::from_millis(5));
            let _ = std::future::poll_fn(|cx| {
                let polled = conn.as_mut().poll(cx);
                told.store(
                    conn.is_extended_connect_protocol_enabled(),
                    Ordering::SeqCst,
                );
                while ask.poll_tick(cx).is_ready() {}
                polled
            })
            .await;
        });
        H2WsClient {
            sender,
            base: base.to_owned(),
            connect_protocol: enabled,
        }
    }

    /// Waits (up to 2 s) for the server's SETTINGS; true when they enable the extended
    /// CONNECT protocol (`SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`).
    pub async fn connect_protocol_enabled(&self) -> bool {
        super::eventually(Duration::from_secs(2), || async {
            self.connect_protocol.load(Ordering::SeqCst)
        })
        .await
    }

    /// Sends `req` (a path-only URI goes to this connection's `base`) and reads the answer:
    /// a CONNECT's `200` makes the stream the WebSocket.
    pub async fn send(&mut self, req: http::Request<Empty<Bytes>>) -> Result<Opened, hyper::Error> {
        let (mut parts, body) = req.into_parts();
        let connect = parts.method == http::Method::CONNECT;
        if parts.uri.authority().is_none() {
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("{}{pq}", self.base).parse().expect("uri");
        }
        self.sender.ready().await?;
        let mut resp = self
            .sender
            .send_request(http::Request::from_parts(parts, body))
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if status == 200 && connect {
            let upgraded = hyper::upgrade::on(&mut resp).await?;
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
            return Ok(Opened {
                status,
                headers,
                ws: Some(ws),
                body: Bytes::new(),
            });
        }
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Opened {
            status,
            headers,
            ws: None,
            body,
        })
    }

    /// An extended CONNECT for `path` with `:protocol = websocket`, offering `protocols`
    /// (`Sec-WebSocket-Protocol`) when given.
    pub async fn open(&mut self, path: &str, protocols: Option<&str>) -> Opened {
        let mut req = websocket_connect(path);
        if let Some(protocols) = protocols {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                protocols.parse().expect("protocols"),
            );
        }
        self.send(req).await.expect("extended CONNECT")
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// An extended CONNECT request (RFC 8441 §4) for `path`: `:protocol = websocket`,
/// `Sec-WebSocket-Version: 13`.
pub fn websocket_connect(path: &str) -> http::Request<Empty<Bytes>> {
    let mut req = http::Request::connect(path)
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .expect("request");
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    req
}
