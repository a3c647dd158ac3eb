//! `test-server`: the small HTTP backend used by switchyard's demo, tests and benchmarks.
//!
//! It answers every path with its message, except a few paths that demos and tests need:
//!
//! | path            | answer |
//! |-----------------|--------|
//! | `/health`       | `200 {"status":"UP"}` (or the status set with [`TestServer::set_health`]) |
//! | `/echo`         | the request as JSON: method, path, authority (HTTP/2), query, version, headers (in order, duplicates kept), body |
//! | `/status/{code}`| that status code |
//! | `/delay/{ms}`   | the message, after `ms` milliseconds |
//! | `/bytes/{n}`    | `n` bytes of a fixed pattern ([`pattern_byte`]), streamed in 64 KiB chunks |
//! | `/mirror`       | the request body streamed back as it arrives |
//!
//! It speaks HTTP/1.1 and, on the same port, cleartext HTTP/2 with prior knowledge (h2c),
//! told apart by the connection preface. Every response carries `x-served-by: <port>` so a
//! client can tell which backend answered.
//! Tests can make one backend misbehave while others do not: [`TestServer::set_health`]
//! changes what `/health` answers, [`TestServer::set_status`] the status of every other
//! (message) answer, and [`TestServer::set_delay`] delays them.
//! [`spawn`] runs a server on a listener the caller bound (tests hand over `127.0.0.1:0`
//! listeners, never port numbers) and returns a [`TestServer`] that counts requests and
//! connections and can be stopped mid-test, closing its keep-alive connections as a killed
//! process would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest body `/echo` will read into memory.
const ECHO_MAX_BODY: usize = 1 << 20;
/// Chunk size of `/bytes/{n}`.
const CHUNK: usize = 64 * 1024;

/// What a test server answers with.
#[derive(Clone, Debug)]
pub struct Options {
    /// Body of `GET /` (and of every path that is not one of the special ones), without the
    /// trailing newline that is added to it.
    pub message: String,
}

/// A running test server. Dropping it does not stop it; call [`TestServer::stop`].
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Stats {
    requests: AtomicU64,
    connections: AtomicU64,
    health_status: AtomicU16,
    message_status: AtomicU16,
    delay_ms: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            health_status: AtomicU16::new(200),
            message_status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
        }
    }
}

struct Shared {
    message: Bytes,
    served_by: HeaderValue,
    stats: Arc<Stats>,
}

type RespBody = BoxBody<Bytes, hyper::Error>;

/// Starts serving on `listener` in the current tokio runtime.
pub fn spawn(listener: TcpListener, options: Options) -> std::io::Result<TestServer> {
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let served_by = HeaderValue::from(addr.port());
    let mut message = options.message.into_bytes();
    message.push(b'\n');
    let shared = Arc::new(Shared {
        message: Bytes::from(message),
        served_by,
        stats: stats.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared, stopped));
    Ok(TestServer {
        addr,
        stats,
        stop,
        task,
    })
}

/// Binds `port` on every interface, IPv6 and IPv4 (as Go's `:port` does), falling back to
/// IPv4 only where the machine has no IPv6.
pub async fn bind_all_interfaces(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(("::", port)).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(e),
        Err(_) => TcpListener::bind(("0.0.0.0", port)).await,
    }
}

/// The byte at offset `i` of every `/bytes/{n}` body, so that clients can verify what they got.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

// === impl TestServer ===

impl TestServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, ready to be given to switchyard as a backend.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Makes `/health` answer with `status` (200 by default).
    pub fn set_health(&self, status: u16) {
        self.stats.health_status.store(status, Ordering::Relaxed);
    }

    /// Makes the message answers (every path but the special ones) use `status` (200 by
    /// default), e.g. 503 to play a failing backend.
    pub fn set_status(&self, status: u16) {
        self.stats.message_status.store(status, Ordering::Relaxed);
    }

    /// Delays the message answers by `ms` milliseconds (0 by default), to play a slow backend.
    pub fn set_delay(&self, ms: u64) {
        self.stats.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops accepting and closes every open connection at once (no graceful close), as a
    /// killed process would; waits until the listening socket is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Runs until the process is interrupted.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors or similar: back off a little, keep serving.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<RespBody> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path();
    let stats = &shared.stats;
    let mut resp = if path == "/health" {
        let status = StatusCode::from_u16(stats.health_status.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::OK);
        let word = if status.is_success() { "UP" } else { "DOWN" };
        json(status, serde_json::json!({ "status": word }))
    } else if path == "/echo" {
        echo(req).await
    } else if path == "/mirror" {
        Response::new(req.into_body().boxed())
    } else if let Some(code) = path.strip_prefix("/status/") {
        match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => {
                let mut resp = full(Bytes::from(format!("status {}\n", status.as_u16())));
                *resp.status_mut() = status;
                resp
            }
            None => text(StatusCode::BAD_REQUEST, "bad status code\n"),
        }
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        match ms.parse::<u64>() {
            Ok(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                full(shared.message.clone())
            }
            Err(_) => text(StatusCode::BAD_REQUEST, "bad delay\n"),
        }
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<u64>() {
            Ok(n) => Response::new(PatternBody { sent: 0, len: n }.boxed()),
            Err(_) => text(StatusCode::BAD_REQUEST, "bad length\n"),
        }
    } else {
        let delay = stats.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut resp = full(shared.message.clone());
        let status = stats.message_status.load(Ordering::Relaxed);
        if status != 200 {
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        }
        resp
    };
    resp.headers_mut()
        .insert("x-served-by", shared.served_by.clone());
    resp
}

async fn echo(req: Request<Incoming>) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, ECHO_MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large for /echo\n"),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "authority": parts.uri.authority().map(|a| a.as_str()),
            "query": parts.uri.query(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }),
    )
}

fn full(body: Bytes) -> Response<RespBody> {
    Response::new(Full::new(body).map_err(|never| match never {}).boxed())
}

fn text(status: StatusCode, body: &'static str) -> Response<RespBody> {
    let mut resp = full(Bytes::from_static(body.as_bytes()));
    *resp.status_mut() = status;
    resp
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<RespBody> {
    let mut resp = full(Bytes::from(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A buffer of the pattern long enough that any chunk is a zero-copy slice of it.
fn pattern_buffer() -> &'static Bytes {
    static BUF: OnceLock<Bytes> = OnceLock::new();
    BUF.get_or_init(|| (0..(CHUNK as u64 + 251)).map(pattern_byte).collect())
}

/// `/bytes/{n}`: `len` pattern bytes with an exact size hint, produced chunk by chunk.
struct PatternBody {
    sent: u64,
    len: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let remaining = self.len - self.sent;
        if remaining == 0 {
            return Poll::Ready(None);
        }
        let n = remaining.min(CHUNK as u64) as usize;
        let start = (self.sent % 251) as usize;
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(
            pattern_buffer().slice(start..start + n),
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len - self.sent)
    }
}

/// Rewrites Go-style single-dash long flags (`-listen=:3000`, `-port 8080`) into the
/// double-dash form clap expects, for the flag names in `long_flags`. Both switchyard and
/// test-server accept the Go forms because users copy them from the seed's README.
pub fn go_style_args(args: impl IntoIterator<Item = String>, long_flags: &[&str]) -> Vec<String> {
    args.into_iter()
        .map(|arg| {
            let is_go_style = arg.starts_with('-')
                && !arg.starts_with("--")
                && long_flags.contains(&arg[1..].split('=').next().unwrap_or_default());
            if is_go_style {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_flags_become_double_dash() {
        let args = ["prog", "-port=8080", "-message", "hi", "--port", "-x", "-"].map(String::from);
        let out = go_style_args(args, &["port", "message"]);
        assert_eq!(
            out,
            [
                "prog",
                "--port=8080",
                "--message",
                "hi",
                "--port",
                "-x",
                "-"
            ]
        );
    }

    #[test]
    fn pattern_chunks_continue_across_boundaries() {
        let mut body = PatternBody {
            sent: 0,
            len: CHUNK as u64 + 10,
        };
        let mut all = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            all.extend_from_slice(frame.data_ref().expect("data frame"));
        }
        assert_eq!(all.len(), CHUNK + 10);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern_byte(i as u64)));
    }
}
