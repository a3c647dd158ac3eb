//! What the request path knows: about the client connection ([`ConnInfo`], with its
//! [`Transport`]), and about one request ([`RequestCtx`], passed `&mut` through the phases of
//! [`super::handle`] and turned into the access-log line at the end).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::config::tls::ServerNames;
use crate::config::{IpRules, ListenerConfig, TlsConfig};
use crate::metrics::{self, Metrics};
use crate::telemetry::AccessLog;
use crate::upstream::deadline::TryTimer;

/// How a client connection is carried. It sets `X-Forwarded-Proto`; a TLS connection also
/// says which certificate it was made with and who the client is ([`TlsInfo`]). (How a local
/// error response is rendered depends on the request: see `proxy::error::Render`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Plain TCP or TLS.
    pub security: Security,
    /// The HTTP version the connection speaks.
    pub protocol: Protocol,
    /// What the TLS handshake settled, for TLS connections.
    pub tls: Option<Arc<TlsInfo>>,
}

/// What a TLS handshake settled, for the requests of that connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The name the client asked for (SNI), lower case.
    pub server_name: Option<String>,
    /// The names of the certificate the connection was made with: a request for any other
    /// host gets `421 Misdirected Request`.
    pub names: Arc<ServerNames>,
    /// The client's verified certificate, if it presented one.
    pub client: Option<ClientIdentity>,
    /// The identity headers to send to the backends (names from the listener's
    /// `identity_headers`, values from `client`).
    pub identity_headers: Vec<(HeaderName, HeaderValue)>,
    /// The listener's TLS settings in force at the handshake.
    pub settings: Arc<TlsConfig>,
    /// The HTTP version ALPN chose, when the client offered ALPN.
    pub alpn: Option<Protocol>,
}

/// A client's verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Its subject, RFC 4514 style (`CN=client,O=Example`).
    pub subject: String,
    /// Its subject alternative names as text (URIs, DNS names, e-mails, IP addresses).
    pub sans: Vec<String>,
    /// The SHA-256 of the certificate (DER), lower-case hex.
    pub fingerprint: String,
}

/// What a listener does to every request beyond proxying it, when it does anything: the
/// redirect of a plaintext listener to HTTPS, the identity headers removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerPolicy {
    /// Every request (the admin endpoints aside) is answered with a `308` to this
    /// `Location` template: `https://{host}{uri}`, with the port when it is not 443.
    pub redirect_to_https: Option<String>,
    /// The identity headers of every HTTPS listener, removed from every request on every
    /// listener so that no client can send its own.
    pub strip: Vec<HeaderName>,
}

/// Whether a connection is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP.
    Plain,
    /// TLS.
    Tls,
}

/// The HTTP version a client connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 (after ALPN, or with prior knowledge in plaintext).
    Http2,
}

impl Transport {
    /// Plaintext HTTP/1.1.
    pub const PLAIN_HTTP1: Transport = Transport {
        security: Security::Plain,
        protocol: Protocol::Http1,
        tls: None,
    };

    /// TLS, speaking `protocol` (as ALPN chose), as the handshake settled.
    pub fn tls(protocol: Protocol, info: TlsInfo) -> Self {
        Transport {
            security: Security::Tls,
            protocol,
            tls: Some(Arc::new(info)),
        }
    }

    /// The subject alternative names of the client's verified certificate (`None`: no TLS,
    /// or no client certificate).
    pub fn client_sans(&self) -> Option<&[String]> {
        let client = self.tls.as_ref()?.client.as_ref()?;
        Some(&client.sans)
    }

    /// The scheme the client used, for `X-Forwarded-Proto`.
    pub fn scheme(&self) -> HeaderValue {
        match self.security {
            Security::Plain => HeaderValue::from_static("http"),
            Security::Tls => HeaderValue::from_static("https"),
        }
    }
}

/// What the request path knows about the client connection, computed once per connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address (IPv4-mapped IPv6 addresses already turned back into IPv4).
    pub addr: SocketAddr,
    /// How the connection is carried.
    pub transport: Transport,
    /// The client's IP as a header value, for `X-Forwarded-For`.
    pub ip_header: HeaderValue,
    /// The listener's read timeout (longest pause within a request body).
    pub read_timeout: Duration,
    /// The listener's write timeout (longest pause within a response body).
    pub write_timeout: Duration,
    /// The connection came in on the admin listener: only admin endpoints are served.
    pub admin_only: bool,
    /// The listener's redirect and header policy, when it has one.
    pub policy: Option<Arc<ListenerPolicy>>,
    /// The listener's IP rules, when it has some (checked per request against the client's
    /// address, which trusted proxies may set: `proxy::auth::client`).
    pub ip_rules: Option<Arc<IpRules>>,
    /// The connection's place under the listener's connection limits, when it counts in
    /// them (`proxy::limits::conn`); held until the connection and its requests are done.
    pub slot: Option<Arc<super::limits::conn::ConnSlot>>,
    /// The per-try timer of the connection's requests, when they come one at a time
    /// (HTTP/1.1): armed once per timeout period rather than once per request.
    pub try_timer: TryTimer,
}

impl ConnInfo {
    /// Describes a connection from `addr` over `transport` on a listener with these settings.
    pub fn new(
        addr: SocketAddr,
        listener: &ListenerConfig,
        admin_only: bool,
        transport: Transport,
    ) -> Self {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let ip = bytes::Bytes::from(addr.ip().to_string());
        // An IP address is always a valid header value.
        let ip_header = HeaderValue::from_maybe_shared(ip)
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            addr,
            transport,
            ip_header,
            read_timeout: listener.read_timeout,
            write_timeout: listener.write_timeout,
            admin_only,
            policy: None,
            ip_rules: listener.ip_rules.clone(),
            slot: None,
            try_timer: TryTimer::default(),
        }
    }
}

// === impl ListenerPolicy ===

impl ListenerPolicy {
    /// The policy of `listener` among `all` the listeners; `None` when it has nothing to do.
    pub fn for_listener(listener: &ListenerConfig, all: &[ListenerConfig]) -> Option<Arc<Self>> {
        let mut strip: Vec<HeaderName> = Vec::new();
        for name in all
            .iter()
            .filter_map(|l| l.tls.as_ref())
            .flat_map(|t| t.identity_headers.names())
        {
            if !strip.contains(name) {
                strip.push(name.clone());
            }
        }
        let redirect_to_https = listener.redirect_to_https.map(|port| match port {
            443 => "https://{host}{uri}".to_owned(),
            port => format!("https://{{host}}:{port}{{uri}}"),
        });
        (redirect_to_https.is_some() || !strip.is_empty()).then(|| {
            Arc::new(ListenerPolicy {
                redirect_to_https,
                strip,
            })
        })
    }
}

/// Per-request state.
#[derive(Debug)]
pub struct RequestCtx<'a> {
    /// The client's address (IPv4-mapped IPv6 addresses already turned back into IPv4): the
    /// connection's peer, or with trusted proxies the address they forwarded for
    /// (`proxy::auth::ip`; port 0 then).
    pub client: SocketAddr,
    /// The name of the API key the request presented, once authenticated (never the secret).
    pub api_key: Option<Arc<str>>,
    /// What the per-client limit's `RateLimit-Policy` and `RateLimit` fields say, when they
    /// are to be sent (set in phase 4, added to the response, a `429` too).
    pub quota: Option<Box<crate::ratelimit::keyed::Quota>>,
    /// The verified JWT's subject and claims, once authenticated on a route that asks for a
    /// token (`JwtIdentity::claim` reads one by name, for limits keyed on a claim).
    pub jwt: Option<Arc<super::auth::jwt::JwtIdentity>>,
    /// When the request head was received.
    pub start: Instant,
    /// Backends tried so far.
    pub attempts: u32,
    /// The access-log line being built, when access logging is on.
    pub log: Option<Box<AccessLog>>,
    /// Which bucket of the proxy counters this request ends in (see [`crate::metrics`]);
    /// until set, dropping the context counts it as cancelled.
    outcome: Option<Outcome>,
    /// The counters this request is counted in.
    pub metrics: &'a Metrics,
}

/// The bucket a finished request is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A backend's response was relayed.
    Response,
    /// A route answered with its redirect or fixed response.
    Local,
    /// switchyard answered with an error.
    Error,
    /// 429.
    RateLimited,
}

impl<'a> RequestCtx<'a> {
    /// Starts the context of a request that counts in `metrics`, which arrived at `start`.
    pub fn new(
        metrics: &'a Metrics,
        client: SocketAddr,
        req: &http::request::Parts,
        start: Instant,
    ) -> Self {
        metrics::inc(&metrics.local().requests);
        let log = AccessLog::enabled().then(|| {
            Box::new(AccessLog {
                method: req.method.clone(),
                uri: req.uri.clone(),
                client,
                status: 0,
                backend: None,
                attempts: 0,
                start,
                error: None,
                api_key: None,
                jwt_sub: None,
            })
        });
        RequestCtx {
            client,
            api_key: None,
            quota: None,
            jwt: None,
            start,
            attempts: 0,
            log,
            outcome: None,
            metrics,
        }
    }

    /// Records which bucket the request ends in, the status sent and the backend tried last
    /// when its response is not the one relayed; returns the access-log line to write once
    /// the body is done.
    pub fn finish(
        mut self,
        outcome: Outcome,
        status: u16,
        backend: Option<&std::sync::Arc<str>>,
    ) -> Option<Box<AccessLog>> {
        self.outcome = Some(outcome);
        let mut log = self.log.take()?;
        log.status = status;
        log.attempts = self.attempts;
        log.backend = backend.cloned();
        log.api_key = self.api_key.take();
        log.jwt_sub = self.jwt.as_ref().and_then(|j| j.subject.clone());
        Some(log)
    }
}

impl Drop for RequestCtx<'_> {
    fn drop(&mut self) {
        let c = self.metrics.local();
        metrics::inc(match self.outcome {
            Some(Outcome::Response) => &c.responses,
            Some(Outcome::Local) => &c.local,
            Some(Outcome::Error) => &c.errors,
            Some(Outcome::RateLimited) => &c.rate_limited,
            None => &c.cancelled,
        });
    }
}
