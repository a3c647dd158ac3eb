//! The rustls server settings of a listener: TLS 1.3 and 1.2 with the crypto provider's
//! modern suites, ALPN `h2` and `http/1.1`, the certificate store as resolver, the client
//! certificate verifier (required or optional, against the CA bundle), and session resumption
//! (tickets from the listener's rotating ticketer, or none at all).

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ProducesTickets, WebPkiClientVerifier};
use rustls::ServerConfig;

use super::store::CertStore;
use super::{TlsError, Verifier};
use crate::config::tls::{self, ClientAuthMode, TlsConfig};

/// The protocols offered in ALPN, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The verifier of client certificates `settings` asks for (`None`: none asked), with the
/// digest of the CA file it was read from.
pub(super) fn client_verifier(settings: &TlsConfig) -> Result<Option<Verifier>, TlsError> {
    let Some(auth) = &settings.client_auth else {
        return Ok(None);
    };
    let (roots, digest) = tls::read_roots(&auth.ca)?;
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::crypto_provider());
    let builder = match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder.build().map_err(|e| TlsError::ClientCa {
        path: auth.ca.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some((verifier, digest)))
}

/// The rustls settings serving `store`, verifying clients with `verifier`, resuming
/// sessions with `ticketer` when `settings` says so.
pub(super) fn server_config(
    settings: &TlsConfig,
    store: Arc<CertStore>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    if settings.resumption {
        // TLS 1.3 tickets (stateless, keys rotated); TLS 1.2 keeps its session cache.
        config.ticketer = ticketer.clone();
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}
