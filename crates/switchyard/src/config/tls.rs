//! A listener's TLS settings, validated ([`TlsConfig`]), and what both the configuration check
//! and the TLS acceptor (`server::tls`) need to read certificates: PEM files and their pairs
//! ([`load_pair`], [`read_certificates`], [`read_roots`]), what a certificate says
//! ([`CertificateInfo`]), the names it covers ([`ServerNames`]) and the crypto provider
//! ([`crypto_provider`]).
//!
//! The PEM helpers are shared: anything in switchyard that reads certificates or keys (TLS
//! termination, TLS to backends) reads them here, with errors that name the file.

mod names;
mod pem;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;

pub use names::ServerNames;
pub use pem::{
    format_utc, load_pair, parse_certificate, read_certificates, read_private_key, read_roots,
    sha256, CertificateInfo, Digest, LoadedPair, PairError, PemError,
};

/// The HSTS `max-age` when `hsts` gives none: one year.
pub const HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// What an HTTPS listener serves and asks of its clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificates, chosen by the name the client asks for (SNI); at least one.
    pub certificates: Vec<CertificateFiles>,
    /// Index in `certificates` of the one served to clients that send no name (and, with
    /// [`UnknownName::Default`], to those that ask for a name no certificate covers).
    pub default: usize,
    /// What a client asking for a name no certificate covers gets.
    pub unknown_name: UnknownName,
    /// Client certificates (mutual TLS); `None`: none asked for.
    pub client_auth: Option<ClientAuth>,
    /// TLS session resumption (rotated tickets for TLS 1.3, a session cache for TLS 1.2).
    pub resumption: bool,
    /// The headers that carry the client's verified identity to the backends.
    pub identity_headers: IdentityHeaders,
    /// The `Strict-Transport-Security` value sent on every response, if any.
    pub hsts: Option<HeaderValue>,
}

/// One certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The chain: the certificate first, then its intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The names it is served for (each covered by the certificate); empty: every name in its
    /// subject alternative names.
    pub names: Vec<String>,
}

/// What a client asking for an unknown name gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownName {
    /// The default certificate (its requests then get `421` unless it covers their host).
    #[default]
    Default,
    /// A failed handshake (`unrecognized_name`).
    Reject,
}

/// Client certificates, verified against a CA bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// Whether a client must present one.
    pub mode: ClientAuthMode,
    /// The CA certificates (PEM) that client certificates must chain to.
    pub ca: PathBuf,
}

/// Whether client certificates are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// Handshakes without a valid client certificate fail.
    Required,
    /// Clients may connect without one (routes can still require it); a certificate that
    /// is presented must be valid.
    Optional,
}

/// Names of the headers that carry the verified client identity to the backends. Each one
/// configured is removed from every request first (on every listener), so a client cannot
/// send its own.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IdentityHeaders {
    /// The certificate's subject (`CN=client,O=Example`).
    pub subject: Option<HeaderName>,
    /// Its subject alternative names, comma-separated.
    pub sans: Option<HeaderName>,
    /// The SHA-256 fingerprint of the certificate (DER), lower-case hex.
    pub fingerprint: Option<HeaderName>,
}

// === impl TlsConfig ===

impl TlsConfig {
    /// One certificate, no client certificates, resumption on, no identity headers or HSTS:
    /// what `--tls-cert` and `--tls-key` describe.
    pub fn single(cert: PathBuf, key: PathBuf) -> Self {
        TlsConfig {
            certificates: vec![CertificateFiles {
                cert,
                key,
                names: Vec::new(),
            }],
            default: 0,
            unknown_name: UnknownName::Default,
            client_auth: None,
            resumption: true,
            identity_headers: IdentityHeaders::default(),
            hsts: None,
        }
    }
}

// === impl IdentityHeaders ===

impl IdentityHeaders {
    /// The names configured.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.subject, &self.sans, &self.fingerprint]
            .into_iter()
            .flatten()
    }
}

/// The `Strict-Transport-Security` value for these settings.
pub fn hsts_value(max_age: Duration, include_subdomains: bool, preload: bool) -> HeaderValue {
    let mut value = format!("max-age={}", max_age.as_secs());
    if include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    // Digits and ASCII words only.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
}

/// The crypto provider every TLS connection of switchyard uses (*ring*; see
/// `docs/performance.md` for the comparison with aws-lc-rs). TLS 1.3 and 1.2 with its
/// default, modern suites: AES-GCM and ChaCha20-Poly1305, ECDHE key exchange only.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A new ticket maker for TLS session resumption: a fresh random key, rotated every 6 hours
/// (the previous key still decrypts for one period).
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// A certificate in use, for `/health` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateStatus {
    /// The listener serving it (its bound address).
    pub listener: String,
    /// The certificate file.
    pub file: PathBuf,
    /// The names it is served for.
    pub names: Vec<String>,
    /// Its subject.
    pub subject: String,
    /// When it expires (`notAfter`), Unix seconds.
    pub not_after: i64,
}
