//! TLS termination: one [`TlsAcceptor`] per HTTPS listener, which performs the handshake of
//! each accepted connection and tells the request path what it settled ([`TlsInfo`]: the name
//! asked for, the certificate's names, the client's verified identity).
//!
//! - `store.rs`: the listener's certificates and the choice by SNI (exact, wildcard, default
//!   or refusal);
//! - `build.rs`: the rustls settings (TLS 1.3 and 1.2, ALPN, client verifier, resumption);
//! - `info.rs`: what a finished handshake tells the request path;
//! - `reload.rs`: certificates reloaded when their files change and on SIGHUP, a bad pair
//!   rejected with one log line while the one in force stays.
//!
//! What the acceptor serves is one [`Loaded`] snapshot in an `ArcSwap`: each handshake loads
//! it once, so a reload never fails or drops a connection, handshakes in progress finish with
//! the snapshot they started with, and the next one gets the new certificates. The
//! listener's ticketer lives as long as the acceptor, so sessions resume across reloads.
//!
//! [`TlsInfo`]: crate::proxy::context::TlsInfo

mod build;
mod info;
mod reload;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::ProducesTickets;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::config::tls::{self, CertificateStatus, Digest, PairError, PemError, TlsConfig};
use crate::proxy::context::Transport;
pub use build::ALPN;
pub use reload::watch;
use store::{CertEntry, CertStore};

/// Why a listener's TLS settings cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or its key cannot be served.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// The client CA bundle cannot be read.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The client CA bundle cannot verify anything.
    #[error("{}: cannot verify client certificates with these CAs: {reason}", path.display())]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS library refused the settings.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client certificate verifier, with the digest of the CA file it was read from.
type Verifier = (Arc<dyn ClientCertVerifier>, Digest);

/// An acceptor and the new settings and certificates read for it, to put in force with
/// [`TlsAcceptor::commit`] once a reload is certain.
pub type Prepared = (Arc<TlsAcceptor>, Arc<Loaded>);

/// The TLS side of one HTTPS listener.
pub struct TlsAcceptor {
    /// The listener's bound address, for logs and metrics.
    listener: String,
    current: ArcSwap<Loaded>,
    /// Ticket keys for the listener's life, so sessions resume across reloads.
    ticketer: Arc<dyn ProducesTickets>,
    /// Versions of certificate and key files already rejected, so each is logged once.
    rejected: Mutex<Vec<(Digest, Digest)>>,
}

/// What an acceptor serves: one version of its settings and certificates.
#[derive(Debug)]
pub struct Loaded {
    /// The listener's TLS settings.
    pub settings: Arc<TlsConfig>,
    /// The certificates.
    store: Arc<CertStore>,
    /// The client certificate verifier, with the digest of its CA file.
    verifier: Option<Verifier>,
    /// The rustls settings made of the above.
    server: Arc<rustls::ServerConfig>,
}

// === impl TlsAcceptor ===

impl TlsAcceptor {
    /// The acceptor of the listener at `listener` with `settings`: every certificate read now.
    pub fn new(listener: String, settings: &Arc<TlsConfig>) -> Result<Self, TlsError> {
        let ticketer = tls::ticketer()?;
        let loaded = load(settings, &ticketer)?;
        Ok(TlsAcceptor {
            listener,
            current: ArcSwap::from_pointee(loaded),
            ticketer,
            rejected: Mutex::new(Vec::new()),
        })
    }

    /// The listener's address.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Performs the handshake on `io`; returns the TLS stream and what it settled.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<(TlsStream<IO>, Transport)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let loaded = self.current.load_full();
        let stream = tokio_rustls::TlsAcceptor::from(loaded.server.clone())
            .accept(io)
            .await?;
        let transport = info::transport(stream.get_ref().1, &loaded);
        Ok((stream, transport))
    }

    /// Reads `settings` and every file it names, without putting anything in force (see
    /// [`TlsAcceptor::commit`]); the listener's tickets stay.
    pub fn prepare(&self, settings: &Arc<TlsConfig>) -> Result<Arc<Loaded>, TlsError> {
        load(settings, &self.ticketer).map(Arc::new)
    }

    /// Puts `loaded` in force for the next handshakes.
    pub fn commit(&self, loaded: Arc<Loaded>) {
        self.current.store(loaded);
    }

    /// The certificates in force, for `/health` and `/metrics`.
    pub fn statuses(&self) -> Vec<CertificateStatus> {
        self.current
            .load()
            .store
            .entries()
            .iter()
            .map(|e| e.status(&self.listener))
            .collect()
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("listener", &self.listener)
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

/// Everything `settings` names, read and checked now.
fn load(
    settings: &Arc<TlsConfig>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<Loaded, TlsError> {
    let now = SystemTime::now();
    let mut entries = Vec::with_capacity(settings.certificates.len());
    for files in &settings.certificates {
        let pair = tls::load_pair(&files.cert, &files.key, now)?;
        entries.push(Arc::new(CertEntry::new(files.clone(), pair)));
    }
    let verifier = build::client_verifier(settings)?;
    assemble(settings.clone(), entries, verifier, ticketer)
}

/// The snapshot serving `entries` with `verifier`.
fn assemble(
    settings: Arc<TlsConfig>,
    entries: Vec<Arc<CertEntry>>,
    verifier: Option<Verifier>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<Loaded, TlsError> {
    let store = Arc::new(CertStore::new(
        entries,
        settings.default,
        settings.unknown_name,
    ));
    let server = build::server_config(
        &settings,
        store.clone(),
        verifier.as_ref().map(|(v, _)| v.clone()),
        ticketer,
    )?;
    Ok(Loaded {
        settings,
        store,
        verifier,
        server: Arc::new(server),
    })
}
