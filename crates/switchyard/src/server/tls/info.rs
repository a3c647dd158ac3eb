//! What a finished handshake tells the request path: the name asked for, the names of the
//! certificate served, the protocol ALPN chose, and the client's verified identity with the
//! identity headers made from it (once per connection, not per request).

use http::{HeaderName, HeaderValue};
use rustls::ServerConnection;

use super::Loaded;
use crate::config::tls::{self, IdentityHeaders};
use crate::proxy::context::{ClientIdentity, Protocol, TlsInfo, Transport};

/// The transport of a connection whose handshake `conn` finished, with `loaded` in force.
pub(super) fn transport(conn: &ServerConnection, loaded: &Loaded) -> Transport {
    let server_name = conn.server_name().map(str::to_ascii_lowercase);
    let names = loaded
        .store
        .select(server_name.as_deref())
        .map(|e| e.names.clone())
        .unwrap_or_default();
    let client = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| identity(der));
    let identity_headers = match &client {
        Some(client) => headers(&loaded.settings.identity_headers, client),
        None => Vec::new(),
    };
    let alpn = match conn.alpn_protocol() {
        Some(b"h2") => Some(Protocol::Http2),
        Some(_) => Some(Protocol::Http1),
        None => None,
    };
    let protocol = alpn.unwrap_or(Protocol::Http1);
    Transport::tls(
        protocol,
        TlsInfo {
            server_name,
            names,
            client,
            identity_headers,
            settings: loaded.settings.clone(),
            alpn,
        },
    )
}

/// The identity in a client certificate the verifier accepted.
fn identity(der: &[u8]) -> ClientIdentity {
    let fingerprint = tls::sha256(der).to_hex();
    match tls::parse_certificate(der) {
        Ok(info) => ClientIdentity {
            subject: info.subject,
            sans: info.sans,
            fingerprint,
        },
        // The verifier parsed it already; should this parser disagree, the fingerprint still
        // identifies it.
        Err(_) => ClientIdentity {
            subject: String::new(),
            sans: Vec::new(),
            fingerprint,
        },
    }
}

/// The identity headers `names` asks for, with `client`'s values; a value that cannot be a
/// header (control characters) is left out.
fn headers(names: &IdentityHeaders, client: &ClientIdentity) -> Vec<(HeaderName, HeaderValue)> {
    let sans = client.sans.join(", ");
    [
        (&names.subject, client.subject.as_str()),
        (&names.sans, sans.as_str()),
        (&names.fingerprint, client.fingerprint.as_str()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let name = name.as_ref()?;
        let value = HeaderValue::from_str(value).ok()?;
        Some((name.clone(), value))
    })
    .collect()
}
