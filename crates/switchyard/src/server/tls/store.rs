//! The certificates of one HTTPS listener, chosen by the name the client asks for (SNI):
//! an exact name first, then a wildcard (`*.example.com` for one label in front of
//! `example.com`), then the default certificate or nothing (a failed handshake), as the
//! listener's `unknown_name` says. A client that sends no name gets the default certificate.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::tls::{CertificateFiles, CertificateInfo, Digest, LoadedPair, ServerNames};
use crate::config::tls::{CertificateStatus, UnknownName};

/// One certificate served by a listener.
#[derive(Debug)]
pub struct CertEntry {
    /// Where it was read from, and the names configured for it.
    pub files: CertificateFiles,
    /// What the TLS library serves.
    pub key: Arc<CertifiedKey>,
    /// The names it is served for: the configured `names`, else the certificate's own.
    pub names: Arc<ServerNames>,
    /// What the certificate says.
    pub info: CertificateInfo,
    /// The digests of its certificate and key files when they were read.
    pub digests: (Digest, Digest),
}

/// The certificates of a listener, and how a name picks one.
#[derive(Debug)]
pub struct CertStore {
    entries: Vec<Arc<CertEntry>>,
    exact: HashMap<String, usize>,
    wildcards: HashMap<String, usize>,
    default: usize,
    unknown: UnknownName,
}

// === impl CertEntry ===

impl CertEntry {
    /// The entry for `files`, loaded as `pair`.
    pub fn new(files: CertificateFiles, pair: LoadedPair) -> Self {
        let names = if files.names.is_empty() {
            pair.info.names.clone()
        } else {
            ServerNames::new(files.names.iter().map(String::as_str))
        };
        CertEntry {
            files,
            key: pair.key,
            names: Arc::new(names),
            info: pair.info,
            digests: pair.digests,
        }
    }

    /// Its status for `/health` and `/metrics`, as served by `listener`.
    pub fn status(&self, listener: &str) -> CertificateStatus {
        CertificateStatus {
            listener: listener.to_owned(),
            file: self.files.cert.clone(),
            names: self.names.to_strings(),
            subject: self.info.subject.clone(),
            not_after: self.info.not_after,
        }
    }
}

// === impl CertStore ===

impl CertStore {
    /// The store of `entries` (at least one), `default` being the index of the default one.
    pub fn new(entries: Vec<Arc<CertEntry>>, default: usize, unknown: UnknownName) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            for name in entry.names.exact() {
                exact.entry(name.clone()).or_insert(i);
            }
            for suffix in entry.names.wildcards() {
                wildcards.entry(suffix.clone()).or_insert(i);
            }
        }
        CertStore {
            default: default.min(entries.len().saturating_sub(1)),
            entries,
            exact,
            wildcards,
            unknown,
        }
    }

    /// The entries, in configuration order.
    pub fn entries(&self) -> &[Arc<CertEntry>] {
        &self.entries
    }

    /// The certificate for a client asking for `server_name` (`None`: it sent none); `None`
    /// when the name is unknown and the listener rejects unknown names.
    pub fn select(&self, server_name: Option<&str>) -> Option<&Arc<CertEntry>> {
        let Some(name) = server_name else {
            return self.entries.get(self.default);
        };
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let name = name.trim_end_matches('.');
        let found = self.exact.get(name).or_else(|| {
            let dot = name.find('.')?;
            (dot > 0).then_some(())?;
            self.wildcards.get(&name[dot..])
        });
        match (found, self.unknown) {
            (Some(&i), _) => self.entries.get(i),
            (None, UnknownName::Default) => self.entries.get(self.default),
            (None, UnknownName::Reject) => None,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let entry = self.select(hello.server_name());
        if entry.is_none() {
            tracing::debug!(
                server_name = hello.server_name().unwrap_or_default(),
                "TLS handshake refused: no certificate for this name"
            );
        }
        entry.map(|e| e.key.clone())
    }
}
