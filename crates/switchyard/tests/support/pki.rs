//! Certificates for TLS tests, made with rcgen: a test CA, server certificates for names,
//! client certificates with a SAN; files in a temporary folder; and a real TLS client
//! (tokio-rustls) with hyper's HTTP/1.1 client over it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Resp;

/// A certificate authority of a test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, mut params: CertificateParams, cn: &str) -> Issued {
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign certificate");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (DNS names, `*.` wildcards, IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, names.first().copied().unwrap_or("server"))
    }

    /// A server certificate for `names` that expired in 2020.
    pub fn expired_server(&self, names: &[&str]) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server params");
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        self.issue(params, names.first().copied().unwrap_or("server"))
    }

    /// A client certificate for `cn` with the URI SAN `uri`.
    pub fn client(&self, cn: &str, uri: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("URI SAN"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, cn)
    }
}

/// A folder of our own under the system temp dir, removed when dropped.
pub struct CertDir(PathBuf);

impl CertDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-tls-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        CertDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` at once (written next to it, then renamed over it).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        let tmp = self.path(&format!("{name}.tmp"));
        std::fs::write(&tmp, text).expect("write temp file");
        std::fs::rename(&tmp, &path).expect("rename into place");
        path
    }

    /// Writes `issued` as `{stem}.pem` and `{stem}.key`; returns their paths.
    pub fn pair(&self, stem: &str, issued: &Issued) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{stem}.pem"), &issued.cert),
            self.write(&format!("{stem}.key"), &issued.key),
        )
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A path as a TOML string.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().expect("UTF-8 path"))
}

/// A TLS client trusting `ca`, offering `alpn`, presenting `client` when given. It never
/// resumes a session (a resumed session keeps the certificate of the first handshake), so
/// every connection sees what the server serves now; see [`resuming`].
pub fn client_config(
    ca: &TestCa,
    client: Option<&Issued>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA PEM"))
        .expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => {
            let chain = CertificateDer::pem_slice_iter(issued.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// `config`, resuming sessions (rustls's default in-memory session cache).
pub fn resuming(config: &rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    let mut config = config.clone();
    config.resumption = rustls::client::Resumption::default();
    Arc::new(config)
}

/// Connects to `addr` and makes the TLS handshake for `server_name`.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The subject CN of the certificate the server presented on `stream`.
pub fn peer_names(stream: &TlsStream<TcpStream>) -> Vec<String> {
    let (_, conn) = stream.get_ref();
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate");
    switchyard::config::tls::parse_certificate(der)
        .expect("parse server certificate")
        .names
        .to_strings()
}

/// An HTTP/1.1 client over an established TLS connection: [`super::Client::over`].
pub type HttpsClient = super::Client;

/// `GET path` over a new TLS connection for `server_name`, `Host: host`.
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    host: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<Resp> {
    let stream = connect(addr, server_name, config).await?;
    let mut client = HttpsClient::over(stream, host).await;
    client
        .send(
            http::Request::get(path)
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .map_err(std::io::Error::other)
}

/// A configuration read from `switchyard.toml` in `dir` (so relative certificate paths are
/// taken from `dir`): one worker, no rate limit, one listener on `127.0.0.1:0` with
/// `listener_keys`, then `rest` (pools, routes, more listeners).
pub fn config_in(dir: &CertDir, listener_keys: &str, rest: &str) -> switchyard::Config {
    let text = format!(
        "workers = 1\n\
         shutdown_timeout = \"5s\"\n\
         [rate_limit]\n\
         requests = 0\n\
         [[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         {listener_keys}\n\
         {rest}\n"
    );
    let path = dir.path("switchyard.toml");
    std::fs::write(&path, &text).expect("write config");
    let mut config = switchyard::config::validate::from_text(&path, &text)
        .unwrap_or_else(|e| panic!("config:\n{text}\n{e}"));
    // Tests reload on their own terms.
    if let Some(source) = config.source.as_mut() {
        source.watch_interval = None;
    }
    config
}

/// The values of header `name` in the request a test backend's `/echo` saw.
pub fn echoed(resp: &Resp, name: &str) -> Vec<String> {
    let json = resp.json();
    json["headers"]
        .as_array()
        .expect("echo headers")
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `/metrics` as JSON, read in-process (the proxy listener may speak only HTTPS).
pub fn metrics(proxy: &super::TestProxy) -> serde_json::Value {
    let shared = proxy.server.shared();
    let snapshot = switchyard::admin::snapshot::Snapshot::read(shared, &shared.state());
    serde_json::to_value(&snapshot).expect("metrics JSON")
}

/// 1-based line and column of the first `needle` after `after` in `text`.
pub fn position(text: &str, after: &str, needle: &str) -> (usize, usize) {
    let start = text.find(after).expect("anchor") + after.len();
    let at = start + text[start..].find(needle).expect("needle");
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}
