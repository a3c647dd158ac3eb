//! A listener's `tls` table: its certificates, what unknown names get, client certificates,
//! identity headers, HSTS and session resumption.

use serde::Deserialize;
use toml::Spanned;

use super::{Dur, Str};

/// `[listeners.tls]` (or `tls = { ... }` in the listener).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// `[{ cert = "...", key = "...", names = [...] }, ...]`, at least one.
    pub certificates: Spanned<Vec<Spanned<CertificateFile>>>,
    /// A name: the certificate covering it is served to clients that send no name (default:
    /// the first certificate).
    pub default: Option<Spanned<Str>>,
    /// `"default"` (serve the default certificate) or `"reject"` (fail the handshake).
    pub unknown_name: Option<Spanned<Str>>,
    /// Client certificates (mutual TLS).
    pub client_auth: Option<Spanned<ClientAuthFile>>,
    /// TLS session resumption (default true).
    pub resumption: Option<bool>,
    /// Headers carrying the client's verified identity to the backends.
    pub identity_headers: Option<Spanned<IdentityHeadersFile>>,
    /// `Strict-Transport-Security` on every response.
    pub hsts: Option<Spanned<HstsFile>>,
}

/// One entry of `certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM certificate chain, the certificate first.
    pub cert: Spanned<Str>,
    /// PEM private key.
    pub key: Spanned<Str>,
    /// The names it is served for (default: its subject alternative names).
    pub names: Option<Vec<Spanned<Str>>>,
}

/// `client_auth = { mode = "required", ca = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    /// `"required"` (default) or `"optional"`.
    pub mode: Option<Spanned<Str>>,
    /// PEM bundle of the CAs client certificates must chain to.
    pub ca: Spanned<Str>,
}

/// `identity_headers = { subject = "...", sans = "...", fingerprint = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersFile {
    /// Header for the certificate's subject.
    pub subject: Option<Spanned<String>>,
    /// Header for its subject alternative names.
    pub sans: Option<Spanned<String>>,
    /// Header for its SHA-256 fingerprint.
    pub fingerprint: Option<Spanned<String>>,
}

/// `hsts = { max_age = "8760h", include_subdomains = true, preload = false }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsFile {
    /// How long browsers remember to use HTTPS only (default one year).
    pub max_age: Option<Dur>,
    /// Also for every subdomain (default false).
    pub include_subdomains: Option<bool>,
    /// Ask to be preloaded into browsers (default false; needs `include_subdomains`).
    pub preload: Option<bool>,
}
