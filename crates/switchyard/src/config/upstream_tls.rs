//! TLS to a pool's `https://` backends, as configured: whose certificates are trusted (the
//! system's roots, or a CA bundle from `tls.ca` or `--upstream-ca`), the name verified and
//! sent as SNI instead of the backend's host (`tls.server_name`), and a client certificate
//! for backends that require one (`tls.cert` and `tls.key`).
//!
//! The files are read and checked here, when the configuration is loaded, so that
//! `switchyard check` reports them and a reload with a bad file keeps the configuration in
//! force; `upstream::tls` builds the rustls client from what this holds, once per pool.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};

use super::pem;

/// How a pool's `https://` backends are verified, and what the proxy shows them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UpstreamTlsConfig {
    /// Trusted CAs; `None`: the system's roots.
    pub ca: Option<CaBundle>,
    /// The name verified in backend certificates and sent as SNI, for every backend of the
    /// pool; `None`: each backend's host (an IP address is verified against the
    /// certificate's IP addresses, and no SNI is sent).
    pub server_name: Option<ServerName<'static>>,
    /// A client certificate, for backends that require one (mutual TLS).
    pub client_cert: Option<ClientCert>,
    /// Accept any backend certificate (still encrypted, but not authenticated).
    pub insecure_skip_verify: bool,
}

/// A CA bundle: the certificates of a PEM file, as trust anchors.
#[derive(Clone)]
pub struct CaBundle {
    /// The file.
    pub path: PathBuf,
    /// Its certificates as trust anchors.
    pub roots: Arc<RootCertStore>,
    certs: Arc<[CertificateDer<'static>]>,
}

/// A client certificate chain and its private key, checked to match.
#[derive(Clone)]
pub struct ClientCert {
    /// The chain's file.
    pub cert_path: PathBuf,
    /// The key's file.
    pub key_path: PathBuf,
    /// Chain and key, as rustls presents them.
    pub key: Arc<CertifiedKey>,
}

/// Why a client certificate cannot be used: the certificate file's fault, or the key's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    /// The certificate file is unreadable, holds no certificate, or its certificate has
    /// expired.
    #[error("{0}")]
    Cert(String),
    /// The key file is unreadable, holds no usable key, or the key does not match.
    #[error("{0}")]
    Key(String),
}

/// The crypto provider of every TLS connection to backends (and of the client key checked
/// here): ring.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// `name` as a TLS server name: a DNS name or an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("{name:?} is not a DNS name or an IP address"))
}

// === impl CaBundle ===

impl CaBundle {
    /// Reads the PEM file at `path`: at least one certificate, each usable as a trust anchor.
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let certs = pem::read_certs(path).map_err(|e| e.to_string())?;
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| {
                format!(
                    "certificate {} of {path:?} cannot be a trust anchor: {e}",
                    i + 1
                )
            })?;
        }
        Ok(CaBundle {
            path: path.to_owned(),
            roots: Arc::new(roots),
            certs: certs.into(),
        })
    }
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.certs == other.certs
    }
}

impl Eq for CaBundle {}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

// === impl ClientCert ===

impl ClientCert {
    /// Reads the chain at `cert_path` and the key at `key_path`, and checks that the key is
    /// the certificate's and that the certificate has not expired.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ClientCert, ClientCertError> {
        let chain = pem::read_certs(cert_path).map_err(|e| ClientCertError::Cert(e.to_string()))?;
        not_expired(&chain[0], cert_path).map_err(ClientCertError::Cert)?;
        let key = pem::read_key(key_path).map_err(|e| ClientCertError::Key(e.to_string()))?;
        let provider = provider();
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            ClientCertError::Key(match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the key in {key_path:?} does not match the certificate in {cert_path:?}"
                ),
                other => format!("the key in {key_path:?} cannot be used: {other}"),
            })
        })?;
        Ok(ClientCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            key: Arc::new(key),
        })
    }
}

/// Fails when `cert` (from `path`) is past its end of validity or does not parse.
fn not_expired(cert: &CertificateDer<'_>, path: &Path) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("the certificate in {path:?} does not parse: {e}"))?;
    let validity = parsed.validity();
    if validity.time_to_expiration().is_none() {
        return Err(format!(
            "the certificate in {path:?} expired on {}",
            validity.not_after
        ));
    }
    Ok(())
}

impl PartialEq for ClientCert {
    fn eq(&self, other: &Self) -> bool {
        // The key matches the chain (checked at load), so the chain stands for both.
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && self.key.cert == other.key.cert
    }
}

impl Eq for ClientCert {}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish()
    }
}
