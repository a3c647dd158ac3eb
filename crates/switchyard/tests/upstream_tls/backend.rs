//! An HTTPS test backend: a hyper HTTP/1.1 server behind tokio-rustls on 127.0.0.1:0,
//! optionally requiring a client certificate. It counts TLS connections and requests, and
//! answers with what it saw: the SNI name and the client certificate's presence.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::pki::{Ca, Issued};

/// A running HTTPS backend. Stopped when dropped.
pub struct TlsBackend {
    pub addr: SocketAddr,
    /// TLS connections on which ALPN chose HTTP/2.
    h2: Arc<AtomicUsize>,
    /// TLS connections established (handshake done).
    pub connections: Arc<AtomicUsize>,
    /// Of those, the ones that resumed an earlier TLS session.
    pub resumed: Arc<AtomicUsize>,
    /// Requests answered.
    pub requests: Arc<AtomicUsize>,
    /// Health-check requests answered (path `/health`).
    pub health_checks: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsBackend {
    /// Serves `cert`; with `client_ca`, requires a client certificate it signed.
    pub async fn start(cert: &Issued, client_ca: Option<&Ca>) -> TlsBackend {
        TlsBackend::start_with_alpn(cert, client_ca, &[b"h2", b"http/1.1"]).await
    }

    /// Like [`TlsBackend::start`], offering only these ALPN protocols (served as chosen).
    pub async fn start_with_alpn(
        cert: &Issued,
        client_ca: Option<&Ca>,
        alpn: &[&[u8]],
    ) -> TlsBackend {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der()).expect("client CA");
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(vec![cert.cert_der.clone()], cert.key_der())
            .expect("server cert");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let health_checks = Arc::new(AtomicUsize::new(0));
        let resumed = Arc::new(AtomicUsize::new(0));
        let h2 = Arc::new(AtomicUsize::new(0));
        let h2_count = h2.clone();
        let counts = (
            connections.clone(),
            resumed.clone(),
            requests.clone(),
            health_checks.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (connections, resumed, requests, health_checks) = counts.clone();
                let h2_count = h2_count.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (_, session) = tls.get_ref();
                    if session.handshake_kind() == Some(HandshakeKind::Resumed) {
                        resumed.fetch_add(1, Ordering::SeqCst);
                    }
                    let sni = session.server_name().map(str::to_owned);
                    let speaks_h2 = session.alpn_protocol() == Some(b"h2");
                    if speaks_h2 {
                        h2_count.fetch_add(1, Ordering::SeqCst);
                    }
                    let client_cert = session.peer_certificates().is_some_and(|c| !c.is_empty());
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let health = req.uri().path() == "/health";
                        if health {
                            health_checks.fetch_add(1, Ordering::SeqCst);
                        } else {
                            requests.fetch_add(1, Ordering::SeqCst);
                        }
                        let resp = http::Response::builder()
                            .header("x-served-by", addr.port().to_string())
                            .header("x-sni", sni.clone().unwrap_or_default())
                            .header("x-client-cert", if client_cert { "yes" } else { "no" })
                            .body(Full::new(Bytes::from(format!(
                                "tls ok {}",
                                req.uri().path()
                            ))))
                            .expect("response");
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    if speaks_h2 {
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    }
                });
            }
        });
        TlsBackend {
            addr,
            h2,
            connections,
            resumed,
            requests,
            health_checks,
            task,
        }
    }

    /// Connections on which ALPN chose HTTP/2.
    pub fn h2_connections(&self) -> usize {
        self.h2.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn health_checks(&self) -> usize {
        self.health_checks.load(Ordering::SeqCst)
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
