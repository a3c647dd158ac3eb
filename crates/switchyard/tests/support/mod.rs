//! Shared helpers for the integration tests: a real switchyard started in-process on
//! `127.0.0.1:0`, real test-server backends, a small HTTP client, raw sockets, and
//! `eventually` for waiting on conditions instead of sleeping.
#![allow(dead_code, missing_docs)]

pub mod backends;
pub mod h2;
pub mod h2raw;
pub mod logs;
pub mod metrics;
pub mod pki;
pub mod process;
pub mod raw;
pub mod wire;
pub mod ws;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use switchyard::config::BackendUrl;
use switchyard::{Config, Server, ShutdownReport};
use test_server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy running in this process.
pub struct TestProxy {
    pub server: Server,
    pub addr: SocketAddr,
}

impl TestProxy {
    /// Starts switchyard with `config` on a fresh loopback port.
    pub fn start(config: Config) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let server = switchyard::start_with_listener(config, listener).expect("start proxy");
        let addr = server.local_addr();
        TestProxy { server, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown.
    pub async fn stop(self) -> ShutdownReport {
        self.server.shutdown().await
    }

    /// `/metrics` as JSON.
    pub async fn metrics(&self) -> serde_json::Value {
        let resp = get(&self.url("/metrics")).await;
        assert_eq!(resp.status, 200);
        serde_json::from_slice(&resp.body).expect("metrics JSON")
    }

    /// `/health` as JSON.
    pub async fn health(&self) -> serde_json::Value {
        let resp = get(&self.url("/health")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }
}

/// Starts a test-server backend on a fresh loopback port in the current runtime.
pub async fn backend(message: &str) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    test_server::spawn(
        listener,
        test_server::Options {
            message: message.to_owned(),
        },
    )
    .expect("spawn backend")
}

/// A loopback port that refuses connections: bound but not listening, so that no other test
/// can take it while the returned socket is alive.
pub fn dead_port() -> (socket2::Socket, BackendUrl) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let port = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    (socket, url_for_port(port))
}

pub fn url_for(server: &TestServer) -> BackendUrl {
    url_for_port(server.addr().port())
}

pub fn url_for_port(port: u16) -> BackendUrl {
    BackendUrl::http("127.0.0.1", port)
}

/// A test configuration over `backends`: no rate limit, two workers, short timeouts.
pub fn config(backends: Vec<BackendUrl>) -> Config {
    let single = Config::single_pool(backends);
    Config {
        workers: 2,
        rate_limit: switchyard::config::RateLimitConfig {
            requests: 0,
            ..single.rate_limit
        },
        shutdown_timeout: Duration::from_secs(5),
        ..single
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The port of the test backend that answered (`x-served-by`), if one did.
    pub fn served_by(&self) -> Option<u16> {
        self.headers.get("x-served-by")?.to_str().ok()?.parse().ok()
    }
}

/// One keep-alive HTTP/1.1 client connection.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client::over(stream, &addr.to_string()).await
    }

    /// An HTTP/1.1 client over an established connection (TCP, TLS), for `host`.
    pub async fn over<S>(stream: S, host: &str) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Client {
            sender,
            host: host.to_owned(),
        }
    }

    /// Sends a request; `Host` is set to the proxy's address unless given.
    pub async fn send(&mut self, req: http::Request<Bytes>) -> Result<Resp, hyper::Error> {
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(http::header::HOST) {
            parts
                .headers
                .insert(http::header::HOST, self.host.parse().expect("host"));
        }
        self.sender.ready().await?;
        let resp = self
            .sender
            .send_request(http::Request::from_parts(parts, Full::new(body)))
            .await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(
            http::Request::get(path)
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("GET")
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// `GET url` on a fresh connection, as `curl url` does.
pub async fn get(url: &str) -> Resp {
    let uri: http::Uri = url.parse().expect("url");
    let addr: SocketAddr = uri
        .authority()
        .expect("authority")
        .as_str()
        .parse()
        .expect("socket addr");
    let mut client = Client::connect(addr).await;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    client.get(path).await
}

/// Writes `request` bytes on a fresh connection and reads until the server closes it or
/// `wait` passes; returns what was read.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_until_close(&mut stream, wait).await
}

/// Reads until EOF or `wait` passes.
pub async fn read_until_close(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `check` returns true, polling every 10 ms, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Panics unless `check` becomes true within `within`.
#[macro_export]
macro_rules! assert_eventually {
    ($within:expr, $check:expr, $($msg:tt)+) => {
        assert!($crate::support::eventually($within, $check).await, $($msg)+)
    };
}

/// A folder of its own under the system's temporary folder, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// `switchyard-{what}-{pid}-{name}`, empty.
    pub fn new(what: &str, name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("switchyard-{what}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// A path inside it.
    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
