//! The recording backend: a hyper HTTP/1.1 server on 127.0.0.1:0 that reads every request
//! body to its end and keeps, for each request, its path, whether it carried a credential
//! and how much body it got, so the test can tell what reached a backend.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the backend saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query.
    pub target: String,
    /// It carried `X-API-Key` or `Authorization`.
    pub credential: bool,
    /// Body bytes read.
    pub body_bytes: u64,
    /// The body ended cleanly (false: it broke off).
    pub body_complete: bool,
}

/// A running recording backend (stopped when dropped).
pub struct Recorder {
    /// Where it listens.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Recorder {
    /// Starts it on a thread and runtime of its own, so that the test's hostile clients
    /// never delay it.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("backend addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("backend runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let record = record.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| serve(req, record.clone()));
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Recorder {
            url,
            seen,
            stop: Some(stop),
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("recorder lock").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(
    req: hyper::Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(String::new, |p| p.as_str().to_owned());
    let credential =
        req.headers().contains_key("x-api-key") || req.headers().contains_key("authorization");
    let mut body = req.into_body();
    let mut body_bytes = 0u64;
    let mut body_complete = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                body_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Err(_) => {
                body_complete = false;
                break;
            }
        }
    }
    seen.lock().expect("recorder lock").push(Seen {
        target,
        credential,
        body_bytes,
        body_complete,
    });
    Ok(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
}
