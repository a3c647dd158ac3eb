//! gRPC for the tests with tonic's own halves and no code generation: a codec whose messages
//! are UTF-8 strings ([`TextCodec`]), and a client ([`EchoClient`]: tonic's `client::Grpc`
//! over a hyper HTTP/2 connection, h2c or TLS, of the test's making). The service it calls
//! is in [`super::service`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::{Request, Response, Status};

/// The service's full name, as in `/test.Echo/Unary`.
pub const SERVICE: &str = "test.Echo";

/// A codec whose messages are UTF-8 text, sent as is (no protobuf).
#[derive(Clone, Copy, Debug, Default)]
pub struct TextCodec;

/// [`TextCodec`]'s encoder and decoder.
#[derive(Clone, Copy, Debug, Default)]
pub struct Text;

impl Codec for TextCodec {
    type Encode = String;
    type Decode = String;
    type Encoder = Text;
    type Decoder = Text;

    fn encoder(&mut self) -> Text {
        Text
    }

    fn decoder(&mut self) -> Text {
        Text
    }
}

impl Encoder for Text {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for Text {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| Status::internal(format!("message is not UTF-8: {e}")))
    }
}

/// One HTTP/2 client connection as a `tower::Service`, which is what tonic's client runs on.
#[derive(Clone)]
pub struct H2Channel {
    sender: http2::SendRequest<tonic::body::Body>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Channel {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> ResponseFuture {
        Box::pin(self.sender.send_request(req))
    }
}

/// A stream of messages the test writes as it goes (dropping the sender ends it).
pub type Outgoing = Pin<Box<dyn futures_util::Stream<Item = String> + Send>>;

/// A stream of outgoing messages and its sender; the channel holds one message, so a send
/// returns once the previous message was taken by the encoder.
pub fn outgoing() -> (tokio::sync::mpsc::Sender<String>, Outgoing) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, Box::pin(stream))
}

/// A client of the test service over one HTTP/2 connection.
#[derive(Clone)]
pub struct EchoClient {
    grpc: tonic::client::Grpc<H2Channel>,
}

impl EchoClient {
    /// Connects with cleartext HTTP/2 (prior knowledge) to `addr`.
    pub async fn h2c(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let origin = format!("http://{addr}").parse().expect("origin");
        Self::over(stream, origin).await
    }

    /// Speaks HTTP/2 on `io` (TCP, or TLS whose ALPN chose `h2`); requests go to `origin`
    /// (`:scheme` and `:authority`).
    pub async fn over<T>(io: T, origin: http::Uri) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let grpc = tonic::client::Grpc::with_origin(H2Channel { sender }, origin);
        EchoClient { grpc }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))
    }

    fn path(method: &str) -> http::uri::PathAndQuery {
        format!("/{SERVICE}/{method}").parse().expect("path")
    }

    /// `Unary`: one message each way.
    pub async fn unary(&mut self, req: Request<String>) -> Result<Response<String>, Status> {
        self.ready().await?;
        let path = Self::path("Unary");
        self.grpc.unary(req, path, TextCodec).await
    }

    /// `Count`: one request, a stream of answers.
    pub async fn count(
        &mut self,
        req: Request<String>,
    ) -> Result<Response<Streaming<String>>, Status> {
        self.ready().await?;
        let path = Self::path("Count");
        self.grpc.server_streaming(req, path, TextCodec).await
    }

    /// `Collect`: a stream of requests, one answer.
    pub async fn collect(&mut self, req: Request<Outgoing>) -> Result<Response<String>, Status> {
        self.ready().await?;
        let path = Self::path("Collect");
        self.grpc.client_streaming(req, path, TextCodec).await
    }

    /// `Chat`: streams both ways.
    pub async fn chat(
        &mut self,
        req: Request<Outgoing>,
    ) -> Result<Response<Streaming<String>>, Status> {
        self.ready().await?;
        let path = Self::path("Chat");
        self.grpc.streaming(req, path, TextCodec).await
    }
}

/// A metadata value as text ("" when absent or not ASCII).
pub fn meta(map: &tonic::metadata::MetadataMap, key: &str) -> String {
    map.get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
