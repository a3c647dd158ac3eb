//! HTTP/2 for the tests: a real client (hyper's, cleartext with prior knowledge) and a real
//! HTTP/2 backend whose answers the test writes (trailers, streaming, delays), counting the
//! connections and the streams it sees at once.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard::config::{BackendUrl, Scheme};
use tokio::net::{TcpListener, TcpStream};

use super::Resp;

/// A boxed body, as the backends and clients here send.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// One HTTP/2 client connection (h2c, prior knowledge).
#[derive(Clone)]
pub struct H2Client {
    sender: http2::SendRequest<Body>,
    authority: String,
}

/// A response read whole, trailers included.
#[derive(Debug)]
pub struct H2Resp {
    pub resp: Resp,
    pub version: http::Version,
    pub trailers: Option<http::HeaderMap>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Client {
            sender,
            authority: addr.to_string(),
        }
    }

    /// Sends `req`; a path-only URI goes to this connection's address as `:authority`.
    pub async fn send(
        &mut self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, hyper::Error> {
        let (mut parts, body) = req.into_parts();
        if parts.uri.authority().is_none() {
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("http://{}{pq}", self.authority)
                .parse()
                .expect("uri");
        }
        self.sender.ready().await?;
        self.sender
            .send_request(http::Request::from_parts(parts, body))
            .await
    }

    /// Sends `req` and reads the whole answer.
    pub async fn fetch(&mut self, req: http::Request<Body>) -> Result<H2Resp, hyper::Error> {
        let resp = self.send(req).await?;
        read_whole(resp).await
    }

    pub async fn get(&mut self, path: &str) -> H2Resp {
        let req = http::Request::get(path).body(full("")).expect("request");
        self.fetch(req).await.expect("GET over HTTP/2")
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Reads a response's body and trailers.
pub async fn read_whole(resp: http::Response<Incoming>) -> Result<H2Resp, hyper::Error> {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(H2Resp {
        resp: Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: collected.to_bytes(),
        },
        version: parts.version,
        trailers,
    })
}

type Handler = Arc<
    dyn Fn(http::Request<Incoming>) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// An HTTP/2-only backend (h2c) answering with `handler`.
pub struct H2Backend {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    peak_streams: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl H2Backend {
    /// Starts it on a fresh loopback port; `max_streams` is its
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (none: hyper's default).
    pub async fn start<F, Fut>(max_streams: Option<u32>, handler: F) -> Self
    where
        F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = http::Response<Body>> + Send + 'static,
    {
        Self::start_with(max_streams, None, handler).await
    }

    /// As [`H2Backend::start`]; `per_connection`: after that many requests on a
    /// connection, it is shut down gracefully (GOAWAY), as a server rotating its
    /// connections does.
    pub async fn start_with<F, Fut>(
        max_streams: Option<u32>,
        per_connection: Option<usize>,
        handler: F,
    ) -> Self
    where
        F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = http::Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let backend = H2Backend {
            addr,
            connections: Arc::default(),
            streams: Arc::default(),
            peak_streams: Arc::default(),
            requests: Arc::default(),
        };
        let (connections, streams, peak, requests) = (
            backend.connections.clone(),
            backend.streams.clone(),
            backend.peak_streams.clone(),
            backend.requests.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                connections.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                let (streams, peak, requests) = (streams.clone(), peak.clone(), requests.clone());
                let served_here = Arc::new(AtomicUsize::new(0));
                let enough = Arc::new(tokio::sync::Notify::new());
                let (count, full) = (served_here.clone(), enough.clone());
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    let (streams, peak) = (streams.clone(), peak.clone());
                    requests.fetch_add(1, Ordering::SeqCst);
                    if Some(count.fetch_add(1, Ordering::SeqCst) + 1) == per_connection {
                        full.notify_one();
                    }
                    async move {
                        let now = streams.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let resp = handler(req).await;
                        streams.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder.max_concurrent_streams(max_streams);
                tokio::spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = enough.notified() => conn.as_mut().graceful_shutdown(),
                    }
                    let _ = conn.await;
                });
            }
        });
        backend
    }

    /// Its URL, `h2c://127.0.0.1:PORT`.
    pub fn url(&self) -> BackendUrl {
        BackendUrl {
            scheme: Scheme::H2c,
            ..BackendUrl::http("127.0.0.1", self.addr.port())
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Most requests it was answering at once (until the head of each answer).
    pub fn peak_streams(&self) -> usize {
        self.peak_streams.load(Ordering::SeqCst)
    }
}

/// A body whose frames come from a channel, as they are sent: a stream of messages.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<http_body::Frame<Bytes>>);

/// A streaming body and the sender of its frames; dropping the sender ends it.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<http_body::Frame<Bytes>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}
