//! TLS to `https://` backends: the rustls client of a pool ([`TlsClient`], built once per
//! pool when a configuration is put in force, and kept by a reload that leaves the pool's
//! TLS settings alone, so its session cache lets new connections resume), the handshake on
//! a freshly connected stream ([`TlsClient::connect`]), and what went wrong in it
//! ([`TlsError`], carried by `ConnectError::Tls`: nothing was sent, so it is a connect
//! failure, retried on another backend).
//!
//! A backend's certificate is verified against the pool's CA bundle or the system's roots
//! (loaded once per process), for the pool's `server_name` or else the backend's host: a
//! DNS name is also sent as SNI; an IP address sends none and must be one of the
//! certificate's IP addresses. ALPN picks the HTTP version ([`Negotiated`]).

use std::io;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Backend;
use crate::config::upstream_tls::provider;
use crate::config::UpstreamTlsConfig;

/// The HTTP versions a pool's TLS client offers in ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2`, then `http/1.1`: the backend chooses.
    H2AndHttp1,
}

/// The HTTP version a backend chose in ALPN; `H1` when it chose none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// HTTP/1.1.
    H1,
    /// HTTP/2.
    H2,
}

/// A pool's rustls client and the settings it was built from.
#[derive(Debug)]
pub struct TlsClient {
    settings: UpstreamTlsConfig,
    alpn: Alpn,
    config: Arc<ClientConfig>,
    /// The same, offering only `http/1.1`: for connections that must speak HTTP/1.1 (a
    /// WebSocket upgrade).
    http1: Arc<ClientConfig>,
}

/// Why a TLS handshake with a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The backend's certificate is not trusted for its name (unknown issuer, name mismatch,
    /// expired, ...).
    #[error("certificate verify failed: {0}")]
    Verify(String),
    /// The handshake failed otherwise (an alert from the backend, no common protocol
    /// version or cipher suite, ...).
    #[error(transparent)]
    Protocol(rustls::Error),
    /// The connection failed during the handshake.
    #[error(transparent)]
    Io(io::Error),
    /// The handshake did not finish within the connect timeout.
    #[error("no TLS handshake within {0:?}")]
    Timeout(std::time::Duration),
    /// The backend's host is no name a certificate can be verified against.
    #[error("{0:?} is not a DNS name or IP address to verify a certificate against")]
    ServerName(String),
    /// The pool has no TLS client (its connector was built without one).
    #[error("no TLS settings for this pool")]
    NotConfigured,
}

/// The system's trusted roots, loaded on first use and kept for the process. Problems
/// (unreadable files, no roots at all) are logged once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "cannot load some of the system's trusted certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(ignored, "no system trusted certificates found: https:// backends without tls.ca will fail verification");
            }
            Arc::new(roots)
        })
        .clone()
}

// === impl TlsClient ===

impl TlsClient {
    /// The client `settings` describe, offering `alpn`.
    pub fn new(settings: &UpstreamTlsConfig, alpn: Alpn) -> Self {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3");
        let builder = if settings.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let roots = match &settings.ca {
                Some(ca) => ca.roots.clone(),
                None => system_roots(),
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match &settings.client_cert {
            Some(cert) => builder.with_client_cert_resolver(Arc::new(ClientCert(cert.key.clone()))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http1 = Arc::new(config.clone());
        if alpn == Alpn::H2AndHttp1 {
            config.alpn_protocols.insert(0, b"h2".to_vec());
        }
        // Session resumption (tickets and IDs, an in-memory cache) is rustls' default.
        TlsClient {
            settings: settings.clone(),
            alpn,
            config: Arc::new(config),
            http1,
        }
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &UpstreamTlsConfig {
        &self.settings
    }

    /// True when this client was built from `settings` and `alpn` (a reload keeps it).
    pub fn is(&self, settings: &UpstreamTlsConfig, alpn: Alpn) -> bool {
        self.settings == *settings && self.alpn == alpn
    }

    /// Runs the TLS handshake with `backend` on `io`, a freshly connected stream (the caller
    /// bounds it in time), and tells which HTTP version the backend chose.
    pub async fn connect<S>(
        &self,
        backend: &Backend,
        io: S,
    ) -> Result<(TlsStream<S>, Negotiated), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.connect_with(&self.config, backend, io).await
    }

    /// Like [`TlsClient::connect`], offering only `http/1.1`.
    pub async fn connect_http1<S>(&self, backend: &Backend, io: S) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (stream, _) = self.connect_with(&self.http1, backend, io).await?;
        Ok(stream)
    }

    async fn connect_with<S>(
        &self,
        config: &Arc<ClientConfig>,
        backend: &Backend,
        io: S,
    ) -> Result<(TlsStream<S>, Negotiated), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = match &self.settings.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(backend.url.host.clone())
                .map_err(|_| TlsError::ServerName(backend.url.host.clone()))?,
        };
        let stream = TlsConnector::from(config.clone())
            .connect(name, io)
            .await
            .map_err(TlsError::from_io)?;
        let negotiated = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Negotiated::H2,
            _ => Negotiated::H1,
        };
        Ok((stream, negotiated))
    }
}

// === impl TlsError ===

impl TlsError {
    /// The error a handshake failed with: tokio-rustls carries rustls' own inside an
    /// `io::Error`.
    fn from_io(e: io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(cert)) => TlsError::Verify(reason(cert)),
            Some(other) => TlsError::Protocol(other.clone()),
            None => TlsError::Io(e),
        }
    }

    /// True when the backend's certificate was not trusted.
    pub fn is_verify(&self) -> bool {
        matches!(self, TlsError::Verify(_))
    }
}

/// A certificate error in words an operator reads, with the setting that fixes it. rustls
/// reports most errors with their context (the names presented, the dates), which is kept.
fn reason(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "unknown issuer: the certificate is not signed by a trusted CA (see tls.ca)".to_owned()
        }
        CertificateError::NotValidForName => {
            "the certificate is not valid for the name verified (see tls.server_name)".to_owned()
        }
        CertificateError::NotValidForNameContext { .. } => format!("{e} (see tls.server_name)"),
        CertificateError::Expired => "the certificate has expired".to_owned(),
        CertificateError::NotValidYet => "the certificate is not valid yet".to_owned(),
        CertificateError::BadSignature => "bad certificate signature".to_owned(),
        other => other.to_string(),
    }
}

/// Presents the pool's client certificate whenever a backend asks for one.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked (the connection is encrypted to whoever holds the certificate's key).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;
    use rustls::CertificateError;

    use super::reason;

    #[test]
    fn a_name_mismatch_keeps_rustls_context_and_points_at_server_name() {
        let e = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").expect("an IP address"),
            presented: vec!["DnsName(\"api.internal\")".to_owned()],
        };
        let text = reason(&e);
        assert!(text.contains("\"127.0.0.1\""), "{text}");
        assert!(text.contains("api.internal"), "{text}");
        assert!(text.ends_with("(see tls.server_name)"), "{text}");
        assert!(reason(&CertificateError::UnknownIssuer).contains("(see tls.ca)"));
    }
}
