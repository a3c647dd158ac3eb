//! The test service, served by tonic's `server::Grpc` (no code generation) on an h2c
//! [`H2Backend`]: `test.Echo` with one method of each kind, and hooks for the tests: a
//! server stream that waits for the test before each next message, the messages of a
//! client stream reported as they arrive, a slow call that notices when it is cancelled,
//! and what each request's head carried.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use switchyard::config::BackendUrl;
use tokio::sync::{mpsc, Notify, Semaphore};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::Grpc;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::client::{TextCodec, SERVICE};
use crate::support::h2::{Body, H2Backend};

/// A stream of answers.
pub type Answers = Pin<Box<dyn futures_util::Stream<Item = Result<String, Status>> + Send>>;

/// What one request's head carried, as the backend saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub path: String,
    pub te: String,
    pub grpc_timeout: String,
    pub forwarded_proto: String,
}

/// What the backend and the test share.
struct Shared {
    /// One permit per message a gated `Count` may send after its first.
    next: Semaphore,
    /// The messages of `Collect` calls, as they arrive.
    received: mpsc::UnboundedSender<String>,
    /// A slow `Unary` call or a `Count` stream was dropped before its end.
    cancelled: Notify,
    seen: Mutex<Vec<Seen>>,
}

/// The test service on its own h2c backend.
pub struct GrpcBackend {
    pub h2: H2Backend,
    shared: Arc<Shared>,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl GrpcBackend {
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next: Semaphore::new(0),
            received: tx,
            cancelled: Notify::new(),
            seen: Mutex::default(),
        });
        let on_request = shared.clone();
        let h2 = H2Backend::start(None, move |req| serve(on_request.clone(), req)).await;
        GrpcBackend {
            h2,
            shared,
            received: tokio::sync::Mutex::new(rx),
        }
    }

    /// `h2c://127.0.0.1:PORT`.
    pub fn url(&self) -> BackendUrl {
        self.h2.url()
    }

    /// Lets a gated `Count` send its next message.
    pub fn release_next(&self) {
        self.shared.next.add_permits(1);
    }

    /// The next message a `Collect` call received (waits for it).
    pub async fn received(&self) -> String {
        let mut rx = self.received.lock().await;
        rx.recv().await.expect("backend gone")
    }

    /// Waits until a slow call or a stream was cancelled.
    pub async fn cancelled(&self) {
        self.shared.cancelled.notified().await;
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }
}

/// A `tower::Service` from a closure: tonic's service traits are implemented for those.
#[derive(Clone)]
pub struct Method<F>(pub F);

impl<F, Fut, Req, Resp> tower_service::Service<Request<Req>> for Method<F>
where
    F: FnMut(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    type Response = Response<Resp>;
    type Error = Status;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Req>) -> Fut {
        (self.0)(req)
    }
}

async fn serve(shared: Arc<Shared>, req: http::Request<Incoming>) -> http::Response<Body> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let seen = Seen {
        path: req.uri().path().to_owned(),
        te: header("te"),
        grpc_timeout: header("grpc-timeout"),
        forwarded_proto: header("x-forwarded-proto"),
    };
    shared.seen.lock().expect("lock").push(seen.clone());
    let method = seen
        .path
        .strip_prefix(&format!("/{SERVICE}/"))
        .unwrap_or("");
    let mut grpc = Grpc::new(TextCodec);
    let resp = match method {
        "Unary" => {
            let s = shared.clone();
            let svc = Method(move |r: Request<String>| unary(s.clone(), r.into_inner()));
            grpc.unary(svc, req).await
        }
        "Count" => {
            let s = shared.clone();
            let svc = Method(move |r: Request<String>| count(s.clone(), r.into_inner()));
            grpc.server_streaming(svc, req).await
        }
        "Collect" => {
            let s = shared.clone();
            let svc = Method(move |r: Request<Streaming<String>>| collect(s.clone(), r));
            grpc.client_streaming(svc, req).await
        }
        "Chat" => {
            let svc = Method(|r: Request<Streaming<String>>| chat(r));
            grpc.streaming(svc, req).await
        }
        _ => Status::unimplemented(format!("no method {method:?}")).into_http(),
    };
    resp.map(|body| SyncBody(Mutex::new(body)).boxed())
}

/// tonic's body, made `Sync` for [`H2Backend`]'s boxed body (only ever polled by one task,
/// so its lock is never contended).
struct SyncBody(Mutex<tonic::body::Body>);

impl http_body::Body for SyncBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let body = self.get_mut().0.get_mut().expect("lock");
        Pin::new(body)
            .poll_frame(cx)
            .map_err(|status| status.into())
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().expect("lock").is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().expect("lock").size_hint()
    }
}

fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (key, value) in pairs {
        let value: MetadataValue<_> = value.parse().expect("metadata value");
        map.insert(*key, value);
    }
    map
}

/// Notifies `cancelled` when dropped before it is marked done: a call the client (or the
/// proxy) gave up on.
struct CancelGuard {
    shared: Arc<Shared>,
    done: bool,
}

impl CancelGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        CancelGuard {
            shared: shared.clone(),
            done: false,
        }
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancelled.notify_one();
        }
    }
}

/// `echo: MSG`; `slow` answers after 10 s (or is cancelled); `fail` is INVALID_ARGUMENT
/// with a message and metadata; `unavailable` is UNAVAILABLE.
async fn unary(shared: Arc<Shared>, msg: String) -> Result<Response<String>, Status> {
    match msg.as_str() {
        "slow" => {
            let mut guard = CancelGuard::new(&shared);
            tokio::time::sleep(Duration::from_secs(10)).await;
            guard.done = true;
            Ok(Response::new("late".to_owned()))
        }
        "fail" => Err(Status::with_metadata(
            Code::InvalidArgument,
            "bad argument: 100% ünïcode",
            metadata(&[("x-detail", "trailers-only")]),
        )),
        "unavailable" => Err(Status::unavailable("backend going away")),
        _ => {
            let mut resp = Response::new(format!("echo: {msg}"));
            resp.metadata_mut()
                .insert("x-served-by", MetadataValue::from_static("tonic"));
            Ok(resp)
        }
    }
}

/// `N [gated] [status=CODE]`: the messages `1` to `N` (when gated, each after the first
/// waits for [`GrpcBackend::release_next`]), then status `CODE` (default OK) in the
/// trailers with a `grpc-message` and the custom metadata `x-total: N`. A stream dropped
/// before its end notifies `cancelled`.
async fn count(shared: Arc<Shared>, msg: String) -> Result<Response<Answers>, Status> {
    let mut words = msg.split_whitespace();
    let n: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| Status::invalid_argument("N first"))?;
    let (mut gated, mut code) = (false, Code::Ok);
    for word in words {
        match word.strip_prefix("status=") {
            Some(c) => code = Code::from(c.parse::<i32>().unwrap_or(2)),
            None => gated |= word == "gated",
        }
    }
    // The guard lives as long as the stream: dropped before its end, the call was cancelled.
    let start = (1, CancelGuard::new(&shared));
    let stream = futures_util::stream::unfold(start, move |(i, mut guard)| {
        let shared = shared.clone();
        async move {
            if i > n + 1 {
                return None;
            }
            if i == n + 1 {
                guard.done = true;
                let total = n.to_string();
                let meta = metadata(&[("x-total", &total)]);
                let end = Status::with_metadata(code, format!("sent {n}: ✓"), meta);
                return Some((Err(end), (i + 1, guard)));
            }
            if gated && i > 1 {
                shared.next.acquire().await.expect("semaphore").forget();
            }
            Some((Ok(i.to_string()), (i + 1, guard)))
        }
    });
    Ok(Response::new(Box::pin(stream) as Answers))
}

/// Reports each message as it arrives; answers `got N: a,b,c`.
async fn collect(
    shared: Arc<Shared>,
    req: Request<Streaming<String>>,
) -> Result<Response<String>, Status> {
    let mut stream = req.into_inner();
    let mut all = Vec::new();
    while let Some(msg) = stream.message().await? {
        let _ = shared.received.send(msg.clone());
        all.push(msg);
    }
    Ok(Response::new(format!(
        "got {}: {}",
        all.len(),
        all.join(",")
    )))
}

/// Echoes each message as it arrives (`echo: MSG`); ends with `x-chat-count` in the
/// trailers.
async fn chat(req: Request<Streaming<String>>) -> Result<Response<Answers>, Status> {
    let stream = req.into_inner();
    let answers = futures_util::stream::unfold(Some((stream, 0u32)), |state| async move {
        let (mut stream, n) = state?;
        match stream.message().await {
            Ok(Some(msg)) => Some((Ok(format!("echo: {msg}")), Some((stream, n + 1)))),
            Ok(None) => {
                let count = n.to_string();
                let meta = metadata(&[("x-chat-count", &count)]);
                Some((Err(Status::with_metadata(Code::Ok, "", meta)), None))
            }
            Err(status) => Some((Err(status), None)),
        }
    });
    Ok(Response::new(Box::pin(answers) as Answers))
}
